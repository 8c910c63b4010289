//! The route table, and the router built from it.
//!
//! Every route is one row of [`table`]: method, path, who may call it, and
//! its handler. The router is made from the table and nothing else, and the
//! OpenAPI document is checked against it (see `openapi.rs`), so a route
//! cannot be served undocumented, nor documented unserved.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, on};
use iotflow_devices::Registry;

use crate::api_error::ApiError;
use crate::auth::{Gate, Tokens, require};
use crate::config::{IngestConfig, Scope, ServerConfig};
use crate::error::Result;
use crate::handlers::{self, credentials, devices, tenants};
use crate::ingest::{self, Ingest, IngestQueue};

/// What every handler shares: the registry, the callers' tokens and, once
/// attached, the ingest queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) registry: Registry,
    tokens: Arc<Tokens>,
    max_body_bytes: usize,
    max_csv_body_bytes: usize,
    ingest_config: IngestConfig,
    ingest: Option<Arc<Ingest>>,
}

impl AppState {
    /// The state of a server over `registry` configured by `config`
    /// ([validated](ServerConfig::validate) here).
    pub fn new(registry: Registry, config: &ServerConfig) -> Result<AppState> {
        config.validate()?;
        Ok(AppState {
            registry,
            tokens: Arc::new(Tokens::new(&config.tokens)?),
            max_body_bytes: config.max_body_bytes,
            max_csv_body_bytes: config.max_csv_body_bytes,
            ingest_config: config.ingest.clone(),
            ingest: None,
        })
    }

    /// The same state with `queue` behind `POST /ingest` and
    /// `POST /ingest/batch`, devices authenticated as the configuration's
    /// [`ingest`](ServerConfig::ingest) table says. Without a queue those
    /// routes answer `503 unavailable`.
    pub fn with_ingest(mut self, queue: IngestQueue) -> AppState {
        self.ingest = Some(Arc::new(Ingest::new(
            &self.registry,
            &self.ingest_config,
            queue,
        )));
        self
    }

    /// The registry the API serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The attached ingest queue, if any.
    pub fn ingest_queue(&self) -> Option<&IngestQueue> {
        self.ingest.as_deref().map(|i| &i.queue)
    }

    pub(crate) fn ingest(&self) -> Option<&Ingest> {
        self.ingest.as_deref()
    }
}

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// Lowercase, as OpenAPI path items name operations.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// Which body a route reads, and so which size limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body, or a JSON one: `max_body_bytes`.
    Json,
    /// CSV: `max_csv_body_bytes`.
    Csv,
}

/// One row of the route table.
pub(crate) struct Route {
    pub(crate) verb: Verb,
    pub(crate) path: &'static str,
    /// `None`: no token needed.
    pub(crate) scope: Option<Scope>,
    /// Whether the caller is a device proving itself (ingest) rather than
    /// a token holder; such routes have no `scope`.
    pub(crate) device: bool,
    pub(crate) body: Body,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, scope: Option<Scope>, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route {
        verb,
        path,
        scope,
        device: false,
        body: Body::Json,
        handler: on(verb.filter(), handler),
    }
}

/// Every route of the API.
pub(crate) fn table() -> Vec<Route> {
    use Verb::{Delete, Get, Patch, Post, Put};
    let (public, read, admin) = (None, Some(Scope::Read), Some(Scope::Admin));
    vec![
        route(Get, "/healthz", public, handlers::healthz),
        route(Get, "/openapi.json", public, handlers::openapi),
        route(Post, "/tenants", admin, tenants::create_tenant),
        route(Get, "/tenants", read, tenants::list_tenants),
        route(Get, "/tenants/{id}", read, tenants::get_tenant),
        route(Post, "/tenants/{id}/groups", admin, tenants::create_group),
        route(Get, "/tenants/{id}/groups", read, tenants::list_groups),
        route(Get, "/groups/{id}", read, tenants::get_group),
        route(
            Put,
            "/groups/{id}/devices/{device}",
            admin,
            tenants::add_member,
        ),
        route(
            Delete,
            "/groups/{id}/devices/{device}",
            admin,
            tenants::remove_member,
        ),
        route(Post, "/devices", admin, devices::register),
        route(Get, "/devices", read, devices::list),
        Route {
            body: Body::Csv,
            ..route(Post, "/devices/bulk", admin, devices::bulk)
        },
        route(Get, "/devices/{id}", read, devices::get),
        route(Patch, "/devices/{id}", admin, devices::patch),
        route(Put, "/devices/{id}/status", admin, devices::set_status),
        route(Get, "/devices/{id}/credentials", read, credentials::list),
        route(
            Post,
            "/devices/{id}/credentials/hmac",
            admin,
            credentials::issue_hmac,
        ),
        route(
            Post,
            "/devices/{id}/credentials/hmac/rotate",
            admin,
            credentials::rotate_hmac,
        ),
        route(
            Post,
            "/devices/{id}/credentials/jwt",
            admin,
            credentials::add_jwt,
        ),
        route(
            Post,
            "/devices/{id}/credentials/certificates",
            admin,
            credentials::add_certificate,
        ),
        route(Delete, "/credentials/{id}", admin, credentials::revoke),
        Route {
            device: true,
            ..route(Post, "/ingest", public, ingest::post_one)
        },
        Route {
            device: true,
            ..route(Post, "/ingest/batch", public, ingest::post_batch)
        },
        route(Get, "/ingest/stats", read, ingest::stats),
    ]
}

/// The API's router over `state`: every route of the table, each behind
/// its token check and body limit; JSON `404` and `405` for the rest.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in table() {
        let limit = match r.body {
            Body::Json => state.max_body_bytes,
            Body::Csv => state.max_csv_body_bytes,
        };
        let mut handler = r.handler.layer(DefaultBodyLimit::max(limit));
        if let Some(needed) = r.scope {
            let gate = Gate {
                tokens: Arc::clone(&state.tokens),
                needed,
            };
            handler = handler.route_layer(from_fn_with_state(gate, require));
        }
        tracing::trace!(
            method = r.verb.as_str(),
            path = r.path,
            device = r.device,
            "route"
        );
        router = router.route(r.path, handler);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not allow {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_only_reads_are_open_to_read_tokens_or_devices() {
        let t = table();
        for (i, r) in t.iter().enumerate() {
            assert!(
                !t[..i].iter().any(|o| o.verb == r.verb && o.path == r.path),
                "{} {} twice",
                r.verb.as_str(),
                r.path
            );
            if r.device {
                assert_eq!(
                    (r.verb, r.scope, r.path.starts_with("/ingest")),
                    (Verb::Post, None, true),
                    "{}",
                    r.path
                );
            } else if r.verb != Verb::Get {
                assert_eq!(
                    r.scope,
                    Some(Scope::Admin),
                    "{} {}",
                    r.verb.as_str(),
                    r.path
                );
            }
        }
    }
}
