//! The pattern API: a typed builder in the shape of Flink CEP's `Pattern`,
//! and the validated [`Pattern`] it builds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{CepError, invalid};
use crate::matched::Partial;

/// A condition over an event and the partial match so far.
pub type Condition<E> = Arc<dyn Fn(&E, &Partial<'_, E>) -> bool + Send + Sync>;

/// How the events of a match may be spread among the other events of the
/// key (Flink's contiguity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contiguity {
    /// The next matching event must be the very next event (`next`,
    /// `consecutive`).
    Strict,
    /// Non-matching events in between are skipped; the first matching one is
    /// taken (`followed_by`; the default inside loops).
    #[default]
    Relaxed,
    /// Any later matching event may be taken, each giving its own match
    /// (`followed_by_any`, `allow_combinations`).
    Any,
}

/// What happens to other partial matches once a match is emitted (Flink's
/// `AfterMatchSkipStrategy`).
///
/// With any strategy but [`Skip::NoSkip`], matches are emitted in the order
/// of their first event, and a complete match waits while a partial match
/// that started before it is still alive (it may complete first and prune
/// the waiting one): use `within` with skip strategies, so partial matches
/// end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Every match is emitted.
    #[default]
    NoSkip,
    /// Discards the partial matches that started at or before the first
    /// event of the emitted match.
    ToNext,
    /// Discards the partial matches that started at or before the last event
    /// of the emitted match.
    PastLastEvent,
    /// Discards the partial matches that started before the first event the
    /// named stage took in the emitted match (no skip if it took none).
    ToFirst(String),
    /// Discards the partial matches that started before the last event the
    /// named stage took in the emitted match (no skip if it took none).
    ToLast(String),
}

/// Bounds on the state of one key, and what to do when a bound is hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Partial matches per key (default 1,000).
    pub max_partial_matches: usize,
    /// Events per key waiting for the frontier to pass them (default
    /// 10,000). An event over the bound goes to the overflow output.
    pub max_buffered_events: usize,
    /// Which partial matches to discard over `max_partial_matches`.
    pub overflow: Overflow,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_partial_matches: 1_000,
            max_buffered_events: 10_000,
            overflow: Overflow::DropOldest,
        }
    }
}

/// Which partial matches go when a key holds too many. Either way they are
/// counted in the tally, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Discard the partial matches that started first.
    #[default]
    DropOldest,
    /// Discard the partial matches that started last (new ones are refused).
    RejectNew,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotKind {
    Next,
    FollowedBy,
}

pub(crate) struct Stage<E> {
    pub(crate) cond: Option<Condition<E>>,
    pub(crate) until: Option<Condition<E>>,
    pub(crate) min: u32,
    /// `None`: unbounded.
    pub(crate) max: Option<u32>,
    pub(crate) optional: bool,
    pub(crate) greedy: bool,
    /// Into the stage's first event.
    pub(crate) contiguity: Contiguity,
    /// Between the stage's own events.
    pub(crate) inner: Contiguity,
    /// Bitmasks over `Pattern::nots` of the negations placed before it.
    pub(crate) not_next: u32,
    pub(crate) not_followed: u32,
}

impl<E> Clone for Stage<E> {
    fn clone(&self) -> Self {
        Stage {
            cond: self.cond.clone(),
            until: self.until.clone(),
            min: self.min,
            max: self.max,
            optional: self.optional,
            greedy: self.greedy,
            contiguity: self.contiguity,
            inner: self.inner,
            not_next: self.not_next,
            not_followed: self.not_followed,
        }
    }
}

impl<E> Stage<E> {
    pub(crate) fn is_loop(&self) -> bool {
        self.max != Some(1)
    }

    pub(crate) fn can_grow(&self, count: u32) -> bool {
        self.max.is_none_or(|m| count < m)
    }

    pub(crate) fn takes(&self, e: &E, p: &Partial<'_, E>) -> bool {
        self.cond.as_ref().is_none_or(|c| c(e, p))
    }

    pub(crate) fn stops(&self, e: &E, p: &Partial<'_, E>) -> bool {
        self.until.as_ref().is_some_and(|c| c(e, p))
    }
}

/// A validated pattern sequence, ready to run (see [`Pattern::begin`]).
///
/// It holds closures, so it is rebuilt from code (or TOML) when a job
/// restarts; checkpoints hold stage indices and events only.
pub struct Pattern<E> {
    /// Stage names first, then negation names (the order of indices).
    pub(crate) names: Vec<String>,
    pub(crate) stages: Vec<Stage<E>>,
    pub(crate) nots: Vec<Condition<E>>,
    /// Bitmask over `nots` of the negations after the last stage.
    pub(crate) trailing: u32,
    pub(crate) within: Option<u64>,
    pub(crate) skip: Skip,
    /// The stage index a `ToFirst` / `ToLast` skip names.
    pub(crate) skip_stage: Option<u16>,
    pub(crate) limits: Limits,
}

