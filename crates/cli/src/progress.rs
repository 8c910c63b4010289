//! Progress bars for long runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use iotflow_core::tally::Progress;
use iotflow_pipelines::config::JobConfig;
use iotflow_pipelines::run::{RunReport, run};

/// What the bar counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Lines,
    Bytes,
}

pub(crate) fn bar(total: u64, unit: Unit) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = match unit {
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
/// and, if `metrics` is set, a Prometheus endpoint on that address.
pub(crate) fn run_with_bar(
    cfg: &JobConfig,
    total: u64,
    unit: Unit,
    quiet: bool,
    metrics: Option<&str>,
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
                    Unit::Lines => Progress::get(&progress.lines),
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
    let result = run(cfg, Some(&mut hook));
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
