//! The presence state machine on its own: semantics at the edges, and
//! snapshots that rescale without changing what comes out.

use std::sync::Arc;

use iotflow_core::state::{KeyedState, decode, encode, rescale, route};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading, Timestamp, stable_hash};

use super::config::PresenceConfig;
use super::event::PresenceKind::{Offline, Online};
use super::event::{LastSeen, PresenceKind};
use super::state::{Output, PresenceState};

fn config() -> PresenceConfig {
    PresenceConfig::default()
        .with_offline_after_ms(100)
        .with_last_seen_every(std::time::Duration::from_millis(50))
}

fn reading(device: &str, ts: Timestamp) -> Reading {
    Reading::new(device, ts, "m", 1.0)
}

fn update(device: &str, at: Timestamp, seq: u64, registered: bool) -> DeviceUpdate {
    DeviceUpdate {
        at,
        seq,
        device: DeviceId::new(device),
        info: registered.then(|| Arc::new(DeviceInfo::new(device, "t", "x"))),
    }
}

/// Events as `(device, at, kind, last_seen)`.
type Ev = (String, Timestamp, PresenceKind, Option<Timestamp>);

fn events(out: &[Output]) -> Vec<Ev> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some((e.device.to_string(), e.at, e.kind, e.last_seen)),
            Output::LastSeen(_) => None,
        })
        .collect()
}

fn ev(d: &str, at: Timestamp, kind: PresenceKind, last: Option<Timestamp>) -> Ev {
    (d.to_owned(), at, kind, last)
}

#[test]
fn a_reading_at_the_deadline_comes_after_the_offline_event() {
    let c = config();
    let mut st = PresenceState::default();
    let mut out = Vec::new();
    for ts in [0, 99, 199, 320] {
        st.push_reading(ts, reading("a", ts)).expect("on time");
    }
    st.release(Some(199), &c, &mut |o| out.push(o));
    // The deadline 199 is not before the bound: undecided.
    assert_eq!(events(&out), [ev("a", 0, Online, None)]);
    st.release(None, &c, &mut |o| out.push(o));
    assert_eq!(
        events(&out),
        [
            ev("a", 0, Online, None),
            // 99 → 199: a gap of exactly offline_after is offline.
            ev("a", 199, Offline, Some(99)),
            ev("a", 199, Online, Some(99)),
            ev("a", 299, Offline, Some(199)),
            ev("a", 320, Online, Some(199)),
            ev("a", 420, Offline, Some(320)),
        ]
    );
    let t = st.tally();
    assert_eq!((t.readings, t.applied, t.online, t.offline), (4, 4, 3, 3));
}

#[test]
fn registered_devices_that_never_send_go_offline_and_removal_cancels() {
    let c = config();
    let mut st = PresenceState::default();
    let mut out = Vec::new();
    st.push_update(0, update("silent", 0, 1, true));
    st.push_update(0, update("removed", 0, 2, true));
    st.push_update(0, update("late-sender", 0, 3, true));
    st.push_update(0, update("prompt", 0, 4, true));
    st.push_update(50, update("removed", 50, 5, false));
    st.push_reading(10, reading("prompt", 10)).expect("on time");
    st.push_reading(150, reading("late-sender", 150))
        .expect("on time");
    // Re-registering or removing a device that went offline changes nothing.
    st.push_update(120, update("silent", 120, 6, true));
    st.push_update(130, update("silent", 130, 7, false));
    st.push_update(140, update("silent", 140, 8, true));
    st.release(None, &c, &mut |o| out.push(o));
    let mut got = events(&out);
    got.sort();
    assert_eq!(
        got,
        [
            ev("late-sender", 100, Offline, None),
            ev("late-sender", 150, Online, None),
            ev("late-sender", 250, Offline, Some(150)),
            ev("prompt", 10, Online, None),
            ev("prompt", 110, Offline, Some(10)),
            ev("silent", 100, Offline, None),
        ]
    );
    assert_eq!(st.devices(), 3, "the removed device is forgotten");
}

#[test]
fn registration_and_reading_at_the_same_time() {
    let c = config();
    let mut st = PresenceState::default();
    let mut out = Vec::new();
    st.push_reading(5, reading("a", 5)).expect("on time");
    st.push_update(5, update("a", 5, 1, true));
    // Removed and sending at once: the update comes first, then the reading.
    st.push_update(7, update("b", 7, 2, true));
    st.push_update(9, update("b", 9, 3, false));
    st.push_reading(9, reading("b", 9)).expect("on time");
    st.release(Some(100), &c, &mut |o| out.push(o));
    assert_eq!(
        events(&out),
        [ev("a", 5, Online, None), ev("b", 9, Online, None)]
    );
}

#[test]
fn late_readings_are_returned_and_counted() {
    let mut st = PresenceState::default();
    assert_eq!(st.push_reading(10, reading("a", 9)), Err(reading("a", 9)));
    assert_eq!(st.push_reading(10, reading("a", 10)), Ok(()));
    let t = st.tally();
    assert_eq!((t.readings, t.late), (2, 1));
    assert_eq!(st.pending(), 1);
}

