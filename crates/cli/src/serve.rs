//! `iotflow serve`: the device registry's HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use iotflow_server::{ApiToken, Scope, Server, ServerConfig};

/// Environment variable holding an admin API token.
const TOKEN_ENV: &str = "IOTFLOW_API_TOKEN";

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Server configuration (TOML: bind, body limits, `[[tokens]]` with
    /// name, token and scope admin|read). Flags override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Registry URL (`postgres://…`, `sqlite://…`); default: the SQLite
    /// file under --data-dir.
    #[arg(long, env = "IOTFLOW_REGISTRY")]
    registry: Option<String>,
    /// Data directory of the embedded registry.
    #[arg(long, default_value = "iotflow-data")]
    data_dir: PathBuf,
}

/// Runs `iotflow serve` until Ctrl-C or SIGTERM.
pub(crate) fn serve(a: ServeArgs) -> Result<bool> {
    let mut config = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(bind) = a.bind {
        config.bind = bind;
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        config
            .tokens
            .push(ApiToken::new(TOKEN_ENV, token, Scope::Admin));
    }
    if config.tokens.is_empty() {
        bail!(
            "no API token: set {TOKEN_ENV} (at least 16 characters) or add [[tokens]] to --config"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let registry = crate::devices::open_registry(a.registry.as_deref(), &a.data_dir).await?;
        let server = Server::bind(&config, registry.clone()).await?;
        eprintln!(
            "iotflow: device registry API on http://{} (OpenAPI document at /openapi.json); Ctrl-C stops",
            server.local_addr()
        );
        server.run().await?;
        registry.close().await;
        Ok(false)
    })
}
