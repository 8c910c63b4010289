//! fleet-v1 end to end: lines/s per worker count, and p50/p99 latency under
//! a rate-limited source.
//!
//! ```text
//! cargo run --release -p iotflow-benches --bin fleet_e2e -- \
//!     [--lines 5000000] [--workers 1,2] [--input FILE] [--reps 3] \
//!     [--rate 200000] [--latency-lines 2000000] [--checkpoints off,1s]
//! ```
//!
//! `--checkpoints off,1s` runs every throughput row once per setting
//! (interleaved run by run, so drift on a shared machine hits both alike):
//! `off` without checkpoints, a duration with checkpoints at that interval
//! into a temp dir and exactly-once (staged, per-checkpoint) outputs. The
//! `vs off` column is the checkpoint overhead.
//!
//! Throughput: `iotflow_pipelines::run::run` on a fleet-v1 NDJSON file (given
//! or generated with seed 42), every output as NDJSON into a temp dir; `reps`
//! runs per worker count, medians reported. The time is `RunReport::seconds`:
//! reading, parsing, windows, z-scores and writing outputs, not generation.
//!
//! Latency (`--rate R > 0`): the same pipeline graph (`fleet_dataflow`,
//! without file sinks) fed by a generator source throttled to `R` lines/s in
//! chunks of 1 ms of lines. A line's ingestion instant is its chunk's
//! *scheduled* send instant (so a source held back by backpressure counts
//! against latency, no coordinated omission). Measured:
//! - alert latency: alert emitted by the z-score operator − ingestion of the
//!   line the alert is about;
//! - window latency: window result emitted − ingestion of the line whose
//!   event time moved the watermark past the window's end (the earliest
//!   moment fleet-v1 semantics allow it to fire). Windows flushed at end of
//!   input are left out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use iotflow_core::bridge::BridgeSender;
use iotflow_core::codec::{Decoder, InputFormat, JsonDecoder};
use iotflow_core::context::JobContext;
use iotflow_core::source::{Chunk, MemorySource, Source};
use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_pipelines::fleet::fleet_dataflow;
use iotflow_runtime::ClusterConfig;
use iotflow_sim::{FleetConfig, FleetGenerator};
use iotflow_types::Timestamp;
use timely::dataflow::operators::Inspect;

