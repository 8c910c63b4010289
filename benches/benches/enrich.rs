//! Enrichment of fleet-v1 readings with a registry of 10,000 devices, in a
//! 1-worker timely dataflow fed as the event-time source would: the
//! driver of [`iotflow_benches::run_dataflow`] (batches of 10,000, input
//! time at the watermark, max ts − 2 s + 1), with a second input for the
//! registry.
//!
//! The registry: a snapshot of every fleet device at time 0 (tenant, type,
//! firmware, a group, a metadata key) and 200 more that never send, then
//! 1,500 changes spread over the readings' event time: firmware updates,
//! suspensions, removals (their devices' later readings are rejected) and
//! re-registrations. Two schedules:
//!
//! * `registry_ahead`: the registry's frontier is at the largest event time
//!   sent (a live registry follows wall-clock time, which is ahead of the
//!   readings' watermark): readings are joined as soon as their batch is
//!   complete.
//! * `registry_lagging_1s`: its frontier trails the readings' watermark by
//!   1 s of event time, and every change arrives after the readings it
//!   affects: most readings wait for the registry before they are joined.
//!
//! Throughput counts input readings. Before measuring, the bench prints
//! the outcome counts and the registry state's size (versions kept, and the
//! checkpoint bytes per device).
//!
//! ```text
//! cargo bench -p iotflow-benches --bench enrich
//! ```

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{decoded, fleet_lines};
use iotflow_core::validate::Rules;
use iotflow_enrich::{Enrich, EnrichConfig, EnrichState, EnrichTally};
use iotflow_types::{DeviceId, DeviceInfo, DeviceStatus, DeviceUpdate, Reading, Timestamp};

const READINGS: u64 = 1_000_000;
const DEVICES: u64 = 10_000;
const CHANGES: u64 = 1_500;
const BATCH: usize = 10_000;
const DISORDER_MS: u64 = 2_000;

fn info(i: u64, firmware: u64, status: DeviceStatus) -> Arc<DeviceInfo> {
    let id = format!("d-{i:05}");
    let mut d = DeviceInfo::new(
        &id,
        &format!("tenant-{:02}", i % 20),
        ["thermostat", "pump", "meter", "hvac"][(i % 4) as usize],
    );
    d.status = status;
    d.firmware = Some(format!("1.{firmware}.0").as_str().into());
    d.groups = vec![format!("site-{:03}", i % 50).as_str().into()];
    d.metadata = vec![(
        "region".into(),
        ["eu-west", "us-east", "ap-south"][(i % 3) as usize].into(),
    )];
    Arc::new(d)
}

/// The registry as (stamp, update), in stamp order: the snapshot at 0,
/// then `CHANGES` changes between `start` and `end`.
fn registry(start: Timestamp, end: Timestamp) -> Vec<(Timestamp, DeviceUpdate)> {
    let mut seq = 0;
    let mut out = Vec::new();
    let mut push = |at, i: u64, info| {
        seq += 1;
        let device = DeviceId::new(&format!("d-{i:05}"));
        out.push((
            at,
            DeviceUpdate {
                at,
                seq,
                device,
                info,
            },
        ));
    };
    for i in 0..DEVICES + 200 {
        push(0, i, Some(info(i, i % 5, DeviceStatus::Active)));
    }
    let span = end.saturating_sub(start).max(1);
    for k in 0..CHANGES {
        let at = start + k * span / CHANGES;
        let i = (k * 7_919) % DEVICES;
        let change = match k % 20 {
            0 => None,
            1 | 2 => Some(info(i, 9, DeviceStatus::Suspended)),
            _ => Some(info(i, 5 + k % 3, DeviceStatus::Active)),
        };
        push(at, i, change);
    }
    out
}

