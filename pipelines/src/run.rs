//! Running the fleet pipeline as a job.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use iotflow_core::context::JobContext;
use iotflow_core::source::{MemorySource, Source};
use iotflow_core::tally::Tally;
use iotflow_file::source::{FileSource, plan};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::{InputSpec, JobConfig};
use crate::fleet::{
    attach_committed_sinks, attach_sinks, clean_stale_parts, collect_tally, fleet_dataflow,
    fleet_dataflow_checkpointed, fleet_dataflow_with_registry, prepare_committed_output, run_id,
};
use crate::sim_source::SharedGenerator;
use iotflow_core::checkpoint::{Checkpoint, Checkpoints, SourceState};
use iotflow_core::source::{Position, Resume};
use iotflow_runtime::checkpoint::{
    CheckpointError, CheckpointStats, Checkpointing, committer, coordinator, recover,
};
use iotflow_runtime::store::CheckpointStore;
use std::sync::atomic::Ordering;
use timely::dataflow::operators::{ConnectLoop, Feedback};

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
    /// early; everything read was still processed and written (with
    /// checkpoints: up to the last checkpoint, and a rerun resumes).
    pub interrupted: bool,
    /// Checkpoint figures, when the job checkpoints.
    pub checkpoints: Option<CheckpointStats>,
    /// The checkpoint directory says this job had already run to completion;
    /// nothing was run and the counts are the completed job's.
    pub already_complete: bool,
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
            "window_updates": t.window_updates,
            "window_partials": t.window_partials,
            "windowed_readings": t.windowed,
            "alerts": t.alerts,
            "seconds": self.seconds,
            "lines_per_s": if self.seconds > 0.0 { (t.lines as f64 / self.seconds).round() } else { 0.0 },
            "workers": self.workers,
            "processes": self.processes,
            "process": self.process,
            "peak_rss_bytes": self.peak_rss_bytes,
            "interrupted": self.interrupted,
            "already_complete": self.already_complete,
            "checkpoints": self.checkpoints,
        })
    }
}

/// What a [`SourceFactory`] makes a source for: one timely worker of the
/// job, and where the job's last checkpoint left every partition.
#[derive(Debug)]
pub struct SourceSlot<'a> {
    /// The worker's index in the cluster.
    pub worker: usize,
    /// Workers in the cluster.
    pub peers: usize,
    /// Positions of every partition of the input at the checkpoint the job
    /// resumes from (empty on a fresh start). Keys do not depend on the
    /// worker that read them, so a source picks the entries of the
    /// partitions it owns now.
    pub resume: &'a [Resume],
}

