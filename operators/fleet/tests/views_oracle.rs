//! Fleet views against a naive reference: random registry changes
//! (registrations, status, firmware and group changes, removals,
//! re-registrations, same-time ties, updates released late) and presence
//! events; at every time, the folded count changes equal the counts
//! recomputed from scratch. 1 and 2 workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use iotflow_fleet::{FleetCount, FleetView, FleetViews, PresenceEvent, PresenceKind, View};
use iotflow_types::{DeviceId, DeviceInfo, DeviceStatus, DeviceUpdate, SmallStr, Timestamp};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

const DISORDER: Timestamp = 2_000;

#[derive(Clone, Debug)]
enum Item {
    Update(DeviceUpdate),
    Presence(PresenceEvent),
}

impl Item {
    fn at(&self) -> Timestamp {
        match self {
            Item::Update(u) => u.at,
            Item::Presence(p) => p.at,
        }
    }
}

type Counts = BTreeMap<(View, String, String), u64>;

/// What orders the changes of one device: (takes effect, at, seq).
type Order = (Timestamp, Timestamp, u64);

fn random_info(rng: &mut SmallRng, device: &str) -> DeviceInfo {
    let tenant = ["acme", "globex"][rng.random_range(0..2)];
    let mut info = DeviceInfo::new(device, tenant, ["meter", "pump"][rng.random_range(0..2)]);
    info.status = DeviceStatus::ALL[rng.random_range(0..3)];
    info.firmware =
        [None, Some("1.0"), Some("1.1"), Some("2.0")][rng.random_range(0..4)].map(SmallStr::new);
    let mut groups: Vec<SmallStr> = ["g1", "g2", "g3"]
        .into_iter()
        .filter(|_| rng.random_bool(0.4))
        .map(SmallStr::new)
        .collect();
    groups.sort();
    info.groups = groups;
    info
}

/// Random changes of a few devices, with the time each is stamped at:
/// usually the watermark (up to DISORDER behind), sometimes after its own
/// time (released late: it takes effect when stamped).
fn random_input(rng: &mut SmallRng) -> Vec<(Timestamp, Item)> {
    let devices = rng.random_range(2..9);
    let mut items = Vec::new();
    let mut seq = 0u64;
    // The registry snapshot at time 0.
    for d in 0..devices {
        if rng.random_bool(0.7) {
            let id = format!("d{d}");
            seq += 1;
            items.push(Item::Update(DeviceUpdate {
                at: 0,
                seq,
                device: DeviceId::new(&id),
                info: Some(Arc::new(random_info(rng, &id))),
            }));
        }
    }
    let mut base = 0u64;
    let mut last_at: BTreeMap<String, Timestamp> = BTreeMap::new();
    for _ in 0..rng.random_range(10..60) {
        base += rng.random_range(0..800);
        let id = format!("d{}", rng.random_range(0..devices));
        // Now and then a second change of a device at the same time.
        let at = match last_at.get(&id) {
            Some(t) if rng.random_bool(0.15) => *t,
            _ => base + rng.random_range(0..DISORDER),
        };
        last_at.insert(id.clone(), at);
        if rng.random_bool(0.3) {
            // Presence, with now and then the offline/online pair of a
            // reading right at the deadline.
            let kind = [PresenceKind::Online, PresenceKind::Offline][rng.random_range(0..2)];
            let ev = |kind| PresenceEvent {
                device: DeviceId::new(&id),
                at,
                kind,
                last_seen: None,
            };
            items.push(Item::Presence(ev(kind)));
            if rng.random_bool(0.2) {
                items.push(Item::Presence(ev(PresenceKind::Online)));
                items.push(Item::Presence(ev(PresenceKind::Offline)));
            }
        } else {
            seq += 1;
            let info = (!rng.random_bool(0.25)).then(|| Arc::new(random_info(rng, &id)));
            items.push(Item::Update(DeviceUpdate {
                at,
                seq,
                device: DeviceId::new(&id),
                info,
            }));
        }
    }
    // Arrival: shuffled within the disorder; stamped at the watermark, or
    // (now and then) a little after the item's own time.
    items.shuffle(rng);
    items.sort_by_cached_key(|i| i.at() + rng.random_range(0..DISORDER / 2));
    let mut max_at = 0u64;
    let mut stamp = 0u64;
    let mut out = Vec::new();
    for item in items {
        let wm = max_at.saturating_sub(DISORDER);
        stamp = stamp.max(wm.min(item.at()));
        if rng.random_bool(0.1) {
            stamp = stamp.max(item.at() + rng.random_range(1..500));
        }
        max_at = max_at.max(item.at());
        out.push((stamp, item));
    }
    out
}

/// The counts at `time`, from scratch: each device's winning change among
/// those in effect (taking effect at `max(at, stamp)`; later effect wins,
/// then larger `at`, then larger `seq`; presence: `online` wins a tie).
fn reference(input: &[(Timestamp, Item)], time: Timestamp) -> Counts {
    let mut facts: BTreeMap<String, (Order, Option<Arc<DeviceInfo>>)> = BTreeMap::new();
    let mut presence: BTreeMap<String, (Order, PresenceKind)> = BTreeMap::new();
    for (stamp, item) in input {
        let effect = (*stamp).max(item.at());
        if effect > time {
            continue;
        }
        match item {
            Item::Update(u) => {
                let key = (effect, u.at, u.seq);
                let e = facts.entry(u.device.to_string()).or_insert((key, None));
                if key >= e.0 {
                    *e = (key, u.info.clone());
                }
            }
            Item::Presence(p) => {
                let key = (effect, p.at, u64::from(p.kind == PresenceKind::Online));
                let e = presence
                    .entry(p.device.to_string())
                    .or_insert((key, p.kind));
                if key >= e.0 {
                    *e = (key, p.kind);
                }
            }
        }
    }
    let mut counts = Counts::new();
    let mut add = |view, tenant: &str, key: &str| {
        *counts
            .entry((view, tenant.to_owned(), key.to_owned()))
            .or_default() += 1;
    };
    for (device, (_, info)) in &facts {
        let Some(info) = info else { continue };
        let t = info.tenant.as_str();
        add(View::Tenant, t, t);
        add(View::Status, t, info.status.as_str());
        add(View::Firmware, t, info.firmware.as_deref().unwrap_or(""));
        add(View::DeviceType, t, &info.device_type);
        for g in &info.groups {
            add(View::Group, t, g);
        }
        let p = presence.get(device).map_or("unknown", |(_, k)| k.as_str());
        add(View::Presence, t, p);
    }
    counts
}

