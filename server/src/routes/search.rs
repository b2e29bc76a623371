//! Search: JSON (the query image as base64, or by URL from an allowlisted host), or multipart
//! with the image as a file part.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use base64::Engine;
use serde_json::Value;

use mira_host::SearchRequest;

use crate::api::CollectionName;
use crate::api::{
    EvalBody, EvalResults, IllustrateBody, IllustrationBody, ImageRoutes, SearchBody, SearchResults, SearchUpload,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, has_content_type};
use crate::state::AppState;

/// Turns the JSON body ([`SearchBody`]) into a request, taking the image out of it.
pub(crate) fn request_from_json(value: Value, state: &AppState) -> ApiResult<(SearchRequest, Option<ImageSource>)> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let obj = value
        .as_object()
        .ok_or_else(|| bad("the search must be a JSON object".into()))?;
    if obj.contains_key("image") {
        return Err(bad(
            "`image` names a file on the server and is not accepted over HTTP: send `image_base64`, or the image as a \
             multipart file part"
                .into(),
        ));
    }
    let mut body: SearchBody = serde_json::from_value(value).map_err(|e| bad(format!("search: {e}")))?;
    let image = match (body.image_base64.take(), body.image_url.take()) {
        (Some(_), Some(_)) => return Err(bad("give image_base64 or image_url, not both".into())),
        (Some(s), None) => Some(ImageSource::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| bad(format!("image_base64 is not base64: {e}")))?,
        )),
        (None, Some(u)) => Some(ImageSource::Url(allowed_url(&u, &state.config.image_url_allowlist)?)),
        (None, None) => None,
    };
    Ok((body.into_request(), image))
}

/// Where the query image comes from.
pub(crate) enum ImageSource {
    Bytes(Vec<u8>),
    Url(String),
}

/// The URL when its host is allowlisted (`host` or `host:port`); refused otherwise.
fn allowed_url(url: &str, allowlist: &[String]) -> ApiResult<String> {
    let bad = |m: String| ApiError::bad_request("image_url_refused", m);
    if allowlist.is_empty() {
        return Err(bad(
            "this server fetches no image URLs: send the image itself, or configure [server] image_url_allowlist"
                .into(),
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad(format!("image_url must be http(s): {url}")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("image_url must not carry credentials".into()));
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    if allowlist.iter().any(|a| a == authority || a == host) {
        Ok(url.to_owned())
    } else {
        Err(bad(format!("the host of {url} is not in [server] image_url_allowlist")))
    }
}

/// Fetches an allowlisted image URL, at most `max_bytes`, no redirects.
fn fetch(url: &str, max_bytes: usize) -> ApiResult<Vec<u8>> {
    use std::io::Read;
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| ApiError::bad_request("image_url_failed", format!("fetching {url}: {e}")))?;
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ApiError::bad_request("image_url_failed", format!("reading {url}: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the image at {url} is over {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

#[utoipa::path(post, path = "/v1/collections/{name}/search", tag = "search",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    request_body(content(
        (SearchBody = "application/json"),
        (SearchUpload = "multipart/form-data"),
    )),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<SearchResults>> {
    let multipart = has_content_type(&req, "multipart/form-data");
    let (mut request, image) = if multipart {
        let mut form = Multipart::from_request(req, &()).await?;
        let mut json = Value::Object(Default::default());
        let mut image = None;
        let mut seen = Vec::new();
        while let Some(field) = form.next_field().await? {
            let part = field.name().unwrap_or("").to_owned();
            let bytes = field.bytes().await?;
            if seen.contains(&part) && (part == "request" || part == "image") {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("the form has more than one `{part}` part"),
                ));
            }
            seen.push(part.clone());
            match part.as_str() {
                "request" => {
                    json = serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::bad_request("malformed_json", format!("request part: {e}")))?
                }
                "image" => image = Some(bytes.to_vec()),
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        format!("unexpected form part `{other}` (expected `request` and `image`)"),
                    ));
                }
            }
        }
        let (req, from_json) = request_from_json(json, &state)?;
        match (image, from_json) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("invalid_query", "give one query image")),
            (Some(bytes), None) => (req, Some(ImageSource::Bytes(bytes))),
            (None, other) => (req, other),
        }
    } else {
        let ApiJson(value) = ApiJson::<Value>::from_request(req, &()).await?;
        request_from_json(value, &state)?
    };
    let max_body = state.config.max_body_mib << 20;
    let st = state.clone();
    let resp = state
        .workers
        .run(move || -> ApiResult<(mira_host::SearchResponse, ImageRoutes)> {
            if let Some(image) = image {
                let bytes = match image {
                    ImageSource::Bytes(b) => b,
                    ImageSource::Url(u) => fetch(&u, max_body)?,
                };
                mira_host::image_file::check_header(&bytes, "the query image", st.config.max_image_pixels)
                    .map_err(|m| ApiError::bad_request("invalid_image", m))?;
                request.image_bytes = Some(Arc::new(bytes));
            }
            let c = st.collection(&name)?;
            Ok((c.search_with(&request, Some(&st.registry))?, ImageRoutes::of(&c)))
        })
        .await??;
    let (resp, images) = resp;
    state.metrics.search(&resp);
    Ok(Json(SearchResults::new(resp, &images)))
}

