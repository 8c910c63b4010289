//! The operator against a brute-force matcher on random small inputs, with 1
//! and 2 timely workers; and the same matches for any arrival order within
//! the allowed disorder.
//!
//! The oracle does not run an automaton: it enumerates every assignment of
//! a key's events to stages and keeps those that satisfy the declarative
//! rules of the crate docs (contiguity, quantifiers, until, greedy,
//! negations, within, trailing absence), then applies the skip strategy as
//! Flink defines it: in order of first event, each emitted match discards
//! the later ones that started before (or at) its pruning event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use iotflow_cep::{Cep, Contiguity, Event, Pattern, PatternBuilder, Skip};
use iotflow_types::{Reading, Timestamp};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

const METRICS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Cond {
    Metric(&'static str),
    Either(&'static str, &'static str),
    /// Metric, and value above the last value the stage took.
    Rising(&'static str, usize),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum NotKind {
    Next,
    FollowedBy,
}

#[derive(Clone, Debug)]
struct StageSpec {
    cond: Cond,
    min: u32,
    max: Option<u32>,
    optional: bool,
    greedy: bool,
    contiguity: Contiguity,
    inner: Contiguity,
    until: Option<Cond>,
    nots: Vec<(NotKind, Cond)>,
}

#[derive(Clone, Debug)]
struct Spec {
    stages: Vec<StageSpec>,
    trailing: Option<Cond>,
    within: Option<u64>,
    skip: Skip,
}

/// A partial match in the oracle: (stage, event).
type Prefix<'a> = [(usize, &'a Reading)];

fn holds(c: &Cond, r: &Reading, prefix: &Prefix<'_>) -> bool {
    match c {
        Cond::Metric(m) => r.metric.as_str() == *m,
        Cond::Either(a, b) => r.metric.as_str() == *a || r.metric.as_str() == *b,
        Cond::Rising(m, s) => {
            r.metric.as_str() == *m
                && prefix
                    .iter()
                    .rev()
                    .find(|(st, _)| st == s)
                    .is_none_or(|(_, l)| r.value > l.value)
        }
    }
}

