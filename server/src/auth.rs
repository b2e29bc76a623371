//! API keys: an admin key for writes and plugin routes, a search key for queries (the admin key
//! also searches). Keys come from `[server]` in mira.toml or `MIRA_ADMIN_KEY` /
//! `MIRA_SEARCH_KEY`; compared in constant time. With no key configured for a level, that level
//! is open (the server warns at start when it listens beyond loopback).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, metrics, the OpenAPI document, the web page.
    Open,
    /// Searches and reads.
    Search,
    /// Writes and plugin routes.
    Admin,
}

/// The access a request needs, from its method and path.
pub fn required(method: &axum::http::Method, path: &str) -> Access {
    if !path.starts_with("/v1/") {
        return Access::Open;
    }
    if path.starts_with("/v1/plugins") {
        return Access::Admin;
    }
    let is_search = path.ends_with("/search") || path.ends_with("/illustrate");
    if method == axum::http::Method::GET || is_search {
        Access::Search
    } else {
        Access::Admin
    }
}

fn presented(req: &Request) -> Option<&str> {
    let headers = req.headers();
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn matches(given: &str, key: &str) -> bool {
    // Constant time in the key's content; lengths are not secret.
    given.len() == key.len() && bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

/// Checks the request's key against what its route needs.
pub async fn check(
    State(state): State<std::sync::Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let need = required(req.method(), req.uri().path());
    let cfg = &state.config;
    let allowed = match need {
        Access::Open => true,
        Access::Search => match (&cfg.search_key, &cfg.admin_key) {
            (None, _) => true,
            (Some(s), admin) => {
                presented(&req).is_some_and(|k| matches(k, s) || admin.as_deref().is_some_and(|a| matches(k, a)))
            }
        },
        Access::Admin => match &cfg.admin_key {
            None => true,
            Some(a) => presented(&req).is_some_and(|k| matches(k, a)),
        },
    };
    if allowed {
        return Ok(next.run(req).await);
    }
    let (status, code, what) = match presented(&req) {
        None => (
            axum::http::StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "needs an API key",
        ),
        Some(_) => (
            axum::http::StatusCode::FORBIDDEN,
            "invalid_api_key",
            "was given a key that does not allow it",
        ),
    };
    let level = if need == Access::Admin {
        "the admin key"
    } else {
        "the search key (or the admin key)"
    };
    Err(ApiError::new(
        status,
        code,
        format!(
            "{} {} {what}: send {level} as `Authorization: Bearer KEY` or `X-Api-Key: KEY`",
            req.method(),
            req.uri().path()
        ),
    ))
}
