//! What the server is told: where to listen, how much to read, whom to let in.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::error::Error;

/// Largest JSON request body by default: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Largest bulk-provisioning CSV body by default: 32 MiB.
pub const DEFAULT_MAX_CSV_BODY_BYTES: usize = 32 << 20;
/// Shortest API token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Readings the ingest queue holds by default.
pub const DEFAULT_INGEST_QUEUE_CAPACITY: usize = 100_000;

/// Configuration of the registry HTTP server, usually a TOML table.
///
/// Every field has a default, except that at least one entry of `tokens` is
/// needed to serve anything but `/healthz` and `/openapi.json`.
///
/// ```toml
/// bind = "0.0.0.0:8080"          # default 127.0.0.1:8080
/// max_body_bytes = 1048576       # JSON bodies; default 1 MiB
/// max_csv_body_bytes = 33554432  # POST /devices/bulk; default 32 MiB
///
/// [[tokens]]
/// name = "ops"                   # shown in logs, never the token
/// token = "a-long-random-secret-string"
/// scope = "admin"                # default; or "read" (GET only)
///
/// [ingest]                       # POST /ingest, /ingest/batch; see IngestConfig
/// auth = "device"                # default; "none" for local demos only
/// queue_capacity = 100000        # readings
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Largest JSON request body, in bytes; larger ones get `413`. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Largest CSV body of `POST /devices/bulk`, in bytes. Default 32 MiB.
    pub max_csv_body_bytes: usize,
    /// Bearer tokens of the API's callers. Default none.
    pub tokens: Vec<ApiToken>,
    /// HTTP ingest: device authentication and the queue. Used once a
    /// queue is attached ([`Server::with_ingest`](crate::Server::with_ingest)).
    pub ingest: IngestConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_csv_body_bytes: DEFAULT_MAX_CSV_BODY_BYTES,
            tokens: Vec::new(),
            ingest: IngestConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses a TOML document (see the type's documentation) and
    /// [validates](Self::validate) it.
    pub fn from_toml(text: &str) -> Result<ServerConfig, Error> {
        let config: ServerConfig =
            toml::from_str(text).map_err(|e| Error::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: at least one token; tokens of at least
    /// [`MIN_TOKEN_BYTES`] printable ASCII characters (they travel in an HTTP
    /// header), distinct, with distinct non-empty names; non-zero body limits;
    /// a valid [`IngestConfig`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.max_body_bytes == 0 || self.max_csv_body_bytes == 0 {
            return bad("body limits must be at least 1 byte".into());
        }
        if self.tokens.is_empty() {
            return bad("no API token configured: add a [[tokens]] entry".into());
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.name.is_empty() || t.name.chars().any(char::is_control) {
                return bad(format!(
                    "token #{}: name must be non-empty, without control characters",
                    i + 1
                ));
            }
            if t.token.len() < MIN_TOKEN_BYTES || !t.token.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(format!(
                    "token {:?}: must be at least {MIN_TOKEN_BYTES} printable ASCII characters",
                    t.name
                ));
            }
            if let Some(other) = self.tokens[..i].iter().find(|o| o.name == t.name) {
                return bad(format!("token name {:?} is used twice", other.name));
            }
            if self.tokens[..i].iter().any(|o| o.token == t.token) {
                return bad(format!("token {:?} repeats an earlier token", t.name));
            }
        }
        self.ingest.validate()
    }
}

/// How ingest requests prove which device sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAuth {
    /// Every request carries device credentials (HMAC signature headers or
    /// a device JWT), checked against the registry, and only readings of
    /// that device. The default.
    #[default]
    Device,
    /// No authentication: anyone may post readings for any device. For
    /// local demos only; the server logs a warning.
    None,
}

/// The `[ingest]` table: how `POST /ingest` and `POST /ingest/batch`
/// authenticate devices and how many readings may wait for the pipeline.
///
/// ```toml
/// [ingest]
/// auth = "device"            # default; or "none" (local demos)
/// queue_capacity = 100000    # readings waiting for the pipeline; default 100 000
/// retry_after_secs = 1       # Retry-After of a 503 queue_full; default 1
/// replay_window_secs = 300   # HMAC timestamps this far from now pass; default 300
/// jwt_leeway_secs = 60       # clock skew allowed on JWT exp/nbf; default 60
/// ```
///
/// Bodies are limited by [`ServerConfig::max_body_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Device authentication. Default [`IngestAuth::Device`].
    pub auth: IngestAuth,
    /// Most readings accepted and not yet taken by the pipeline; a request
    /// that does not fit whole gets `503`. Default
    /// [`DEFAULT_INGEST_QUEUE_CAPACITY`] (100 000). Read by
    /// [`IngestQueue::from_config`](crate::IngestQueue::from_config).
    pub queue_capacity: usize,
    /// Seconds in the `Retry-After` of a `503 queue_full`. Default 1.
    pub retry_after_secs: u32,
    /// How far an HMAC request's timestamp may be from the server clock,
    /// either way, in seconds. Default 300.
    pub replay_window_secs: u64,
    /// Clock skew allowed on a device JWT's `exp` and `nbf`, in seconds.
    /// Default 60.
    pub jwt_leeway_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            auth: IngestAuth::Device,
            queue_capacity: DEFAULT_INGEST_QUEUE_CAPACITY,
            retry_after_secs: 1,
            replay_window_secs: 300,
            jwt_leeway_secs: 60,
        }
    }
}