/// Makes each worker's source: how a job reads an input that is not in
/// its [`InputSpec`] (an HTTP ingest queue, a custom connector), or a
/// connector input.
pub type SourceFactory =
    Arc<dyn Fn(SourceSlot<'_>) -> Result<Box<dyn Source>, iotflow_core::Error> + Send + Sync>;

/// Runs the fleet pipeline described by `cfg`. `progress`, if given, receives
/// the live counters (for a progress bar) before the workers start.
pub fn run(
    cfg: &JobConfig,
    progress: Option<&mut dyn FnMut(&JobContext)>,
) -> Result<RunReport, Error> {
    run_with_source(cfg, progress, None)
}

/// [`run`], with each worker's source made by `factory` when it is given
/// (records decoded as [`InputSpec::format`]); `cfg.input` then only names
/// the input (it is part of the checkpoint fingerprint). Without a factory
/// the source follows `cfg.input`.
pub fn run_with_source(
    cfg: &JobConfig,
    progress: Option<&mut dyn FnMut(&JobContext)>,
    factory: Option<SourceFactory>,
) -> Result<RunReport, Error> {
    cfg.validate()?;
    let ctx = JobContext::new();
    let peers = cfg.cluster.peers();
    let format = cfg.input.format();
    let factory = match factory {
        Some(f) => Some(f),
        None => connector_factory(&cfg.input)?,
    };
    let (splits, generator) = match (&cfg.input, &factory) {
        (_, Some(_)) => (Arc::new(Vec::new()), None),
        (InputSpec::Files { paths, .. }, None) => (Arc::new(plan(paths, cfg.split_bytes)?), None),
        (InputSpec::Sim(fleet), None) => (Arc::new(Vec::new()), Some(SharedGenerator::new(fleet))),
        (other, None) => {
            return Err(iotflow_core::Error::Config(format!(
                "input kind {:?} has no source",
                other.kind()
            ))
            .into());
        }
    };
    let process = cfg.cluster.process;
    let checkpointing = match &cfg.checkpoint {
        Some(c) => {
            let store = Arc::new(CheckpointStore::open(&c.dir).map_err(CheckpointError::from)?);
            let job = cfg.fingerprint();
            let recovery = recover(&store, &job, process == 0)?;
            if let Some(m) = recovery.manifest.as_ref().filter(|m| m.finished) {
                tracing::info!(checkpoint = m.id, location = %c.dir, "job already complete; nothing to do");
                return Ok(RunReport {
                    tally: m.tally.clone(),
                    seconds: 0.0,
                    workers: cfg.cluster.workers,
                    processes: cfg.cluster.processes,
                    process,
                    peak_rss_bytes: iotflow_runtime::peak_rss_bytes().unwrap_or(0),
                    interrupted: false,
                    checkpoints: Some(CheckpointStats {
                        restored_from: Some(m.id),
                        ..CheckpointStats::default()
                    }),
                    already_complete: true,
                });
            }
            if process == 0 {
                prepare_committed_output(&cfg.output, recovery.restored.as_ref().map(|r| r.id))?;
            }
            let positions: Vec<Resume> = match &recovery.restored {
                Some(r) => {
                    let parts: Vec<SourceState> = r.parts("source")?;
                    SourceState::restore(parts, 0, 1)
                        .positions
                        .into_iter()
                        .map(|(partition, position)| Resume {
                            partition: Arc::from(partition),
                            position,
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            Some((
                Checkpointing::new(store, c.clone(), job, &recovery),
                recovery.restored.clone(),
                positions,
            ))
        }
        None => {
            if process == 0 {
                clean_stale_parts(&cfg.output, peers)?;
            }
            None
        }
    };
    let checkpointing = Arc::new(checkpointing);
    if let Some((_, Some(restored), positions)) = checkpointing.as_ref() {
        // A resumed job's progress starts where its checkpoint left it.
        let done: u64 = splits
            .iter()
            .map(|s| {
                let key = s.key();
                match positions
                    .iter()
                    .find(|r| r.partition == key)
                    .map(|r| &r.position)
                {
                    Some(Position::Done) => s.end - s.start,
                    Some(Position::Offset(o)) => o.saturating_sub(s.start).min(s.end - s.start),
                    _ => 0,
                }
            })
            .sum();
        let p = &ctx.progress;
        p.bytes.fetch_add(done, Ordering::Relaxed);
        if let Ok(parts) = restored.parts::<SourceState>("source") {
            let t = SourceState::restore(parts, 0, 1).tally;
            p.lines.fetch_add(t.lines, Ordering::Relaxed);
            p.rejected.fetch_add(t.rejected_total(), Ordering::Relaxed);
            p.late.fetch_add(t.late, Ordering::Relaxed);
        }
    }
    // The device registry, when the job has `[devices]`: opened on a
    // runtime that lives as long as the job (its connections are driven
    // there; the registry feed reads through them from its own thread).
    let registry_rt;
    let registry = match &cfg.devices {
        Some(dc) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("registry-io")
                .enable_all()
                .build()
                .map_err(|e| iotflow_core::Error::Config(format!("registry runtime: {e}")))?;
            let dir = dc
                .data_dir
                .clone()
                .unwrap_or_else(|| cfg.output.dir.clone());
            let opened = rt.block_on(iotflow_devices::Registry::open(
                dc.registry.as_deref(),
                &dir,
            ));
            let registry = opened.map_err(|e| {
                iotflow_core::Error::Config(format!("opening the device registry: {e}"))
            })?;
            registry_rt = Some(rt);
            Some(registry)
        }
        None => {
            registry_rt = None;
            None
        }
    };
    if let Some(p) = progress {
        p(&ctx);
    }
    tracing::info!(input = ?cfg.input, output = %cfg.output.dir.display(), "starting fleet pipeline");
    let started = Instant::now();
    let job_cfg = cfg.clone();
    let job_ctx = ctx.clone();
    let job_ck = checkpointing.clone();
    let interleave = cfg.interleave_files;
    let chunk_bytes = cfg.chunk_bytes;
    let run_id = run_id();
    let job_registry = registry.clone();
    let factory = factory.clone();
    let results = iotflow_runtime::execute(&cfg.cluster, move |worker| -> Result<Tally, Error> {
        let index = worker.index();
        let peers = worker.peers();
        let resume: &[Resume] = job_ck
            .as_ref()
            .as_ref()
            .map_or(&[], |(_, _, p)| p.as_slice());
        let source: Box<dyn Source> = match (&factory, &generator, job_ck.as_ref()) {
            (Some(f), _, _) => f(SourceSlot {
                worker: index,
                peers,
                resume,
            })?,
            (None, Some(g), _) if process == 0 => Box::new(g.source()),
            (None, Some(_), _) => Box::new(MemorySource::default()),
            (None, None, Some((_, _, positions))) => Box::new(
                FileSource::for_worker(&splits, index, peers)
                    .with_resume(positions.clone())
                    .with_chunk_bytes(chunk_bytes)
                    .interleaved(interleave),
            ),
            (None, None, None) => Box::new(
                FileSource::for_worker(&splits, index, peers)
                    .with_chunk_bytes(chunk_bytes)
                    .interleaved(interleave),
            ),
        };
        let total = Arc::new(Mutex::new(Tally::default()));
        let (handles, committer) = worker.dataflow::<u64, _, _>(|scope| {
            let Some((ck, restored, _)) = job_ck.as_ref() else {
                let streams = match &job_registry {
                    Some(r) => fleet_dataflow_with_registry(
                        scope,
                        source,
                        format.decoder(),
                        &job_cfg,
                        &job_ctx,
                        None,
                        r,
                    )?,
                    None => fleet_dataflow(scope, source, format.decoder(), &job_cfg, &job_ctx),
                };
                let (handles, tally) = attach_sinks(streams, &job_cfg.output, index, &job_ctx)?;
                collect_tally(tally, total.clone());
                return Ok::<_, Error>((handles, None));
            };
            // Checkpoint requests loop back from the coordinator (which trails
            // the sources) to every participant, the sources included.
            let (loop_handle, control) = scope.feedback::<Vec<Checkpoint>>(0);
            let cks = Checkpoints::new(control, restored.clone(), index, peers);
            let streams = match &job_registry {
                Some(r) => fleet_dataflow_with_registry(
                    scope,
                    source,
                    format.decoder(),
                    &job_cfg,
                    &job_ctx,
                    Some(&cks),
                    r,
                )?,
                None => fleet_dataflow_checkpointed(
                    scope,
                    source,
                    format.decoder(),
                    &job_cfg,
                    &job_ctx,
                    &cks,
                )?,
            };
            coordinator(streams.source_tally.clone(), ck, &job_ctx).connect_loop(loop_handle);
            let (handles, tally) =
                attach_committed_sinks(streams, &job_cfg.output, index, &job_ctx, &cks, &run_id);
            collect_tally(tally, total.clone());
            let committer = committer(cks.acks(), ck, peers, &job_ctx);
            Ok((handles, committer))
        })?;
        while worker.step_or_park(Some(std::time::Duration::from_millis(100))) {}
        for h in handles {
            h.join()?;
        }
        if let Some(c) = committer
            && c.join().is_err()
        {
            job_ctx.fail("checkpoint committer panicked");
        }
        let t = total.lock().map(|t| t.clone()).unwrap_or_default();
        Ok(t)
    })?;
    // No checkpoint completes after this: sources that acknowledge input
    // upstream do so for the last one and finish.
    ctx.end_commits();
    ctx.join_io(std::time::Duration::from_secs(30));
    let mut tally = Tally::default();
    for r in results {
        tally.merge(&r?);
    }
    if let (Some(r), Some(rt)) = (registry, registry_rt) {
        rt.block_on(r.close());
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
        checkpoints: checkpointing.as_ref().as_ref().map(|(c, _, _)| c.stats()),
        already_complete: false,
    })
}

/// A factory calling a connector's `new(config, worker, peers, resume)`.
#[cfg(any(feature = "kafka", feature = "kinesis", feature = "mqtt"))]
fn factory_of<C, S>(
    config: &C,
    new: fn(C, usize, usize, Vec<Resume>) -> Result<S, iotflow_core::Error>,
) -> SourceFactory
where
    C: Clone + Send + Sync + 'static,
    S: Source,
{
    let config = config.clone();
    Arc::new(move |slot: SourceSlot<'_>| {
        let s = new(
            config.clone(),
            slot.worker,
            slot.peers,
            slot.resume.to_vec(),
        )?;
        Ok(Box::new(s) as Box<dyn Source>)
    })
}

/// The source factory of a connector input, `None` for files and the
/// generator (which [`run_with_source`] reads itself).
fn connector_factory(input: &InputSpec) -> Result<Option<SourceFactory>, Error> {
    Ok(match input {
        InputSpec::Files { .. } | InputSpec::Sim(_) => None,
        #[cfg(feature = "kafka")]
        InputSpec::Kafka(k) => Some(factory_of(k, iotflow_kafka::KafkaSource::new)),
        #[cfg(feature = "kinesis")]
        InputSpec::Kinesis(k) => Some(factory_of(k, iotflow_kinesis::KinesisSource::new)),
        #[cfg(feature = "mqtt")]
        InputSpec::Mqtt(m) => Some(factory_of(m, iotflow_mqtt::MqttSource::new)),
        InputSpec::Http => {
            return Err(iotflow_core::Error::Config(
                "input kind \"http\" reads the HTTP ingest routes: run the job with `iotflow serve --job FILE`".into(),
            )
            .into());
        }
    })
}
