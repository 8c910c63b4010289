//! The presence operator in timely: idle devices go offline on frontier
//! progress alone, with the input still open; devices come back; the end
//! of input sends everyone offline; registered devices that never send go
//! offline; late readings leave on their own output.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Step, run};
use iotflow_fleet::{LastSeen, PresenceConfig, PresenceEvent, PresenceKind};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading, Timestamp};

const N: Timestamp = 15_000;

fn config() -> PresenceConfig {
    PresenceConfig::offline_after(Duration::from_millis(N))
        .with_last_seen_every(Duration::from_secs(30))
}

fn event(
    device: &str,
    at: Timestamp,
    kind: PresenceKind,
    last: Option<Timestamp>,
) -> PresenceEvent {
    PresenceEvent {
        device: DeviceId::new(device),
        at,
        kind,
        last_seen: last,
    }
}

/// A sends every second from 0 to 10 s and again from 50 s to 60 s; B
/// every second until 100 s. The input time follows the readings (the
/// watermark); the input stays open until the script ends.
fn script() -> Vec<Step> {
    let mut steps = Vec::new();
    for s in 0..=100u64 {
        let ts = s * 1_000;
        steps.push(Step::Advance(ts));
        if s <= 10 || (50..=60).contains(&s) {
            steps.push(Step::Reading(Reading::new("a", ts, "temp", 20.0)));
        }
        steps.push(Step::Reading(Reading::new("b", ts, "temp", 21.0)));
    }
    steps
}

#[test]
fn an_idle_device_goes_offline_when_other_devices_move_the_watermark() {
    use PresenceKind::{Offline, Online};
    for workers in [1, 2] {
        let got = run(&config(), &script(), workers, false);
        let mut events = got.events.clone();
        events.sort_by(|x, y| x.1.cmp(&y.1));
        let plain: Vec<PresenceEvent> = events.iter().map(|(_, e, _)| e.clone()).collect();
        assert_eq!(
            plain,
            [
                event("a", 0, Online, None),
                event("a", 25_000, Offline, Some(10_000)),
                event("a", 50_000, Online, Some(10_000)),
                event("a", 75_000, Offline, Some(60_000)),
                event("b", 0, Online, None),
                // B idles only when the input has ended.
                event("b", 115_000, Offline, Some(100_000)),
            ],
            "{workers} workers"
        );
        for (stamp, e, observed) in &events {
            assert_eq!(*stamp, e.at, "stamped at its own time: {e:?}");
            match (e.device.as_str(), e.at) {
                // Emitted once the watermark (B's readings) passed the
                // deadline, with the input still open.
                ("a", 25_000) => assert_eq!(*observed, Some(26_000), "{workers} workers"),
                ("a", 75_000) => assert_eq!(*observed, Some(76_000), "{workers} workers"),
                // Only the end of input moves the frontier past 115 s.
                ("b", 115_000) => assert_eq!(*observed, None, "{workers} workers"),
                _ => assert!(observed.is_some()),
            }
        }
        let t = &got.tally;
        t.check_conservation().expect("conserved");
        assert_eq!((t.readings, t.late, t.online, t.offline), (123, 0, 3, 3));
        // Last seen every 30 s: A at 30 s (10 s), A at 60 s (59 s) and 90 s
        // (60 s), B at every period, and the last period after the end.
        let mut seen = got.last_seen.clone();
        seen.sort();
        let ls = |d: &str, last_seen, at| {
            (
                at,
                LastSeen {
                    device: DeviceId::new(d),
                    last_seen,
                    at,
                },
            )
        };
        assert_eq!(
            seen,
            [
                ls("a", 10_000, 30_000),
                ls("b", 29_000, 30_000),
                ls("a", 59_000, 60_000),
                ls("b", 59_000, 60_000),
                ls("a", 60_000, 90_000),
                ls("b", 89_000, 90_000),
                ls("b", 100_000, 120_000),
            ],
            "{workers} workers"
        );
    }
}

fn registered(device: &str, at: Timestamp, seq: u64) -> DeviceUpdate {
    DeviceUpdate {
        at,
        seq,
        device: DeviceId::new(device),
        info: Some(Arc::new(DeviceInfo::new(device, "acme", "meter"))),
    }
}

#[test]
fn registered_devices_that_never_send_go_offline_after_registration() {
    use PresenceKind::{Offline, Online};
    let mut steps = vec![
        Step::Advance(0),
        // The registry snapshot at time 0.
        Step::Update(registered("quiet", 0, 1)),
        Step::Update(registered("sender", 0, 2)),
        Step::Update(registered("gone", 0, 3)),
    ];
    for s in 1..=40u64 {
        let ts = s * 1_000;
        steps.push(Step::Advance(ts));
        if s == 5 {
            steps.push(Step::Reading(Reading::new("sender", ts, "kwh", 1.0)));
            steps.push(Step::Update(DeviceUpdate {
                at: ts,
                seq: 4,
                device: DeviceId::new("gone"),
                info: None,
            }));
        }
        if s == 30 {
            steps.push(Step::Update(registered("late-joiner", ts, 5)));
        }
        steps.push(Step::Reading(Reading::new("clock", ts, "tick", 1.0)));
    }
    for workers in [1, 2] {
        let got = run(&config(), &steps, workers, true);
        let devices = |name: &str| -> Vec<PresenceEvent> {
            got.sorted_events()
                .into_iter()
                .filter(|e| e.device.as_str() == name)
                .collect()
        };
        assert_eq!(devices("quiet"), [event("quiet", N, Offline, None)]);
        assert_eq!(
            devices("sender"),
            [
                event("sender", 5_000, Online, None),
                event("sender", 20_000, Offline, Some(5_000)),
            ]
        );
        assert_eq!(devices("gone"), [], "removed before its deadline");
        assert_eq!(
            devices("late-joiner"),
            [event("late-joiner", 30_000 + N, Offline, None)]
        );
        let quiet = got
            .events
            .iter()
            .find(|(_, e, _)| e.device.as_str() == "quiet")
            .expect("quiet went offline");
        assert_eq!(quiet.2, Some(N + 1_000), "with the input still open");
        assert_eq!(got.tally.updates, 5);
    }
}

#[test]
fn readings_behind_the_watermark_are_late_and_counted() {
    let steps = vec![
        Step::Advance(0),
        Step::Reading(Reading::new("a", 0, "m", 1.0)),
        Step::Advance(10_000),
        Step::Reading(Reading::new("a", 10_000, "m", 1.0)),
        // Behind the input time it is sent at: late.
        Step::Reading(Reading::new("b", 9_999, "m", 1.0)),
        Step::Advance(20_000),
    ];
    for workers in [1, 2] {
        let got = run(&config(), &steps, workers, false);
        assert_eq!(got.late, [Reading::new("b", 9_999, "m", 1.0)]);
        let t = &got.tally;
        assert_eq!((t.readings, t.applied, t.late), (3, 2, 1));
        t.check_conservation().expect("conserved");
        assert!(got.sorted_events().iter().all(|e| e.device.as_str() == "a"));
    }
}