impl IngestConfig {
    /// Checks that the capacity, `Retry-After` and replay window are at
    /// least 1.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: &str| Err(Error::Config(format!("ingest: {msg}")));
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be at least 1 reading");
        }
        if self.retry_after_secs == 0 {
            return bad("retry_after_secs must be at least 1");
        }
        if self.replay_window_secs == 0 {
            return bad("replay_window_secs must be at least 1");
        }
        Ok(())
    }
}

/// One caller's bearer token and what it may do.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it, for logs (the token itself is never logged).
    pub name: String,
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do. Default [`Scope::Admin`].
    #[serde(default)]
    pub scope: Scope,
}

impl ApiToken {
    /// A token named `name` with `scope`.
    pub fn new(name: impl Into<String>, token: impl Into<String>, scope: Scope) -> Self {
        ApiToken {
            name: name.into(),
            token: token.into(),
            scope,
        }
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read-only: `GET` routes.
    Read,
    /// Everything.
    #[default]
    Admin,
}

impl Scope {
    /// The name used in the configuration and in `WWW-Authenticate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-admin";

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = ServerConfig::from_toml(&format!(
            "[[tokens]]\nname = \"ops\"\ntoken = \"{TOKEN}\"\n"
        ))
        .expect("valid config");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.max_csv_body_bytes, DEFAULT_MAX_CSV_BODY_BYTES);
        assert_eq!(c.tokens, vec![ApiToken::new("ops", TOKEN, Scope::Admin)]);
        assert_eq!(c.ingest, IngestConfig::default());
        assert_eq!(c.ingest.auth, IngestAuth::Device);
        assert_eq!(c.ingest.queue_capacity, DEFAULT_INGEST_QUEUE_CAPACITY);
    }

    #[test]
    fn the_ingest_table_is_read() {
        let c = ServerConfig::from_toml(&format!(
            "[[tokens]]\nname = \"ops\"\ntoken = \"{TOKEN}\"\n\
             [ingest]\nauth = \"none\"\nqueue_capacity = 5\nretry_after_secs = 3\n\
             replay_window_secs = 30\njwt_leeway_secs = 0\n"
        ))
        .expect("valid config");
        assert_eq!(
            c.ingest,
            IngestConfig {
                auth: IngestAuth::None,
                queue_capacity: 5,
                retry_after_secs: 3,
                replay_window_secs: 30,
                jwt_leeway_secs: 0,
            }
        );
    }

    #[test]
    fn every_field_is_read() {
        let c = ServerConfig::from_toml(&format!(
            "bind = \"0.0.0.0:9000\"\nmax_body_bytes = 10\nmax_csv_body_bytes = 20\n\
             [[tokens]]\nname = \"dash\"\ntoken = \"{TOKEN}\"\nscope = \"read\"\n"
        ))
        .expect("valid config");
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!((c.max_body_bytes, c.max_csv_body_bytes), (10, 20));
        assert_eq!(c.tokens[0].scope, Scope::Read);
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let cases = [
            ("bnd = \"0.0.0.0:1\"", "unknown field"),
            (
                &format!("[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\nscop = \"read\""),
                "unknown field",
            ),
            (
                &format!("[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\nscope = \"root\""),
                "unknown variant",
            ),
            ("bind = \"localhost\"", "invalid socket address"),
            ("", "no API token"),
            ("[[tokens]]\nname = \"a\"\ntoken = \"short\"", "at least 16"),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"has a space in it, long enough\"",
                "printable ASCII",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n\
                     [[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}-2\""
                ),
                "used twice",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n\
                     [[tokens]]\nname = \"b\"\ntoken = \"{TOKEN}\""
                ),
                "repeats",
            ),
            (
                &format!("max_body_bytes = 0\n[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\""),
                "at least 1 byte",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n[ingest]\nauth = \"hmac\""
                ),
                "unknown variant",
            ),
            (
                &format!("[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n[ingest]\nqueue = 5"),
                "unknown field",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n[ingest]\nqueue_capacity = 0"
                ),
                "queue_capacity",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\ntoken = \"{TOKEN}\"\n[ingest]\nretry_after_secs = 0"
                ),
                "retry_after_secs",
            ),
        ];
        for (text, expected) in cases {
            match ServerConfig::from_toml(text) {
                Err(Error::Config(msg)) => {
                    assert!(
                        msg.contains(expected),
                        "{text:?}: {msg:?} lacks {expected:?}"
                    )
                }
                other => panic!("{text:?}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_hides_tokens() {
        let t = ApiToken::new("ops", TOKEN, Scope::Admin);
        let shown = format!(
            "{:?}",
            ServerConfig {
                tokens: vec![t],
                ..ServerConfig::default()
            }
        );
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("ops"));
    }
}
