//! API keys: an admin key for writes and plugin routes, a search key for queries (the admin key
//! also searches). Keys come from `[server]` in mira.toml or `MIRA_ADMIN_KEY` /
//! `MIRA_SEARCH_KEY`; compared in constant time. With no key configured for a level, that level
//! is open (the server warns at start when it listens beyond loopback).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use std::sync::Arc;

use super::error::ApiError;
use super::state::AppState;

/// What a route needs. Each route declares its level where the router adds it (`lib.rs`), so
/// access follows the matched route, never the text of the path (a collection named `search`
/// is still a collection).
/// Routes with no level (health, metrics, the OpenAPI document, the page) are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Searches and reads.
    Search,
    /// Writes and plugin routes.
    Admin,
}

/// The key the request presents: `Authorization: Bearer KEY` (the scheme in any case), or
/// `X-Api-Key: KEY`.
fn presented(req: &Request) -> Option<&str> {
    let headers = req.headers();
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn matches(given: &str, key: &str) -> bool {
    // Constant time in the key's content; lengths are not secret.
    given.len() == key.len() && bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

/// Middleware of the routes that need the search key (or the admin key).
pub async fn search_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Result<Response, ApiError> {
    check(&state, Access::Search, req, next).await
}

/// Middleware of the routes that need the admin key.
pub async fn admin_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Result<Response, ApiError> {
    check(&state, Access::Admin, req, next).await
}

/// Checks the request's key against what its route needs.
async fn check(state: &AppState, need: Access, req: Request, next: Next) -> Result<Response, ApiError> {
    let cfg = &state.config;
    let allowed = match need {
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
