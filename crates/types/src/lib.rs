//! The data model every iotflow crate speaks.
//!
//! A telemetry stream is a stream of [`Reading`]s: one measured value of one
//! metric of one device at one event time. Identifiers are small strings kept
//! inline ([`DeviceId`], [`Metric`]): ids up to 24 bytes never touch the heap,
//! so a reading can be created, exchanged between workers and dropped without
//! a per-record allocation, and two processes hash the same id the same way
//! (see [`stable_hash`]), which is what exchanging by key across a cluster
//! needs.
//!
//! Whatever a pipeline cannot use leaves it with a reason: a [`Reject`] carries
//! the source position, a [`RejectReason`] code and the raw bytes; a reading
//! that arrives after its window closed is *late* and goes to a late output.
//! Results are [`WindowResult`]s and [`Alert`]s.
//!
//! ```
//! use iotflow_types::{Reading, DeviceId, Metric};
//! let r = Reading::new("d-00042", 1_700_000_000_123, "temp", 21.37).with_unit("C");
//! assert_eq!(r.device.as_str(), "d-00042");
//! assert_eq!(r.metric, Metric::from("temp"));
//! ```
#![deny(missing_docs)]

mod device;
mod ids;
mod reading;
mod reject;
mod results;

pub use device::{DeviceInfo, DeviceStatus, DeviceUpdate, UnknownStatus};
pub use ids::{DeviceId, Metric, SmallStr, stable_hash};
pub use reading::{Reading, Tags};
pub use reject::{Field, Reject, RejectReason, SourcePos};
pub use results::{Alert, ExactSum, LateReading, ResultKind, SeriesKey, Stats, WindowResult};

/// Event time in milliseconds since the Unix epoch. It is also the timely
/// timestamp of every iotflow stream: the frontier of a stream is its
/// watermark.
pub type Timestamp = u64;
