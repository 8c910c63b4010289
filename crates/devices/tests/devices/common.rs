use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use iotflow_core::clock::ManualClock;
use iotflow_devices::{Error, MasterKey, Registry, RegistryBuilder, Rejection};
use sqlx::{Connection as _, Executor as _};

/// 2026-01-01T00:00:00Z: where every test clock starts.
pub(crate) const T0_MS: i64 = 1_767_225_600_000;

pub(crate) const PG_ENV: &str = "IOTFLOW_TEST_POSTGRES_URL";

/// What a case gets: a fresh registry, its clock, and how to open the same
/// database again (with another master key).
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) clock: ManualClock,
    pub(crate) url: String,
}

impl Ctx {
    pub(crate) async fn reopen(&self, key: MasterKey) -> anyhow::Result<Registry> {
        Ok(RegistryBuilder::new(&self.url)
            .clock(Arc::new(self.clock.clone()))
            .master_key(key)
            .build()
            .await?)
    }
}

async fn open(url: &str) -> anyhow::Result<Ctx> {
    let clock = ManualClock::default();
    clock.advance(Duration::from_millis(T0_MS as u64));
    let registry = RegistryBuilder::new(url)
        .clock(Arc::new(clock.clone()))
        .master_key(MasterKey::generate()?)
        .build()
        .await
        .with_context(|| format!("opening {url}"))?;
    Ok(Ctx {
        registry,
        clock,
        url: url.to_owned(),
    })
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

/// Runs `case` on SQLite, then on PostgreSQL if configured.
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
    let ctx = open(&url).await?;
    let registry = ctx.registry.clone();
    f(ctx).await.context("on SQLite")?;
    registry.close().await;

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
        let ctx = open(&url).await?;
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

/// The rejection reason of a result that must be refused.
pub(crate) fn rejection<T: std::fmt::Debug>(r: Result<T, Error>) -> Rejection {
    match r {
        Err(Error::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