fn closure(
    c: &Cond,
) -> impl Fn(&Reading, &iotflow_cep::Partial<'_, Reading>) -> bool + Send + Sync + 'static {
    let c = c.clone();
    move |r, p| match &c {
        Cond::Metric(m) => r.metric.as_str() == *m,
        Cond::Either(a, b) => r.metric.as_str() == *a || r.metric.as_str() == *b,
        Cond::Rising(m, s) => {
            r.metric.as_str() == *m && p.last(&format!("s{s}")).is_none_or(|l| r.value > l.value)
        }
    }
}

impl Spec {
    fn random(rng: &mut SmallRng) -> Spec {
        let n = rng.random_range(1..=3);
        let mut stages: Vec<StageSpec> = Vec::new();
        for i in 0..n {
            let m = METRICS[rng.random_range(0..3)];
            let cond = match rng.random_range(0..6) {
                0 => Cond::Either(m, METRICS[rng.random_range(0..3)]),
                1 => Cond::Rising(m, i),
                _ => Cond::Metric(m),
            };
            let (min, max) = match rng.random_range(0..6) {
                0 => (2, Some(2)),
                1 => (1, Some(3)),
                2 => (1, None),
                3 => (2, None),
                _ => (1, Some(1)),
            };
            let looping = max != Some(1);
            let contiguity =
                [Contiguity::Strict, Contiguity::Relaxed, Contiguity::Any][rng.random_range(0..3)];
            let inner = if looping {
                [Contiguity::Strict, Contiguity::Relaxed, Contiguity::Any][rng.random_range(0..3)]
            } else {
                Contiguity::Relaxed
            };
            let prev_optional = stages.last().is_some_and(|s| s.optional);
            let nots = if i > 0 && !prev_optional && rng.random_bool(0.3) {
                let k = if rng.random_bool(0.5) {
                    NotKind::Next
                } else {
                    NotKind::FollowedBy
                };
                vec![(k, Cond::Metric(METRICS[rng.random_range(0..3)]))]
            } else {
                Vec::new()
            };
            stages.push(StageSpec {
                cond,
                min,
                max,
                optional: rng.random_bool(0.2),
                greedy: looping && rng.random_bool(0.3),
                contiguity,
                inner,
                until: (looping && rng.random_bool(0.2))
                    .then(|| Cond::Metric(METRICS[rng.random_range(0..3)])),
                nots,
            });
        }
        if stages.iter().all(|s| s.optional) {
            stages[0].optional = false;
        }
        let within = rng.random_bool(0.6).then(|| rng.random_range(3..12) * 1000);
        let trailing = (within.is_some()
            && !stages.last().is_some_and(|s| s.optional)
            && rng.random_bool(0.3))
        .then(|| Cond::Metric(METRICS[rng.random_range(0..3)]));
        let skip = match rng.random_range(0..7) {
            0 => Skip::ToNext,
            1 => Skip::PastLastEvent,
            2 => Skip::ToFirst(format!("s{}", rng.random_range(0..n))),
            3 => Skip::ToLast(format!("s{}", rng.random_range(0..n))),
            _ => Skip::NoSkip,
        };
        Spec {
            stages,
            trailing,
            within,
            skip,
        }
    }

    fn pattern(&self) -> Pattern<Reading> {
        let mut b: Option<PatternBuilder<Reading>> = None;
        for (i, s) in self.stages.iter().enumerate() {
            let name = format!("s{i}");
            let mut pb = match b.take() {
                None => Pattern::begin(&name),
                Some(mut pb) => {
                    for (j, (k, c)) in s.nots.iter().enumerate() {
                        let nn = format!("n{i}_{j}");
                        pb = match k {
                            NotKind::Next => pb.not_next(&nn),
                            NotKind::FollowedBy => pb.not_followed_by(&nn),
                        }
                        .filter_with(closure(c));
                    }
                    match s.contiguity {
                        Contiguity::Strict => pb.next(&name),
                        Contiguity::Relaxed => pb.followed_by(&name),
                        Contiguity::Any => pb.followed_by_any(&name),
                    }
                }
            };
            pb = pb.filter_with(closure(&s.cond));
            if s.max != Some(1) {
                pb = match s.max {
                    Some(m) => pb.times_range(s.min, m),
                    None => pb.times_or_more(s.min),
                };
                pb = match s.inner {
                    Contiguity::Strict => pb.consecutive(),
                    Contiguity::Any => pb.allow_combinations(),
                    Contiguity::Relaxed => pb,
                };
                if s.greedy {
                    pb = pb.greedy();
                }
                if let Some(u) = &s.until {
                    pb = pb.until(closure(u));
                }
            }
            if s.optional {
                pb = pb.optional();
            }
            b = Some(pb);
        }
        let mut pb = b.expect("at least one stage");
        if let Some(t) = &self.trailing {
            pb = pb.not_followed_by("trailing").filter_with(closure(t));
        }
        if let Some(w) = self.within {
            pb = pb.within_ms(w);
        }
        pb.skip(self.skip.clone())
            .build()
            .expect("valid random pattern")
    }

    fn can_grow(&self, s: usize, count: u32) -> bool {
        self.stages[s].max.is_none_or(|m| count < m)
    }

    fn takes(&self, g: usize, e: &Reading, prefix: &Prefix<'_>) -> bool {
        let st = &self.stages[g];
        holds(&st.cond, e, prefix) && !st.until.as_ref().is_some_and(|u| holds(u, e, prefix))
    }

    /// Whether event `k` may join `prefix` (last event `last`) as an element
    /// of stage `t`, coming from stage `from` with `count` events.
    #[allow(clippy::too_many_arguments)]
    fn admits(
        &self,
        events: &[Reading],
        prefix: &Prefix<'_>,
        last: usize,
        from: usize,
        count: u32,
        t: usize,
        k: usize,
    ) -> bool {
        let st = &self.stages[t];
        let e = &events[k];
        if !holds(&st.cond, e, prefix) {
            return false;
        }
        let mut between = last + 1..k;
        if t == from {
            if st
                .until
                .as_ref()
                .is_some_and(|u| (last + 1..=k).any(|j| holds(u, &events[j], prefix)))
            {
                return false;
            }
            return match st.inner {
                Contiguity::Strict => k == last + 1,
                Contiguity::Relaxed => !between.any(|j| holds(&st.cond, &events[j], prefix)),
                Contiguity::Any => true,
            };
        }
        let mut greedy = (self.stages[from].greedy && self.can_grow(from, count)).then_some(from);
        for u in from + 1..t {
            if self.stages[u].greedy {
                greedy = Some(u);
            }
        }
        if let Some(g) = greedy
            && (last + 1..=k).any(|j| self.takes(g, &events[j], prefix))
        {
            return false;
        }
        for u in from + 1..=t {
            for (kind, c) in &self.stages[u].nots {
                let bad = match kind {
                    NotKind::Next => holds(c, &events[last + 1], prefix),
                    NotKind::FollowedBy => between.clone().any(|j| holds(c, &events[j], prefix)),
                };
                if bad {
                    return false;
                }
            }
        }
        match st.contiguity {
            Contiguity::Strict => k == last + 1,
            Contiguity::Relaxed => !between.any(|j| holds(&st.cond, &events[j], prefix)),
            Contiguity::Any => true,
        }
    }

    /// Every match (as event indices with stages), before skipping.
    fn all_matches(&self, events: &[Reading]) -> Vec<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        for first in 0..self.stages.len() {
            for k in 0..events.len() {
                if holds(&self.stages[first].cond, &events[k], &[]) {
                    let mut path = vec![(first, k)];
                    self.extend(events, &mut path, 1, &mut out);
                }
            }
            if !self.stages[first].optional {
                break;
            }
        }
        out
    }

    fn extend(
        &self,
        events: &[Reading],
        path: &mut Vec<(usize, usize)>,
        count: u32,
        out: &mut Vec<Vec<(usize, usize)>>,
    ) {
        let (s, last) = *path.last().expect("non-empty");
        let start_ts = events[path[0].1].ts;
        let deadline = self.within.map(|w| start_ts + w);
        let prefix: Vec<(usize, &Reading)> =
            path.iter().map(|(st, i)| (*st, &events[*i])).collect();
        let done = count >= self.stages[s].min && self.stages[s + 1..].iter().all(|x| x.optional);
        if done {
            match &self.trailing {
                None => out.push(path.clone()),
                Some(n) => {
                    let d = deadline.expect("trailing needs within");
                    if !events[last + 1..]
                        .iter()
                        .filter(|e| e.ts < d)
                        .any(|e| holds(n, e, &prefix))
                    {
                        out.push(path.clone());
                    }
                }
            }
        }
        for k in last + 1..events.len() {
            if deadline.is_some_and(|d| events[k].ts >= d) {
                break;
            }
            if self.stages[s].max != Some(1)
                && self.can_grow(s, count)
                && self.admits(events, &prefix, last, s, count, s, k)
            {
                path.push((s, k));
                self.extend(events, path, count + 1, out);
                path.pop();
            }
            if count >= self.stages[s].min {
                for t in s + 1..self.stages.len() {
                    if self.admits(events, &prefix, last, s, count, t, k) {
                        path.push((t, k));
                        self.extend(events, path, 1, out);
                        path.pop();
                    }
                    if !self.stages[t].optional {
                        break;
                    }
                }
            }
        }
    }

    /// The matches that survive the skip strategy.
    fn matches(&self, events: &[Reading]) -> Vec<Vec<(usize, usize)>> {
        let mut all = self.all_matches(events);
        all.sort_by(|a, b| {
            let key = |m: &Vec<(usize, usize)>| {
                (
                    m[0].1,
                    m[m.len() - 1].1,
                    m.iter().map(|x| x.1).collect::<Vec<_>>(),
                )
            };
            key(a).cmp(&key(b))
        });
        let stage_of = |name: &str| -> usize { name[1..].parse().expect("stage name") };
        let mut kept: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut bounds: Vec<(usize, bool)> = Vec::new();
        for m in all {
            let start = m[0].1;
            if bounds
                .iter()
                .any(|&(pid, incl)| if incl { start <= pid } else { start < pid })
            {
                continue;
            }
            let of = |s: usize| m.iter().filter(move |x| x.0 == s).map(|x| x.1);
            let bound = match &self.skip {
                Skip::NoSkip => None,
                Skip::ToNext => Some((start, true)),
                Skip::PastLastEvent => Some((m[m.len() - 1].1, true)),
                Skip::ToFirst(n) => of(stage_of(n)).next().map(|i| (i, false)),
                Skip::ToLast(n) => of(stage_of(n)).next_back().map(|i| (i, false)),
            };
            bounds.extend(bound);
            kept.push(m);
        }
        kept
    }
}