/// One run: (records out, elapsed). `lag`: how far the registry's
/// frontier trails the readings' watermark (`None`: ahead, at the largest
/// event time sent).
fn run(
    readings: Vec<Reading>,
    updates: Vec<(Timestamp, DeviceUpdate)>,
    lag: Option<u64>,
) -> (u64, Duration, EnrichTally) {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::{Input, Inspect, Probe};
    use timely::dataflow::{InputHandle, ProbeHandle};

    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut registry = InputHandle::<u64, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let probe = ProbeHandle::new();
        let count = Rc::new(Cell::new(0u64));
        let tally = Rc::new(RefCell::new(EnrichTally::default()));
        let (seen, seen_rejects, t) = (count.clone(), count.clone(), tally.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            let u = scope.input_from(&mut registry);
            let s = scope
                .input_from(&mut input)
                .enrich("enrich", &u, &EnrichConfig::default(), None)
                .expect("no restore");
            s.tally.inspect(move |x| t.borrow_mut().merge(x));
            s.rejects
                .inspect_core(move |e| {
                    if let Ok((_, out)) = e {
                        seen_rejects.set(seen_rejects.get() + out.len() as u64);
                    }
                })
                .probe_with(&probe);
            s.enriched
                .inspect_core(move |e| {
                    if let Ok((_, out)) = e {
                        seen.set(seen.get() + out.len() as u64);
                    }
                })
                .probe_with(&probe);
        });
        let started = std::time::Instant::now();
        let mut updates = updates.into_iter().peekable();
        let mut max_ts = 0u64;
        let mut readings = readings.into_iter();
        // (stamp, latest join time) of each batch sent.
        let mut pending = std::collections::VecDeque::new();
        loop {
            let mut sent = 0;
            let stamp = *input.time();
            let mut last = stamp;
            for r in readings.by_ref().take(BATCH) {
                max_ts = max_ts.max(r.ts);
                last = last.max(r.ts);
                input.send(r);
                sent += 1;
            }
            if sent == 0 {
                break;
            }
            pending.push_back((stamp, last));
            let frontier = max_ts.saturating_sub(DISORDER_MS) + 1;
            let target = match lag {
                None => max_ts + 1,
                Some(lag) => frontier.saturating_sub(lag),
            };
            while let Some((at, _)) = updates.peek() {
                if *at >= target {
                    break;
                }
                if let Some((at, u)) = updates.next() {
                    if at > *registry.time() {
                        registry.advance_to(at);
                    }
                    registry.send(u);
                }
            }
            if target > *registry.time() {
                registry.advance_to(target);
            }
            if frontier > *input.time() {
                input.advance_to(frontier);
            }
            // Batches whose readings may still wait for the registry hold
            // the output at their stamp: step until everything else is out.
            while pending.front().is_some_and(|(_, last)| *last < target) {
                pending.pop_front();
            }
            let caught_up = pending.front().map_or(frontier, |(t, _)| frontier.min(*t));
            while probe.less_than(&caught_up) {
                worker.step();
            }
        }
        drop(input);
        for (_, u) in updates {
            registry.send(u);
        }
        drop(registry);
        while worker.step() {}
        let elapsed = started.elapsed();
        (count.get(), elapsed, tally.borrow().clone())
    })
}

/// The registry state after every update, compacted past the readings:
/// (devices, versions, checkpoint bytes per device).
fn state_size(updates: &[(Timestamp, DeviceUpdate)], end: Timestamp) -> (usize, usize, f64) {
    let mut st = EnrichState::default();
    for (t, u) in updates {
        st.apply(u.clone(), *t);
    }
    st.compact(end);
    let bytes = iotflow_core::state::encode(&st).map_or(0, |b| b.len());
    (
        st.devices(),
        st.versions(),
        bytes as f64 / st.devices().max(1) as f64,
    )
}

fn enrich(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let start = readings.iter().map(|r| r.ts).min().unwrap_or_default();
    let end = readings.iter().map(|r| r.ts).max().unwrap_or_default();
    let updates = registry(start, end);
    let (devices, versions, bytes) = state_size(&updates, end + 1);
    let (out, _, tally) = run(readings.clone(), updates.clone(), None);
    assert_eq!(out, readings.len() as u64, "every reading comes out once");
    println!(
        "enrich: {} readings, {} updates: {} enriched ({} inactive), {} rejected, {} late; \
         state at the end: {devices} devices, {versions} versions, {bytes:.0} checkpoint bytes/device",
        tally.received, tally.updates, tally.enriched, tally.inactive, tally.rejected, tally.late
    );
    let (_, _, lagging) = run(readings.clone(), updates.clone(), Some(1_000));
    assert_eq!(deterministic(&lagging), deterministic(&tally));
    println!(
        "enrich, registry lagging 1 s: {} of {} readings waited",
        lagging.waited, lagging.received
    );

    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(10);
    for (name, lag) in [
        ("registry_ahead_10k_devices", None),
        ("registry_lagging_1s_10k_devices", Some(1_000)),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The clones are made outside the measured time.
                    let (n, elapsed, _) = run(readings.clone(), updates.clone(), lag);
                    assert_eq!(n, readings.len() as u64);
                    total += elapsed;
                }
                total
            });
        });
    }
    g.finish();
}

fn deterministic(t: &EnrichTally) -> EnrichTally {
    EnrichTally {
        waited: 0,
        ..t.clone()
    }
}

criterion_group!(benches, enrich);
criterion_main!(benches);