struct Args {
    lines: u64,
    workers: Vec<usize>,
    input: Option<PathBuf>,
    reps: usize,
    rate: u64,
    latency_lines: u64,
    checkpoints: Vec<Option<Duration>>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        lines: 5_000_000,
        workers: vec![1, 2],
        input: None,
        reps: 3,
        rate: 200_000,
        latency_lines: 2_000_000,
        checkpoints: vec![None],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--lines" => a.lines = val()?.replace('_', "").parse()?,
            "--workers" => {
                a.workers = val()?
                    .split(',')
                    .map(|w| w.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--input" => a.input = Some(PathBuf::from(val()?)),
            "--reps" => a.reps = val()?.parse()?,
            "--rate" => a.rate = val()?.replace('_', "").parse()?,
            "--latency-lines" => a.latency_lines = val()?.replace('_', "").parse()?,
            "--checkpoints" => {
                a.checkpoints = val()?
                    .split(',')
                    .map(|c| match c.trim() {
                        "off" => Ok(None),
                        d => iotflow_runtime::checkpoint::parse_duration(d)
                            .map(Some)
                            .map_err(anyhow::Error::msg),
                    })
                    .collect::<Result<_>>()?;
            }
            // `cargo bench` passes `--bench`; ignore it.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "fleet_e2e: the fleet-v1 end-to-end benchmark\n\n\
                     --lines N          lines to generate when no --input (default 5000000)\n\
                     --input FILE       an existing fleet-v1 NDJSON file\n\
                     --workers 1,2      worker counts to compare (default 1,2)\n\
                     --reps N           runs per worker count; medians are reported (default 3)\n\
                     --rate R           lines/s of the rate-limited latency run, 0 = skip (default 200000)\n\
                     --latency-lines N  lines in the latency run (default 2000000)\n\
                     --checkpoints L    checkpoint settings to compare, e.g. off,1s (default off)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if a.checkpoints.is_empty() {
        bail!("--checkpoints needs at least one setting");
    }
    if a.workers.is_empty() || a.workers.contains(&0) || a.reps == 0 {
        bail!("--workers needs positive counts and --reps must be > 0");
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn throughput(args: &Args, input: &Path) -> Result<()> {
    println!(
        "== throughput: iotflow_pipelines::run::run, input {}, all outputs NDJSON, {} runs per row",
        input.display(),
        args.reps
    );
    println!(
        "{:>7} {:>6} {:>10} {:>9} {:>7} {:>7} {:>5} {:>6} {:>9} {:>12} {:>8} {:>7} {:>9} {:>12}",
        "workers",
        "ckpt",
        "lines",
        "windows",
        "alerts",
        "rejects",
        "late",
        "valid",
        "median s",
        "median l/s",
        "vs 1 w",
        "vs off",
        "peak RSS",
        "ckpts/KiB/ms"
    );
    let mut base: Option<f64> = None;
    for &w in &args.workers {
        let n = args.checkpoints.len();
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut last: Vec<Option<iotflow_pipelines::run::RunReport>> = vec![None; n];
        for _ in 0..args.reps {
            for (i, ck) in args.checkpoints.iter().enumerate() {
                let out = tempfile::tempdir()?;
                let ck_dir = tempfile::tempdir()?;
                let cfg = JobConfig {
                    input: InputSpec::Files {
                        paths: vec![input.display().to_string()],
                        format: Some(InputFormat::Ndjson),
                    },
                    output: OutputSpec::all(out.path(), Format::Ndjson),
                    cluster: ClusterConfig::local(w),
                    checkpoint: ck.map(|interval| iotflow_runtime::checkpoint::CheckpointConfig {
                        dir: ck_dir.path().display().to_string(),
                        interval,
                        keep: 3,
                    }),
                    ..JobConfig::default()
                };
                let report = iotflow_pipelines::run::run(&cfg, None)?;
                secs[i].push(report.seconds);
                last[i] = Some(report);
            }
        }
        let mut off: Option<f64> = None;
        for (i, ck) in args.checkpoints.iter().enumerate() {
            let Some(r) = last[i].take() else { continue };
            let t = &r.tally;
            let med = median(secs[i].clone());
            let lps = t.lines as f64 / med;
            if base.is_none() {
                base = Some(lps);
            }
            if ck.is_none() {
                off = Some(lps);
            }
            let ratio = base.map_or(f64::NAN, |b| lps / b);
            let vs_off = off.map_or("-".to_owned(), |o| format!("{:.3}", lps / o));
            let ck_name = ck.map_or(
                "off".to_owned(),
                iotflow_runtime::checkpoint::format_duration,
            );
            let ck_stats = r.checkpoints.as_ref().map_or("-".to_owned(), |c| {
                format!("{}/{}/{}", c.completed, c.last_state_bytes >> 10, c.max_ms)
            });
            println!(
                "{:>7} {:>6} {:>10} {:>9} {:>7} {:>7} {:>5} {:>6} {:>9.3} {:>12.0} {:>7.2}x {:>7} {:>6} MiB {:>12}   runs: {}",
                w,
                ck_name,
                t.lines,
                t.windows,
                t.alerts,
                t.rejected_total(),
                t.late,
                if t.valid + t.rejected_total() == t.lines {
                    "ok"
                } else {
                    "?"
                },
                med,
                lps,
                ratio,
                vs_off,
                r.peak_rss_bytes >> 20,
                ck_stats,
                secs[i]
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    println!(
        "(vs 1 w: against the first row; vs off: against the same worker count without checkpoints; \
         ckpts/KiB/ms: checkpoints completed / state size of the last / slowest request-to-manifest; \
         peak RSS is of this process over all runs so far)"
    );
    Ok(())
}

/// The fleet-v1 generator, throttled to `rate` lines/s in chunks of
/// `chunk_lines`; chunk `i` is scheduled at `t0 + i · chunk_lines / rate`.
struct Throttled {
    fleet: FleetGenerator,
    rate: u64,
    chunk_lines: u64,
    t0: Arc<OnceLock<Instant>>,
    max_lag_ns: Arc<AtomicU64>,
}

impl Source for Throttled {
    fn name(&self) -> String {
        "throttled-fleet".to_owned()
    }

    fn run(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> iotflow_core::Result<()> {
        let source: Arc<str> = Arc::from("throttled");
        let t0 = *self.t0.get_or_init(Instant::now);
        let mut offset = 0u64;
        for i in 0u64.. {
            let mut data = Vec::with_capacity(self.chunk_lines as usize * 96);
            let mut n = 0;
            while n < self.chunk_lines && self.fleet.next_line(&mut data).is_some() {
                n += 1;
            }
            if n == 0 {
                break;
            }
            let due = t0 + Duration::from_nanos(i * self.chunk_lines * 1_000_000_000 / self.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let len = data.len() as u64;
            if out
                .send_blocking(Ok(Chunk {
                    source: source.clone(),
                    offset,
                    data,
                    resume: None,
                }))
                .is_err()
            {
                break;
            }
            let lag = Instant::now().saturating_duration_since(due).as_nanos() as u64;
            self.max_lag_ns.fetch_max(lag, Ordering::Relaxed);
            offset += len;
        }
        Ok(())
    }
}

type Emitted<K> = Arc<Mutex<Vec<(K, Instant)>>>;

fn latency(args: &Args, workers: usize) -> Result<()> {
    let fleet_cfg = FleetConfig {
        lines: args.latency_lines,
        seed: 42,
        ..FleetConfig::default()
    };
    let chunk_lines = (args.rate / 1000).max(1);
    let t0: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let max_lag_ns = Arc::new(AtomicU64::new(0));
    let windows: Emitted<Timestamp> = Arc::default();
    let alerts: Emitted<(String, String, Timestamp)> = Arc::default();
    let job = JobConfig::default();
    let rate = args.rate;
    let started = Instant::now();
    {
        let (t0, max_lag_ns, windows, alerts, fleet_cfg, job) = (
            t0.clone(),
            max_lag_ns.clone(),
            windows.clone(),
            alerts.clone(),
            fleet_cfg.clone(),
            job.clone(),
        );
        iotflow_runtime::execute(&ClusterConfig::local(workers), move |worker| {
            let ctx = JobContext::new();
            let source: Box<dyn Source> = if worker.index() == 0 {
                Box::new(Throttled {
                    fleet: FleetGenerator::new(&fleet_cfg),
                    rate,
                    chunk_lines,
                    t0: t0.clone(),
                    max_lag_ns: max_lag_ns.clone(),
                })
            } else {
                Box::new(MemorySource::default())
            };
            let (windows, alerts) = (windows.clone(), alerts.clone());
            worker.dataflow::<u64, _, _>(|scope| {
                let s = fleet_dataflow(scope, source, Box::new(JsonDecoder::new()), &job, &ctx);
                s.windows.inspect_core(move |ev| {
                    if let Ok((_, batch)) = ev {
                        let now = Instant::now();
                        if let Ok(mut w) = windows.lock() {
                            w.extend(batch.iter().map(|r| (r.end, now)));
                        }
                    }
                });
                s.alerts.inspect_core(move |ev| {
                    if let Ok((_, batch)) = ev {
                        let now = Instant::now();
                        if let Ok(mut a) = alerts.lock() {
                            a.extend(batch.iter().map(|x| {
                                ((x.device.to_string(), x.metric.to_string(), x.ts), now)
                            }));
                        }
                    }
                });
            });
            while worker.step_or_park(Some(Duration::from_millis(100))) {}
        })?;
    }
    let wall = started.elapsed().as_secs_f64();
    let t0 = *t0.get().context("the source never started")?;
    let ingest = |line: u64| {
        t0 + Duration::from_nanos((line / chunk_lines) * chunk_lines * 1_000_000_000 / rate)
    };

    // Second pass over the same deterministic lines: which line each alert is
    // about, and which line first moved the watermark past each window end.
    let windows = std::mem::take(&mut *windows.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let alerts = std::mem::take(&mut *alerts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut alert_at: HashMap<(String, String, Timestamp), Vec<Instant>> = HashMap::new();
    for (k, at) in &alerts {
        alert_at.entry(k.clone()).or_default().push(*at);
    }
    let mut ends: Vec<Timestamp> = windows.iter().map(|(e, _)| *e).collect();
    ends.sort_unstable();
    ends.dedup();
    let mut trigger: HashMap<Timestamp, u64> = HashMap::new();
    let mut next_end = 0usize;
    let mut alert_lat = Vec::new();
    let disorder = job.event_time.max_disorder_ms;
    let rules = &job.rules;
    let mut fleet = FleetGenerator::new(&fleet_cfg);
    let mut dec = JsonDecoder::new();
    let mut buf = Vec::with_capacity(128);
    let mut max_ts = 0u64;
    let mut line = 0u64;
    loop {
        buf.clear();
        if fleet.next_line(&mut buf).is_none() {
            break;
        }
        if let Ok(r) = dec.decode(buf.strip_suffix(b"\n").unwrap_or(&buf))
            && rules.check(&r).is_ok()
        {
            max_ts = max_ts.max(r.ts);
            while next_end < ends.len() && max_ts >= ends[next_end] + disorder - 1 {
                trigger.insert(ends[next_end], line);
                next_end += 1;
            }
            if let Some(ats) = alert_at.get(&(r.device.to_string(), r.metric.to_string(), r.ts)) {
                for at in ats {
                    alert_lat.push(at.saturating_duration_since(ingest(line)).as_secs_f64() * 1e3);
                }
            }
        }
        line += 1;
    }
    let mut win_lat: Vec<f64> = windows
        .iter()
        .filter_map(|(e, at)| {
            trigger
                .get(e)
                .map(|&l| at.saturating_duration_since(ingest(l)).as_secs_f64() * 1e3)
        })
        .collect();
    let flushed = windows.len() - win_lat.len();
    alert_lat.sort_by(f64::total_cmp);
    win_lat.sort_by(f64::total_cmp);
    let lag = Duration::from_nanos(max_lag_ns.load(Ordering::Relaxed));
    println!(
        "{:>7} {:>9} {:>9.3} {:>10.0} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>10.1}",
        workers,
        line,
        wall,
        line as f64 / wall,
        alerts.len(),
        percentile(&alert_lat, 0.5),
        percentile(&alert_lat, 0.99),
        alert_lat.last().copied().unwrap_or(f64::NAN),
        win_lat.len(),
        percentile(&win_lat, 0.5),
        percentile(&win_lat, 0.99),
        win_lat.last().copied().unwrap_or(f64::NAN),
        flushed,
        lag.as_secs_f64() * 1e3,
    );
    if alert_lat.len() != alerts.len() {
        println!(
            "  warning: {} of {} alerts not matched to a line",
            alerts.len() - alert_lat.len(),
            alerts.len()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("fleet_e2e: {cores} hardware threads, 1 process");
    let dir = tempfile::tempdir()?;
    let input = match &args.input {
        Some(p) => p.clone(),
        None => {
            let p = dir.path().join("fleet.ndjson");
            let t = Instant::now();
            let meta = iotflow_sim::write_file(
                &FleetConfig {
                    lines: args.lines,
                    seed: 42,
                    ..FleetConfig::default()
                },
                &p,
                |_| {},
            )?;
            println!(
                "generated {} lines (seed 42, {} malformed) in {:.1} s",
                meta.lines,
                meta.malformed,
                t.elapsed().as_secs_f64()
            );
            p
        }
    };
    throughput(&args, &input)?;
    if args.rate > 0 {
        println!();
        println!(
            "== latency: fleet_dataflow fed by the fleet-v1 generator (seed 42) throttled to {} lines/s in chunks of {} lines;",
            args.rate,
            (args.rate / 1000).max(1)
        );
        println!(
            "   ingestion = scheduled send instant of a line's chunk; alert = z-score alert emitted for that line;"
        );
        println!(
            "   window = result emitted − ingestion of the line that moved the watermark past the window end. ms."
        );
        println!(
            "{:>7} {:>9} {:>9} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10}",
            "workers",
            "lines",
            "wall s",
            "lines/s",
            "alerts",
            "al p50",
            "al p99",
            "al max",
            "windows",
            "win p50",
            "win p99",
            "win max",
            "flushed",
            "src lag ms"
        );
        for &w in &args.workers {
            latency(&args, w)?;
        }
    }
    Ok(())
}
