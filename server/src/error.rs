//! Errors as the API returns them: JSON `{message, code, type}` with the status that fits.
//! User faults are 4xx, engine faults 5xx; the engine's own errors keep their stable codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use mira_host::{Error, Fault};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_query`, `collection_not_found`...).
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed (503).
    pub retry_after: Option<u64>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// Stable code, for a program.
    pub code: String,
    /// `invalid_request`, `authentication`, `not_found`, `conflict`, `payload_too_large`,
    /// `overloaded`, `unavailable` (a model that cannot be loaded; retried later) or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// A request whose handler or engine work panicked: the server's fault, logged and counted;
    /// the server goes on serving.
    pub fn panicked() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_panic",
            "the server failed on this request (a bug; it is logged and counted in mira_panics_total) and goes on serving",
        )
    }

    /// The inference queue is full.
    pub fn overloaded(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the server is at capacity; retry in {retry_after} s"),
            )
        }
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "authentication",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::SERVICE_UNAVAILABLE if self.code == "overloaded" => "overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_client_error() => "invalid_request",
            _ => "internal",
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.fault() {
            Fault::User => StatusCode::BAD_REQUEST,
            Fault::NotFound => StatusCode::NOT_FOUND,
            Fault::Conflict => StatusCode::CONFLICT,
            Fault::Engine => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::Unavailable => {
                tracing::warn!(error = %e, "unavailable");
                let retry_after = e
                    .retry_after()
                    .unwrap_or(mira_host::models::DEFAULT_RETRY)
                    .as_secs()
                    .max(1);
                return ApiError {
                    retry_after: Some(retry_after),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                };
            }
        };
        if status.is_server_error() {
            // The details (paths on the server, the index's own words) go to the log, not to
            // the client.
            tracing::error!(error = %e, "engine error");
            return ApiError::new(
                status,
                e.code(),
                format!(
                    "the engine failed on this request ({}); the details are in the server's log",
                    e.code()
                ),
            );
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message.clone(),
            code: self.code.to_owned(),
            kind: self.kind().to_owned(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
