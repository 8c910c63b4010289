//! The presence operator against a naive reference on random input: sort
//! each device's readings and scan the gaps. Sorted and disordered arrival
//! (within the watermark's allowed disorder), 1 and 2 workers, with and
//! without registry updates: the same events and last-seen reports.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Step, run, script};
use iotflow_fleet::{LastSeen, PresenceConfig, PresenceEvent, PresenceKind};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading, Timestamp};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DISORDER: Timestamp = 3_000;

/// A registration (and maybe a removal) of a device.
#[derive(Clone, Debug)]
struct Reg {
    device: String,
    at: Timestamp,
    removed: Option<Timestamp>,
}

/// The reference: every device's readings in time order, gaps scanned.
fn reference(
    readings: &[Reading],
    regs: &[Reg],
    config: &PresenceConfig,
) -> (Vec<PresenceEvent>, Vec<LastSeen>) {
    let n = config.offline_after_ms;
    let every = config.last_seen_every_ms;
    let mut by_device: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    for r in readings {
        by_device
            .entry(r.device.to_string())
            .or_default()
            .push(r.ts);
    }
    for g in regs {
        by_device.entry(g.device.clone()).or_default();
    }
    let ev = |d: &str, at, kind, last_seen| PresenceEvent {
        device: DeviceId::new(d),
        at,
        kind,
        last_seen,
    };
    let mut events = Vec::new();
    let mut seen = Vec::new();
    for (d, mut ts) in by_device {
        ts.sort();
        let first = ts.first().copied();
        // A registration counts only if the device has sent nothing before
        // it; it then expects a reading within `n`, unless removed first
        // (a deadline fires before an update at the same time; an update
        // before a reading at the same time).
        if let Some(g) = regs.iter().find(|g| g.device == d)
            && first.is_none_or(|f| f >= g.at)
        {
            let deadline = g.at + n;
            let cancelled = g
                .removed
                .is_some_and(|q| q < deadline && first.is_none_or(|f| f >= q));
            if !cancelled && first.is_none_or(|f| f >= deadline) {
                events.push(ev(&d, deadline, PresenceKind::Offline, None));
            }
        }
        let mut last: Option<Timestamp> = None;
        for &t in &ts {
            match last {
                None => events.push(ev(&d, t, PresenceKind::Online, None)),
                Some(l) if t - l >= n => {
                    events.push(ev(&d, l + n, PresenceKind::Offline, Some(l)));
                    events.push(ev(&d, t, PresenceKind::Online, Some(l)));
                }
                Some(_) => {}
            }
            last = Some(t);
        }
        if let Some(l) = last {
            events.push(ev(&d, l + n, PresenceKind::Offline, Some(l)));
        }
        // Last seen: at each period's end, if the device sent in it.
        let mut periods: BTreeMap<Timestamp, Timestamp> = BTreeMap::new();
        for &t in &ts {
            periods.insert((t / every + 1) * every, t);
        }
        for (at, last_seen) in periods {
            seen.push(LastSeen {
                device: DeviceId::new(&d),
                last_seen,
                at,
            });
        }
    }
    events.sort();
    seen.sort();
    (events, seen)
}

/// Random readings of a few devices that come and go, each sent no
/// earlier than the watermark (largest time so far − DISORDER).
fn random_readings(rng: &mut SmallRng, n: usize) -> Vec<Reading> {
    let devices = rng.random_range(2..6);
    let mut base = 0u64;
    (0..n)
        .map(|_| {
            base += rng.random_range(0..900);
            // Some devices are silent for long stretches.
            let d = rng.random_range(0..devices);
            let ts = base + rng.random_range(0..DISORDER);
            Reading::new(&format!("d{d}"), ts, "m", 1.0)
        })
        .collect()
}

