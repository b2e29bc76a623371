//! Collections: list, create from a schema, describe, drop.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use mira_host::schema::CollectionSchema;

use crate::api::CollectionName;
use crate::api::CollectionStatsBody;
use crate::api::{RetagBody, RetagReportBody};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiBytes, ApiPath, has_content_type};
use crate::state::AppState;

/// A collection in a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CollectionSummary {
    pub name: String,
    pub documents: u64,
}

/// A collection's statistics and schema.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CollectionDetails {
    #[serde(flatten)]
    pub stats: CollectionStatsBody,
    /// The schema, as the TOML it was created from.
    pub schema: String,
}

/// A schema to create a collection from (the TOML of `configs/products.toml`). The body may
/// also be the TOML itself, with content type `application/toml` or `text/plain`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    pub schema: String,
}

#[utoipa::path(get, path = "/v1/collections", tag = "collections",
    responses((status = 200, body = [CollectionSummary]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<CollectionSummary>>> {
    let st = state.clone();
    let rows = state
        .workers
        .run(move || -> mira_host::Result<Vec<CollectionSummary>> {
            st.catalog
                .list()?
                .into_iter()
                .map(|name| {
                    let documents = st.collection(&name)?.stats()?.documents;
                    Ok(CollectionSummary { name, documents })
                })
                .collect()
        })
        .await??;
    Ok(Json(rows))
}

#[utoipa::path(post, path = "/v1/collections", tag = "collections",
    request_body(content(
        (CreateCollection = "application/json"),
        (String = "application/toml"),
    )),
    responses((status = 201, body = CollectionDetails), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> ApiResult<(StatusCode, Json<CollectionDetails>)> {
    let is_json = has_content_type(&req, "application/json");
    let ApiBytes(body) = <ApiBytes as axum::extract::FromRequest<()>>::from_request(req, &()).await?;
    let toml = if is_json {
        serde_json::from_slice::<CreateCollection>(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("request body: {e}")))?
            .schema
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::bad_request("invalid_request", "the schema is not UTF-8"))?
    };
    let st = state.clone();
    let details = state
        .workers
        .run(move || -> mira_host::Result<CollectionDetails> {
            let schema = CollectionSchema::from_toml(&toml, "request")?;
            let c = st.catalog.create(schema)?;
            Ok(CollectionDetails {
                stats: c.stats()?.into(),
                schema: c.schema().source.clone(),
            })
        })
        .await??;
    Ok((StatusCode::CREATED, Json(details)))
}

#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    responses((status = 200, body = CollectionDetails), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<CollectionDetails>> {
    let st = state.clone();
    let details = state
        .workers
        .run(move || -> mira_host::Result<CollectionDetails> {
            let c = st.collection(&name)?;
            Ok(CollectionDetails {
                stats: c.stats()?.into(),
                schema: c.schema().source.clone(),
            })
        })
        .await??;
    Ok(Json(details))
}

#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    responses((status = 204, description = "Dropped"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn drop(State(state): State<Arc<AppState>>, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    let st = state.clone();
    state
        .workers
        .run_locked(state.write_lock(&name), move || -> mira_host::Result<()> {
            st.forget(&name);
            st.catalog.drop_collection(&name)
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/collections/{name}/retag", tag = "collections",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    request_body(content = Option<RetagBody>, description = "Optional; `{}` or no body re-tags only what changed"),
    responses((status = 200, body = RetagReportBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// Chooses again the tags of the documents whose clip-tags fields take their words from a
/// plugin whose words changed since they were tagged (the server also does it by itself when a
/// plugin's vocabulary changes); only documents whose tags change are rewritten.
pub async fn retag(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<RetagReportBody>> {
    let opts: RetagBody = if body.iter().all(u8::is_ascii_whitespace) {
        RetagBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data => "invalid_request",
                _ => "malformed_json",
            };
            ApiError::bad_request(code, format!("request body: {e}"))
        })?
    };
    let st = state.clone();
    let report = state
        .workers
        .run_locked(state.write_lock(&name), move || {
            crate::retagging::retag_now(&st, &name, opts.force)
        })
        .await??;
    Ok(Json(report.into()))
}
