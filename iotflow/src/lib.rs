//! # iotflow
//!
//! A dataflow framework for IoT telemetry, on [timely dataflow](timely).
//! Readings enter through an event-time source whose timely frontier *is* the
//! watermark; operators are verbs on timely streams (`.validate`,
//! `.window`, `.detect`, `.score`); results and dead letters leave through sinks on
//! their own threads. The same code runs on one thread, N threads, or a
//! cluster of processes.
//!
//! ```
//! use std::time::Duration;
//! use iotflow::prelude::*;
//! use timely::dataflow::operators::{Capture, capture::Event};
//!
//! let lines = [
//!     r#"{"device_id":"d-1","ts":1000,"metric":"temp","value":20.0}"#,
//!     r#"{"device_id":"d-1","ts":4000,"metric":"temp","value":22.0}"#,
//!     r#"{"device_id":"d-1","ts":15000,"metric":"temp","value":21.0}"#,
//!     r#"not json"#,
//! ];
//! let windows = timely::example(move |scope| {
//!     let window = TumblingConfig::new(Duration::from_secs(10));
//!     let src = event_time_source(
//!         scope, "source",
//!         Box::new(MemorySource::from_lines("example", &lines, 2)),
//!         Box::new(JsonDecoder::new()),
//!         Rules::fleet_default(),
//!         EventTimeConfig::default().with_lateness(window.lateness()),
//!         JobContext::new(),
//!     );
//!     src.readings.tumbling("10s", Duration::from_secs(10)).windows.capture()
//! });
//! let mut out: Vec<_> = windows.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
//! out.sort_by_key(|w| w.start);
//! assert_eq!(out[0].stats.count, 2);
//! assert_eq!(out[0].stats.mean(), 21.0);
//! ```

#![deny(missing_docs)]

pub use iotflow_alert as alert;
pub use iotflow_anomaly as anomaly;
pub use iotflow_cep as cep;
pub use iotflow_core as core;
pub use iotflow_devices as devices;
pub use iotflow_enrich as enrich;
pub use iotflow_file as file;
pub use iotflow_fleet as fleet;
#[cfg(feature = "ml")]
pub use iotflow_ml as ml;
pub use iotflow_pipelines as pipelines;
pub use iotflow_runtime as runtime;
pub use iotflow_sim as sim;
pub use iotflow_types as types;
pub use iotflow_window as window;
pub use timely;

/// What a pipeline author needs in scope.
pub mod prelude {
    pub use iotflow_alert::{AlertPolicy, Alerting, Signal};
    pub use iotflow_anomaly::{Detect, DetectorConfig, Ewma, Score};
    pub use iotflow_cep::{Cep, Pattern, PatternConfig, Skip};
    pub use iotflow_core::codec::{CsvDecoder, Decoder, InputFormat, JsonDecoder};
    pub use iotflow_core::context::JobContext;
    pub use iotflow_core::event_time::{EventTimeConfig, Lateness, event_time_source};
    pub use iotflow_core::sink::{Sink, WriteTo};
    pub use iotflow_core::source::{Chunk, MemorySource, Source};
    pub use iotflow_core::tally::Tally;
    pub use iotflow_core::validate::{Rules, Validate};
    pub use iotflow_devices::{FeedConfig, Registry, registry_updates};
    pub use iotflow_enrich::{Enrich, EnrichConfig, Enriched, UnknownDevice};
    pub use iotflow_file::sink::{Format, open_sink};
    pub use iotflow_file::source::{FileSource, plan};
    pub use iotflow_fleet::{FleetViews, Presence, PresenceConfig, PresenceEvent, PresenceKind};
    pub use iotflow_runtime::{ClusterConfig, execute};
    pub use iotflow_types::{
        Alert, DeviceId, DeviceInfo, DeviceStatus, DeviceUpdate, LateReading, Metric, Reading,
        Reject, RejectReason, ResultKind, SeriesKey, Stats, WindowResult,
    };
    pub use iotflow_window::{
        Aggregate, Aggregates, Tumbling, TumblingConfig, WindowOptions, WindowSpec, Windowed,
    };
}
