//! The matcher of one key: a non-deterministic automaton run over the key's
//! events in event-time order, and over the passing of time.
//!
//! A *run* is one partial match waiting for its next event, in one of three
//! places:
//!
//! * `Enter(t)`: waiting for the first event of stage `t`, with the
//!   negations it must check on the way (a `not_next` on the very next
//!   event, `not_followed_by`s on every event it skips) and, after a greedy
//!   loop, the loop whose events it may not take;
//! * `Loop(s, c)`: stage `s` holds `c` events and may take one more;
//! * `Absent`: every stage matched; waiting for `within` to pass with no
//!   event matching the trailing `not_followed_by`s.
//!
//! Taking an event moves a run forward along every path open from there (one
//! more loop round; on to the next stage; past optional stages; to the end),
//! so a run is one configuration of a Thompson automaton. Runs share the
//! events they took through a persistent list ([`Node`]), which is also how
//! a snapshot finds them again.

use std::rc::Rc;

use iotflow_types::Timestamp;

use crate::matched::{Match, Node, Partial, Timeout};
use crate::pattern::{Contiguity, Event, Overflow, Pattern, Skip};
use crate::tally::CepTally;

/// What a key's matcher emits.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<E> {
    /// A complete match.
    Match(Match<E>),
    /// A partial match that `within` pruned.
    Timeout(Timeout<E>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum At {
    Enter(u16),
    Loop(u16, u32),
    Absent,
}

#[derive(Debug)]
pub(crate) struct Run<E> {
    pub(crate) at: At,
    /// A greedy loop stage this run may not take events from under it.
    pub(crate) greedy: Option<u16>,
    /// `not_next` negations, checked on the run's next event only.
    pub(crate) not_next: u32,
    /// `not_followed_by` negations, checked on every event the run skips.
    pub(crate) not_followed: u32,
    /// The run's events already form a complete match: it never times out.
    pub(crate) accepting: bool,
    pub(crate) start_ts: Timestamp,
    pub(crate) start_seq: u64,
    pub(crate) chain: Rc<Node<E>>,
}

impl<E> Clone for Run<E> {
    fn clone(&self) -> Self {
        Run {
            chain: self.chain.clone(),
            ..*self
        }
    }
}

/// A complete match waiting to be emitted (skip strategies emit in start
/// order, so a match may wait for earlier partial matches to end).
#[derive(Debug)]
pub(crate) struct Done<E> {
    pub(crate) chain: Rc<Node<E>>,
    /// Sequence numbers of its events, oldest first: the emission order.
    pub(crate) seqs: Vec<u64>,
    /// When it completed (its last event's time, or its absence deadline).
    pub(crate) at: Timestamp,
}

impl<E> Clone for Done<E> {
    fn clone(&self) -> Self {
        Done {
            chain: self.chain.clone(),
            seqs: self.seqs.clone(),
            at: self.at,
        }
    }
}

impl<E> Done<E> {
    fn new(chain: Rc<Node<E>>, at: Timestamp) -> Self {
        let seqs = chain.path().iter().map(|n| n.seq).collect();
        Done { chain, seqs, at }
    }

    fn key(&self) -> (u64, u64, &[u64]) {
        let first = self.seqs.first().copied().unwrap_or(0);
        let last = self.seqs.last().copied().unwrap_or(0);
        (first, last, &self.seqs)
    }
}

/// The matching state of one key (see the module docs).
#[derive(Debug)]
pub struct Matcher<E> {
    pub(crate) runs: Vec<Run<E>>,
    pub(crate) held: Vec<Done<E>>,
    /// Every event before this time has been applied.
    pub(crate) now: Timestamp,
    pub(crate) next_seq: u64,
}

impl<E> Default for Matcher<E> {
    fn default() -> Self {
        Matcher {
            runs: Vec::new(),
            held: Vec::new(),
            now: 0,
            next_seq: 0,
        }
    }
}

impl<E> Clone for Matcher<E> {
    fn clone(&self) -> Self {
        Matcher {
            runs: self.runs.clone(),
            held: self.held.clone(),
            now: self.now,
            next_seq: self.next_seq,
        }
    }
}

/// Where a step's new runs and complete matches go.
struct Step<E> {
    runs: Vec<Run<E>>,
    done: Vec<Done<E>>,
}

fn any_not<E>(p: &Pattern<E>, mask: u32, e: &E, partial: &Partial<'_, E>) -> bool {
    let mut m = mask;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        if (p.nots[i])(e, partial) {
            return true;
        }
        m &= m - 1;
    }
    false
}

