//! Ranking plugins: list, upload (validated before it is stored or served), activate, roll
//! back, unload, and a shadow comparison of a staged candidate with the live version.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use mira_host::Error;
use mira_host::SearchResponse;
use mira_host::plugin::LoadedPlugin;
use mira_host::search::search_with_plugin;

use crate::api::PluginName;
use crate::api::{ImageRoutes, PluginInfoBody, SearchBody, SearchResults};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A plugin version after an upload or a change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    /// `active` (serving queries) or `staged` (waiting for activation; shadow comparisons run it).
    pub status: &'static str,
    /// SHA-256 of the component.
    pub hash: String,
}

fn version(p: &LoadedPlugin, status: &'static str) -> PluginVersion {
    PluginVersion {
        name: p.name().to_owned(),
        version: p.description.version.clone(),
        status,
        hash: p.hash.clone(),
    }
}

/// Whether the plugin's active version is a file of the plugin directory (changes then go
/// through the directory, so a restart or the CLI sees them).
fn in_directory(st: &AppState, name: &str) -> bool {
    st.registry
        .dir()
        .is_some_and(|d| d.join(format!("{name}.wasm")).exists())
}

/// A WebAssembly component, as raw bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct WasmComponent(Vec<u8>);

/// Upload options.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadParams {
    /// Make the upload the active version at once (default `true`); `false` stages it.
    pub activate: Option<bool>,
}

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = [PluginInfoBody]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<PluginInfoBody>> {
    Json(state.registry.list().into_iter().map(Into::into).collect())
}

#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    params(UploadParams),
    request_body(content = WasmComponent, content_type = "application/wasm", description = "A component built against wit/ranking.wit"),
    responses((status = 201, body = PluginVersion), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<UploadParams>,
    ApiBytes(bytes): ApiBytes,
) -> ApiResult<(StatusCode, Json<PluginVersion>)> {
    let st = state.clone();
    let activate = params.activate.unwrap_or(true);
    let out = state
        .workers
        .run(move || -> ApiResult<PluginVersion> {
            // Validated (compiled, linked, described, smoke-tested) before anything is stored;
            // the stored file's name comes from the validated description, never from the client.
            if !activate {
                let p = st.registry.stage(&bytes, "upload").map_err(Error::Plugin)?;
                return Ok(version(&p, "staged"));
            }
            let p = if st.registry.dir().is_some() {
                st.registry.persist(&bytes)?
            } else {
                st.registry.install(&bytes, "upload").map_err(Error::Plugin)?
            };
            Ok(version(&p, "active"))
        })
        .await??;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(post, path = "/v1/plugins/{name}/activate", tag = "plugins",
    params(("name" = inline(PluginName), Path, description = "Plugin name")),
    responses((status = 200, body = PluginVersion), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn activate(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PluginVersion>> {
    let st = state.clone();
    let p = state
        .workers
        .run(move || -> ApiResult<_> {
            if let (Some(gate), Some(staged)) = (&st.gate, st.registry.staged(&name)) {
                let verdict = mira_host::eval::check_gate(&st.catalog, gate, &st.registry, staged)?;
                tracing::info!(plugin = %name, passed = verdict.passed, "activation gate: {}", verdict.summary);
                if !verdict.passed {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "gate_failed",
                        format!("not activated: {}", verdict.summary),
                    ));
                }
            }
            Ok(st.registry.activate_staged(&name)?)
        })
        .await??;
    Ok(Json(version(&p, "active")))
}

#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins",
    params(("name" = inline(PluginName), Path, description = "Plugin name")),
    responses((status = 200, body = PluginVersion), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PluginVersion>> {
    let st = state.clone();
    let p = state
        .workers
        .run(move || {
            if in_directory(&st, &name) {
                st.registry.persist_rollback(&name)
            } else {
                st.registry.rollback(&name)
            }
        })
        .await??;
    Ok(Json(version(&p, "active")))
}

#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = inline(PluginName), Path, description = "Plugin name")),
    responses((status = 204, description = "Unloaded"), (status = 404, body = ErrorBody)))]
pub async fn unload(State(state): State<Arc<AppState>>, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    let st = state.clone();
    state
        .workers
        .run(move || {
            if in_directory(&st, &name) {
                st.registry.persist_unload(&name)
            } else {
                st.registry.unload(&name)
            }
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// A shadow comparison: one search, run with the live version and with the staged candidate.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    pub collection: String,
    /// The search (JSON, as for the search route; no image).
    #[schema(value_type = SearchBody)]
    pub request: Value,
}

/// One side of a comparison.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShadowSide {
    /// `name@version`.
    pub plugin: String,
    pub response: SearchResults,
}

/// A hit whose place differs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RankChange {
    pub id: String,
    /// 1-based rank with the live version (none: not in its page).
    pub live_rank: Option<usize>,
    pub candidate_rank: Option<usize>,
}

/// How the two rankings differ.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShadowDiff {
    /// Hits in both pages.
    pub overlap: usize,
    /// Hits at the same rank in both.
    pub unchanged: usize,
    /// Every hit whose rank differs (or that is in one page only), live order first.
    pub changes: Vec<RankChange>,
}

