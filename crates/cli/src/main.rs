//! `iotflow`: run the fleet pipeline on a file, a generated stream or a
//! cluster; generate fleet-v1 data.

mod devices;
mod eval;
mod progress;
mod serve;
mod summary;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_runtime::ClusterConfig;
use iotflow_sim::FleetConfig;

/// iotflow: a dataflow framework for IoT telemetry.
///
/// Event-time windows, anomaly alerts and dead-letter outputs over device
/// readings, on timely dataflow — on a laptop or as a cluster.
#[derive(Parser, Debug)]
#[command(name = "iotflow", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (also `RUST_LOG`), e.g. `info` or `iotflow_core=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole platform on this machine: generate a fleet-v1 stream,
    /// validate → 10 s windows → z-score alerts, write a Parquet lake,
    /// alerts and rejects under the data directory.
    Demo(DemoArgs),
    /// Run the fleet pipeline on NDJSON/CSV files.
    Run(RunArgs),
    /// Write fleet-v1 data (NDJSON) plus FILE.meta.json and FILE.anomalies.
    Generate(GenerateArgs),
    /// Replay a labelled CSV series through an anomaly detector; report
    /// precision, recall, F1 and time to detect.
    EvalAnomaly(eval::EvalArgs),
    /// Manage the device registry: tenants, devices, groups, credentials
    /// (embedded SQLite under --data-dir, or --registry URL).
    Devices(devices::DevicesArgs),
    /// Serve the device registry's HTTP API (token-protected; OpenAPI
    /// document at /openapi.json).
    Serve(serve::ServeArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Readings to generate.
    #[arg(long, default_value_t = 5_000_000)]
    lines: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where results go.
    #[arg(long, default_value = "iotflow-data")]
    data_dir: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Serve Prometheus metrics at http://ADDR/metrics while running.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Run without the device registry (no enrichment, presence or fleet
    /// counts). By default the demo registers the simulated fleet in
    /// DATA_DIR/devices.db on first run and enriches every reading from it.
    #[arg(long)]
    no_devices: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SummaryFormat {
    /// One JSON object as the last line of stdout.
    Json,
    /// A human-readable table (default).
    Text,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutFormat {
    Ndjson,
    Csv,
    Parquet,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Self {
        match f {
            OutFormat::Ndjson => Format::Ndjson,
            OutFormat::Csv => Format::Csv,
            OutFormat::Parquet => Format::Parquet,
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Input files, directories or glob patterns (NDJSON or CSV).
    #[arg(long, short = 'i', required_unless_present = "config", num_args = 1..)]
    input: Vec<String>,
    /// Output directory: windows/, alerts/, rejects/, late/ with one part file per worker.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Format of every output file [default: parquet windows, ndjson others].
    #[arg(long, value_enum)]
    format: Option<OutFormat>,
    /// Job configuration (TOML); flags override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Worker threads per process (default: all cores).
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Processes in the cluster.
    #[arg(long, short = 'n', default_value_t = 1)]
    processes: usize,
    /// This process's index in the cluster.
    #[arg(long, short = 'p', default_value_t = 0)]
    process: usize,
    /// Hosts file: one host:port per process.
    #[arg(long, conflicts_with = "addresses")]
    hosts: Option<PathBuf>,
    /// Process addresses, comma-separated host:port in process order.
    #[arg(long, value_delimiter = ',')]
    addresses: Vec<String>,
    /// Summary format.
    #[arg(long, value_enum, default_value = "text")]
    summary: SummaryFormat,
    /// Serve Prometheus metrics at http://ADDR/metrics while running.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Read each worker's input files at the same time, with a watermark per
    /// file: for files that each cover the same period (one per device).
    #[arg(long)]
    interleave_files: bool,
    /// Take checkpoints in DIR (a local directory or s3://bucket/prefix):
    /// rerunning the same command after a crash or Ctrl-C resumes from the
    /// newest complete checkpoint, and outputs are exactly-once.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<String>,
    /// Time between checkpoints, e.g. 200ms, 5s, 1m [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "checkpoint_dir")]
    checkpoint_interval: Option<std::time::Duration>,
    /// Complete checkpoints to keep; older ones are deleted [default: 3].
    #[arg(long, value_name = "K", requires = "checkpoint_dir")]
    checkpoint_keep: Option<usize>,
}

fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    iotflow_runtime::checkpoint::parse_duration(s)
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Number of lines.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Run(a) => run(a),
        Command::Generate(a) => generate(a),
        Command::EvalAnomaly(a) => eval::eval_anomaly(a),
        Command::Devices(a) => devices::devices(a),
        Command::Serve(a) => serve::serve(a),
    };
    match result {
        Ok(true) => std::process::ExitCode::from(130),
        Ok(false) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Library errors often repeat their source in their own message;
            // print each cause only when it adds something.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Each command returns whether it was interrupted (exit code 130).
fn demo(a: DemoArgs) -> Result<bool> {
    let mut cfg = JobConfig::default();
    let fleet = FleetConfig {
        lines: a.lines,
        seed: a.seed,
        ..FleetConfig::default()
    };
    let devices_in_fleet = fleet.devices;
    cfg.input = InputSpec::Sim(fleet);
    cfg.output = OutputSpec {
        dir: a.data_dir.clone(),
        ..OutputSpec::default()
    };
    cfg.cluster = ClusterConfig::local(a.workers.unwrap_or_else(default_workers));
    if !a.no_devices {
        let registered = devices::provision_demo_fleet(&a.data_dir, devices_in_fleet)?;
        if registered > 0 {
            eprintln!(
                "iotflow demo: registered {registered} simulated devices in {}/devices.db (tenants acme and globex, 8 site groups)",
                a.data_dir.display()
            );
        }
        cfg.devices = Some(iotflow_pipelines::config::DevicesConfig::default());
    }
    eprintln!(
        "iotflow demo: {} fleet-v1 readings (seed {}) → validate{} → 10 s windows → z-score alerts, {} workers",
        a.lines,
        a.seed,
        if a.no_devices {
            ""
        } else {
            " → enrich from the device registry (presence, fleet counts)"
        },
        cfg.cluster.workers
    );
    let report = progress::run_with_bar(
        &cfg,
        a.lines,
        progress::Unit::Lines,
        false,
        a.metrics_addr.as_deref(),
        None,
    )?;
    summary::print_text(&report, &cfg);
    eprintln!(
        "\nresults in {}/: windows/ (Parquet lake), alerts/, rejects/, late/{}",
        a.data_dir.display(),
        if a.no_devices {
            ""
        } else {
            ", presence/ (online/offline), fleet/ (counts by tenant, group, status, firmware, presence); registry: iotflow devices list --data-dir DIR"
        }
    );
    Ok(report.interrupted)
}

fn run(a: RunArgs) -> Result<bool> {
    let mut cfg = match &a.config {
        Some(path) => JobConfig::from_file(path)?,
        None => JobConfig::default(),
    };
    if !a.input.is_empty() {
        cfg.input = InputSpec::Files {
            paths: a.input.clone(),
            format: None,
        };
    }
    if let Some(dir) = &a.output {
        cfg.output.dir = dir.clone();
    } else if a.config.is_none() {
        bail!("--output DIR is required");
    }
    if let Some(f) = a.format {
        let dir = cfg.output.dir.clone();
        cfg.output = OutputSpec::all(dir, f.into());
    }
    if let Some(w) = a.workers {
        cfg.cluster.workers = w;
    } else if a.config.is_none() {
        cfg.cluster.workers = default_workers();
    }
    cfg.cluster.processes = a.processes;
    cfg.cluster.process = a.process;
    if let Some(h) = &a.hosts {
        cfg.cluster.addresses = ClusterConfig::read_hosts(h)?;
    } else if !a.addresses.is_empty() {
        cfg.cluster.addresses = a.addresses.clone();
    }
    if a.interleave_files {
        cfg.interleave_files = true;
    }
    if let Some(dir) = &a.checkpoint_dir {
        let ck = cfg.checkpoint.get_or_insert_with(Default::default);
        ck.dir = dir.clone();
    }
    if let Some(ck) = cfg.checkpoint.as_mut() {
        if let Some(i) = a.checkpoint_interval {
            ck.interval = i;
        }
        if let Some(k) = a.checkpoint_keep {
            ck.keep = k;
        }
    }
    cfg.validate()?;
    let (total, unit) = match &cfg.input {
        InputSpec::Files { paths, .. } => (
            iotflow_file::source::plan(paths, u64::MAX)
                .context("reading input")?
                .iter()
                .map(|s| s.end - s.start)
                .sum(),
            progress::Unit::Bytes,
        ),
        InputSpec::Sim(f) => (f.lines, progress::Unit::Lines),
        _ => (0, progress::Unit::Stream),
    };
    let quiet = matches!(a.summary, SummaryFormat::Json);
    let report = progress::run_with_bar(&cfg, total, unit, quiet, a.metrics_addr.as_deref(), None)?;
    match a.summary {
        SummaryFormat::Json => println!("{}", report.summary_json()),
        SummaryFormat::Text => summary::print_text(&report, &cfg),
    }
    Ok(report.interrupted)
}

fn generate(a: GenerateArgs) -> Result<bool> {
    let cfg = FleetConfig {
        lines: a.lines,
        seed: a.seed,
        ..FleetConfig::default()
    };
    let bar = progress::bar(a.lines, progress::Unit::Lines);
    let started = std::time::Instant::now();
    let meta = iotflow_sim::write_file(&cfg, &a.out, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} lines ({} malformed, {} spikes) to {} in {:.2}s; counts in {}",
        meta.lines,
        meta.malformed,
        meta.spikes,
        a.out.display(),
        started.elapsed().as_secs_f64(),
        iotflow_sim::meta_path(&a.out).display()
    );
    Ok(false)
}
