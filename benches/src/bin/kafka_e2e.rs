//! Kafka → fleet pipeline: messages/s on this machine, with the broker on
//! the same box, and where the time goes.
//!
//! ```text
//! .ci/services.sh start          # tansu on 127.0.0.1:9092
//! cargo run --release -p iotflow-benches --bin kafka_e2e -- \
//!     [--brokers 127.0.0.1:9092] [--lines 2000000] [--partitions 4] \
//!     [--workers 1,2] [--reps 3] [--chunk-bytes 262144] [--channel 4]
//! ```
//!
//! Produces `--lines` fleet-v1 lines (seed 42, one message each, keyed by
//! device) to a fresh topic of `--partitions` partitions, then per worker
//! count and rep, interleaved:
//!
//! - **pipeline from Kafka**: the fleet pipeline (`iotflow_pipelines::run`)
//!   with a bounded Kafka input (start at the earliest offset, end at the
//!   high watermark), every output as NDJSON into a temp dir;
//! - **pipeline from a file**: the same lines from an NDJSON file, the same
//!   pipeline: the ceiling the pipeline itself puts on the Kafka figure;
//!
//! and reports medians of messages/s, this process's CPU (cores) and the
//! broker's CPU (cores, read from `/proc` of the process named `tansu`, when
//! there is one), each over the run's wall time.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use iotflow_file::sink::Format;
use iotflow_kafka::testing::{self, Keying};
use iotflow_kafka::{KafkaSourceConfig, StartFrom};
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_runtime::ClusterConfig;
use iotflow_sim::FleetConfig;

struct Args {
    brokers: String,
    lines: u64,
    partitions: i32,
    workers: Vec<usize>,
    reps: usize,
    /// `max_chunk_bytes` of the Kafka source.
    chunk_bytes: usize,
    /// Chunks in flight between a source's I/O thread and its worker.
    channel: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        brokers: std::env::var(testing::BROKERS_ENV).unwrap_or_else(|_| "127.0.0.1:9092".into()),
        lines: 2_000_000,
        partitions: 4,
        workers: vec![1, 2],
        reps: 3,
        chunk_bytes: KafkaSourceConfig::default().max_chunk_bytes,
        channel: iotflow_core::event_time::EventTimeConfig::default().channel_capacity,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => a.brokers = val()?,
            "--lines" => a.lines = val()?.replace('_', "").parse()?,
            "--partitions" => a.partitions = val()?.parse()?,
            "--workers" => {
                a.workers = val()?
                    .split(',')
                    .map(|w| w.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--reps" => a.reps = val()?.parse()?,
            "--chunk-bytes" => a.chunk_bytes = val()?.parse()?,
            "--channel" => a.channel = val()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "kafka_e2e [--brokers H:P] [--lines N] [--partitions P] [--workers 1,2] [--reps R] [--chunk-bytes B] [--channel C]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other} (see --help)"),
        }
    }
    if a.reps == 0 || a.workers.is_empty() || a.partitions < 1 {
        bail!("--reps, --workers and --partitions must be positive");
    }
    Ok(a)
}

/// CPU seconds (user + system) of process `pid` from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The PID of the process named `tansu`, if one runs.
fn broker_pid() -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        name.parse::<u32>().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "tansu").then_some(name)
    })
}

struct Sample {
    rate: f64,
    own_cores: f64,
    broker_cores: Option<f64>,
}

fn measure(cfg: &JobConfig, lines: u64) -> Result<Sample> {
    let broker = broker_pid();
    let (own0, broker0) = (
        cpu_seconds("self").unwrap_or(0.0),
        broker.as_deref().and_then(cpu_seconds),
    );
    let t0 = Instant::now();
    let report = iotflow_pipelines::run::run(cfg, None).context("pipeline run")?;
    let wall = t0.elapsed().as_secs_f64();
    if report.tally.lines != lines {
        bail!("read {} records, expected {lines}", report.tally.lines);
    }
    let own = cpu_seconds("self").unwrap_or(0.0) - own0;
    let broker_cores = match (broker.as_deref().and_then(cpu_seconds), broker0) {
        (Some(b1), Some(b0)) => Some((b1 - b0) / wall),
        _ => None,
    };
    Ok(Sample {
        rate: lines as f64 / report.seconds,
        own_cores: own / wall,
        broker_cores,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn job(input: InputSpec, out: &Path, workers: usize, channel: usize) -> JobConfig {
    let mut cfg = JobConfig {
        input,
        output: OutputSpec::all(out, Format::Ndjson),
        cluster: ClusterConfig::local(workers),
        ..JobConfig::default()
    };
    cfg.event_time.channel_capacity = channel;
    cfg
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("fleet.ndjson");
    let fleet = FleetConfig {
        lines: a.lines,
        seed: 42,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&fleet, &file, |_| {}).context("generate fleet-v1")?;
    let text = std::fs::read_to_string(&file)?;
    let lines: Vec<&str> = text.lines().collect();
    let topic = testing::unique_topic("bench-fleet");
    testing::create_topic(&a.brokers, &topic, a.partitions)
        .with_context(|| format!("create topic on {}", a.brokers))?;
    let t0 = Instant::now();
    let n = testing::produce_lines(&a.brokers, &topic, &lines, Keying::ByDevice)?;
    let produce = t0.elapsed().as_secs_f64();
    println!(
        "produced {n} fleet-v1 messages to {topic} ({} partitions) in {produce:.1} s: {:.0} msg/s",
        a.partitions,
        n as f64 / produce
    );
    drop(text);
    println!(
        "| workers | source | msg/s (median of {}) | iotflow cores | broker cores |",
        a.reps
    );
    println!("|---|---|---|---|---|");
    for &w in &a.workers {
        let mut kafka = Vec::new();
        let mut from_file = Vec::new();
        for rep in 0..a.reps {
            let out = tmp.path().join(format!("out-{w}-{rep}"));
            let input = InputSpec::Kafka(KafkaSourceConfig {
                start: StartFrom::Earliest,
                stop_at_end: true,
                max_chunk_bytes: a.chunk_bytes,
                ..KafkaSourceConfig::new(a.brokers.clone(), &[topic.as_str()])
            });
            kafka.push(measure(&job(input, &out, w, a.channel), n)?);
            std::fs::remove_dir_all(&out).ok();
            let input = InputSpec::Files {
                paths: vec![file.display().to_string()],
                format: None,
            };
            from_file.push(measure(&job(input, &out, w, a.channel), n)?);
            std::fs::remove_dir_all(&out).ok();
        }
        for (name, s) in [("kafka", kafka), ("file", from_file)] {
            let broker: Vec<f64> = s.iter().filter_map(|x| x.broker_cores).collect();
            println!(
                "| {w} | {name} | {:.0} | {:.2} | {} |",
                median(s.iter().map(|x| x.rate).collect()),
                median(s.iter().map(|x| x.own_cores).collect()),
                if broker.is_empty() {
                    "n/a".to_owned()
                } else {
                    format!("{:.2}", median(broker))
                }
            );
        }
    }
    Ok(())
}
