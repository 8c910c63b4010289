//! Unit tests of the per-key matcher: what the golden files cannot say
//! (iterative conditions, caps, waiting matches, snapshots).

use iotflow_core::state::{decode, encode};
use iotflow_types::{Reading, Timestamp};

use crate::nfa::{Matcher, Outcome};
use crate::pattern::{Limits, Overflow, Pattern, Skip};
use crate::tally::CepTally;

fn r(ts: Timestamp, metric: &str, value: f64) -> Reading {
    Reading::new("d", ts, metric, value)
}

/// (time, "match"/"timeout", event times).
type Seen = Vec<(Timestamp, &'static str, Vec<Timestamp>)>;

fn feed(
    p: &Pattern<Reading>,
    m: &mut Matcher<Reading>,
    t: &mut CepTally,
    evs: &[Reading],
    to: Option<Timestamp>,
) -> Seen {
    let mut seen = Seen::new();
    let mut out = |at, o: Outcome<Reading>| match o {
        Outcome::Match(x) => seen.push((at, "match", x.events().map(|e| e.ts).collect())),
        Outcome::Timeout(x) => {
            seen.push((at, "timeout", x.partial.events().map(|e| e.ts).collect()))
        }
    };
    for e in evs {
        m.push(p, e.clone(), t, &mut out);
    }
    m.advance(p, to, t, &mut out);
    seen
}

fn overheating() -> Pattern<Reading> {
    Pattern::begin("rise")
        .filter_with(|r: &Reading, p| {
            r.metric.as_str() == "temp" && p.last("rise").is_none_or(|l| r.value > l.value)
        })
        .times(3)
        .consecutive()
        .followed_by("spike")
        .filter(|r| r.metric.as_str() == "vib" && r.value > 2.0)
        .within_ms(60_000)
        .skip(Skip::PastLastEvent)
        .build()
        .expect("valid")
}

#[test]
fn iterative_condition_sees_the_partial_match() {
    let p = overheating();
    let (mut m, mut t) = (Matcher::default(), CepTally::default());
    let evs = [
        r(1_000, "temp", 50.0),
        r(2_000, "temp", 51.0),
        r(3_000, "temp", 49.0), // not rising: the consecutive loop from 50 breaks
        r(4_000, "temp", 52.0),
        r(5_000, "temp", 53.0),
        r(6_000, "vib", 1.0),
        r(7_000, "vib", 3.0),
    ];
    let seen = feed(&p, &mut m, &mut t, &evs, None);
    let matches: Vec<_> = seen.iter().filter(|s| s.1 == "match").collect();
    assert_eq!(matches.len(), 1, "{seen:?}");
    assert_eq!(matches[0].2, [3_000, 4_000, 5_000, 7_000]);
    assert_eq!(t.matches, 1);
}

#[test]
fn partial_matches_time_out_on_their_own_output() {
    let p = overheating();
    let (mut m, mut t) = (Matcher::default(), CepTally::default());
    let seen = feed(
        &p,
        &mut m,
        &mut t,
        &[r(1_000, "temp", 1.0), r(2_000, "temp", 2.0)],
        Some(61_000),
    );
    // {1000, 2000} expires at 61 s; {2000} not yet (62 s).
    assert_eq!(seen, [(61_000, "timeout", vec![1_000, 2_000])]);
    let seen = feed(&p, &mut m, &mut t, &[], Some(62_000));
    assert_eq!(seen, [(62_000, "timeout", vec![2_000])]);
    assert!(m.is_empty());
    assert_eq!(t.timeouts, 2);
}

#[test]
fn caps_drop_oldest_or_reject_new_and_count_why() {
    for (overflow, reason, kept_start) in [
        (Overflow::DropOldest, "partial_cap_drop_oldest", 4_000),
        (Overflow::RejectNew, "partial_cap_reject_new", 1_000),
    ] {
        let p = Pattern::<Reading>::begin("a")
            .filter(|r| r.metric.as_str() == "a")
            .followed_by("b")
            .filter(|r| r.metric.as_str() == "b")
            .limits(Limits {
                max_partial_matches: 2,
                max_buffered_events: 10,
                overflow,
            })
            .build()
            .expect("valid");
        let (mut m, mut t) = (Matcher::default(), CepTally::default());
        let evs: Vec<Reading> = (1..=4)
            .map(|i| r(i * 1_000, "a", 0.0))
            .chain([r(9_000, "b", 0.0)])
            .collect();
        let seen = feed(&p, &mut m, &mut t, &evs, Some(10_000));
        assert_eq!(t.discarded[reason], 2, "{overflow:?}");
        let starts: Vec<Timestamp> = seen.iter().map(|s| s.2[0]).collect();
        assert_eq!(starts.len(), 2, "{overflow:?}: {seen:?}");
        assert!(starts.contains(&kept_start), "{overflow:?}: {seen:?}");
    }
}

#[test]
fn a_match_waits_for_an_earlier_partial_match_under_a_skip_strategy() {
    // a b within 10 s, skip past last event: {a@2 b@3} completes first but
    // waits for {a@1 …}, which completes with the same b and wins.
    let p = Pattern::<Reading>::begin("a")
        .filter(|r| r.metric.as_str() == "a")
        .followed_by_any("b")
        .filter(|r| r.metric.as_str() == "b")
        .within_ms(10_000)
        .skip(Skip::PastLastEvent)
        .build()
        .expect("valid");
    let (mut m, mut t) = (Matcher::default(), CepTally::default());
    let seen = feed(
        &p,
        &mut m,
        &mut t,
        &[r(1_000, "a", 1.0), r(2_000, "a", 2.0), r(3_000, "b", 0.0)],
        Some(5_000),
    );
    assert_eq!(seen, [(3_000, "match", vec![1_000, 3_000])]);
    // An unfinished partial match holds a later complete one back until
    // it times out.
    let p3 = Pattern::<Reading>::begin("a")
        .filter(|r| r.metric.as_str() == "a")
        .followed_by("z")
        .filter_with(|r: &Reading, p| {
            r.metric.as_str() == "z" && p.first("a").is_some_and(|a| a.value == 2.0)
        })
        .within_ms(10_000)
        .skip(Skip::PastLastEvent)
        .build()
        .expect("valid");
    let (mut m, mut t) = (Matcher::default(), CepTally::default());
    let evs = [r(1_000, "a", 1.0), r(2_000, "a", 2.0), r(3_000, "z", 0.0)];
    // {a@2 z} is complete at 3 s, but {a@1 …} may still complete: held.
    assert!(feed(&p3, &mut m, &mut t, &evs, Some(4_000)).is_empty());
    // At 11 s {a@1} times out, and the held match goes out.
    let seen = feed(&p3, &mut m, &mut t, &[], Some(11_000));
    assert_eq!(
        seen,
        [
            (11_000, "timeout", vec![1_000]),
            (3_000, "match", vec![2_000, 3_000])
        ]
    );
}

#[test]
fn snapshot_mid_stream_continues_exactly() {
    let p = Pattern::<Reading>::begin("a")
        .filter(|r| r.metric.as_str() == "a")
        .followed_by_any("b")
        .filter(|r| r.metric.as_str() == "b")
        .one_or_more()
        .allow_combinations()
        .followed_by("c")
        .filter(|r| r.metric.as_str() == "c")
        .within_ms(20_000)
        .build()
        .expect("valid");
    let evs: Vec<Reading> = ["a", "b", "x", "b", "a", "b", "c", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, m)| r(1_000 * (i as u64 + 1), m, i as f64))
        .collect();
    let (mut whole, mut t) = (Matcher::default(), CepTally::default());
    let reference = feed(&p, &mut whole, &mut t, &evs, None);
    assert!(reference.len() > 10);
    for cut in 1..evs.len() {
        let (mut m, mut t) = (Matcher::default(), CepTally::default());
        let mut seen = feed(&p, &mut m, &mut t, &evs[..cut], Some(evs[cut - 1].ts));
        let bytes = encode(&m).expect("encode");
        let mut back: Matcher<Reading> = decode(&bytes).expect("decode");
        assert_eq!(back.partial_matches(), m.partial_matches());
        seen.extend(feed(&p, &mut back, &mut t, &evs[cut..], None));
        assert_eq!(seen, reference, "cut at {cut}");
    }
}
