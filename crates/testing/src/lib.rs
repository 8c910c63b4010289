//! Test support for iotflow: everything an oracle or golden test needs, and
//! nothing a production crate may depend on (it is a dev-dependency only).
//!
//! Stateful operators are tested the way timely and differential test theirs:
//! run the real operator on a small input with 1, 2 or 3 workers, recompute
//! the answer naively from the same input, and compare.
//!
//! * [`harness`] runs a timely dataflow where worker `w` reads its own list of
//!   lines through an in-memory source and the event-time source, applies the
//!   operator under test ([`harness::UnderTest`]) and collects every output
//!   in memory.
//! * [`oracle`] recomputes the answers without timely: tumbling windows with
//!   the per-worker watermark rule of the event-time source, and the fleet-v1
//!   EWMA z-score over each series in event-time order.
//! * [`input`] makes seeded random input: out-of-order readings with bounded
//!   and occasionally unbounded disorder, equal timestamps, spikes, and
//!   malformed lines, each line paired with what it should decode to.
//! * [`golden`] runs a case directory `tests/golden/<case>/` through the whole
//!   pipeline and compares normalized CSV outputs with the expected files;
//!   `IOTFLOW_BLESS=1` rewrites them.
//! * [`compare`] holds the comparisons the tests share (windows with a
//!   tolerance on sums, alerts as sets).
#![deny(missing_docs)]

pub mod compare;
pub mod golden;
pub mod harness;
pub mod input;
pub mod oracle;