impl<E: Event> Matcher<E> {
    /// Whether the key holds no partial or waiting match.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.held.is_empty()
    }

    /// Heap bytes of runs, waiting matches and the nodes they hold (each
    /// node once; see `CepState::approx_bytes`).
    pub(crate) fn approx_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut seen: Vec<*const Node<E>> = Vec::new();
        let mut bytes = self.runs.capacity() * size_of::<Run<E>>()
            + self.held.capacity() * size_of::<Done<E>>();
        let chains = self
            .runs
            .iter()
            .map(|r| &r.chain)
            .chain(self.held.iter().map(|d| &d.chain));
        for chain in chains {
            let mut at = Some(chain);
            while let Some(n) = at {
                if seen.contains(&Rc::as_ptr(n)) {
                    break;
                }
                seen.push(Rc::as_ptr(n));
                // The node and its event, each behind an Rc (two counts).
                bytes += size_of::<Node<E>>() + size_of::<E>() + 4 * size_of::<usize>();
                at = n.prev.as_ref();
            }
        }
        bytes
            + self
                .held
                .iter()
                .map(|d| d.seqs.capacity() * 8)
                .sum::<usize>()
    }

    /// Partial matches alive.
    pub fn partial_matches(&self) -> usize {
        self.runs.len()
    }

    /// Every event before this time has been applied.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The earliest time at which [`Matcher::advance`] has work (a partial
    /// match expires or an absence fires), if any.
    pub fn next_deadline(&self, p: &Pattern<E>) -> Option<Timestamp> {
        let start = self.runs.iter().map(|r| r.start_ts).min()?;
        p.deadline(start)
    }

    /// Applies the key's next event. Events must come in event-time order
    /// (ties in [`Event::tie_break`] order); one before [`Matcher::now`] is
    /// applied as if at `now`.
    pub fn push(
        &mut self,
        p: &Pattern<E>,
        event: E,
        tally: &mut CepTally,
        out: &mut impl FnMut(Timestamp, Outcome<E>),
    ) {
        let ts = event.event_time().max(self.now);
        self.advance(p, Some(ts), tally, out);
        tally.events += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let ev = Rc::new(event);
        let mut step = Step {
            runs: Vec::with_capacity(self.runs.len() + 2),
            done: Vec::new(),
        };
        for run in std::mem::take(&mut self.runs) {
            step_run(p, run, &ev, seq, ts, &mut step);
        }
        // Every event may begin a match, at any stage an optional prefix
        // lets it.
        let empty = Partial {
            names: &p.names,
            last: None,
        };
        for t in 0..p.stages.len() {
            let st = &p.stages[t];
            if st.takes(&ev, &empty) {
                take(p, None, t as u16, 1, &ev, seq, ts, (ts, seq), &mut step);
            }
            if !st.optional {
                break;
            }
        }
        self.runs = step.runs;
        self.enforce_limits(p, tally);
        self.complete(p, step.done, tally, out);
    }

    /// Lets time pass to `to` (`None`: the input ended, all time passes):
    /// every event before `to` has been pushed. Partial matches whose
    /// `within` ran out time out; absences whose `within` ran out match.
    pub fn advance(
        &mut self,
        p: &Pattern<E>,
        to: Option<Timestamp>,
        tally: &mut CepTally,
        out: &mut impl FnMut(Timestamp, Outcome<E>),
    ) {
        let t = to.unwrap_or(Timestamp::MAX);
        if t < self.now || (t == self.now && to.is_some()) {
            return;
        }
        self.now = t;
        let mut done = Vec::new();
        let dead = |r: &Run<E>| p.deadline(r.start_ts).is_some_and(|d| d <= t);
        if p.within.is_some() && self.runs.iter().any(dead) {
            // Runs keep their order; the expired ones move out, uncloned.
            let (mut expired, alive): (Vec<Run<E>>, Vec<Run<E>>) =
                std::mem::take(&mut self.runs).into_iter().partition(dead);
            self.runs = alive;
            expired.sort_by_key(|r| r.start_seq);
            let mut reported: Vec<*const Node<E>> = Vec::new();
            for r in expired {
                let deadline = p.deadline(r.start_ts).unwrap_or(t);
                if r.at == At::Absent {
                    done.push(Done::new(r.chain, deadline));
                } else if !r.accepting && !reported.contains(&Rc::as_ptr(&r.chain)) {
                    // Runs of one partial match share its chain: one report.
                    reported.push(Rc::as_ptr(&r.chain));
                    tally.timeouts += 1;
                    let partial = Match::from_chain(&p.names, &r.chain);
                    out(deadline, Outcome::Timeout(Timeout { partial, deadline }));
                }
            }
        }
        if to.is_none() && !self.runs.is_empty() {
            // Without `within`, nothing ends a partial match but the input.
            *tally
                .discarded
                .entry("unfinished_at_end".into())
                .or_default() += self.runs.len() as u64;
            self.runs.clear();
        }
        self.complete(p, done, tally, out);
    }

    /// Caps the partial matches of the key.
    fn enforce_limits(&mut self, p: &Pattern<E>, tally: &mut CepTally) {
        let cap = p.limits.max_partial_matches;
        if self.runs.len() <= cap {
            return;
        }
        let over = self.runs.len() - cap;
        self.runs.sort_by_key(|r| r.start_seq);
        let reason = match p.limits.overflow {
            Overflow::DropOldest => {
                self.runs.drain(..over);
                "partial_cap_drop_oldest"
            }
            Overflow::RejectNew => {
                self.runs.truncate(cap);
                "partial_cap_reject_new"
            }
        };
        *tally.discarded.entry(reason.into()).or_default() += over as u64;
    }

    /// Emits complete matches as the skip strategy allows.
    fn complete(
        &mut self,
        p: &Pattern<E>,
        mut done: Vec<Done<E>>,
        tally: &mut CepTally,
        out: &mut impl FnMut(Timestamp, Outcome<E>),
    ) {
        let mut emit = |d: &Done<E>, tally: &mut CepTally| {
            tally.matches += 1;
            out(d.at, Outcome::Match(Match::from_chain(&p.names, &d.chain)));
        };
        if p.skip == Skip::NoSkip {
            done.sort_by(|a, b| a.key().cmp(&b.key()));
            for d in &done {
                emit(d, tally);
            }
            return;
        }
        if done.is_empty() && self.held.is_empty() {
            return;
        }
        self.held.append(&mut done);
        self.held.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut emitted = 0;
        while emitted < self.held.len() {
            let m = &self.held[emitted];
            let start = m.key().0;
            // A partial match that started earlier may still complete and
            // prune this one: wait for it.
            if self.runs.iter().any(|r| r.start_seq < start) {
                break;
            }
            emit(m, tally);
            let prune = pruning(p, m);
            emitted += 1;
            if let Some((pid, inclusive)) = prune {
                let pruned = |s: u64| if inclusive { s <= pid } else { s < pid };
                self.runs.retain(|r| !pruned(r.start_seq));
                let rest = self.held.split_off(emitted);
                self.held
                    .extend(rest.into_iter().filter(|d| !pruned(d.key().0)));
            }
        }
        self.held.drain(..emitted);
    }
}

