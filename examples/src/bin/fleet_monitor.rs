//! Fleet monitor: the fleet pipeline written out in code.
//!
//! ```text
//! cargo run --release -p iotflow-examples --bin fleet_monitor -- FILE.ndjson OUT_DIR [WORKERS]
//! ```
//!
//! file → decode + validate → event time (2 s disorder) → 10 s tumbling
//! windows per (device, metric) → EWMA z-score alerts; windows as Parquet,
//! alerts, rejects and late readings as NDJSON. This is the dataflow that
//! `iotflow run` executes (`iotflow_pipelines::fleet::fleet_dataflow`), spelled
//! out with the operator traits so you can change any step.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use iotflow::prelude::*;
use iotflow::timely::dataflow::operators::Concat;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .context("usage: fleet_monitor FILE OUT_DIR [WORKERS]")?;
    let out = std::path::PathBuf::from(
        args.next()
            .context("usage: fleet_monitor FILE OUT_DIR [WORKERS]")?,
    );
    let workers: usize = args.next().map(|w| w.parse()).transpose()?.unwrap_or(2);

    let splits = Arc::new(plan(&[input], 4 << 20)?);
    let ctx = JobContext::new();
    let job_ctx = ctx.clone();
    let totals = execute(
        &ClusterConfig::local(workers),
        move |worker| -> Result<Tally> {
            let (index, peers) = (worker.index(), worker.peers());
            let tally = Arc::new(Mutex::new(Tally::default()));
            let sinks = worker.dataflow::<u64, _, _>(|scope| -> Result<_> {
                let window = TumblingConfig::new(Duration::from_secs(10));
                // 1. Source: this worker's splits, decoded and validated; event time = timely time.
                let src = event_time_source(
                    scope,
                    "source",
                    Box::new(FileSource::for_worker(&splits, index, peers)),
                    Box::new(JsonDecoder::new()),
                    Rules::fleet_default(),
                    EventTimeConfig::default()
                        .with_max_disorder(Duration::from_secs(2))
                        .with_lateness(window.lateness()),
                    job_ctx.clone(),
                );
                // 2. Windows per (device, metric), fired when the watermark passes them.
                let windows = src
                    .readings
                    .clone()
                    .tumbling("10s-stats", Duration::from_secs(10));
                // 3. Alerts from an EWMA z-score per series.
                let scored = src
                    .readings
                    .score("zscore", Ewma::new(0.01).threshold(6.0).warmup(30));
                // 4. Sinks, one file per worker.
                let part = |kind: &str, f: Format| {
                    out.join(kind)
                        .join(format!("part-{index:05}.{}", f.extension()))
                };
                let sinks = vec![
                    windows.windows.write_to(
                        "windows",
                        open_sink(Format::Parquet, &part("windows", Format::Parquet))?,
                        job_ctx.clone(),
                    ),
                    scored.alerts.write_to(
                        "alerts",
                        open_sink(Format::Ndjson, &part("alerts", Format::Ndjson))?,
                        job_ctx.clone(),
                    ),
                    src.rejects.write_to(
                        "rejects",
                        open_sink(Format::Ndjson, &part("rejects", Format::Ndjson))?,
                        job_ctx.clone(),
                    ),
                    src.late.concat(windows.late).write_to(
                        "late",
                        open_sink(Format::Ndjson, &part("late", Format::Ndjson))?,
                        job_ctx.clone(),
                    ),
                ];
                // 5. Counts from every worker, summed on worker 0.
                iotflow::pipelines::fleet::collect_tally(
                    src.tally.concat(windows.tally).concat(scored.tally),
                    tally.clone(),
                );
                Ok(sinks)
            })?;
            while worker.step_or_park(Some(Duration::from_millis(100))) {}
            for s in sinks {
                s.join()?;
            }
            let t = tally.lock().map(|t| t.clone()).unwrap_or_default();
            Ok(t)
        },
    )?;
    let mut total = Tally::default();
    for t in totals {
        total.merge(&t?);
    }
    anyhow::ensure!(
        ctx.failures().is_empty(),
        "job failed: {:?}",
        ctx.failures()
    );
    total.check_conservation(true).map_err(anyhow::Error::msg)?;
    println!(
        "lines {} valid {} rejected {} late {} windows {} alerts {}",
        total.lines,
        total.valid,
        total.rejected_total(),
        total.late,
        total.windows,
        total.alerts
    );
    Ok(())
}
