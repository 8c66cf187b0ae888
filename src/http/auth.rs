//! Who may do what on the API, today: reading is open on a loopback
//! listener; changes (reset, silences, the webhook) need the machine token
//! (`Authorization: Bearer <token>`, the scheme matched case-insensitively
//! as HTTP says); on any other listener every request needs the token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::token::ApiToken;

/// The credentials of `Authorization: Bearer <credentials>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Checks the machine token; the error says what is wrong.
pub fn require(token: &ApiToken, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(given) if token.matches(given) => Ok(()),
        Some(_) if token.current().is_none() => Err(ApiError::unauthorized(
            "this daemon has no API token (api.token_file is missing, empty or unreadable); changes are refused",
        )),
        Some(_) => Err(ApiError::unauthorized("invalid API token")),
        None => Err(ApiError::unauthorized(
            "missing \"Authorization: Bearer <token>\" header",
        )),
    }
}

/// Middleware for a listener that is not loopback: every request needs the
/// token.
pub async fn everything(State(token): State<Arc<ApiToken>>, req: Request, next: Next) -> Response {
    match require(&token, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let t = ApiToken::fixed("s3cret");
        for v in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "] {
            assert!(require(&t, &headers(v)).is_ok(), "{v}");
        }
        assert!(require(&t, &headers("Basic s3cret")).is_err());
        assert!(require(&t, &headers("Bearer wrong")).is_err());
        assert!(require(&t, &HeaderMap::new()).is_err());
    }
}