#[test]
fn last_seen_is_reported_per_period_for_devices_that_changed() {
    let c = config(); // every 50 ms
    let mut st = PresenceState::default();
    let mut out = Vec::new();
    for (d, ts) in [
        ("a", 3),
        ("b", 20),
        ("a", 49),
        ("a", 50),
        ("b", 170),
        ("b", 170),
    ] {
        st.push_reading(ts, reading(d, ts)).expect("on time");
    }
    st.release(None, &c, &mut |o| out.push(o));
    let seen: Vec<(String, Timestamp, Timestamp)> = out
        .iter()
        .filter_map(|o| match o {
            Output::LastSeen(LastSeen {
                device,
                last_seen,
                at,
            }) => Some((device.to_string(), *last_seen, *at)),
            Output::Event(_) => None,
        })
        .collect();
    let s = |d: &str, l, at| (d.to_owned(), l, at);
    assert_eq!(
        seen,
        [
            s("a", 49, 50),
            s("b", 20, 50),
            s("a", 50, 100),
            s("b", 170, 200)
        ]
    );
    assert_eq!(st.last_seen(&DeviceId::new("b")), Some(170));
    assert_eq!(st.tally().last_seen, 4);
}

/// Pushes `(stamp, reading)`s one by one, releasing up to each stamp;
/// snapshots and restores on `new` of `old` workers before the `cut`-th.
/// Returns every output, sorted.
fn run(readings: &[(Timestamp, Reading)], old: usize, new: usize, cut: usize) -> Vec<String> {
    let c = config();
    let mut out = Vec::new();
    let mut emit = |o: Output| out.push(format!("{o:?}"));
    let mut states: Vec<PresenceState> = (0..old).map(|_| PresenceState::default()).collect();
    for (i, (t, r)) in readings.iter().enumerate() {
        for st in &mut states {
            st.release(Some(*t), &c, &mut emit);
        }
        if i == cut {
            let snaps: Vec<Vec<u8>> = states.iter().map(|s| encode(s).expect("encode")).collect();
            states = (0..new)
                .map(|w| {
                    let parts: Vec<PresenceState> =
                        snaps.iter().map(|b| decode(b).expect("decode")).collect();
                    let mut st = rescale(parts, w, new).expect("parts");
                    st.rebuild();
                    st
                })
                .collect();
        }
        let w = route(stable_hash(&r.device), states.len());
        states[w].push_reading(*t, r.clone()).expect("on time");
        if i % 97 == 0 {
            // Now and then a device registers and never sends.
            let u = update(&format!("reg-{i}"), *t, i as u64, true);
            let w = route(stable_hash(&u.device), states.len());
            states[w].push_update(*t, u);
        }
    }
    let mut tally = super::tally::PresenceTally::default();
    for st in &mut states {
        st.release(None, &c, &mut emit);
        assert_eq!(st.pending(), 0);
        assert_eq!(st.online(), 0, "everyone offline at the end");
        tally.merge(st.tally());
    }
    tally.check_conservation().expect("conserved");
    assert_eq!(tally.readings, readings.len() as u64);
    out.sort();
    out
}

#[test]
fn snapshots_rescale_without_changing_outputs() {
    let readings: Vec<(Timestamp, Reading)> = (0..900u64)
        .map(|i| {
            // Bursts with quiet gaps, devices dropping in and out.
            let t = i * 3 + (i / 150) * 400;
            let dev = format!("d-{}", (i * 13) % (3 + (i / 100) % 5));
            (t, reading(&dev, t + (i * 31) % 40))
        })
        .collect();
    let reference = run(&readings, 1, 1, usize::MAX);
    assert!(reference.iter().any(|o| o.contains("Offline")));
    assert!(reference.iter().any(|o| o.contains("LastSeen")));
    assert!(reference.len() > 50, "{}", reference.len());
    for (old, new, cut) in [(1, 2, 100), (2, 1, 333), (2, 3, 50), (3, 2, 899)] {
        assert_eq!(
            run(&readings, old, new, cut),
            reference,
            "{old}→{new} at {cut}"
        );
    }
}

#[test]
fn retain_and_merge_keep_every_device_once() {
    let c = config();
    let mut whole = PresenceState::default();
    for i in 0..50u64 {
        whole
            .push_reading(0, reading(&format!("d-{i}"), i))
            .expect("on time");
    }
    whole.release(Some(30), &c, &mut |_| {});
    let mut merged: Option<PresenceState> = None;
    for w in 0..3 {
        let mut part = whole.clone();
        part.retain_owned(w, 3);
        match merged.as_mut() {
            None => merged = Some(part),
            Some(m) => m.merge(part),
        }
    }
    let merged = merged.expect("parts");
    assert_eq!(
        (merged.devices(), merged.pending(), merged.online()),
        (whole.devices(), whole.pending(), whole.online())
    );
    assert_eq!(merged.tally(), whole.tally());
}