/// The event before which (or up to which, when inclusive) partial matches
/// are discarded after `m` is emitted.
fn pruning<E>(p: &Pattern<E>, m: &Done<E>) -> Option<(u64, bool)> {
    match &p.skip {
        Skip::NoSkip => None,
        Skip::ToNext => m.seqs.first().map(|s| (*s, true)),
        Skip::PastLastEvent => m.seqs.last().map(|s| (*s, true)),
        Skip::ToFirst(_) | Skip::ToLast(_) => {
            let stage = p.skip_stage?;
            let path = m.chain.path();
            let mut of = path.iter().filter(|n| n.stage == stage).map(|n| n.seq);
            let pid = if matches!(p.skip, Skip::ToFirst(_)) {
                of.next()
            } else {
                of.next_back()
            };
            pid.map(|s| (s, false))
        }
    }
}

/// One run meets one event.
fn step_run<E>(
    p: &Pattern<E>,
    mut run: Run<E>,
    ev: &Rc<E>,
    seq: u64,
    ts: Timestamp,
    step: &mut Step<E>,
) {
    let chain = run.chain.clone();
    let partial = Partial {
        names: &p.names,
        last: Some(&chain),
    };
    let start = (run.start_ts, run.start_seq);
    let keep = match run.at {
        At::Enter(t) => {
            let st = &p.stages[t as usize];
            if let Some(g) = run.greedy {
                let gs = &p.stages[g as usize];
                if gs.takes(ev, &partial) && !gs.stops(ev, &partial) {
                    // The greedy loop takes this event on its own run.
                    return;
                }
            }
            if run.not_next != 0 && any_not(p, run.not_next, ev, &partial) {
                return;
            }
            let took = st.takes(ev, &partial);
            if took {
                take(p, Some(chain.clone()), t, 1, ev, seq, ts, start, step);
            }
            let skips = match st.contiguity {
                Contiguity::Strict => false,
                Contiguity::Relaxed => !took,
                Contiguity::Any => true,
            };
            skips && !any_not(p, run.not_followed, ev, &partial)
        }
        At::Loop(s, c) => {
            let st = &p.stages[s as usize];
            if st.stops(ev, &partial) {
                return;
            }
            let took = st.takes(ev, &partial);
            if took {
                take(p, Some(chain.clone()), s, c + 1, ev, seq, ts, start, step);
            }
            match st.inner {
                Contiguity::Strict => false,
                Contiguity::Relaxed => !took,
                Contiguity::Any => true,
            }
        }
        At::Absent => !any_not(p, run.not_followed, ev, &partial),
    };
    if keep {
        run.not_next = 0;
        step.runs.push(run);
    }
}