impl<E> Clone for Pattern<E> {
    fn clone(&self) -> Self {
        Pattern {
            names: self.names.clone(),
            stages: self.stages.clone(),
            nots: self.nots.clone(),
            trailing: self.trailing,
            within: self.within,
            skip: self.skip.clone(),
            skip_stage: self.skip_stage,
            limits: self.limits,
        }
    }
}

impl<E> fmt::Debug for Pattern<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("stages", &&self.names[..self.stages.len()])
            .field("within", &self.within)
            .field("skip", &self.skip)
            .finish_non_exhaustive()
    }
}

impl<E> Pattern<E> {
    /// Starts a pattern sequence with a stage named `name`.
    ///
    /// ```
    /// use iotflow_cep::Pattern;
    /// use iotflow_types::Reading;
    ///
    /// // Three rising temperatures within a minute, then a vibration spike.
    /// let pattern = Pattern::<Reading>::begin("rise")
    ///     .filter_with(|r, p| {
    ///         r.metric.as_str() == "temp" && p.last("rise").is_none_or(|l| r.value > l.value)
    ///     })
    ///     .times(3)
    ///     .followed_by("spike")
    ///     .filter(|r| r.metric.as_str() == "vibration" && r.value > 2.0)
    ///     .within_ms(60_000)
    ///     .build()
    ///     .expect("a valid pattern");
    /// assert_eq!(pattern.stage_names(), ["rise", "spike"]);
    /// ```
    pub fn begin(name: &str) -> PatternBuilder<E> {
        PatternBuilder {
            elements: vec![Element::stage(name, Contiguity::Relaxed)],
            within: None,
            skip: Skip::NoSkip,
            limits: Limits::default(),
        }
    }

    /// The stage names, in order.
    pub fn stage_names(&self) -> &[String] {
        &self.names[..self.stages.len()]
    }

    /// The time bound, if any (ms).
    pub fn within(&self) -> Option<u64> {
        self.within
    }

    /// The after-match skip strategy.
    pub fn skip(&self) -> &Skip {
        &self.skip
    }

    /// The state bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Deadline of a partial match that started at `start`.
    pub(crate) fn deadline(&self, start: Timestamp) -> Option<Timestamp> {
        self.within.map(|w| start.saturating_add(w))
    }
}

enum Kind {
    Stage,
    Not(NotKind),
}

struct Element<E> {
    name: String,
    kind: Kind,
    cond: Option<Condition<E>>,
    until: Option<Condition<E>>,
    min: u32,
    max: Option<u32>,
    optional: bool,
    greedy: bool,
    contiguity: Contiguity,
    inner: Contiguity,
    inner_set: bool,
}

impl<E> Element<E> {
    fn stage(name: &str, contiguity: Contiguity) -> Self {
        Element {
            name: name.to_owned(),
            kind: Kind::Stage,
            cond: None,
            until: None,
            min: 1,
            max: Some(1),
            optional: false,
            greedy: false,
            contiguity,
            inner: Contiguity::Relaxed,
            inner_set: false,
        }
    }

    fn not(name: &str, kind: NotKind) -> Self {
        Element {
            kind: Kind::Not(kind),
            ..Element::stage(name, Contiguity::Relaxed)
        }
    }
}

/// Builds a [`Pattern`]: each call configures the stage (or negation) added
/// last; [`PatternBuilder::build`] checks the whole sequence.
pub struct PatternBuilder<E> {
    elements: Vec<Element<E>>,
    within: Option<u64>,
    skip: Skip,
    limits: Limits,
}

impl<E> fmt::Debug for PatternBuilder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.elements.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("PatternBuilder")
            .field("elements", &names)
            .finish_non_exhaustive()
    }
}

