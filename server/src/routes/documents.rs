//! Documents: batch upsert as JSON, or multipart with the images they name; delete by id or
//! query. The server reads no path a client names: an image field's value must be the file
//! name of an image uploaded in the same request, which is stored in the collection's `media/`
//! directory under its content hash (the pixel limit is checked on the header first).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use mira_host::ingest::{IngestOptions, IngestReport, MemoryRows, NoProgress, OnError};

use crate::api::CollectionName;
use crate::api::IngestReportBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, has_content_type};
use crate::state::AppState;
use mira_host::schema::FieldKind;

/// Documents to upsert: an array of objects, or this object.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Documents {
    /// Objects whose keys are the collection's fields (`id` included); at least one.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub documents: Vec<Map<String, Value>>,
    /// `fail` (default: stop at the first bad document, roll back) or `skip` (report it, go on).
    #[serde(default)]
    pub on_error: Option<OnErrorBody>,
}

/// What to do with a bad document.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OnError)]
#[serde(rename_all = "lowercase")]
pub enum OnErrorBody {
    /// Stop at the first bad document and roll the request back.
    Fail,
    /// Report it and go on.
    Skip,
}

/// The multipart form of an upsert.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentsUpload {
    /// The documents, as a JSON array (or a `Documents` object).
    documents: String,
    /// Image files; an image field's value names one by its file name.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    files: Option<Vec<Vec<u8>>>,
}

/// Documents to delete: by id, or every match of a query.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDocuments {
    pub ids: Option<Vec<String>>,
    /// A filter in tantivy syntax (`category:dress AND price:[0 TO 10]`).
    pub query: Option<String>,
}

/// How many documents went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: u64,
}

fn parse_documents(value: Value) -> Result<(Vec<Map<String, Value>>, OnError), ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_request", m);
    let docs: Documents = match value {
        Value::Array(items) => Documents {
            documents: items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(m),
                    other => Err(bad(format!("document {}: expected an object, got {other}", i + 1))),
                })
                .collect::<Result<_, _>>()?,
            on_error: None,
        },
        other => serde_json::from_value(other).map_err(|e| bad(format!("request body: {e}")))?,
    };
    let on_error = match docs.on_error {
        None | Some(OnErrorBody::Fail) => OnError::Fail,
        Some(OnErrorBody::Skip) => OnError::Skip,
    };
    if docs.documents.is_empty() {
        return Err(bad("no documents in the request".into()));
    }
    Ok((docs.documents, on_error))
}

#[utoipa::path(post, path = "/v1/collections/{name}/documents", tag = "documents",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    request_body(content(
        (Documents = "application/json"),
        (DocumentsUpload = "multipart/form-data"),
    )),
    responses((status = 200, body = IngestReportBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn upsert(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<IngestReportBody>> {
    let multipart = has_content_type(&req, "multipart/form-data");
    let (docs, uploads) = if multipart {
        let form = Multipart::from_request(req, &()).await?;
        read_form(form, state.config.max_image_pixels).await?
    } else {
        let ApiJson(value) = ApiJson::<Value>::from_request(req, &()).await?;
        (value, HashMap::new())
    };
    let (mut rows, on_error) = parse_documents(docs)?;
    let st = state.clone();
    let report = state
        .workers
        // Images are stored, indexed and (when unused) removed under the collection's write
        // lock, so another upsert of the same image never sees a file this one removes.
        .run_locked(state.write_lock(&name), move || -> ApiResult<IngestReport> {
            let c = st.collection(&name)?;
            let media = c.dir().join("media");
            let mut created = Created::new();
            if let Err(e) = bind_images(
                &c,
                &mut rows,
                &uploads,
                &media,
                st.config.max_image_pixels,
                &mut created,
            ) {
                remove_unused(&created, Stored::Unused);
                return Err(e);
            }
            let opts = IngestOptions {
                on_error,
                // Tags whose vocabulary a plugin gives read the live version's.
                vocabularies: if c.schema().needs_plugin_vocabularies() {
                    st.registry.tag_vocabularies()
                } else {
                    Default::default()
                },
                ..Default::default()
            };
            let source = Box::new(MemoryRows::new("request", media, rows));
            let outcome = mira_host::ingest::ingest_rows(&c, source, &opts, &NoProgress);
            let stored = match &outcome {
                Ok(report) => Stored::Report(report),
                // Nothing was committed: no document names any of them.
                Err(mira_host::Error::IngestAborted { committed: 0, .. }) => Stored::Unused,
                // Earlier batches may be committed (or the failure came after the commit): a
                // file kept is better than a document without its image.
                Err(_) => Stored::Keep,
            };
            remove_unused(&created, stored);
            Ok(outcome?)
        })
        .await??;
    Ok(Json(report.into()))
}

/// An uploaded image file, checked and not yet stored.
struct Upload {
    bytes: Vec<u8>,
    extension: &'static str,
}

async fn read_form(mut form: Multipart, max_pixels: u64) -> ApiResult<(Value, HashMap<String, Upload>)> {
    let bad = |m: String| ApiError::bad_request("invalid_request", m);
    let mut docs = None;
    let mut uploads = HashMap::new();
    while let Some(field) = form.next_field().await? {
        let part = field.name().unwrap_or("").to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await?;
        match (part.as_str(), file_name) {
            ("documents", None) if docs.is_some() => {
                return Err(bad(
                    "the form has more than one `documents` part: send the documents as one JSON array".into(),
                ));
            }
            ("documents", None) => {
                let text = std::str::from_utf8(&bytes).map_err(|_| bad("the documents part is not UTF-8".into()))?;
                docs = Some(parse_json_or_ndjson(text)?);
            }
            (_, Some(file)) => {
                let extension = mira_host::image_file::check_header(&bytes, &file, max_pixels)
                    .map_err(&bad)?
                    .extension;
                uploads.insert(
                    file,
                    Upload {
                        bytes: bytes.to_vec(),
                        extension,
                    },
                );
            }
            (other, None) => {
                return Err(bad(format!(
                    "unexpected form part `{other}` (expected `documents` and image files)"
                )));
            }
        }
    }
    let docs = docs.ok_or_else(|| bad("the form has no `documents` part".into()))?;
    Ok((docs, uploads))
}

/// A JSON value, or newline-delimited JSON objects (an array of them).
fn parse_json_or_ndjson(text: &str) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| ApiError::bad_request("malformed_json", format!("documents line {}: {e}", i + 1)))
        })
        .collect::<ApiResult<Vec<Value>>>()
        .map(Value::Array)
}

