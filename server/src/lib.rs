//! # mira-server: the HTTP API of Mira
//!
//! A JSON API over axum for collections, documents, search and ranking plugins, served by
//! `mira serve`. The engine ([`mira_host`]) knows nothing of HTTP: this crate has its own
//! request and response types ([`api`]), converted to and from the engine's, and the OpenAPI
//! document (`/openapi.json`) is generated from those types and the routes, so it describes
//! exactly what the server accepts and returns. Engine errors become `{message, code, type}`
//! with the status their fault calls for ([`ApiError`]). Around the routes: API keys, body and
//! pixel limits, a bounded worker pool for engine work (503 with a retry hint when full),
//! Prometheus metrics, and graceful shutdown.
//!
//! - [`api`]: request and response bodies.
//! - `routes/`: one module per resource; each handler carries its OpenAPI description.
//! - [`settings`]: the `[server]` section of `mira.toml`.
//! - `auth`, `error`, `extract`, `metrics`, `state`, `workers`: the plumbing.

pub mod api;
mod auth;
mod error;
mod extract;
mod metrics;
mod routes;
pub mod settings;
mod state;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Access, required as required_access};
pub use error::{ApiError, ErrorBody};
pub use settings::ServerSettings;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Mira", description = "Cross-modal search: BM25 + CLIP vectors, Qwen3-Reranker, WebAssembly ranking plugins."),
    tags(
        (name = "collections", description = "Collections and their schemas"),
        (name = "documents", description = "Indexing and deleting documents"),
        (name = "search", description = "Text, image and hybrid search"),
        (name = "plugins", description = "Ranking plugins (WebAssembly components)"),
        (name = "system", description = "Health and metrics"),
    ),
    modifiers(&ApiKeys),
    security(("api_key" = []))
)]
struct ApiDoc;

/// Declares the API key scheme.
struct ApiKeys;

impl utoipa::Modify for ApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin key for writes and plugin routes; the search key (or the admin key) for searches and reads",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document that describes them.
pub fn router(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    use routes::{collections, documents, plugins, search, system};
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::metrics))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(collections::get, collections::drop))
        .routes(routes!(documents::upsert, documents::delete))
        .routes(routes!(documents::image))
        .routes(routes!(search::search))
        .routes(routes!(search::illustrate))
        .routes(routes!(plugins::list, plugins::upload))
        .routes(routes!(plugins::activate))
        .routes(routes!(plugins::rollback))
        .routes(routes!(plugins::unload))
        .routes(routes!(plugins::shadow))
        .split_for_parts();
    let doc_json = Arc::new(doc.to_json().expect("the OpenAPI document serialises"));
    let body_limit = state.config.max_body_mib << 20;
    let app = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc_json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
        .route("/", axum::routing::get(page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state);
    (app, doc)
}

/// The search page: one self-contained HTML file.
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("page.html"))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// Counts and times every request by its route pattern.
async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state
        .metrics
        .http(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}

/// Serves until `shutdown` resolves; requests in flight then finish (their writes commit).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (app, _) = router(state.clone());
    // Commits other processes make (the CLI) become visible within a second or two.
    let refresher = state.clone();
    let refresh = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let st = refresher.clone();
            let _ = tokio::task::spawn_blocking(move || st.refresh_all()).await;
        }
    });
    let result = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await;
    refresh.abort();
    result
}
