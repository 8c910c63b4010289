//! Device-fleet simulator: the fleet-v1 generator.
//!
//! fleet-v1 is the reference workload every iotflow performance and
//! correctness claim is made on (`shared/bench/fleet-v1.md`). This crate
//! generates it, deterministically from a seed, as newline-delimited JSON:
//!
//! ```text
//! {"device_id":"d-00042","ts":1700000000123,"metric":"temp","value":21.37,"unit":"C"}
//! ```
//!
//! It produces the same format and the same statistics as the Python
//! reference `gen_fleet.py`, not the same bytes: the random streams differ.
//!
//! # The workload
//!
//! Line `i` belongs to device `d = i % devices` (10,000 by default) and to
//! second `s = i / devices` of event time. Its metric is
//! `(s + d) % 4` of temp (°C), humidity (%), pressure (hPa) and vibration
//! (g), so every (device, metric) key gets a reading every 4 s. Its nominal
//! time is `start_ms + 2000 + s*1000 + (d*1000)/devices`, and its `ts` is
//! that minus a uniform jitter of 0–1999 ms: every `ts` is `>= start_ms`,
//! and disorder is bounded by 2 s (a line's `ts` is more than
//! `max(previous ts) - 2000`), so with a 2 s watermark delay nothing is
//! late.
//!
//! A value is the key's baseline (drawn once per key inside the metric's
//! normal band, 8 σ from its edges where the band allows) plus Gaussian
//! noise clipped to ±3 σ, written with 2 decimals (4 for vibration).
//! Exactly `round(lines * 0.0005)` readings are spikes of exactly ±8 σ, still
//! physically valid: the anomalies a detector must find
//! ([`FleetGenerator::anomaly_lines`]). Exactly `round(lines * 0.001)` lines
//! are malformed, cycling through the eight [`MalformedKind`]s; a correct
//! pipeline rejects exactly those.
//!
//! # How it works
//!
//! [`FleetGenerator::new`] makes a setup pass: the baselines of every device
//! and metric, and the plan of special lines, a random ordered sample of
//! distinct line indices (Floyd's algorithm, then shuffled) whose first
//! picks are malformed, kinds assigned cyclically, and the rest spikes.
//! Then [`FleetGenerator::next_line`] (or [`FleetGenerator::fill`], a
//! buffer-full at a time) streams the lines into a caller's `Vec<u8>`,
//! formatting numbers by hand with no allocation per line: well over 5
//! million lines/s on one core. [`write_file`] writes a file the way
//! `gen_fleet.py` does, with its `.meta.json` ([`FleetMeta`]) and
//! `.anomalies` companions.
//!
//! # Determinism
//!
//! The same [`FleetConfig`] gives the same bytes on every machine and in
//! every build. Nothing depends on the platform: the random source is
//! xoshiro256++ seeded by SplitMix64 (not `rand`'s `SmallRng`, whose
//! algorithm differs between 32- and 64-bit targets), uniform draws go
//! through `rand` 0.9's value-stable samplers, Gaussians use Marsaglia's
//! polar method with the pure-Rust `libm::log`, and decimals are formatted
//! with integer arithmetic. The stream is pinned by a golden test: changing
//! it changes fleet-v1 and every figure measured on it.
//!
//! # Example
//!
//! ```
//! use iotflow_sim::{FleetConfig, FleetGenerator, LineKind};
//!
//! let cfg = FleetConfig { lines: 20_000, seed: 7, ..FleetConfig::default() };
//! let mut fleet = FleetGenerator::new(&cfg);
//! let mut line = Vec::new();
//! let mut malformed = 0;
//! while let Some(kind) = fleet.next_line(&mut line) {
//!     if let LineKind::Malformed(_) = kind {
//!         malformed += 1;
//!     }
//!     line.clear();
//! }
//! assert_eq!(malformed, 20);
//! assert_eq!(fleet.meta().spikes, 10);
//! assert_eq!(fleet.anomaly_lines().len(), 10);
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod file;
mod format;
mod generator;
mod kind;
pub mod labelled;
mod line;
mod meta;
mod plan;
mod rng;

pub use config::FleetConfig;
pub use error::Error;
pub use file::{anomalies_path, meta_path, write_file};
pub use generator::FleetGenerator;
pub use kind::{LineKind, MalformedKind};
pub use labelled::{AnomalyKind, LabelledConfig, LabelledSeries};
pub use meta::FleetMeta;
