//! Progress bars for long runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use iotflow_core::tally::Progress;
use iotflow_pipelines::config::JobConfig;
use iotflow_pipelines::run::{RunReport, SourceFactory, run_with_source};

/// What the bar counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Lines,
    Bytes,
    /// An unbounded input (Kafka, Kinesis, MQTT, HTTP): records read so
    /// far and their rate, no total.
    Stream,
}

pub(crate) fn bar(total: u64, unit: Unit) -> ProgressBar {
    let bar = match unit {
        Unit::Stream => {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
        _ => ProgressBar::new(total),
    };
    let template = match unit {
        Unit::Stream => "{spinner} [{elapsed_precise}] {human_pos} records ({per_sec}) {msg}",
        Unit::Lines => {
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} lines ({per_sec}, eta {eta}) {msg}"
        }
        Unit::Bytes => {
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta}) {msg}"
        }
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Runs the job with a bar fed from the live counters (hidden when `quiet`)
/// and, if `metrics` is set, a Prometheus endpoint on that address; with
/// `factory`, the workers' sources are made by it (`iotflow serve --job`).
pub(crate) fn run_with_bar(
    cfg: &JobConfig,
    total: u64,
    unit: Unit,
    quiet: bool,
    metrics: Option<&str>,
    factory: Option<SourceFactory>,
) -> anyhow::Result<RunReport> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        bar(total, unit)
    };
    let mut server = None;
    let mut server_err = None;
    let stop = Arc::new(AtomicBool::new(false));
    let mut poller = None;
    let mut hook = |ctx: &iotflow_core::context::JobContext| {
        if let Some(addr) = metrics {
            match iotflow_runtime::metrics::serve_metrics(addr, ctx.clone(), cfg.cluster.process) {
                Ok(s) => {
                    if !quiet {
                        eprintln!("metrics: http://{}/metrics", s.addr());
                    }
                    server = Some(s);
                }
                Err(e) => server_err = Some(e),
            }
        }
        // First Ctrl-C: stop reading, drain, close files, report. Second: exit.
        let cancel = ctx.clone();
        let _ = ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing what was read (Ctrl-C again to exit at once)");
            cancel.cancel();
        });
        let progress: Arc<Progress> = ctx.progress.clone();
        let bar = bar.clone();
        let stop = stop.clone();
        poller = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let pos = match unit {
                    Unit::Lines | Unit::Stream => Progress::get(&progress.lines),
                    Unit::Bytes => Progress::get(&progress.bytes),
                };
                bar.set_position(pos);
                bar.set_message(format!(
                    "rejects {} late {}",
                    Progress::get(&progress.rejected),
                    Progress::get(&progress.late)
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    };
    let result = run_with_source(cfg, Some(&mut hook), factory);
    drop(server);
    if let Some(e) = server_err {
        bar.finish_and_clear();
        return Err(e.into());
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = poller {
        let _ = p.join();
    }
    bar.finish_and_clear();
    Ok(result?)
}