/// Replaces image field values by the stored uploads they name; a value naming no upload is an
/// error (the server never reads a client-named path).
/// Files this request stored in `media/`, with the 1-based positions of the rows naming them.
type Created = Vec<(std::path::PathBuf, Vec<u64>)>;

/// What became of the rows that name the files a request stored.
enum Stored<'a> {
    /// No row was committed.
    Unused,
    /// The ingest finished: the report says which rows were skipped.
    Report(&'a IngestReport),
    /// Unknown: keep every file.
    Keep,
}

/// Removes the files this request stored that no indexed row names: all of them when nothing
/// was committed, those of the skipped rows after an ingest that finished (only when the report
/// lists every skipped row; past its cap, files are kept rather than risk removing a used one).
fn remove_unused(created: &Created, stored: Stored<'_>) {
    let failed: std::collections::HashSet<u64> = match stored {
        Stored::Unused => created.iter().flat_map(|(_, rows)| rows.iter().copied()).collect(),
        Stored::Report(r) if r.skipped as usize == r.errors.len() => r.errors.iter().filter_map(|e| e.line).collect(),
        Stored::Report(_) | Stored::Keep => return,
    };
    for (path, rows) in created {
        if rows.iter().all(|row| failed.contains(row)) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_images(
    c: &mira_host::Collection,
    rows: &mut [Map<String, Value>],
    uploads: &HashMap<String, Upload>,
    media: &std::path::Path,
    max_pixels: u64,
    created: &mut Created,
) -> ApiResult<()> {
    let image_fields: Vec<&str> = c
        .schema()
        .fields
        .iter()
        .filter(|f| f.kind == FieldKind::Image)
        .map(|f| f.name.as_str())
        .collect();
    let mut stored: HashMap<String, String> = HashMap::new();
    for (i, row) in rows.iter_mut().enumerate() {
        for field in &image_fields {
            let Some(value) = row.get(*field) else { continue };
            let Some(file) = value.as_str().map(str::to_owned) else {
                return Err(ApiError::bad_request(
                    "invalid_document",
                    format!("document {}: image field `{field}` must name an uploaded file", i + 1),
                ));
            };
            let Some(upload) = uploads.get(&file) else {
                return Err(ApiError::bad_request(
                    "invalid_document",
                    format!(
                        "document {}: image field `{field}` names `{file}`, which was not uploaded with this request \
                         (send documents as multipart/form-data with the image as a file part named `{file}`; \
                         the server reads no paths)",
                        i + 1
                    ),
                ));
            };
            let path = match stored.get(&file) {
                Some(p) => p.clone(),
                None => {
                    // Decoded whole before it is stored: a truncated or corrupt upload is refused
                    // by its own name and leaves nothing behind.
                    mira_host::image_file::decode_bytes(&upload.bytes, &file, max_pixels)
                        .map_err(|m| ApiError::bad_request("invalid_image", m))?;
                    let hash: String = Sha256::digest(&upload.bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    std::fs::create_dir_all(media)
                        .map_err(|e| ApiError::internal(format!("creating {}: {e}", media.display())))?;
                    let path = media.join(format!("{hash}.{}", upload.extension));
                    if !path.exists() {
                        let tmp = media.join(format!(".{hash}.{}.tmp", std::process::id()));
                        std::fs::write(&tmp, &upload.bytes)
                            .and_then(|_| std::fs::rename(&tmp, &path))
                            .map_err(|e| ApiError::internal(format!("storing {}: {e}", path.display())))?;
                        created.push((path.clone(), Vec::new()));
                    }
                    let p = path.display().to_string();
                    stored.insert(file.clone(), p.clone());
                    p
                }
            };
            if let Some((_, rows)) = created.iter_mut().find(|(p, _)| p.display().to_string() == path) {
                rows.push(i as u64 + 1);
            }
            row.insert((*field).to_owned(), Value::String(path));
        }
    }
    Ok(())
}

#[utoipa::path(delete, path = "/v1/collections/{name}/documents", tag = "documents",
    params(("name" = inline(CollectionName), Path, description = "Collection name")),
    request_body = DeleteDocuments,
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<DeleteDocuments>,
) -> ApiResult<Json<Deleted>> {
    let st = state.clone();
    let deleted = state
        .workers
        .run_locked(state.write_lock(&name), move || -> ApiResult<u64> {
            let c = st.collection(&name)?;
            let mut w = c.writer()?;
            let n = match (&body.ids, &body.query) {
                (Some(ids), None) => w.delete_ids(ids)?,
                (None, Some(q)) => w.delete_query(q)?,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "give `ids` or `query`, one of them",
                    ));
                }
            };
            w.finish()?;
            Ok(n)
        })
        .await??;
    Ok(Json(Deleted { deleted }))
}

