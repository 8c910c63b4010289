//! Complex event processing: patterns over each key's events, matched in
//! event time.
//!
//! IoT rules are rarely about one reading: "three rising temperatures within
//! a minute, then a vibration spike", "no heartbeat for 60 s", "door opened
//! and not closed within 5 minutes". This crate detects such *pattern
//! sequences* per key (device, or any key function), with the semantics of
//! Flink's CEP library, and goes beyond it where event time allows:
//! absences fire when the frontier passes their deadline, not when some
//! later event happens to arrive.
//!
//! # Patterns
//!
//! A [`Pattern`] is a sequence of named *stages*, built with
//! [`Pattern::begin`] and a typed builder. Each stage has a condition over
//! the event and, for iterative conditions ([`PatternBuilder::filter_with`]),
//! the events matched so far ([`Partial`]); a quantifier (`times(n)`,
//! `times_range`, `times_or_more`, `one_or_more`, `optional`, `greedy`,
//! `until`); and a *contiguity* with what came before: `next` (strict: the
//! very next event), `followed_by` (relaxed: the first matching event),
//! `followed_by_any` (non-deterministic: any matching event, one match
//! each). Looping stages have their own contiguity (`consecutive`,
//! `allow_combinations`). Negations `not_next` and `not_followed_by` forbid
//! events between stages, or, at the end of a pattern with `within`, until
//! the deadline. An after-match [`Skip`] strategy decides which overlapping
//! matches survive. The common patterns can also be written in TOML
//! ([`PatternConfig`]) over [`Reading`](iotflow_types::Reading) fields.
//!
//! # Execution
//!
//! The engine is an automaton per key ([`Matcher`], timely-free and tested on
//! its own): each partial match is a *run* waiting at one place of the
//! pattern; an event moves every run along every path it opens, and runs
//! share the events they took through a persistent list, so
//! non-deterministic patterns do not copy their prefixes. Time is an input
//! of its own: `advance(T)` says every event before `T` has been seen, which
//! times out partial matches whose `within` ran out (they go to the timeout
//! output) and fires absences whose deadline passed.
//!
//! The operator ([`Cep::match_pattern`]) exchanges events by a stable hash of their
//! key, buffers each key's events until the frontier passes them, and feeds
//! them to the matcher in event-time order — so disorder within the
//! watermark does not change results. Events with equal event time are
//! ordered by [`Event::tie_break`] (for readings: metric, value, device,
//! unit, tags), never by arrival, which differs between runs and worker
//! counts. An event already behind its batch's time is *late* and goes to
//! the late output. State is bounded per key ([`Limits`]): partial matches
//! over the cap are dropped by an [`Overflow`] policy and counted by reason
//! in the [`CepTally`]; events over the buffer cap go to an overflow output.
//!
//! # State and checkpoints
//!
//! Conditions are closures, so checkpoints never hold the pattern: a
//! [`CepState`] is keys, buffered events, and runs as stage indices plus the
//! events they took (each written once). The pattern is rebuilt from code or
//! TOML on restart. `CepState` implements the
//! [`KeyedState`](iotflow_core::state::KeyedState) contract, so it rescales
//! between worker counts.
//!
//! # Semantics, precisely
//!
//! For a match with events `e1 … ek` (in the key's order) taken by stages:
//!
//! * *strict* into an event: it is the one right after the previous taken
//!   event; *relaxed*: no event in between satisfies the condition of the
//!   stage taking it (given the partial match then); *any*: no constraint.
//! * `within(d)`: every event is less than `d` after `e1`; a partial match
//!   still open when the frontier reaches `e1 + d` times out.
//! * `until(c)`: a loop takes no event at or after the first event matching
//!   `c` past its first event.
//! * `greedy`: while a loop can still grow, the events after its last one,
//!   up to and including the next stage's first, must not satisfy it.
//! * `not_next(n)`: the event right after the previous stage's last is not
//!   `n`; `not_followed_by(n)`: no `n` strictly between the previous stage's
//!   last event and the next stage's first (at the end: before `e1 + d`).
//! * Skip strategies follow Flink: once a match is emitted, partial matches
//!   that started at or before its first (`ToNext`) or last
//!   (`PastLastEvent`) event, or before the first/last event of a named
//!   stage (`ToFirst`, `ToLast`), are discarded; matches are then emitted in
//!   the order of their first event.
#![deny(missing_docs)]

mod config;
mod error;
mod keyed;
mod matched;
mod nfa;
#[cfg(test)]
mod nfa_tests;
mod operator;
mod pattern;
mod snapshot;
mod tally;

pub use config::{NotConfig, PatternConfig, Quantifier, ReadingCondition, StageConfig};
pub use error::CepError;
pub use keyed::{CepState, Pushed};
pub use matched::{Match, Partial, Timeout};
pub use nfa::{Matcher, Outcome};
pub use operator::{Cep, CepStreams};
pub use pattern::{Condition, Contiguity, Event, Limits, Overflow, Pattern, PatternBuilder, Skip};
pub use tally::CepTally;
