//! Seeded random input: a registry and readings of a few devices,
//! interleaved into one script (see the oracle test's docs).

use std::sync::Arc;

use iotflow_types::{DeviceId, DeviceInfo, DeviceStatus, DeviceUpdate, Reading, Timestamp};
use rand::Rng;
use rand::rngs::SmallRng;

use super::Action;

pub const DISORDER: u64 = 2_000;
/// Devices in the registry; readings come from d0..d5 (d5 never
/// registered, d4 registered midway), d6 and d7 send nothing.
const REGISTERED: [&str; 7] = ["d0", "d1", "d2", "d3", "d4", "d6", "d7"];
const READING: [&str; 6] = ["d0", "d1", "d2", "d3", "d4", "d5"];

pub struct Case {
    pub script: Vec<Action>,
    /// Every reading with its stamp.
    pub readings: Vec<(Timestamp, Reading)>,
    /// Every update with its stamp.
    pub updates: Vec<(Timestamp, DeviceUpdate)>,
}

fn info(rng: &mut SmallRng, device: &str, seq: u64) -> Arc<DeviceInfo> {
    let mut i = DeviceInfo::new(device, "acme", "thermostat");
    // Each description is told apart by its name.
    i.name = format!("{device}#{seq}").as_str().into();
    i.firmware = Some(format!("{}.0", rng.random_range(1..4)).as_str().into());
    i.groups = (0..rng.random_range(0..3))
        .map(|g| format!("g{g}").as_str().into())
        .collect();
    i.status = match rng.random_range(0..10) {
        0 => DeviceStatus::Suspended,
        1 => DeviceStatus::Decommissioned,
        _ => DeviceStatus::Active,
    };
    Arc::new(i)
}

/// `lead`: how far in event time the registry input runs ahead of the
/// readings' largest event time (negative: behind).
pub fn random_case(rng: &mut SmallRng, n: usize, lead: i64) -> Case {
    let mut seq = 0u64;
    let mut updates: Vec<(Timestamp, DeviceUpdate, u64)> = Vec::new();
    let mut push = |rng: &mut SmallRng, stamp, at, device: &str, some: bool, seq: &mut u64| {
        *seq += 1;
        let u = DeviceUpdate {
            at,
            seq: *seq,
            device: DeviceId::new(device),
            info: some.then(|| info(rng, device, *seq)),
        };
        let order = rng.random();
        updates.push((stamp, u, order));
    };
    for d in ["d0", "d1", "d2", "d3", "d6"] {
        push(rng, 0, 0, d, true, &mut seq);
    }
    let horizon = n as u64 * 200 + DISORDER;
    push(rng, horizon / 2, horizon / 2, "d4", true, &mut seq);
    let mut last_at = 0;
    for _ in 0..n / 4 {
        let d = REGISTERED[rng.random_range(0..REGISTERED.len())];
        // Some ties: the same `at` as the previous change.
        let at = if rng.random_bool(0.15) {
            last_at
        } else {
            rng.random_range(0..horizon)
        };
        last_at = at;
        let stamp = if rng.random_bool(0.05) {
            at + rng.random_range(1..3_000)
        } else {
            at
        };
        let some = rng.random_range(0..4) > 0;
        push(rng, stamp, at, d, some, &mut seq);
    }
    // Sent in stamp order; ties at one stamp in random order.
    updates.sort_by_key(|(stamp, _, order)| (*stamp, *order));
    let updates: Vec<(Timestamp, DeviceUpdate)> =
        updates.into_iter().map(|(s, u, _)| (s, u)).collect();

    let mut script = Vec::new();
    let mut readings = Vec::new();
    let mut next_update = 0;
    let mut base = 0u64;
    let mut max_ts = 0u64;
    for i in 0..n {
        let wm = max_ts.saturating_sub(DISORDER);
        base += rng.random_range(0..400);
        let ts = if wm > 1_500 && rng.random_bool(0.03) {
            wm - rng.random_range(1..1_500)
        } else {
            base + rng.random_range(0..DISORDER)
        };
        max_ts = max_ts.max(ts);
        // The registry, up to `max_ts + lead`.
        let target = (max_ts as i64 + lead).max(0) as u64;
        while next_update < updates.len() && updates[next_update].0 < target {
            let (s, u) = updates[next_update].clone();
            script.push(Action::Update(s, u));
            next_update += 1;
        }
        let limit = updates
            .get(next_update)
            .map_or(target, |(s, _)| target.min(*s));
        script.push(Action::AdvanceUpdates(limit));
        let d = READING[rng.random_range(0..READING.len())];
        let r = Reading::new(d, ts, "temp", rng.random_range(0..100) as f64);
        script.push(Action::Reading(wm, r.clone()));
        readings.push((wm, r));
        if i % 4 == 3 {
            script.push(Action::Step);
        }
    }
    for (s, u) in &updates[next_update..] {
        script.push(Action::Update(*s, u.clone()));
    }
    Case {
        script,
        readings,
        updates,
    }
}
