//! Pipelines: the common shape source → operators → sinks, in code.
//!
//! A pipeline is ordinary timely code: [`fleet::fleet_dataflow`] wires an
//! event-time source, the `tumbling` window and the `score` detector with the
//! operator traits, and returns every stream so you can add your own timely
//! operators before [`fleet::attach_sinks`] writes them out. [`run::run`]
//! runs it on N workers or a cluster and reports a [`run::RunReport`]: it is
//! what `iotflow run` and `iotflow demo` execute, and what the
//! `fleet_monitor` example shows step by step.
//!
//! ```no_run
//! use iotflow_pipelines::{config::{JobConfig, InputSpec}, run::run};
//! let mut cfg = JobConfig::default();
//! cfg.input = InputSpec::Files { paths: vec!["fleet.ndjson".into()], format: None };
//! cfg.output.dir = "out".into();
//! let report = run(&cfg, None).expect("job ran");
//! println!("{} lines, {} windows, {} alerts", report.tally.lines, report.tally.windows, report.tally.alerts);
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod fleet;
pub mod records;
pub mod run;
pub mod sim_source;

/// Errors of iotflow-pipelines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A core error (I/O, configuration, sink).
    #[error(transparent)]
    Core(#[from] iotflow_core::Error),
    /// The runtime could not run the job.
    #[error(transparent)]
    Runtime(#[from] iotflow_runtime::Error),
    /// The configuration file is invalid.
    #[error("config {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Checkpoint store, recovery or commit failed.
    #[error(transparent)]
    Checkpoint(#[from] iotflow_runtime::checkpoint::CheckpointError),
    /// A restored checkpoint does not decode into this job's state.
    #[error("restoring state: {0}")]
    Restore(#[from] iotflow_core::state::SnapshotError),
    /// The enrichment's checkpointed state does not restore.
    #[error(transparent)]
    Enrich(#[from] iotflow_enrich::EnrichError),
    /// The presence operator's configuration or checkpointed state is invalid.
    #[error(transparent)]
    Fleet(#[from] iotflow_fleet::FleetError),
    /// The job ran but something failed on the way (source, sink).
    #[error("job failed: {}", .0.join("; "))]
    Failed(Vec<String>),
}