/// The readings in an arrival order within the allowed disorder, each
/// stamped at the watermark when sent; registry updates sent at their own
/// time.
fn arrival(readings: &[Reading], regs: &[Reg], shuffle: Option<&mut SmallRng>) -> Vec<Step> {
    let mut order = readings.to_vec();
    match shuffle {
        Some(rng) => {
            order.shuffle(rng);
            // A jittered sort keeps the disorder bounded.
            order.sort_by_cached_key(|r| r.ts + rng.random_range(0..DISORDER / 2));
        }
        None => order.sort_by_key(|r| r.ts),
    }
    let mut updates: Vec<(Timestamp, DeviceUpdate)> = Vec::new();
    for (i, g) in regs.iter().enumerate() {
        let info = Arc::new(DeviceInfo::new(&g.device, "t", "x"));
        updates.push((
            g.at,
            DeviceUpdate {
                at: g.at,
                seq: 2 * i as u64,
                device: DeviceId::new(&g.device),
                info: Some(info),
            },
        ));
        if let Some(q) = g.removed {
            updates.push((
                q,
                DeviceUpdate {
                    at: q,
                    seq: 2 * i as u64 + 1,
                    device: DeviceId::new(&g.device),
                    info: None,
                },
            ));
        }
    }
    updates.sort_by_key(|(t, _)| *t);
    let mut items = Vec::new();
    let mut max_ts = 0u64;
    let mut updates = updates.into_iter().peekable();
    for r in order {
        let wm = max_ts.saturating_sub(DISORDER);
        assert!(r.ts >= wm, "the shuffle stays within the disorder");
        // Updates go out at their own time, before the watermark passes it.
        while let Some((t, _)) = updates.peek()
            && *t < wm
        {
            let (t, u) = updates.next().expect("peeked");
            items.push((t, Step::Update(u)));
        }
        max_ts = max_ts.max(r.ts);
        items.push((wm, Step::Reading(r)));
    }
    items.extend(updates.map(|(t, u)| (t, Step::Update(u))));
    assert!(items.is_sorted_by_key(|(t, _)| *t), "stamps never decrease");
    script(items)
}

fn random_regs(rng: &mut SmallRng, horizon: Timestamp) -> Vec<Reg> {
    (0..rng.random_range(0..6))
        .map(|i| {
            // Some registered devices also send (d0..d5), others never.
            let device = if rng.random_bool(0.5) {
                format!("d{}", rng.random_range(0..6))
            } else {
                format!("never{i}")
            };
            let at = rng.random_range(0..horizon);
            Reg {
                device,
                at,
                removed: rng
                    .random_bool(0.4)
                    .then(|| at + rng.random_range(1..12_000)),
            }
        })
        .fold(Vec::new(), |mut acc: Vec<Reg>, g| {
            // One registration per device keeps the reference simple.
            if !acc.iter().any(|x| x.device == g.device) {
                acc.push(g);
            }
            acc
        })
}

#[test]
fn presence_matches_the_gap_scanning_reference() {
    let mut rng = SmallRng::seed_from_u64(2024);
    let (mut offline_mid_run, mut never_seen_offline, mut returns) = (0, 0, 0);
    for round in 0..40 {
        let config = PresenceConfig::default()
            .with_offline_after_ms(rng.random_range(2..10) * 1_000)
            .with_last_seen_every(std::time::Duration::from_millis(
                rng.random_range(1..20) * 1_000,
            ));
        let n = rng.random_range(10..80);
        let readings = random_readings(&mut rng, n);
        let horizon = readings.iter().map(|r| r.ts).max().unwrap_or(0);
        let regs = if round % 2 == 0 {
            Vec::new()
        } else {
            random_regs(&mut rng, horizon)
        };
        let (want_events, want_seen) = reference(&readings, &regs, &config);
        never_seen_offline += want_events
            .iter()
            .filter(|e| e.kind == PresenceKind::Offline && e.last_seen.is_none())
            .count();
        returns += want_events
            .iter()
            .filter(|e| e.kind == PresenceKind::Online && e.last_seen.is_some())
            .count();
        let sorted = arrival(&readings, &regs, None);
        let shuffled = arrival(&readings, &regs, Some(&mut rng));
        for (name, steps) in [("sorted", &sorted), ("shuffled", &shuffled)] {
            for workers in [1, 2] {
                let got = run(&config, steps, workers, !regs.is_empty());
                let ctx = format!("round {round}, {name}, {workers} workers, regs {regs:?}");
                assert!(
                    got.late.is_empty(),
                    "{ctx}: nothing is late by construction"
                );
                assert_eq!(got.sorted_events(), want_events, "{ctx}");
                assert_eq!(got.sorted_last_seen(), want_seen, "{ctx}");
                assert!(got.events.iter().all(|(t, e, _)| *t == e.at), "{ctx}");
                assert!(got.last_seen.iter().all(|(t, l)| *t == l.at), "{ctx}");
                got.tally.check_conservation().expect("conserved");
                offline_mid_run += got
                    .events
                    .iter()
                    .filter(|(_, e, seen)| e.kind == PresenceKind::Offline && seen.is_some())
                    .count();
            }
        }
    }
    assert!(
        never_seen_offline > 10 && returns > 50,
        "weak input: {never_seen_offline} silent registered devices, {returns} returns"
    );
    assert!(
        offline_mid_run > 100,
        "too few offline events fired with the input open: {offline_mid_run}"
    );
}
