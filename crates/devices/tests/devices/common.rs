use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use iotflow_core::clock::ManualClock;
use iotflow_devices::dynamodb::sdk as ddb;
use iotflow_devices::{Error, MasterKey, Registry, RegistryBuilder, Rejection};
use sqlx::{Connection as _, Executor as _};

/// 2026-01-01T00:00:00Z: where every test clock starts.
pub(crate) const T0_MS: i64 = 1_767_225_600_000;

pub(crate) const PG_ENV: &str = "IOTFLOW_TEST_POSTGRES_URL";

/// A DynamoDB endpoint (moto's, from `.ci/services.sh`): `http://127.0.0.1:5000`.
pub(crate) const DYNAMODB_ENV: &str = "IOTFLOW_TEST_DYNAMODB_URL";

/// Which store a case runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    DynamoDb(ddb::Client),
}

/// What a case gets: a fresh registry, its clock, and how to open the same
/// database again (with another master key).
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) clock: ManualClock,
    pub(crate) url: String,
    pub(crate) backend: Backend,
}

impl Ctx {
    pub(crate) async fn reopen(&self, key: MasterKey) -> anyhow::Result<Registry> {
        Ok(builder(&self.url, &self.backend)
            .clock(Arc::new(self.clock.clone()))
            .master_key(key)
            .build()
            .await?)
    }

    /// The `material` stored for a credential, read around the registry.
    pub(crate) async fn stored_material(&self, credential_id: &str) -> anyhow::Result<String> {
        use sqlx::Row as _;
        match &self.backend {
            Backend::Sqlite | Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
                let row = sqlx::query("SELECT material FROM credentials WHERE id = $1")
                    .bind(credential_id)
                    .fetch_one(&mut conn)
                    .await?;
                let material = row.try_get("material")?;
                conn.close().await?;
                Ok(material)
            }
            Backend::DynamoDb(client) => {
                let table = self.url.trim_start_matches("dynamodb://");
                let item = client
                    .get_item()
                    .table_name(table)
                    .key(
                        "pk",
                        ddb::types::AttributeValue::S(format!("credential#{credential_id}")),
                    )
                    .key("sk", ddb::types::AttributeValue::S("credential".into()))
                    .send()
                    .await?
                    .item
                    .context("no credential item")?;
                match item.get("material") {
                    Some(ddb::types::AttributeValue::S(m)) => Ok(m.clone()),
                    other => anyhow::bail!("material is {other:?}"),
                }
            }
        }
    }
}

fn builder(url: &str, backend: &Backend) -> RegistryBuilder {
    let mut b = RegistryBuilder::new(url);
    if let Backend::DynamoDb(client) = backend {
        b.dynamodb_client(client.clone());
    }
    b
}

async fn open(url: &str, backend: Backend) -> anyhow::Result<Ctx> {
    let clock = ManualClock::default();
    clock.advance(Duration::from_millis(T0_MS as u64));
    let registry = builder(url, &backend)
        .clock(Arc::new(clock.clone()))
        .master_key(MasterKey::generate()?)
        .build()
        .await
        .with_context(|| format!("opening {url}"))?;
    Ok(Ctx {
        registry,
        clock,
        url: url.to_owned(),
        backend,
    })
}

/// A client of the test endpoint; moto takes any credentials.
fn dynamodb_client(endpoint: &str) -> ddb::Client {
    let config = ddb::Config::builder()
        .behavior_version(ddb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(ddb::config::Region::new("us-east-1"))
        .credentials_provider(ddb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "iotflow-tests",
        ))
        .build();
    ddb::Client::from_conf(config)
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
        "iotflow_t_{clean}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `case` on SQLite, then on PostgreSQL and on DynamoDB if configured.
pub(crate) async fn each_backend<F, Fut>(case: &str, f: F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("registry.db").display()
    );
    let ctx = open(&url, Backend::Sqlite).await?;
    let registry = ctx.registry.clone();
    f(ctx).await.context("on SQLite")?;
    registry.close().await;

    on_postgres(case, &f).await?;
    on_dynamodb(case, &f).await
}

async fn on_postgres<F, Fut>(case: &str, f: &F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
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
    let result = async {
        let ctx = open(&url, Backend::Postgres).await?;
        let registry = ctx.registry.clone();
        let r = f(ctx).await;
        registry.close().await;
        r
    }
    .await
    .context("on PostgreSQL");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await?;
    result
}

/// Runs `case` in a table of its own, deleted afterwards.
async fn on_dynamodb<F, Fut>(case: &str, f: &F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Ok(endpoint) = std::env::var(DYNAMODB_ENV) else {
        println!("{case}: DynamoDB skipped: set {DYNAMODB_ENV} (e.g. http://127.0.0.1:5000, moto)");
        return Ok(());
    };
    let client = dynamodb_client(&endpoint);
    let table = unique_name(case);
    let url = format!("dynamodb://{table}");
    let result = async { f(open(&url, Backend::DynamoDb(client.clone())).await?).await }
        .await
        .context("on DynamoDB");
    let dropped = client.delete_table().table_name(&table).send().await;
    // The case's own failure says more than a failed clean-up after it.
    if let Err(e) = dropped
        && result.is_ok()
    {
        return Err(anyhow::anyhow!(
            ddb::error::DisplayErrorContext(e).to_string()
        ))
        .context(format!("deleting table {table}"));
    }
    result
}

/// The rejection reason of a result that must be refused.
pub(crate) fn rejection<T: std::fmt::Debug>(r: Result<T, Error>) -> Rejection {
    match r {
        Err(Error::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
