//! Listening and serving, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;

use iotflow_devices::Registry;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::ingest::IngestQueue;
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
    /// Close the ingest queue when serving stops (the default).
    close_ingest: bool,
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
            close_ingest: true,
        })
    }

    /// Serves `POST /ingest` and `POST /ingest/batch` into `queue`
    /// (see [`AppState::with_ingest`]). When the server stops it closes the
    /// queue, after the requests in flight: the queue's
    /// [`IngestSource`](crate::IngestSource) then delivers what is queued
    /// and ends.
    pub fn with_ingest(mut self, queue: IngestQueue) -> Server {
        self.state = self.state.with_ingest(queue);
        self
    }

    /// Leaves the ingest queue open when serving stops, for a caller that
    /// stops its pipeline itself: `iotflow serve --job` waits until the
    /// pipeline has read every accepted reading, then stops the job through
    /// a last checkpoint, so that a restart resumes it (a queue that closes
    /// ends the job's input, and a job whose input ended is complete).
    pub fn keep_ingest_open(mut self) -> Server {
        self.close_ingest = false;
        self
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

    /// Serves until `shutdown` completes; then stops taking connections,
    /// waits for requests in flight and closes the ingest queue, if any.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        tracing::info!(
            addr = %self.addr,
            ingest = self.state.ingest_queue().is_some(),
            "device registry API listening"
        );
        let ingest = self
            .state
            .ingest_queue()
            .filter(|_| self.close_ingest)
            .cloned();
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve);
        // No request will add readings now: let the source finish.
        if let Some(queue) = ingest {
            queue.close();
        }
        served?;
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