/// Both rankings and their difference.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShadowComparison {
    pub live: ShadowSide,
    pub candidate: ShadowSide,
    pub diff: ShadowDiff,
}

#[utoipa::path(post, path = "/v1/plugins/{name}/shadow", tag = "plugins",
    params(("name" = inline(PluginName), Path, description = "Plugin name: its live version against its staged one")),
    request_body = ShadowRequest,
    responses((status = 200, body = ShadowComparison), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn shadow(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ShadowRequest>,
) -> ApiResult<Json<ShadowComparison>> {
    let live = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::from(Error::PluginNotFound(name.clone())))?;
    let candidate = state.registry.staged(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_staged_version",
            format!("no version of `{name}` is staged: upload one with POST /v1/plugins?activate=false"),
        )
    })?;
    let (request, image) = super::search::request_from_json(body.request, &state)?;
    if image.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "shadow comparisons take text and vector queries",
        ));
    }
    let st = state.clone();
    let collection = body.collection;
    let out = state
        .workers
        .run(move || -> ApiResult<ShadowComparison> {
            let c = st.collection(&collection)?;
            let run = |p: &LoadedPlugin| search_with_plugin(&c, &request, Some(p), p.limits().max_candidates);
            let (a, b) = (run(&live)?, run(&candidate)?);
            let diff = diff(&a, &b);
            let images = ImageRoutes::of(&c);
            let side = |p: &LoadedPlugin, response: SearchResponse| ShadowSide {
                plugin: format!("{}@{}", p.name(), p.description.version),
                response: SearchResults::new(response, &images),
            };
            Ok(ShadowComparison {
                live: side(&live, a),
                candidate: side(&candidate, b),
                diff,
            })
        })
        .await??;
    Ok(Json(out))
}

fn diff(live: &SearchResponse, candidate: &SearchResponse) -> ShadowDiff {
    let rank = |r: &SearchResponse, id: &str| r.hits.iter().position(|h| h.id == id).map(|i| i + 1);
    let mut changes = Vec::new();
    let mut overlap = 0;
    let mut unchanged = 0;
    for (i, h) in live.hits.iter().enumerate() {
        let other = rank(candidate, &h.id);
        overlap += other.is_some() as usize;
        if other == Some(i + 1) {
            unchanged += 1;
        } else {
            changes.push(RankChange {
                id: h.id.clone(),
                live_rank: Some(i + 1),
                candidate_rank: other,
            });
        }
    }
    for (i, h) in candidate.hits.iter().enumerate() {
        if rank(live, &h.id).is_none() {
            changes.push(RankChange {
                id: h.id.clone(),
                live_rank: None,
                candidate_rank: Some(i + 1),
            });
        }
    }
    ShadowDiff {
        overlap,
        unchanged,
        changes,
    }
}