#[utoipa::path(post, path = "/v1/collections/{name}/illustrate", tag = "search",
    params(("name" = inline(CollectionName), Path, description = "Collection of pictures")),
    request_body = IllustrateBody,
    responses((status = 200, body = IllustrationBody), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn illustrate(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<IllustrateBody>,
) -> ApiResult<Json<IllustrationBody>> {
    let request = body.into();
    let st = state.clone();
    let out = state
        .workers
        .run(
            move || -> mira_host::Result<(mira_host::illustrate::Illustration, ImageRoutes)> {
                let c = st.collection(&name)?;
                Ok((mira_host::illustrate::illustrate(&c, &request)?, ImageRoutes::of(&c)))
            },
        )
        .await??;
    let (out, images) = out;
    Ok(Json(IllustrationBody::new(out, &images)))
}

/// Most judged queries one evaluation request may run (each is a search per run).
pub const MAX_EVAL_QUERIES: usize = 1000;

#[utoipa::path(post, path = "/v1/collections/{name}/eval", tag = "search",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    request_body = EvalBody,
    responses((status = 200, body = EvalResults), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn eval(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<EvalBody>,
) -> ApiResult<Json<EvalResults>> {
    let against = body.against.unwrap_or_default();
    let candidate = match &against.staged_plugin {
        None => None,
        Some(plugin) => Some(state.registry.staged(plugin).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "no_staged_version",
                format!("no version of `{plugin}` is staged: upload one with POST /v1/plugins?activate=false"),
            )
        })?),
    };
    let runs = mira_host::eval::RunSpec::runs(
        Some(&state.registry),
        EvalBody::settings(body.settings),
        EvalBody::settings(against.settings),
        candidate,
        "staged",
    );
    let k = body.k.unwrap_or(10);
    let (judgments, qrels) = (body.judgments, body.qrels);
    let st = state.clone();
    // Parsing a large judgment set is engine work too: on a worker, not the async runtime.
    let report = state
        .workers
        .run(move || -> ApiResult<mira_host::eval::EvalReport> {
            let queries = mira_host::eval::load(&judgments, "judgments", qrels.as_deref().map(|q| (q, "qrels")))
                .map_err(|e| ApiError::bad_request("invalid_judgments", e.to_string()))?;
            if queries.len() > MAX_EVAL_QUERIES {
                return Err(ApiError::bad_request(
                    "invalid_judgments",
                    format!(
                        "at most {MAX_EVAL_QUERIES} judged queries per request, got {} (use `mira eval` for more)",
                        queries.len()
                    ),
                ));
            }
            let c = st.collection(&name)?;
            Ok(mira_host::eval::run(&c, Some(&st.registry), &queries, None, &runs, k)?)
        })
        .await??;
    Ok(Json(report.into()))
}
