//! Health and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::state::AppState;

/// The server is up.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    pub version: &'static str,
    /// Collections in the data directory.
    pub collections: usize,
    /// Active ranking plugins.
    pub plugins: usize,
    /// Engine jobs waiting for a worker, and running.
    pub queue_depth: i64,
    pub in_flight: i64,
}

#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        collections: state.catalog.list().map_or(0, |l| l.len()),
        plugins: state.registry.list().len(),
        queue_depth: state.workers.waiting(),
        in_flight: state.workers.in_flight(),
    })
}

#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let text = state.metrics.render(state.workers.waiting(), state.workers.in_flight());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