impl<E: 'static> PatternBuilder<E> {
    fn current(&mut self) -> &mut Element<E> {
        // `begin` puts one element in, and nothing removes elements.
        let last = self.elements.len() - 1;
        &mut self.elements[last]
    }

    fn push(mut self, e: Element<E>) -> Self {
        self.elements.push(e);
        self
    }

    /// Appends a stage whose first event must directly follow the previous
    /// one (strict contiguity).
    pub fn next(self, name: &str) -> Self {
        self.push(Element::stage(name, Contiguity::Strict))
    }

    /// Appends a stage that takes the first matching event after the
    /// previous one (relaxed contiguity).
    pub fn followed_by(self, name: &str) -> Self {
        self.push(Element::stage(name, Contiguity::Relaxed))
    }

    /// Appends a stage that may take any matching event after the previous
    /// one, each giving its own match (non-deterministic relaxed).
    pub fn followed_by_any(self, name: &str) -> Self {
        self.push(Element::stage(name, Contiguity::Any))
    }

    /// Appends a negation: the event directly after the previous stage's
    /// last event must not match it.
    pub fn not_next(self, name: &str) -> Self {
        self.push(Element::not(name, NotKind::Next))
    }

    /// Appends a negation: no event matching it may occur between the
    /// previous stage and the next one; at the end of the pattern (with
    /// `within`), none until the first event's time + `within`.
    pub fn not_followed_by(self, name: &str) -> Self {
        self.push(Element::not(name, NotKind::FollowedBy))
    }

    /// ANDs a condition on the event into the current stage's condition.
    pub fn filter(self, f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.filter_with(move |e, _| f(e))
    }

    /// ANDs an iterative condition (over the event and the partial match so
    /// far) into the current stage's condition.
    pub fn filter_with(
        mut self,
        f: impl Fn(&E, &Partial<'_, E>) -> bool + Send + Sync + 'static,
    ) -> Self {
        let cur = self.current();
        cur.cond = Some(match cur.cond.take() {
            None => Arc::new(f),
            Some(g) => Arc::new(move |e, p| g(e, p) && f(e, p)),
        });
        self
    }

    /// ORs a condition into the current stage's condition.
    pub fn or(mut self, f: impl Fn(&E, &Partial<'_, E>) -> bool + Send + Sync + 'static) -> Self {
        let cur = self.current();
        cur.cond = Some(match cur.cond.take() {
            // No condition yet accepts everything; OR keeps it so.
            None => Arc::new(|_, _| true),
            Some(g) => Arc::new(move |e, p| g(e, p) || f(e, p)),
        });
        self
    }

    /// Exactly `n` events.
    pub fn times(self, n: u32) -> Self {
        self.times_range(n, n)
    }

    /// Between `min` and `max` events.
    pub fn times_range(mut self, min: u32, max: u32) -> Self {
        let cur = self.current();
        cur.min = min;
        cur.max = Some(max);
        self
    }

    /// At least `n` events.
    pub fn times_or_more(mut self, n: u32) -> Self {
        let cur = self.current();
        cur.min = n;
        cur.max = None;
        self
    }

    /// One or more events.
    pub fn one_or_more(self) -> Self {
        self.times_or_more(1)
    }

    /// The stage may also take no event at all.
    pub fn optional(mut self) -> Self {
        self.current().optional = true;
        self
    }

    /// A looping stage keeps every event it can take instead of leaving it
    /// to the next stage: the events from its last one up to and including
    /// the next stage's first must not match it (while it can still grow).
    pub fn greedy(mut self) -> Self {
        self.current().greedy = true;
        self
    }

    /// Strict contiguity between the events of a looping stage.
    pub fn consecutive(mut self) -> Self {
        let cur = self.current();
        cur.inner = Contiguity::Strict;
        cur.inner_set = true;
        self
    }

    /// Non-deterministic relaxed contiguity between the events of a looping
    /// stage.
    pub fn allow_combinations(mut self) -> Self {
        let cur = self.current();
        cur.inner = Contiguity::Any;
        cur.inner_set = true;
        self
    }

    /// Stops a looping stage at the first event matching `f` after its
    /// first event; that event is not taken by the loop.
    pub fn until(
        mut self,
        f: impl Fn(&E, &Partial<'_, E>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.current().until = Some(Arc::new(f));
        self
    }

    /// Every event of a match must be less than `within` after its first
    /// (the smallest bound wins when called twice, as in Flink).
    pub fn within(self, within: Duration) -> Self {
        self.within_ms(within.as_millis().min(u64::MAX as u128) as u64)
    }

    /// [`within`](Self::within) in milliseconds.
    pub fn within_ms(mut self, ms: u64) -> Self {
        self.within = Some(self.within.map_or(ms, |w| w.min(ms)));
        self
    }

    /// The after-match skip strategy (default [`Skip::NoSkip`]).
    pub fn skip(mut self, skip: Skip) -> Self {
        self.skip = skip;
        self
    }

    /// Bounds on the state of one key.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the sequence and builds the pattern.
    pub fn build(self) -> Result<Pattern<E>, CepError> {
        let PatternBuilder {
            elements,
            within,
            skip,
            limits,
        } = self;
        let mut names: Vec<String> = Vec::new();
        for e in &elements {
            if e.name.is_empty() || e.name.contains(':') {
                return invalid(format!(
                    "stage name {:?} must be non-empty and without ':'",
                    e.name
                ));
            }
            if names.contains(&e.name) {
                return Err(CepError::DuplicateName(e.name.clone()));
            }
            names.push(e.name.clone());
        }
        if within == Some(0) {
            return invalid("within must be > 0 ms");
        }
        if limits.max_partial_matches == 0 || limits.max_buffered_events == 0 {
            return invalid("limits must be > 0");
        }
        let mut stages = Vec::new();
        let mut stage_names = Vec::new();
        let mut not_names = Vec::new();
        let mut nots: Vec<Condition<E>> = Vec::new();
        let (mut pending_next, mut pending_followed) = (0u32, 0u32);
        let mut prev_optional = false;
        for e in elements {
            match e.kind {
                Kind::Not(kind) => {
                    if stages.is_empty() {
                        return invalid(format!("pattern cannot begin with negation {:?}", e.name));
                    }
                    if prev_optional {
                        return invalid(format!(
                            "negation {:?} cannot follow an optional stage",
                            e.name
                        ));
                    }
                    if e.min != 1 || e.max != Some(1) || e.optional || e.greedy || e.inner_set {
                        return invalid(format!("negation {:?} cannot have a quantifier", e.name));
                    }
                    if nots.len() == 32 {
                        return invalid("a pattern can hold at most 32 negations");
                    }
                    let bit = 1u32 << nots.len();
                    nots.push(e.cond.unwrap_or_else(|| Arc::new(|_, _| true)));
                    not_names.push(e.name);
                    match kind {
                        NotKind::Next => pending_next |= bit,
                        NotKind::FollowedBy => pending_followed |= bit,
                    }
                }
                Kind::Stage => {
                    if e.min == 0 {
                        return invalid(format!(
                            "stage {:?}: use optional() for zero occurrences",
                            e.name
                        ));
                    }
                    if e.max.is_some_and(|m| m < e.min) {
                        return invalid(format!("stage {:?}: max below min", e.name));
                    }
                    let looping = e.max != Some(1);
                    if !looping && (e.greedy || e.inner_set || e.until.is_some()) {
                        return invalid(format!(
                            "stage {:?}: greedy, consecutive, allow_combinations and until need a looping quantifier",
                            e.name
                        ));
                    }
                    prev_optional = e.optional;
                    stage_names.push(e.name);
                    stages.push(Stage {
                        cond: e.cond,
                        until: e.until,
                        min: e.min,
                        max: e.max,
                        optional: e.optional,
                        greedy: e.greedy,
                        contiguity: e.contiguity,
                        inner: e.inner,
                        not_next: std::mem::take(&mut pending_next),
                        not_followed: std::mem::take(&mut pending_followed),
                    });
                }
            }
        }
        if stages.len() > u16::MAX as usize {
            return invalid("too many stages");
        }
        if stages.iter().all(|s| s.optional) {
            return invalid("at least one stage must not be optional");
        }
        if pending_next != 0 {
            return invalid("a pattern cannot end with not_next");
        }
        if pending_followed != 0 && within.is_none() {
            return invalid("a pattern can only end with not_followed_by when it has within");
        }
        let skip_stage = match &skip {
            Skip::ToFirst(n) | Skip::ToLast(n) => Some(
                stage_names
                    .iter()
                    .position(|s| s == n)
                    .ok_or_else(|| CepError::UnknownStage(n.clone()))? as u16,
            ),
            _ => None,
        };
        stage_names.extend(not_names);
        Ok(Pattern {
            names: stage_names,
            stages,
            nots,
            trailing: pending_followed,
            within,
            skip,
            skip_stage,
            limits,
        })
    }
}

/// The event time of an event, and a total order among events of one key
/// with equal times, so that a key's events are matched in the same order on
/// every run and every worker count.
pub trait Event: Clone + Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// Event time (ms).
    fn event_time(&self) -> Timestamp;

    /// Orders two events with the same event time. The default compares the
    /// events' serialized bytes (deterministic, but allocates); implement it
    /// for speed when ties are common.
    fn tie_break(&self, other: &Self) -> std::cmp::Ordering {
        let enc = |e: &Self| {
            bincode::serde::encode_to_vec(e, bincode::config::standard()).unwrap_or_default()
        };
        enc(self).cmp(&enc(other))
    }
}

impl Event for iotflow_types::Reading {
    fn event_time(&self) -> Timestamp {
        self.ts
    }

    /// Metric, then value, device, unit and tags: two readings that compare
    /// equal are identical, so their order cannot change a result.
    fn tie_break(&self, other: &Self) -> std::cmp::Ordering {
        self.metric
            .cmp(&other.metric)
            .then_with(|| self.value.total_cmp(&other.value))
            .then_with(|| self.device.cmp(&other.device))
            .then_with(|| self.unit.cmp(&other.unit))
            .then_with(|| self.tags.cmp(&other.tags))
    }
}