/// Which image field to serve.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImageParams {
    /// The image field (default: the collection's first).
    pub field: Option<String>,
    /// Which image of an image list (0-based; default 0).
    pub index: Option<usize>,
}

#[utoipa::path(get, path = "/v1/collections/{name}/documents/{id}/image", tag = "documents",
    params(("name" = inline(CollectionName), Path, description = "Collection name"), ("id" = String, Path, description = "Document id"), ImageParams),
    responses((status = 200, description = "The image file", content_type = "image/*"), (status = 404, body = ErrorBody)))]
pub async fn image(
    State(state): State<Arc<AppState>>,
    ApiPath((name, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<ImageParams>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let st = state.clone();
    let (bytes, mime) = state
        .workers
        .run(move || -> ApiResult<(Vec<u8>, &'static str)> {
            let c = st.collection(&name)?;
            let field = match params.field {
                Some(f) => f,
                None => c
                    .schema()
                    .fields
                    .iter()
                    .find(|f| f.kind == FieldKind::Image)
                    .map(|f| f.name.clone())
                    .ok_or_else(|| {
                        ApiError::not_found("no_image", format!("collection `{name}` has no image field"))
                    })?,
            };
            if !c.schema().field(&field).is_some_and(|f| f.kind == FieldKind::Image) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("`{field}` is not an image field"),
                ));
            }
            let doc = c
                .document(&id)?
                .ok_or_else(|| ApiError::not_found("document_not_found", format!("no document `{id}` in `{name}`")))?;
            let index = params.index.unwrap_or(0);
            let path = match doc.get(&field) {
                Some(serde_json::Value::Array(items)) => items.get(index).and_then(|v| v.as_str()),
                Some(v) if index == 0 => v.as_str(),
                _ => None,
            }
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::not_found("no_image", format!("document `{id}` has no `{field}` image {index}"))
            })?;
            let bytes = std::fs::read(&path)
                .map_err(|e| ApiError::not_found("no_image", format!("the image of `{id}` cannot be read: {e}")))?;
            let mime = match image::guess_format(&bytes) {
                Ok(image::ImageFormat::Png) => "image/png",
                Ok(image::ImageFormat::Jpeg) => "image/jpeg",
                _ => "application/octet-stream",
            };
            Ok((bytes, mime))
        })
        .await??;
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        bytes,
    )
        .into_response())
}
