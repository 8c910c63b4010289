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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_csv_body_bytes: DEFAULT_MAX_CSV_BODY_BYTES,
            tokens: Vec::new(),
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
    /// header), distinct, with distinct non-empty names; non-zero body limits.
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
