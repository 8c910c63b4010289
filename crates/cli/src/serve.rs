//! `iotflow serve`: the device registry's HTTP API and, with `--job`, HTTP
//! ingest feeding a pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use iotflow_core::context::JobContext;
use iotflow_core::source::{MemorySource, Source};
use iotflow_pipelines::config::{InputSpec, JobConfig};
use iotflow_pipelines::run::{RunReport, SourceFactory, SourceSlot, run_with_source};
use iotflow_server::{ApiToken, IngestQueue, Scope, Server, ServerConfig};

/// Environment variable holding an admin API token.
const TOKEN_ENV: &str = "IOTFLOW_API_TOKEN";

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Server configuration (TOML: bind, body limits, `[[tokens]]` with
    /// name, token and scope admin|read). Flags override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Registry URL (`postgres://…`, `sqlite://…`); default: the SQLite
    /// file under --data-dir.
    #[arg(long, env = "IOTFLOW_REGISTRY")]
    registry: Option<String>,
    /// Data directory of the embedded registry.
    #[arg(long, default_value = "iotflow-data")]
    data_dir: PathBuf,
    /// A job file (TOML) with `[input] kind = "http"`: `POST /ingest` and
    /// `POST /ingest/batch` feed its pipeline (queue size, device
    /// authentication and Retry-After in the server config's `[ingest]`).
    /// Ctrl-C stops taking requests, lets the pipeline read every accepted
    /// reading, then stops the job through a last checkpoint (with
    /// `[checkpoint]`; the next start resumes it).
    #[arg(long)]
    job: Option<PathBuf>,
}

/// Runs `iotflow serve` until Ctrl-C or SIGTERM.
pub(crate) fn serve(a: ServeArgs) -> Result<bool> {
    let mut config = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(bind) = a.bind {
        config.bind = bind;
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        config
            .tokens
            .push(ApiToken::new(TOKEN_ENV, token, Scope::Admin));
    }
    if config.tokens.is_empty() {
        bail!(
            "no API token: set {TOKEN_ENV} (at least 16 characters) or add [[tokens]] to --config"
        );
    }
    let job = match &a.job {
        Some(path) => {
            let cfg = JobConfig::from_file(path)?;
            if !matches!(cfg.input, InputSpec::Http) {
                bail!(
                    "{}: `iotflow serve --job` feeds the job from HTTP ingest; its [input] needs kind = \"http\" (got {:?}; run other inputs with `iotflow run`)",
                    path.display(),
                    cfg.input.kind()
                );
            }
            cfg.validate()?;
            Some(cfg)
        }
        None => None,
    };
    let summary_cfg = job.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let registry = crate::devices::open_registry(a.registry.as_deref(), &a.data_dir).await?;
        // The job starts before the server, so no reading is accepted for
        // a job that turns out to be complete already.
        let running = match job {
            Some(cfg) => match start_job(cfg, &config)? {
                Some(running) => Some(running),
                None => {
                    registry.close().await;
                    return Ok(false);
                }
            },
            None => None,
        };
        let mut server = Server::bind(&config, registry.clone()).await?;
        if let Some(r) = &running {
            server = server.with_ingest(r.queue.clone()).keep_ingest_open();
        }
        eprintln!(
            "iotflow: device registry API on http://{} (OpenAPI document at /openapi.json){}; Ctrl-C stops",
            server.local_addr(),
            if running.is_some() {
                "; POST /ingest and /ingest/batch feed the job"
            } else {
                ""
            }
        );
        let served = server.run().await;
        let stopped = match running {
            Some(r) => Some(tokio::task::spawn_blocking(move || r.stop()).await),
            None => None,
        };
        registry.close().await;
        served?;
        match (stopped, summary_cfg) {
            (Some(joined), Some(cfg)) => {
                let report = joined.context("joining the job")??;
                crate::summary::print_text(&report, &cfg);
                Ok(false)
            }
            _ => Ok(false),
        }
    })
}

/// A job reading HTTP ingest, running on its own thread.
struct RunningJob {
    queue: IngestQueue,
    ctx: JobContext,
    /// Records the job had read when it started (restored from its
    /// checkpoint): the readings of this run come on top.
    lines_at_start: u64,
    handle: std::thread::JoinHandle<Result<RunReport, iotflow_pipelines::Error>>,
}

/// Starts `cfg` with the ingest queue's source on worker 0 (the other
/// workers read nothing: a process has one HTTP endpoint). `None` when the
/// job had already run to completion.
fn start_job(cfg: JobConfig, server: &ServerConfig) -> Result<Option<RunningJob>> {
    let (queue, source) = IngestQueue::from_config(&server.ingest);
    let slot = Arc::new(Mutex::new(Some(source)));
    let factory: SourceFactory = Arc::new(move |s: SourceSlot<'_>| {
        if s.worker != 0 {
            return Ok(Box::new(MemorySource::default()) as Box<dyn Source>);
        }
        match slot.lock().ok().and_then(|mut o| o.take()) {
            Some(src) => Ok(Box::new(src.resume_from(s.resume)) as Box<dyn Source>),
            None => Err(iotflow_core::Error::Config(
                "the HTTP ingest source was already taken (one per process)".into(),
            )),
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("ingest-job".into())
        .spawn(move || {
            let mut hook = |ctx: &JobContext| {
                let _ = tx.send(ctx.clone());
            };
            run_with_source(&cfg, Some(&mut hook), Some(factory))
        })
        .context("starting the job thread")?;
    match rx.recv() {
        Ok(ctx) => {
            let lines_at_start = ctx.progress.lines.load(Ordering::Relaxed);
            Ok(Some(RunningJob {
                queue,
                ctx,
                lines_at_start,
                handle,
            }))
        }
        // The job returned before starting its workers.
        Err(_) => {
            let report = handle
                .join()
                .map_err(|_| anyhow!("the job thread panicked"))??;
            if report.already_complete {
                eprintln!(
                    "iotflow: the job's checkpoint says it already ran to completion; not serving ingest (remove its checkpoint directory to start over)"
                );
                return Ok(None);
            }
            bail!("the job ended before it started")
        }
    }
}

impl RunningJob {
    /// Called once the server has stopped taking requests: waits until the
    /// pipeline has read every accepted reading (at most 60 s), then stops
    /// the job, which takes a last checkpoint and reports.
    fn stop(self) -> Result<RunReport> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let accepted = self.queue.stats().accepted_readings;
            let read = self
                .ctx
                .progress
                .lines
                .load(Ordering::Relaxed)
                .saturating_sub(self.lines_at_start);
            if read >= accepted || self.handle.is_finished() {
                break;
            }
            tracing::debug!(
                accepted,
                read,
                "waiting for the pipeline to read what was accepted"
            );
            if Instant::now() >= deadline {
                tracing::warn!(
                    accepted,
                    read,
                    "the pipeline did not read every accepted reading within 60 s; stopping it anyway (the rest is counted as lost_readings)"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.ctx.cancel();
        let report = self
            .handle
            .join()
            .map_err(|_| anyhow!("the job thread panicked"))??;
        let stats = self.queue.stats();
        eprintln!(
            "iotflow: ingest accepted {} readings in {} requests ({} refused with 503 queue_full, {} lost)",
            stats.accepted_readings,
            stats.accepted_requests,
            stats.rejected_full_requests,
            stats.lost_readings
        );
        Ok(report)
    }
}
