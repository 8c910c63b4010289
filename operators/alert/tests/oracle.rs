//! The operator against a naive reference on seeded random signal streams,
//! with 1 and 2 workers.
//!
//! The reference knows nothing of frontiers, timers or workers: it sorts
//! each key's signals by lifecycle time (`max(ts, stamp)`) and content, and
//! walks them with a plain state machine, checking before each signal
//! whether the alert resolved (or the cool-down ended) since the last one.

mod common;

use std::collections::BTreeMap;

use common::{Step, run, sorted};
use iotflow_alert::{AlertEvent, AlertPolicy, Evidence, Severity, Signal, Transition};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DEVICES: [&str; 4] = ["d-1", "d-2", "d-3", "d-4"];
const RULES: [&str; 2] = ["hot", "shaky"];
const DISORDER: u64 = 150;

enum Ref {
    Idle,
    Open(Box<AlertEvent>, u64),
    Cooling(u64),
}

/// The reference lifecycle of one key over its sorted `(at, signal)`s.
fn reference_key(p: &AlertPolicy, signals: &[(u64, Signal)], out: &mut Vec<AlertEvent>) {
    let mut st = Ref::Idle;
    // Resolves (and ends cool-downs) due at or before `now`.
    let pass = |st: &mut Ref, now: Option<u64>, out: &mut Vec<AlertEvent>| loop {
        match st {
            Ref::Open(a, _) if now.is_none_or(|n| a.last_signal_at + p.resolve_after_ms <= n) => {
                let mut e = (**a).clone();
                e.transition = Transition::Resolved;
                e.at = a.last_signal_at + p.resolve_after_ms;
                out.push(e.clone());
                *st = if p.cooldown_ms > 0 {
                    Ref::Cooling(e.at + p.cooldown_ms)
                } else {
                    Ref::Idle
                };
            }
            Ref::Cooling(until) if now.is_none_or(|n| *until <= n) => *st = Ref::Idle,
            _ => break,
        }
    };
    for (at, s) in signals {
        pass(&mut st, Some(*at), out);
        match &mut st {
            Ref::Idle => {
                let e = AlertEvent {
                    device: s.device.clone(),
                    rule: s.rule.clone(),
                    transition: Transition::Opened,
                    at: *at,
                    severity: s.severity,
                    incident: AlertEvent::incident_id(&s.device, &s.rule, *at),
                    opened_at: *at,
                    last_signal_at: *at,
                    signals: 1,
                    deduplicated: 0,
                    escalations: 0,
                    evidence: s.evidence.clone(),
                };
                out.push(e.clone());
                st = Ref::Open(Box::new(e), *at);
            }
            Ref::Cooling(_) => {}
            Ref::Open(a, level_since) => {
                a.signals += 1;
                a.last_signal_at = *at;
                a.evidence = s.evidence.clone();
                let by_time = p.escalate_after_ms > 0
                    && at - *level_since >= p.escalate_after_ms
                    && a.severity < p.max_severity;
                let to = if s.severity > a.severity {
                    Some(s.severity)
                } else if by_time {
                    Some(a.severity.next())
                } else {
                    None
                };
                match to {
                    Some(sev) => {
                        a.severity = sev;
                        a.escalations += 1;
                        *level_since = *at;
                        a.transition = Transition::Escalated;
                        a.at = *at;
                        out.push((**a).clone());
                        a.deduplicated = 0;
                    }
                    None => a.deduplicated += 1,
                }
            }
        }
    }
    pass(&mut st, None, out);
}

fn reference(p: &AlertPolicy, stamped: &[(u64, Signal)]) -> Vec<AlertEvent> {
    let mut by_key: BTreeMap<(String, String), Vec<(u64, Signal)>> = BTreeMap::new();
    for (t, s) in stamped {
        by_key
            .entry((s.device.to_string(), s.rule.to_string()))
            .or_default()
            .push((s.ts.max(*t), s.clone()));
    }
    let mut out = Vec::new();
    for signals in by_key.values_mut() {
        signals.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.tie_break(y)));
        reference_key(p, signals, &mut out);
    }
    sorted(out)
}

/// A random policy with small durations, so every transition happens.
fn policy(rng: &mut SmallRng) -> AlertPolicy {
    AlertPolicy {
        cooldown_ms: [0, 80, 300][rng.random_range(0..3)],
        escalate_after_ms: [0, 120, 400][rng.random_range(0..3)],
        // Multiples of 10 ms, like the signal times: deadlines and signals
        // often meet at the same instant.
        resolve_after_ms: rng.random_range(1..=25) * 10,
        max_severity: [Severity::Minor, Severity::Major, Severity::Critical]
            [rng.random_range(0..3)],
    }
}

/// Bursts of signals with quiet gaps, disordered within `DISORDER` (and a
/// few beyond it, which count at their stamp); the script advances the
/// input to the watermark as it goes. Returns the script and the signals
/// with the time they were stamped at.
fn script(rng: &mut SmallRng, n: usize) -> (Vec<Step>, Vec<(u64, Signal)>) {
    let mut steps = Vec::new();
    let mut stamped = Vec::new();
    let (mut clock, mut max_ts, mut input) = (1_000u64, 0u64, 0u64);
    for i in 0..n {
        clock += if rng.random_bool(0.03) {
            rng.random_range(30..150) * 10
        } else {
            rng.random_range(0..3) * 10
        };
        let late = if rng.random_bool(0.02) { 400 } else { 0 };
        let ts = clock.saturating_sub(rng.random_range(0..DISORDER / 10) * 10 + late);
        let severity = match rng.random_range(0..20) {
            0 => Severity::Critical,
            1..=2 => Severity::Major,
            3 => Severity::Info,
            _ => Severity::Warning,
        };
        let s = Signal::new(
            DEVICES[rng.random_range(0..DEVICES.len())],
            RULES[rng.random_range(0..RULES.len())],
            ts,
            severity,
        )
        .with_evidence(Evidence {
            ts,
            metric: "m".into(),
            value: rng.random_range(0..4) as f64,
            score: 1.0,
            source: "gen".into(),
        });
        let wm = max_ts.saturating_sub(DISORDER);
        if wm > input && i % 3 == 0 {
            input = wm;
            steps.push(Step::Advance(wm));
        }
        max_ts = max_ts.max(ts);
        stamped.push((input, s.clone()));
        steps.push(Step::Send(s));
    }
    (steps, stamped)
}

#[test]
fn operator_matches_the_reference_on_random_streams() {
    let mut transitions = BTreeMap::new();
    for seed in 0..24u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let p = policy(&mut rng);
        let (steps, stamped) = script(&mut rng, 400);
        let want = reference(&p, &stamped);
        for e in &want {
            *transitions.entry(e.transition).or_insert(0u64) += 1;
        }
        for workers in [1, 2] {
            let r = run(&p, &steps, workers);
            for (stamp, e) in &r.events {
                assert_eq!(*stamp, e.at, "seed {seed}: stamped at its own time");
            }
            let got = sorted(r.events.into_iter().map(|(_, e)| e).collect());
            assert_eq!(got, want, "seed {seed}, {workers} worker(s), {p:?}");
            r.tally.check_conservation().expect("tally balances");
            assert_eq!(r.tally.received, stamped.len() as u64);
        }
    }
    // The streams exercised every transition, many times.
    for t in [
        Transition::Opened,
        Transition::Escalated,
        Transition::Resolved,
    ] {
        assert!(
            transitions.get(&t).copied().unwrap_or(0) > 50,
            "{transitions:?}"
        );
    }
}