/// A match as comparable data: (key, [(stage, ts, metric, value)]).
type Rendered = (String, Vec<(String, Timestamp, String, u64)>);

fn oracle(spec: &Spec, events: &[Reading]) -> Vec<Rendered> {
    let mut by_key: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    for e in events {
        by_key
            .entry(e.device.to_string())
            .or_default()
            .push(e.clone());
    }
    let mut out = Vec::new();
    for (key, mut evs) in by_key {
        evs.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.tie_break(b)));
        for m in spec.matches(&evs) {
            let r = m
                .iter()
                .map(|(s, i)| {
                    let e = &evs[*i];
                    (
                        format!("s{s}"),
                        e.ts,
                        e.metric.to_string(),
                        e.value.to_bits(),
                    )
                })
                .collect();
            out.push((key.clone(), r));
        }
    }
    out.sort();
    out
}

const DISORDER: u64 = 2_000;

/// Random events of a few keys; `arrival` is the order they are sent in,
/// each no earlier than the watermark (max ts so far − DISORDER).
fn random_events(rng: &mut SmallRng, n: usize) -> Vec<Reading> {
    let mut base = 0u64;
    (0..n)
        .map(|_| {
            base += rng.random_range(0..700);
            let ts = base + rng.random_range(0..DISORDER);
            let dev = format!("d{}", rng.random_range(0..3));
            let m = METRICS[rng.random_range(0..3)];
            Reading::new(&dev, ts, m, rng.random_range(0..4) as f64)
        })
        .collect()
}

