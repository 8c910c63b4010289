//! iotflow core: the plumbing every pipeline stands on.
//!
//! * [`event_time`]: sources whose timely time is event time; the frontier is
//!   the watermark; late readings get their own output.
//! * [`bridge`]: bounded channels between I/O threads/tasks and timely
//!   workers (backpressure, wake-ups through timely activators).
//! * [`source`] / [`sink`]: the trait pair connectors implement.
//! * [`codec`]: NDJSON and CSV decoders that never panic and say why a record
//!   is not a reading.
//! * [`validate`]: physical plausibility rules and the `validate` operator.
//! * [`tally`]: counts that prove every record was output, rejected or late.
//! * [`state`]: the state contract: snapshots with checksums, rescaling by key.
//! * [`checkpoint`]: consistent checkpoints on timely frontiers: control
//!   messages, input applied in time order, acks to the committer.
#![deny(missing_docs)]
pub mod bridge;
pub mod checkpoint;
pub mod clock;
pub mod codec;
pub mod context;
mod error;
pub mod event_time;
pub mod held;
pub mod sink;
pub mod source;
pub mod state;
pub mod tally;
pub mod validate;
pub use error::{Error, Fault, Result};
