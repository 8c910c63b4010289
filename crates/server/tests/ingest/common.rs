//! A server with an ingest queue over a fresh registry in a temporary
//! directory, a reqwest client, and the queue's source drained on a
//! thread of its own.

use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use iotflow_core::bridge::{BridgeReceiver, bridge};
use iotflow_core::source::{Chunk, Source as _};
use iotflow_devices::{NewDevice, Registry, sign_message};
use iotflow_server::{
    ApiToken, IngestAuth, IngestConfig, IngestQueue, IngestSource, Scope, Server, ServerConfig,
};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub(crate) const READ_TOKEN: &str = "read-token-for-the-ingest-tests";
/// Bodies larger than this get 413.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// An HTTP response, its body parsed as JSON.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Checks the status and the error code (`None`: a success).
    pub(crate) fn expect(&self, status: u16, code: Option<&str>) -> anyhow::Result<()> {
        let found = self.body["error"]["code"].as_str();
        anyhow::ensure!(
            self.status == status && found == code,
            "expected {status} {code:?}, got {} {}",
            self.status,
            self.body
        );
        Ok(())
    }

    /// Checks `202 {"accepted": n}`.
    pub(crate) fn accepted(&self, n: usize) -> anyhow::Result<()> {
        self.expect(202, None)?;
        anyhow::ensure!(
            self.body == serde_json::json!({"accepted": n}),
            "{}",
            self.body
        );
        Ok(())
    }
}

/// The server, its queue and registry, and the source not yet running.
pub(crate) struct Harness {
    pub(crate) registry: Registry,
    pub(crate) queue: IngestQueue,
    pub(crate) source: Option<IngestSource>,
    http: reqwest::Client,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<iotflow_server::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Starts a server whose `[ingest]` table is `ingest`.
pub(crate) async fn start(ingest: IngestConfig) -> anyhow::Result<Harness> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "iotflow_server=debug".into()),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir()?;
    let registry = Registry::open_in(dir.path()).await?;
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse()?,
        max_body_bytes: MAX_BODY,
        tokens: vec![ApiToken::new("test-read", READ_TOKEN, Scope::Read)],
        ingest,
        ..ServerConfig::default()
    };
    let (queue, source) = IngestQueue::from_config(&config.ingest);
    let server = Server::bind(&config, registry.clone())
        .await?
        .with_ingest(queue.clone());
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Ok(Harness {
        registry,
        queue,
        source: Some(source),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base,
        stop: Some(stop),
        serving: Some(serving),
        _dir: dir,
    })
}

/// `[ingest]` without device authentication and with `capacity`.
pub(crate) fn open(capacity: usize) -> IngestConfig {
    IngestConfig {
        auth: IngestAuth::None,
        queue_capacity: capacity,
        ..IngestConfig::default()
    }
}

impl Harness {
    /// A POST of `body` with `content_type` and extra `headers`.
    pub(crate) async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Resp> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.into());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        send(req).await
    }

    /// `POST /ingest/batch` of NDJSON lines, unauthenticated.
    pub(crate) async fn post_lines(&self, lines: &[String]) -> anyhow::Result<Resp> {
        self.post(
            "/ingest/batch",
            "application/x-ndjson",
            lines.join("\n"),
            &[],
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> anyhow::Result<Resp> {
        send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    /// Starts draining the source on a thread (a job's worker 0).
    pub(crate) fn drain(&mut self) -> anyhow::Result<Drain> {
        let source = self.source.take().context("source already draining")?;
        Ok(Drain::start(source))
    }

    /// Stops serving (which closes the queue), waits for requests in flight.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            tokio::time::timeout(Duration::from_secs(10), serving)
                .await
                .context("graceful shutdown took over 10 s")???;
        }
        Ok(())
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Resp> {
    let r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await?;
    let body =
        serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text}"))?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// An [`IngestSource`] running on its own thread, as on a job's worker 0,
/// with everything it sends collected.
pub(crate) struct Drain {
    run: JoinHandle<iotflow_core::Result<()>>,
    collect: JoinHandle<anyhow::Result<Vec<Chunk>>>,
}

impl Drain {
    pub(crate) fn start(mut source: IngestSource) -> Drain {
        let (tx, rx) = bridge::<iotflow_core::Result<Chunk>>(4, None);
        let run = std::thread::spawn(move || source.run(&tx));
        let collect = std::thread::spawn(move || collect(rx));
        Drain { run, collect }
    }

    /// Waits for the source to end (its queue closed and drained), then
    /// returns every chunk it sent.
    pub(crate) async fn finish(self) -> anyhow::Result<Vec<Chunk>> {
        tokio::task::spawn_blocking(move || {
            self.run
                .join()
                .map_err(|_| anyhow::anyhow!("source thread panicked"))??;
            self.collect
                .join()
                .map_err(|_| anyhow::anyhow!("collector thread panicked"))?
        })
        .await?
    }
}

fn collect(mut rx: BridgeReceiver<iotflow_core::Result<Chunk>>) -> anyhow::Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv_blocking() {
        chunks.push(chunk?);
    }
    Ok(chunks)
}

/// The records of `chunks`, in order.
pub(crate) fn lines(chunks: &[Chunk]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in chunks {
        let text = std::str::from_utf8(&c.data)?;
        anyhow::ensure!(
            text.is_empty() || text.ends_with('\n'),
            "chunk not ended by a newline"
        );
        out.extend(text.lines().map(str::to_owned));
    }
    Ok(out)
}

/// A valid fleet-v1 reading of `device`, numbered `seq`.
pub(crate) fn reading(device: &str, seq: u64) -> String {
    format!(
        r#"{{"device_id":"{device}","ts":{},"metric":"temp","value":21.5,"unit":"C"}}"#,
        1_700_000_000_000 + seq
    )
}

/// Now, Unix milliseconds (the registry's clock is the system's).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Tenant `acme` with device `id`; returns the device's HMAC key id and secret.
pub(crate) async fn device_with_key(
    registry: &Registry,
    id: &str,
) -> anyhow::Result<(String, String)> {
    if registry.tenant("acme").await.is_err() {
        registry.create_tenant("acme", "Acme Corp").await?;
    }
    registry
        .register_device(NewDevice::new("acme", format!("Device {id}"), "pump").with_id(id))
        .await?;
    let key = registry.issue_hmac_key(id).await?;
    Ok((key.key_id.clone(), key.secret().to_owned()))
}

/// The five HMAC headers of `body`, signed as `device` with the key.
pub(crate) fn signed(
    device: &str,
    key_id: &str,
    secret: &str,
    nonce: &str,
    body: &[u8],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let ts = now_ms();
    let signature = sign_message(secret, device, key_id, ts, nonce, body)?;
    Ok(vec![
        ("x-iotflow-device", device.to_owned()),
        ("x-iotflow-key-id", key_id.to_owned()),
        ("x-iotflow-timestamp", ts.to_string()),
        ("x-iotflow-nonce", nonce.to_owned()),
        ("x-iotflow-signature", signature),
    ])
}
