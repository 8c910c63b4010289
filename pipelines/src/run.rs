//! Running the fleet pipeline as a job.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use iotflow_core::codec::InputFormat;
use iotflow_core::context::JobContext;
use iotflow_core::source::{MemorySource, Source};
use iotflow_core::tally::Tally;
use iotflow_file::source::{FileSource, plan};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::{InputSpec, JobConfig};
use crate::fleet::{attach_sinks, clean_stale_parts, collect_tally, fleet_dataflow};
use crate::sim_source::SharedGenerator;

/// What a run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Counts over the whole cluster (complete on process 0; other processes
    /// report zeros).
    pub tally: Tally,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Workers per process.
    pub workers: usize,
    /// Processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// Peak RSS of this process.
    pub peak_rss_bytes: u64,
    /// The job was cancelled ([`JobContext::cancel`], Ctrl-C) and stopped
    /// early; everything read was still processed and written.
    pub interrupted: bool,
}

impl RunReport {
    /// The JSON summary printed by `iotflow run --summary json`.
    pub fn summary_json(&self) -> serde_json::Value {
        let t = &self.tally;
        serde_json::json!({
            "lines": t.lines,
            "valid": t.valid,
            "rejected": t.rejected_total(),
            "rejected_by_reason": t.rejected,
            "late": t.late,
            "windows": t.windows,
            "windowed_readings": t.windowed,
            "alerts": t.alerts,
            "seconds": self.seconds,
            "lines_per_s": if self.seconds > 0.0 { (t.lines as f64 / self.seconds).round() } else { 0.0 },
            "workers": self.workers,
            "processes": self.processes,
            "process": self.process,
            "peak_rss_bytes": self.peak_rss_bytes,
            "interrupted": self.interrupted,
        })
    }
}

/// Runs the fleet pipeline described by `cfg`. `progress`, if given, receives
/// the live counters (for a progress bar) before the workers start.
pub fn run(
    cfg: &JobConfig,
    progress: Option<&mut dyn FnMut(&JobContext)>,
) -> Result<RunReport, Error> {
    cfg.validate()?;
    let ctx = JobContext::new();
    let peers = cfg.cluster.peers();
    let (splits, format, generator) = match &cfg.input {
        InputSpec::Files { paths, format } => {
            let splits = plan(paths, cfg.split_bytes)?;
            let format =
                format.unwrap_or_else(|| InputFormat::from_path(std::path::Path::new(&paths[0])));
            (Arc::new(splits), format, None)
        }
        InputSpec::Sim(fleet) => (
            Arc::new(Vec::new()),
            InputFormat::Ndjson,
            Some(SharedGenerator::new(fleet)),
        ),
    };
    if cfg.cluster.process == 0 {
        clean_stale_parts(&cfg.output, peers)?;
    }
    if let Some(p) = progress {
        p(&ctx);
    }
    tracing::info!(input = ?cfg.input, output = %cfg.output.dir.display(), "starting fleet pipeline");
    let started = Instant::now();
    let job_cfg = cfg.clone();
    let job_ctx = ctx.clone();
    let process = cfg.cluster.process;
    let results = iotflow_runtime::execute(&cfg.cluster, move |worker| -> Result<Tally, Error> {
        let index = worker.index();
        let peers = worker.peers();
        let source: Box<dyn Source> = match &generator {
            Some(g) if process == 0 => Box::new(g.source()),
            Some(_) => Box::new(MemorySource::default()),
            None => Box::new(FileSource::for_worker(&splits, index, peers)),
        };
        let total = Arc::new(Mutex::new(Tally::default()));
        let handles = worker.dataflow::<u64, _, _>(|scope| {
            let streams = fleet_dataflow(scope, source, format.decoder(), &job_cfg, &job_ctx);
            let (handles, tally) = attach_sinks(streams, &job_cfg.output, index, &job_ctx)?;
            collect_tally(tally, total.clone());
            Ok::<_, Error>(handles)
        })?;
        while worker.step_or_park(Some(std::time::Duration::from_millis(100))) {}
        for h in handles {
            h.join()?;
        }
        let t = total.lock().map(|t| t.clone()).unwrap_or_default();
        Ok(t)
    })?;
    let mut tally = Tally::default();
    for r in results {
        tally.merge(&r?);
    }
    tracing::info!(
        lines = tally.lines,
        rejected = tally.rejected_total(),
        late = tally.late,
        windows = tally.windows,
        alerts = tally.alerts,
        seconds = started.elapsed().as_secs_f64(),
        "job finished"
    );
    let failures = ctx.failures();
    if !failures.is_empty() {
        return Err(Error::Failed(failures));
    }
    Ok(RunReport {
        tally,
        seconds: started.elapsed().as_secs_f64(),
        workers: cfg.cluster.workers,
        processes: cfg.cluster.processes,
        process,
        peak_rss_bytes: iotflow_runtime::peak_rss_bytes().unwrap_or(0),
        interrupted: ctx.is_cancelled(),
    })
}
