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
mod retagging;
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
    // Each route's access level is declared here, with the route: the key is checked by the
    // level of the route that matched, never by the text of the path.
    let open = OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::metrics));
    let searches = OpenApiRouter::new()
        .routes(routes!(collections::list))
        .routes(routes!(collections::get))
        .routes(routes!(documents::image))
        .routes(routes!(search::search))
        .routes(routes!(search::illustrate))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::search_key));
    let writes = OpenApiRouter::new()
        .routes(routes!(collections::create))
        .routes(routes!(collections::drop))
        .routes(routes!(collections::retag))
        .routes(routes!(documents::upsert, documents::delete))
        .routes(routes!(plugins::list, plugins::upload))
        .routes(routes!(plugins::activate))
        .routes(routes!(plugins::rollback))
        .routes(routes!(plugins::unload))
        .routes(routes!(plugins::shadow))
        .routes(routes!(search::eval))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::admin_key));
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(open)
        .merge(searches)
        .merge(writes)
        .split_for_parts();
    let mut doc = doc;
    document_common_responses(&mut doc);
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
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), catch_panics))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state);
    (app, doc)
}

/// Adds the responses every route of a kind can give, whatever its handler says: 401 and 403
/// from the key check of every `/v1` route, 400 for a path parameter that is not a valid name,
/// 400, 413 and 415 from the body extractors of every route that takes a body, 503 from the
/// worker pool of every route that runs engine work (all of `/v1` but the plugin listing).
fn document_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("DELETE", &mut item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op.as_mut() else { continue };
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            };
            if path.starts_with("/v1/") {
                add("401", "No API key, and the route needs one");
                add("403", "An API key that does not allow this route");
                if !(method == "GET" && path == "/v1/plugins") {
                    add(
                        "503",
                        "The server is at capacity (Retry-After), or a model is unavailable",
                    );
                }
            }
            if path.contains('{') {
                add("400", "A path parameter that is not a valid name");
            }
            if op.request_body.is_some() {
                add("400", "A body that does not fit the route");
                add("413", "A body over [server] max_body_mib");
                add("415", "A body of a content type the route does not take");
            }
        }
    }
}

/// The search page: one self-contained HTML file.
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("page.html"))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// A handler that panics answers 500 `internal_panic` (counted in `mira_panics_total`); the
/// connection and the server live on.
async fn catch_panics(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let what = format!("{} {}", req.method(), req.uri().path());
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => {
            state.metrics.panics.inc();
            tracing::error!(request = %what, "a request handler panicked");
            axum::response::IntoResponse::into_response(ApiError::panicked())
        }
    }
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
    retagging::start(&state);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bug() -> &'static str {
        panic!("a bug in a handler")
    }

    /// A handler that panics answers 500 with the error body, is counted, and the server answers
    /// the next request.
    #[test]
    fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let dir = std::env::temp_dir().join(format!("mira-server-panic-{}", std::process::id()));
        let runtime = mira_host::plugin::PluginRuntime::new(Default::default(), None).unwrap();
        let registry = Arc::new(mira_host::plugin::PluginRegistry::new(
            runtime,
            None,
            Default::default(),
            Default::default(),
        ));
        let state = Arc::new(AppState::new(
            mira_host::Catalog::new(&dir),
            ServerSettings::default(),
            registry,
        ));
        let app = Router::new()
            .route("/boom", axum::routing::get(|| async { bug() }))
            .route("/fine", axum::routing::get(|| async { "fine" }))
            .layer(middleware::from_fn_with_state(state.clone(), catch_panics))
            .with_state(state.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        let get = |path: &str| match ureq::get(&format!("http://{addr}{path}")).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        for _ in 0..2 {
            let (status, body) = get("/boom");
            assert_eq!(status, 500);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (v["code"].as_str(), v["type"].as_str()),
                (Some("internal_panic"), Some("internal"))
            );
        }
        assert_eq!(get("/fine"), (200, "fine".to_owned()));
        assert_eq!(state.metrics.panics.get(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
