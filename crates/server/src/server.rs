//! Listening and serving, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;

use iotflow_devices::Registry;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::routes::{AppState, router};

/// A bound, not yet serving, registry API server.
///
/// [`bind`](Server::bind) opens the socket (port `0` picks a free one;
/// [`local_addr`](Server::local_addr) tells which), then
/// [`run`](Server::run) or [`run_until`](Server::run_until) serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
}

impl Server {
    /// Validates `config` and listens on `config.bind`.
    pub async fn bind(config: &ServerConfig, registry: Registry) -> Result<Server> {
        let state = AppState::new(registry, config)?;
        let bind_error = |source| Error::Bind {
            addr: config.bind,
            source,
        };
        let listener = TcpListener::bind(config.bind).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server {
            listener,
            state,
            addr,
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until Ctrl-C (SIGINT) or, on Unix, SIGTERM; then stops taking
    /// connections and waits for requests in flight.
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes; then stops taking connections
    /// and waits for requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tracing::info!(addr = %self.addr, "device registry API listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)?;
        tracing::info!(addr = %self.addr, "device registry API stopped");
        Ok(())
    }
}

/// Binds `config.bind` and serves the registry API over `registry` until
/// Ctrl-C or SIGTERM.
pub async fn serve(config: ServerConfig, registry: Registry) -> Result<()> {
    Server::bind(&config, registry).await?.run().await
}

/// Completes on Ctrl-C or SIGTERM. A signal that cannot be listened for
/// never fires (and says so), rather than stopping the server at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
