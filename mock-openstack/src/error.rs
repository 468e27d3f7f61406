//! Library errors and the mapping of API errors to HTTP responses.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue};
use os_wire::{ApiError, Service};

/// Why the mock could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An [`ApiError`] that axum can turn into a response (the orphan rule keeps
/// us from implementing `IntoResponse` on the os-wire type itself).
#[derive(Debug)]
pub struct ApiErr(pub ApiError);

impl From<ApiError> for ApiErr {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

pub type ApiResult<T> = Result<T, ApiErr>;

impl ApiErr {
    pub fn bad_request(service: Service, m: impl Into<String>) -> Self {
        Self(ApiError::bad_request(service, m))
    }
    /// Nova's 400 for a request body without a required property (the
    /// message of its JSON-schema validation).
    pub fn required(service: Service, property: &str) -> Self {
        Self::bad_request(
            service,
            format!("Invalid input: '{property}' is a required property"),
        )
    }
    pub fn not_found(service: Service, m: impl Into<String>) -> Self {
        Self(ApiError::not_found(service, m))
    }
    pub fn forbidden(service: Service, m: impl Into<String>) -> Self {
        Self(ApiError::forbidden(service, m))
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut resp = (e.status, axum::Json(e.body())).into_response();
        if let Some(s) = e.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Which service's envelope an error on `path` must use.
pub fn service_for_path(path: &str) -> Service {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "compute" => Service::Compute,
        "image" => Service::Image,
        "network" => Service::Network,
        "placement" => Service::Placement,
        "identity" => Service::Identity,
        _ => Service::Control,
    }
}
