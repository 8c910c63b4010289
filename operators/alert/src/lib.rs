//! Alerting: from "a rule fired" to alerts a person can act on.
//!
//! Detectors and patterns say *a condition holds now*: a z-score above 6,
//! a door open for five minutes. Said every second for an hour, that is
//! 3 600 messages and one problem. This crate turns such condition
//! [`Signal`]s into the lifecycle of one alert per (device, rule)
//! ([`AlertKey`]):
//!
//! * **opened**: the first signal of a key starts an alert, with the
//!   signal's [`Severity`] and evidence;
//! * **deduplicated**: further signals while it is open are counted into
//!   it, not repeated ([`AlertEvent::deduplicated`]);
//! * **escalated**: a condition that keeps firing `escalate_after_ms` after
//!   the alert opened (or last escalated) raises the severity one level,
//!   again and again up to `max_severity`; a signal worse than the alert
//!   raises it at once;
//! * **resolved**: no signal for `resolve_after_ms` clears it, at the last
//!   signal's time + `resolve_after_ms`;
//! * **suppressed**: for `cooldown_ms` after a resolve, signals of the key
//!   open nothing (a flapping condition makes one alert per cool-down) and
//!   are counted in the [`AlertTally`].
//!
//! The rules are an [`AlertPolicy`] (serde, documented defaults), and the
//! operator is [`Alerting::alerts`] on a stream of signals. Detector
//! [`Alert`](iotflow_types::Alert)s become signals with
//! [`Signal::from_alert`]; a CEP pattern's `select` function can build
//! them directly.
//!
//! # Event time, all the way
//!
//! Everything above happens in event time, which is timely time: the
//! watermark decides. Signals are exchanged by a stable hash of their key
//! and held until the frontier passes their *lifecycle time*, `max(ts,
//! t)` (`t`: the time they were stamped at, so a signal released late by a
//! detector counts when it was released, and none is ever late); then
//! every key's signals and deadlines are applied in time order (at equal
//! times deadlines first, then signals by content). Resolution is an
//! absence: it fires when the frontier passes the deadline, driven by the
//! frontier alone, even if the key (or the whole stream) never sends
//! another signal. At the end of input the frontier is past every
//! deadline, so every alert resolves. Events are stamped at their own time
//! ([`AlertEvent::at`]). The output is therefore a function of the input
//! alone: the same on 1 or 20 workers, in any arrival order within the
//! watermark, and across checkpoints and restarts.
//!
//! # State
//!
//! An [`AlertState`] per worker holds each key's open alert or cool-down
//! and the signals waiting for the watermark; keys with neither are
//! forgotten. It is plain serde data under the checkpoint contract of
//! `iotflow_core::state`: snapshotted at each checkpoint (after applying
//! everything before it), restored and rescaled by key on any number of
//! workers.
//!
//! # Sinks
//!
//! [`NdjsonSink`] writes one JSON object per line and syncs on close;
//! [`WebhookSink`] (feature `webhook`, on by default) POSTs events with
//! retries, exponential backoff and jitter, and dead-letters what the
//! endpoint refuses or never takes. Both are core
//! [`Sink`](iotflow_core::sink::Sink)s run by `write_to` on a writer
//! thread behind the core bridge: no operator does I/O. See [`sink`].

#![deny(missing_docs)]

mod error;
mod event;
mod lifecycle;
mod operator;
mod policy;
mod signal;
pub mod sink;
mod state;
mod tally;

pub use error::AlertError;
pub use event::{AlertEvent, Transition};
pub use operator::{AlertStreams, Alerting};
pub use policy::AlertPolicy;
pub use signal::{AlertKey, Evidence, Severity, Signal};
pub use sink::NdjsonSink;
#[cfg(feature = "webhook")]
pub use sink::{DeadLetter, WebhookClient, WebhookConfig, WebhookSink, WebhookStats};
pub use state::AlertState;
pub use tally::AlertTally;
