//! Hand-written alert lifecycles in event time: the dedup window, the
//! cool-down, escalation, resolution on idle input; each run on 1 and 2
//! workers, expected events written out as data.

mod common;

use common::{Run, Step, run, sig, sorted};
use iotflow_alert::{AlertEvent, AlertPolicy, Severity, Transition};

use Severity::{Critical, Major, Minor, Warning};
use Transition::{Escalated, Opened, Resolved};

/// The parts of an event a lifecycle test checks.
type Brief = (
    &'static str,
    &'static str,
    Transition,
    u64,
    Severity,
    u64,
    u64,
);

/// `(device, rule, transition, at, severity, signals, deduplicated)`.
fn brief(e: &AlertEvent) -> (String, String, Transition, u64, Severity, u64, u64) {
    (
        e.device.to_string(),
        e.rule.to_string(),
        e.transition,
        e.at,
        e.severity,
        e.signals,
        e.deduplicated,
    )
}

/// Runs on 1 and 2 workers; checks both give `expected` (sorted by key and
/// time), that every event is stamped at its own time, and that the tally
/// balances. Returns the 1-worker run.
fn check(policy: &AlertPolicy, script: &[Step], expected: &[Brief]) -> Run {
    let want: Vec<_> = expected
        .iter()
        .map(|&(d, r, t, at, s, n, dd)| (d.to_owned(), r.to_owned(), t, at, s, n, dd))
        .collect();
    let mut first = None;
    for workers in [1, 2] {
        let r = run(policy, script, workers);
        for (stamp, e) in &r.events {
            assert_eq!(*stamp, e.at, "stamped at its own time: {e:?}");
        }
        let got: Vec<_> = sorted(r.events.iter().map(|(_, e)| e.clone()).collect())
            .iter()
            .map(brief)
            .collect();
        assert_eq!(got, want, "{workers} worker(s)");
        r.tally.check_conservation().expect("tally balances");
        first.get_or_insert(r);
    }
    first.expect("ran")
}

fn advance(t: u64) -> Step {
    Step::Advance(t)
}

#[test]
fn repeats_are_deduplicated_into_the_open_alert() {
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_escalate_after_ms(0)
        .with_cooldown_ms(0);
    let script = [
        sig("d-1", "hot", 0, Warning),
        sig("d-1", "hot", 100, Warning),
        sig("d-1", "hot", 999, Warning),
        advance(1_500),
        // 999 + 1 000 = 1 999: still open at 1 998.
        sig("d-1", "hot", 1_998, Warning),
        advance(5_000),
    ];
    let r = check(
        &policy,
        &script,
        &[
            ("d-1", "hot", Opened, 0, Warning, 1, 0),
            ("d-1", "hot", Resolved, 2_998, Warning, 4, 3),
        ],
    );
    assert_eq!(
        (r.tally.opened, r.tally.repeats, r.tally.resolved),
        (1, 3, 1)
    );
    let (opened, resolved) = (&r.events[0].1, &r.events[1].1);
    assert_eq!(opened.incident, resolved.incident);
    assert_eq!(resolved.last_signal_at, 1_998);
}

#[test]
fn cooldown_suppresses_flapping_and_ends_exactly_on_time() {
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_escalate_after_ms(0)
        .with_cooldown_ms(5_000);
    let script = [
        sig("d-1", "hot", 0, Warning),
        sig("d-1", "hot", 300, Warning),
        advance(2_000),
        // Resolved at 1 300; quiet until 6 300.
        sig("d-1", "hot", 2_000, Warning),
        sig("d-1", "hot", 6_299, Critical),
        // Another rule of the same device is its own alert.
        sig("d-1", "cold", 2_500, Warning),
        advance(6_300),
        // The first instant after the cool-down opens a new alert.
        sig("d-1", "hot", 6_300, Warning),
        // And a resolve at exactly a signal's time comes first: it resolves.
        sig("d-1", "hot", 7_300, Warning),
    ];
    let r = check(
        &policy,
        &script,
        &[
            ("d-1", "cold", Opened, 2_500, Warning, 1, 0),
            ("d-1", "cold", Resolved, 3_500, Warning, 1, 0),
            ("d-1", "hot", Opened, 0, Warning, 1, 0),
            ("d-1", "hot", Resolved, 1_300, Warning, 2, 1),
            ("d-1", "hot", Opened, 6_300, Warning, 1, 0),
            ("d-1", "hot", Resolved, 7_300, Warning, 1, 0),
        ],
    );
    // 2 000 and 6 299 in the first cool-down, 7 300 in the second.
    assert_eq!(r.tally.suppressed, 3);
    assert_eq!(r.tally.received, 7);
    let ids: Vec<u64> = r
        .events
        .iter()
        .filter(|(_, e)| e.rule.as_str() == "hot" && e.transition == Opened)
        .map(|(_, e)| e.incident)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "a new alert has a new incident id");
}

