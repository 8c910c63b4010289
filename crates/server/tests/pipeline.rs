//! HTTP ingest feeding the real fleet pipeline (`run_with_source`, two
//! workers): readings posted over HTTP come out of the job's counters
//! exactly, bad readings as rejects with their reason, and a full queue
//! answers 503 without losing anything.

use std::sync::{Arc, Mutex};

use iotflow_core::source::{MemorySource, Source};
use iotflow_pipelines::config::JobConfig;
use iotflow_pipelines::run::{RunReport, SourceFactory, SourceSlot, run_with_source};
use iotflow_server::{
    ApiToken, IngestAuth, IngestConfig, IngestQueue, IngestStats, Scope, Server, ServerConfig,
};

/// The source goes to the first worker that asks; the others read nothing.
fn factory(source: iotflow_server::IngestSource) -> SourceFactory {
    let slot = Arc::new(Mutex::new(Some(source)));
    Arc::new(move |s: SourceSlot<'_>| {
        let mine = slot.lock().ok().and_then(|mut o| o.take());
        Ok(match mine {
            Some(src) => Box::new(src.resume_from(s.resume)) as Box<dyn Source>,
            None => Box::new(MemorySource::default()),
        })
    })
}

/// Serves a queue of `capacity`; posts `batches` batches of 10 readings
/// (every 100th of an unknown metric) numbered from `first`, `pause`
/// apart, starting the job `cfg` only after 8 batches (so that a small
/// queue fills up first); stops the server. Returns the readings accepted, the 503 count, the
/// job's report and the queue's counters.
async fn run(
    cfg: JobConfig,
    capacity: usize,
    first: u64,
    batches: u64,
    pause: std::time::Duration,
    data: &std::path::Path,
) -> anyhow::Result<(u64, u64, RunReport, IngestStats)> {
    let (queue, source) = IngestQueue::new(capacity);
    let mut job = Some((cfg, factory(source)));
    let mut running = None;
    let registry = iotflow_devices::Registry::open_in(data).await?;
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse()?,
        tokens: vec![ApiToken::new(
            "t",
            "token-for-the-pipeline-test",
            Scope::Read,
        )],
        ingest: IngestConfig {
            auth: IngestAuth::None,
            ..IngestConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::bind(&config, registry.clone())
        .await?
        .with_ingest(queue.clone());
    let url = format!("http://{}/ingest/batch", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let (mut accepted, mut full) = (0u64, 0u64);
    for batch in 0..batches {
        if batch == 8
            && let Some((cfg, f)) = job.take()
        {
            running = Some(std::thread::spawn(move || {
                run_with_source(&cfg, None, Some(f))
            }));
        }
        let lines: Vec<String> = (0..10)
            .map(|i| {
                let seq = first + batch * 10 + i;
                let metric = if seq % 100 == 99 { "wind" } else { "temp" };
                format!(
                    r#"{{"device_id":"d-{}","ts":{},"metric":"{metric}","value":21.5}}"#,
                    seq % 7,
                    1_700_000_000_000 + seq * 10
                )
            })
            .collect();
        let r = http
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(lines.join("\n"))
            .send()
            .await?;
        match r.status().as_u16() {
            202 => accepted += 10,
            503 => {
                anyhow::ensure!(r.headers().contains_key("retry-after"));
                full += 1;
            }
            other => anyhow::bail!("batch {batch}: {other} {}", r.text().await?),
        }
        tokio::time::sleep(pause).await;
    }
    let _ = stop.send(());
    serving.await??;
    let running = running.ok_or_else(|| anyhow::anyhow!("the job never started"))?;
    let report = tokio::task::spawn_blocking(move || running.join())
        .await?
        .map_err(|_| anyhow::anyhow!("job panicked"))??;
    registry.close().await;
    Ok((accepted, full, report, queue.stats()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_readings_reach_the_pipeline_exactly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg: JobConfig = toml::from_str(&format!(
        "[input]\nkind = \"http\"\n[output]\ndir = {:?}\nwindows = \"ndjson\"\n\
         [cluster]\nworkers = 2\n",
        dir.path().join("out").display().to_string()
    ))?;
    let (accepted, full, report, stats) = run(
        cfg,
        50,
        0,
        400,
        std::time::Duration::ZERO,
        &dir.path().join("registry"),
    )
    .await?;
    eprintln!(
        "accepted {accepted}, 503s {full}, {stats:?}, {:?}",
        report.tally
    );
    // 5 batches fill the queue of 50, the next 3 find it full.
    assert!(full >= 3, "{full}");
    assert_eq!(report.tally.lines, accepted, "every accepted reading, once");
    assert_eq!(stats.delivered_readings, accepted);
    assert_eq!(stats.rejected_full_requests, full);
    assert_eq!(stats.lost_readings, 0);
    let rejected: u64 = report.tally.rejected.values().sum();
    assert_eq!(report.tally.rejected.get("unknown_metric"), Some(&rejected));
    assert_eq!(report.tally.valid + rejected, accepted);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointed_job_records_the_ingest_position() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg: JobConfig = toml::from_str(&format!(
        "[input]\nkind = \"http\"\n[output]\ndir = {:?}\nwindows = \"ndjson\"\n\
         [cluster]\nworkers = 2\n[checkpoint]\ndir = {:?}\ninterval = \"20ms\"\n",
        dir.path().join("out").display().to_string(),
        dir.path().join("ck").display().to_string()
    ))?;
    let registry = dir.path().join("registry");
    let (accepted, _, report, stats) = run(
        cfg,
        10_000,
        0,
        300,
        std::time::Duration::from_millis(2),
        &registry,
    )
    .await?;
    eprintln!("accepted {accepted}, {stats:?}, {:?}", report.tally);
    assert_eq!(report.tally.lines, accepted);
    assert_eq!(stats.position, accepted);
    // Checkpoints completed while readings flowed: the gauge of what is durable.
    assert!(
        stats.checkpointed_position > 0 && stats.checkpointed_position <= stats.position,
        "{stats:?}"
    );
    Ok(())
}