/// Stage `s` takes `ev` as its `count`-th event: opens every path from there.
#[allow(clippy::too_many_arguments)]
fn take<E>(
    p: &Pattern<E>,
    prev: Option<Rc<Node<E>>>,
    s: u16,
    count: u32,
    ev: &Rc<E>,
    seq: u64,
    ts: Timestamp,
    start: (Timestamp, u64),
    step: &mut Step<E>,
) {
    let node = Rc::new(Node {
        stage: s,
        seq,
        ts,
        event: ev.clone(),
        prev,
    });
    let st = &p.stages[s as usize];
    let first = step.runs.len();
    let run = |at| Run {
        at,
        greedy: None,
        not_next: 0,
        not_followed: 0,
        accepting: false,
        start_ts: start.0,
        start_seq: start.1,
        chain: node.clone(),
    };
    if st.is_loop() && st.can_grow(count) {
        step.runs.push(run(At::Loop(s, count)));
    }
    if count >= st.min {
        let mut greedy = (st.greedy && st.can_grow(count)).then_some(s);
        let mut t = s as usize + 1;
        let (mut nn, mut nf) = (0u32, 0u32);
        loop {
            if t == p.stages.len() {
                if p.trailing != 0 {
                    let mut r = run(At::Absent);
                    r.not_followed = p.trailing;
                    step.runs.push(r);
                } else {
                    step.done.push(Done::new(node.clone(), ts));
                    for r in &mut step.runs[first..] {
                        r.accepting = true;
                    }
                }
                break;
            }
            let next = &p.stages[t];
            nn |= next.not_next;
            nf |= next.not_followed;
            let mut r = run(At::Enter(t as u16));
            r.greedy = greedy;
            r.not_next = nn;
            r.not_followed = nf;
            step.runs.push(r);
            if !next.optional {
                break;
            }
            // Skipping an optional greedy loop: it, too, keeps the events it
            // could take.
            if next.greedy {
                greedy = Some(t as u16);
            }
            t += 1;
        }
    }
}
