//! A registry on a fresh database, the API server over it on a free port,
//! and an HTTP client that speaks to it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use iotflow_core::clock::ManualClock;
use iotflow_devices::{MasterKey, Registry, RegistryBuilder};
use iotflow_server::{ApiToken, Scope, Server, ServerConfig};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sqlx::{Connection as _, Executor as _};

/// 2026-01-01T00:00:00Z: where every test clock starts.
pub(crate) const T0_MS: i64 = 1_767_225_600_000;
pub(crate) const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0001";
pub(crate) const READ_TOKEN: &str = "read-token-for-the-tests-0001";
/// JSON bodies larger than this get 413 in the tests.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// CSV bodies larger than this get 413 in the tests.
pub(crate) const MAX_CSV_BODY: usize = 128 * 1024;

const PG_ENV: &str = "IOTFLOW_TEST_POSTGRES_URL";

/// What a case gets: the registry behind the server, the database URL, and
/// a client holding the admin token.
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) url: String,
    pub(crate) api: Api,
}

/// An HTTP response, its body parsed as JSON when there is one.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
    pub(crate) body: Value,
}

impl Resp {
    /// The header's value, or "" when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Checks the status, and returns the body.
    pub(crate) fn expect(self, status: u16) -> anyhow::Result<Value> {
        anyhow::ensure!(
            self.status == status,
            "expected {status}, got {}: {}",
            self.status,
            self.text
        );
        Ok(self.body)
    }

    /// Checks that this is our JSON error with `status` and `code`; returns the message.
    pub(crate) fn expect_error(self, status: u16, code: &str) -> anyhow::Result<String> {
        anyhow::ensure!(
            self.status == status && self.body["error"]["code"] == code,
            "expected {status} {code}, got {}: {}",
            self.status,
            self.text
        );
        anyhow::ensure!(
            self.header("content-type").starts_with("application/json"),
            "error without a JSON content type: {:?}",
            self.headers
        );
        let message = self.body["error"]["message"]
            .as_str()
            .context("error without a message")?;
        anyhow::ensure!(!message.is_empty(), "empty error message");
        anyhow::ensure!(
            self.body.as_object().map(|o| o.len()) == Some(1),
            "error body with more than `error`: {}",
            self.text
        );
        Ok(message.to_owned())
    }
}

/// A client of the test server.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    pub(crate) base: String,
    token: Option<String>,
}

impl Api {
    /// The same client with another token (`None`: no Authorization header).
    pub(crate) fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// A request to `path`, with the client's token.
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Resp> {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text}"))?
        };
        Ok(Resp {
            status,
            headers,
            text,
            body,
        })
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Resp> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Resp> {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A POST without a body.
    pub(crate) async fn post_empty(&self, path: &str) -> anyhow::Result<Resp> {
        self.call(Method::POST, path, None).await
    }

    pub(crate) async fn put(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Resp> {
        self.call(Method::PUT, path, body).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Resp> {
        self.call(Method::DELETE, path, None).await
    }

    /// `POST /devices/bulk` with a CSV body.
    pub(crate) async fn bulk(&self, query: &str, csv: &str) -> anyhow::Result<Resp> {
        let req = self
            .request(Method::POST, &format!("/devices/bulk{query}"))
            .header("content-type", "text/csv")
            .body(csv.to_owned());
        self.send(req).await
    }
}

pub(crate) fn config() -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        max_body_bytes: MAX_BODY,
        max_csv_body_bytes: MAX_CSV_BODY,
        tokens: vec![
            ApiToken::new("test-admin", ADMIN_TOKEN, Scope::Admin),
            ApiToken::new("test-read", READ_TOKEN, Scope::Read),
        ],
        ..ServerConfig::default()
    }
}

/// Opens the registry at `url`, serves it, runs `f`, stops the server.
async fn serve_and_run<F, Fut>(url: &str, f: &F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let clock = ManualClock::default();
    clock.advance(Duration::from_millis(T0_MS as u64));
    let registry = RegistryBuilder::new(url)
        .clock(Arc::new(clock))
        .master_key(MasterKey::generate()?)
        .build()
        .await
        .with_context(|| format!("opening {url}"))?;
    let server = Server::bind(&config(), registry.clone()).await?;
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base,
        token: Some(ADMIN_TOKEN.to_owned()),
    };
    let result = f(Ctx {
        registry: registry.clone(),
        url: url.to_owned(),
        api,
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .context("graceful shutdown took over 10 s")???;
    registry.close().await;
    result
}

fn unique_name(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let clean: String = case
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(30)
        .collect();
    format!(
        "iotflow_srv_{clean}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `case` against a server on SQLite, then on PostgreSQL if
/// `IOTFLOW_TEST_POSTGRES_URL` is set (in a database of its own).
pub(crate) async fn each_backend<F, Fut>(case: &str, f: F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // Server logs go to the test's output (shown when it fails).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "iotflow_server=debug".into()),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("registry.db").display()
    );
    serve_and_run(&url, &f).await.context("on SQLite")?;

    let Ok(admin_url) = std::env::var(PG_ENV) else {
        println!("{case}: PostgreSQL skipped: set {PG_ENV} (e.g. by .ci/services.sh start)");
        return Ok(());
    };
    let db = unique_name(case);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    // `db` is made here from [a-z0-9_] only; identifiers cannot be bound.
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url.as_str(), String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    let url = format!("{base}/{db}{query}");
    let result = serve_and_run(&url, &f).await.context("on PostgreSQL");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await?;
    result
}

/// Creates tenant `id` through the API.
pub(crate) async fn tenant(api: &Api, id: &str) -> anyhow::Result<Value> {
    api.post(
        "/tenants",
        &serde_json::json!({"id": id, "name": format!("Tenant {id}")}),
    )
    .await?
    .expect(201)
}

/// Registers device `id` of `tenant` with type `ty` through the API.
pub(crate) async fn device(api: &Api, tenant: &str, id: &str, ty: &str) -> anyhow::Result<Value> {
    api.post(
        "/devices",
        &serde_json::json!({"tenant_id": tenant, "id": id, "name": format!("Device {id}"), "type": ty}),
    )
    .await?
    .expect(201)
}

/// Creates group `name` of `tenant`; returns its id.
pub(crate) async fn group(api: &Api, tenant: &str, name: &str) -> anyhow::Result<String> {
    let g = api
        .post(
            &format!("/tenants/{tenant}/groups"),
            &serde_json::json!({"name": name}),
        )
        .await?
        .expect(201)?;
    Ok(g["id"].as_str().context("group id")?.to_owned())
}