fn folded(view: &FleetView) -> Counts {
    view.rows()
        .map(|(r, n)| ((r.view, r.tenant.to_string(), r.key.to_string()), n))
        .collect()
}

/// Runs the views on `workers` workers; returns every count change with
/// the time it was stamped at.
fn run(input: &[(Timestamp, Item)], workers: usize) -> Vec<(Timestamp, FleetCount)> {
    let out: Arc<Mutex<Vec<(Timestamp, FleetCount)>>> = Arc::default();
    let (shared, input) = (out.clone(), input.to_vec());
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut updates =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let mut presence =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<PresenceEvent>>>::new();
        let sink = shared.clone();
        let probe = worker.dataflow::<Timestamp, _, _>(|scope| {
            let p = scope.input_from(&mut presence);
            scope
                .input_from(&mut updates)
                .fleet_views("fleet", Some(p))
                .counts
                .inspect_core(move |e| {
                    if let Ok((stamp, data)) = e {
                        let t = *stamp.least().expect("stamped");
                        let mut out = sink.lock().expect("lock");
                        out.extend(data.iter().map(|c| (t, c.clone())));
                    }
                })
                .probe()
                .0
        });
        if worker.index() == 0 {
            for (i, (t, item)) in input.iter().enumerate() {
                if *t > *updates.time() {
                    updates.advance_to(*t);
                    presence.advance_to(*t);
                }
                match item {
                    Item::Update(u) => updates.send(u.clone()),
                    Item::Presence(p) => presence.send(p.clone()),
                }
                if i % 4 == 3 {
                    worker.step_while(|| probe.less_than(updates.time()));
                }
            }
        }
        drop(updates);
        drop(presence);
        while worker.step() {}
    })
    .expect("timely runs");
    std::mem::take(&mut *out.lock().expect("lock"))
}

#[test]
fn folded_counts_match_recomputation_at_every_time() {
    let mut rng = SmallRng::seed_from_u64(99);
    let (mut changes, mut removals_seen) = (0, 0);
    for round in 0..40 {
        let input = random_input(&mut rng);
        let mut times: BTreeSet<Timestamp> = input
            .iter()
            .flat_map(|(s, i)| {
                let e = (*s).max(i.at());
                [e.saturating_sub(1), e]
            })
            .collect();
        times.insert(Timestamp::MAX);
        removals_seen += input
            .iter()
            .filter(|(_, i)| matches!(i, Item::Update(u) if u.info.is_none()))
            .count();
        for workers in [1, 2] {
            let got = run(&input, workers);
            let ctx = format!("round {round}, {workers} workers");
            changes += got.len();
            let counts: Vec<FleetCount> = got.iter().map(|(_, c)| c.clone()).collect();
            for (stamp, c) in &got {
                assert_eq!(*stamp, c.at, "{ctx}: stamped at its time");
                // `count` is the row's count from `at` on.
                let view = FleetView::at(&counts, c.at);
                assert_eq!(
                    view.count(c.view, &c.tenant, &c.key),
                    c.count,
                    "{ctx}: {c:?}"
                );
            }
            let mut rows_at: BTreeSet<(Timestamp, View, &str, &str)> = BTreeSet::new();
            for c in &counts {
                assert!(
                    rows_at.insert((c.at, c.view, &c.tenant, &c.key)),
                    "{ctx}: one change per row and time: {c:?}"
                );
                assert_ne!(c.delta, 0, "{ctx}: {c:?}");
            }
            for &t in &times {
                assert_eq!(
                    folded(&FleetView::at(&counts, t)),
                    reference(&input, t),
                    "{ctx}, at {t}\ninput {input:#?}"
                );
            }
        }
    }
    assert!(
        changes > 1_000 && removals_seen > 40,
        "{changes} changes, {removals_seen} removals"
    );
}

#[test]
fn views_without_presence_have_no_presence_rows() {
    let info = DeviceInfo::new("d", "acme", "meter");
    let rx = timely::example(move |scope| {
        use timely::dataflow::operators::{Capture, ToStream};
        vec![DeviceUpdate {
            at: 0,
            seq: 1,
            device: DeviceId::new("d"),
            info: Some(Arc::new(info)),
        }]
        .to_stream(scope)
        .fleet_views("fleet", None)
        .counts
        .capture()
    });
    let counts: Vec<FleetCount> = rx
        .try_iter()
        .flat_map(|e| match e {
            timely::dataflow::operators::capture::Event::Messages(_, d) => d,
            _ => Vec::new(),
        })
        .collect();
    let view = FleetView::at(&counts, 0);
    assert_eq!(
        view.count(View::Firmware, "acme", ""),
        1,
        "no firmware: key \"\""
    );
    assert_eq!(view.count(View::DeviceType, "acme", "meter"), 1);
    assert_eq!(view.len(), 4, "tenant, status, firmware, type: {view:?}");
    assert!(view.rows().all(|(r, _)| r.view != View::Presence));
}