/// Runs the operator on `workers` workers; events sent in the given order,
/// input time following the watermark.
fn run_operator(spec: &Spec, events: &[Reading], workers: usize) -> Vec<Rendered> {
    let result: Arc<Mutex<Vec<Rendered>>> = Arc::default();
    let late: Arc<Mutex<u64>> = Arc::default();
    let (spec, events) = (spec.clone(), events.to_vec());
    let (res, late2) = (result.clone(), late.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let pattern = spec.pattern();
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let (res, late) = (res.clone(), late2.clone());
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let s = scope
                .input_from(&mut input)
                .match_pattern(
                    "cep",
                    &pattern,
                    |r: &Reading| r.device.to_string(),
                    |k: &String, m| {
                        let evs = m
                            .stages
                            .iter()
                            .flat_map(|(n, es)| {
                                es.iter().map(move |e| {
                                    (n.clone(), e.ts, e.metric.to_string(), e.value.to_bits())
                                })
                            })
                            .collect::<Vec<_>>();
                        (k.clone(), evs)
                    },
                    None,
                )
                .expect("no restore");
            s.late.inspect(move |_| *late.lock().expect("lock") += 1);
            s.matches
                .inspect(move |m| res.lock().expect("lock").push(m.clone()))
                .probe()
                .0
        });
        if worker.index() == 0 {
            let mut max_ts = 0u64;
            for (i, e) in events.iter().enumerate() {
                let wm = max_ts.saturating_sub(DISORDER);
                if wm > *input.time() {
                    input.advance_to(wm);
                }
                max_ts = max_ts.max(e.ts);
                input.send(e.clone());
                if i % 5 == 4 {
                    worker.step_while(|| probe.less_than(input.time()));
                }
            }
        }
        drop(input);
        while worker.step() {}
    })
    .expect("timely runs");
    assert_eq!(
        *late.lock().expect("lock"),
        0,
        "no event is late by construction"
    );
    let mut out = result.lock().expect("lock").clone();
    out.sort();
    out
}

#[test]
fn operator_matches_brute_force_oracle_on_random_patterns() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut nonempty = 0;
    for round in 0..120 {
        let spec = Spec::random(&mut rng);
        let n = rng.random_range(6..24);
        let events = random_events(&mut rng, n);
        let want = oracle(&spec, &events);
        nonempty += usize::from(!want.is_empty());
        let workers = 1 + round % 2;
        let got = run_operator(&spec, &events, workers);
        assert_eq!(
            got, want,
            "round {round}, {workers} workers\nspec {spec:#?}\nevents {events:?}"
        );
    }
    assert!(nonempty > 40, "too few rounds with matches: {nonempty}");
}

#[test]
fn shuffled_input_within_the_disorder_gives_the_same_matches() {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut compared = 0;
    for round in 0..30 {
        let spec = Spec::random(&mut rng);
        let events = random_events(&mut rng, 20);
        let reference = run_operator(&spec, &events, 1);
        // Another arrival order whose disorder stays within DISORDER: sort by
        // a jittered time that keeps every event after the watermark.
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut rng);
        shuffled.sort_by_key(|e| e.ts.saturating_sub(rng.random_range(0..DISORDER / 2)));
        let mut ok = Vec::new();
        let mut max_ts = 0u64;
        for e in shuffled {
            // Keep only orders the watermark allows (else the event is late).
            if e.ts >= max_ts.saturating_sub(DISORDER) {
                max_ts = max_ts.max(e.ts);
                ok.push(e);
            }
        }
        if ok.len() != events.len() {
            continue;
        }
        compared += 1;
        for workers in [1, 2] {
            assert_eq!(
                run_operator(&spec, &ok, workers),
                reference,
                "round {round}, {workers} workers"
            );
        }
    }
    assert!(
        compared >= 10,
        "only {compared} shuffles stayed within the disorder"
    );
}
