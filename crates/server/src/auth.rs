//! Bearer tokens of API callers, checked in constant time.
//!
//! Tokens are not compared byte by byte: at start the server draws a random
//! HMAC key and keeps only the HMAC tag of each configured token; a presented
//! token is checked by verifying its tag against each stored one with
//! `ring::hmac::verify` (constant time, and the tags have a fixed length, so
//! neither a token's content nor its length leaks through timing). Every
//! stored token is tried, whether an earlier one matched or not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::hmac;
use ring::rand::SystemRandom;

use crate::api_error::ApiError;
use crate::config::{ApiToken, Scope};
use crate::error::Error;

/// The configured tokens, as HMAC tags under a per-process random key.
pub(crate) struct Tokens {
    key: hmac::Key,
    entries: Vec<(hmac::Tag, String, Scope)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(_, name, scope)| (name, scope)))
            .finish()
    }
}

impl Tokens {
    pub(crate) fn new(tokens: &[ApiToken]) -> Result<Tokens, Error> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| Error::Config("the system random generator failed".into()))?;
        let entries = tokens
            .iter()
            .map(|t| {
                (
                    hmac::sign(&key, t.token.as_bytes()),
                    t.name.clone(),
                    t.scope,
                )
            })
            .collect();
        Ok(Tokens { key, entries })
    }

    /// The name and scope of the token `presented`, if it is one of ours.
    pub(crate) fn check(&self, presented: &[u8]) -> Option<(&str, Scope)> {
        let mut found = None;
        for (tag, name, scope) in &self.entries {
            if hmac::verify(&self.key, presented, tag.as_ref()).is_ok() {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }
}

/// What a route needs: the tokens, and the scope a caller must have.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) needed: Scope,
}

const CHALLENGE: &str = "Bearer realm=\"iotflow\"";
const CHALLENGE_BAD_REQUEST: &str = "Bearer realm=\"iotflow\", error=\"invalid_request\"";
const CHALLENGE_BAD_TOKEN: &str = "Bearer realm=\"iotflow\", error=\"invalid_token\"";
const CHALLENGE_SCOPE_ADMIN: &str =
    "Bearer realm=\"iotflow\", error=\"insufficient_scope\", scope=\"admin\"";
const CHALLENGE_SCOPE_READ: &str =
    "Bearer realm=\"iotflow\", error=\"insufficient_scope\", scope=\"read\"";

/// Middleware: lets the request through only with a token of the needed scope.
pub(crate) async fn require(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let unauthorized = |message: &str, challenge| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            .with_challenge(challenge)
            .into_response()
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return unauthorized("missing Authorization: Bearer <token> header", CHALLENGE);
    };
    let Some(token) = bearer_token(value.as_bytes()) else {
        return unauthorized(
            "Authorization header is not of the form Bearer <token>",
            CHALLENGE_BAD_REQUEST,
        );
    };
    let Some((name, scope)) = gate.tokens.check(token) else {
        return unauthorized("invalid bearer token", CHALLENGE_BAD_TOKEN);
    };
    if scope < gate.needed {
        tracing::info!(
            caller = name,
            needed = gate.needed.as_str(),
            "insufficient scope"
        );
        let challenge = match gate.needed {
            Scope::Admin => CHALLENGE_SCOPE_ADMIN,
            Scope::Read => CHALLENGE_SCOPE_READ,
        };
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {name:?} has scope {:?}; this call needs {:?}",
                scope.as_str(),
                gate.needed.as_str()
            ),
        )
        .with_challenge(challenge)
        .into_response();
    }
    tracing::debug!(caller = name, method = %req.method(), path = %req.uri().path(), "api call");
    next.run(req).await
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235).
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            ApiToken::new("ops", "admin-token-0123456789", Scope::Admin),
            ApiToken::new("dash", "read-token-0123456789", Scope::Read),
        ])
        .expect("tokens")
    }

    #[test]
    fn only_configured_tokens_match_with_their_scope() {
        let t = tokens();
        assert_eq!(
            t.check(b"admin-token-0123456789"),
            Some(("ops", Scope::Admin))
        );
        assert_eq!(
            t.check(b"read-token-0123456789"),
            Some(("dash", Scope::Read))
        );
        for wrong in [
            &b""[..],
            b"admin-token-012345678",
            b"admin-token-01234567890",
            b"ADMIN-TOKEN-0123456789",
        ] {
            assert_eq!(t.check(wrong), None);
        }
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
    }

    #[test]
    fn debug_shows_names_not_tokens() {
        let shown = format!("{:?}", tokens());
        assert!(shown.contains("ops") && !shown.contains("admin-token"));
    }
}
