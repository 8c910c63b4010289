//! Machine-learning inference on telemetry: ONNX models on micro-batches of
//! feature vectors.
//!
//! # Models
//!
//! A [`Model`] is an ONNX file (or its bytes) loaded with
//! [tract](https://github.com/sonos/tract), a pure-Rust inference engine:
//! no runtime library to install, no GPU, no network. Loading checks the
//! model against what a pipeline feeds it — one `f32` input of shape
//! `[batch, features]` with the declared feature count, outputs of shape
//! `[batch]` or `[batch, k]` — and optimizes it once; clones share the
//! optimized plan, so one load serves every worker. The batch dimension may
//! be symbolic (any number of rows per run) or fixed (batches are split and
//! padded to it).
//!
//! # Features
//!
//! A model sees a fixed-length `f32` vector per record. [`FeatureSpec`]
//! names one in configuration: columns of window statistics
//! ([`WindowColumn`]: count, mean, min, max, range, …) from the window
//! operators' `WindowResult<_, Stats>`, or the last `size` values of a
//! series, which [`Shingles::shingle`] builds from readings per key in
//! event-time order. Any other vector is a closure away ([`features_fn`]).
//! A record whose features are missing (the mean of an empty window) or
//! not finite `f32`s is not scored: it goes to the rejects output with a
//! [`RejectReason`], never silently away, and so does every record of a
//! batch the model fails on.
//!
//! # The operator
//!
//! [`Infer::infer`] runs on any stream of records. Records wait in a
//! micro-batch until it is full (the model's `max_batch`, 1024 by default)
//! or the watermark passes one of them, and each output is stamped at its
//! record's own time. Feed-forward models compute each row independently
//! of the others in its batch, so how records were batched — and on how
//! many workers — changes no output: the tests check 1 and 2 workers give
//! the same bits.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use iotflow_ml::{FeatureSpec, Infer, Model, Shingles};
//! use iotflow_types::Reading;
//! use timely::dataflow::operators::{ToStream, Capture, capture::Event};
//!
//! // y = 2·x₀ − x₁ on the last two values of each device's series.
//! let model = Model::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/linear.onnx"), 2)?;
//! let rx = timely::example(move |scope| {
//!     let readings = (0..3u64).map(|i| Reading::new("d-1", i * 1_000, "temp", 20.0 + i as f64));
//!     readings
//!         .to_stream(scope)
//!         .shingle("last-2", 2, |r: &Reading| r.device.clone(), None)
//!         .expect("size > 0")
//!         .infer("trend", &model, FeatureSpec::shingle(2))
//!         .expect("2 features")
//!         .inferred
//!         .capture()
//! });
//! let scores: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
//!     .map(|s| s.score())
//!     .collect();
//! assert_eq!(scores, [Some(19.0), Some(20.0)]); // 2·20 − 21, 2·21 − 22
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod features;
mod infer;
mod model;
mod shingle;

pub use config::InferConfig;
pub use error::{Error, Result};
pub use features::{FeatureFn, FeatureSpec, Features, RejectReason, WindowColumn, features_fn};
pub use infer::{Infer, InferStreams, Inferred, Rejected};
pub use model::{BatchDim, DEFAULT_MAX_BATCH, Model, ModelOutput};
pub use shingle::{Shingle, ShingleState, Shingles};