#[test]
fn a_persisting_condition_escalates_level_by_level_up_to_the_cap() {
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_escalate_after_ms(2_000)
        .with_max_severity(Major);
    let mut script: Vec<Step> = (0..=14)
        .map(|i| sig("d-7", "vibration", i * 500, Warning))
        .collect();
    script.push(advance(100_000));
    check(
        &policy,
        &script,
        &[
            ("d-7", "vibration", Opened, 0, Warning, 1, 0),
            // 3 repeats (500, 1 000, 1 500), then 2 000 escalates.
            ("d-7", "vibration", Escalated, 2_000, Minor, 5, 3),
            ("d-7", "vibration", Escalated, 4_000, Major, 9, 3),
            // Capped at major: 6 000 and later only repeat.
            ("d-7", "vibration", Resolved, 8_000, Major, 15, 6),
        ],
    );
}

#[test]
fn a_worse_signal_escalates_at_once() {
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_escalate_after_ms(0)
        .with_max_severity(Minor);
    let script = [
        sig("d-2", "pressure", 0, Warning),
        sig("d-2", "pressure", 100, Warning),
        // Above max_severity: the cap is for escalation by time only.
        sig("d-2", "pressure", 200, Critical),
        // Not worse than critical: a repeat.
        sig("d-2", "pressure", 300, Major),
        // Same time, different severity: ordered by content, not arrival.
        sig("d-3", "pressure", 50, Major),
        sig("d-3", "pressure", 50, Warning),
    ];
    check(
        &policy,
        &script,
        &[
            ("d-2", "pressure", Opened, 0, Warning, 1, 0),
            ("d-2", "pressure", Escalated, 200, Critical, 3, 1),
            ("d-2", "pressure", Resolved, 1_300, Critical, 4, 1),
            ("d-3", "pressure", Opened, 50, Warning, 1, 0),
            ("d-3", "pressure", Escalated, 50, Major, 2, 0),
            ("d-3", "pressure", Resolved, 1_050, Major, 2, 0),
        ],
    );
}

#[test]
fn alerts_resolve_on_idle_input_as_the_frontier_passes() {
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_cooldown_ms(0);
    let script = [
        sig("d-1", "hot", 0, Warning),
        sig("d-2", "hot", 400, Warning),
        // No signal at all from here on: only the frontier moves.
        advance(900),
        advance(1_001),
        advance(1_401),
        advance(60_000),
    ];
    let r = check(
        &policy,
        &script,
        &[
            ("d-1", "hot", Opened, 0, Warning, 1, 0),
            ("d-1", "hot", Resolved, 1_000, Warning, 1, 0),
            ("d-2", "hot", Opened, 400, Warning, 1, 0),
            ("d-2", "hot", Resolved, 1_400, Warning, 1, 0),
        ],
    );
    // While the input is still open: both opened by 900, d-1 resolved once
    // the frontier passed 1 000, d-2 once it passed 1 400.
    assert_eq!(r.seen, [(900, 2), (1_001, 3), (1_401, 4), (60_000, 4)]);
}

#[test]
fn a_signal_released_behind_its_time_counts_when_released() {
    // A detector may release a signal stamped after its event time; it is
    // never late: it counts at its stamp.
    let policy = AlertPolicy::default()
        .with_resolve_after_ms(1_000)
        .with_cooldown_ms(0);
    let script = [
        sig("d-1", "hot", 0, Warning),
        advance(1_500),
        // ts 800 < stamp 1 500: applied at 1 500, after the resolve at 1 000.
        sig("d-1", "hot", 800, Warning),
    ];
    let r = check(
        &policy,
        &script,
        &[
            ("d-1", "hot", Opened, 0, Warning, 1, 0),
            ("d-1", "hot", Resolved, 1_000, Warning, 1, 0),
            ("d-1", "hot", Opened, 1_500, Warning, 1, 0),
            ("d-1", "hot", Resolved, 2_500, Warning, 1, 0),
        ],
    );
    let reopened = &r.events[2].1;
    assert_eq!((reopened.opened_at, reopened.evidence.ts), (1_500, 800));
}
