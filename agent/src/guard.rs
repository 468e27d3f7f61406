//! The first thing every request meets, before any routing: paths are
//! taken literally ([`policy::check_path`]) and bodies must have a
//! Content-Type the real service accepts ([`input::content_type_refusal`]).
//! Refusals come in the envelope of the service the path names.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use os_wire::{ApiError, Service};

use crate::{input, policy};

/// The service a path belongs to (for the error envelope).
pub fn service_of(path: &str) -> Service {
    match path.trim_start_matches('/').split('/').next().unwrap_or("") {
        "compute" => Service::Compute,
        "image" => Service::Image,
        "network" => Service::Network,
        "identity" => Service::Identity,
        _ => Service::Control,
    }
}

/// An OpenStack error response.
pub fn envelope(service: Service, status: u16, msg: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let e = ApiError::new(service, status, msg);
    let mut r = (status, e.body().to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody as _;
    let hint = req.body().size_hint();
    hint.exact() != Some(0)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Middleware: literal paths and acceptable Content-Types only.
pub async fn literal_requests(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let service = service_of(path);
    if let Err(e) = policy::check_path(path) {
        return envelope(service, e.status(), e.to_string());
    }
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if writes && has_body(&req) && matches!(service, Service::Compute | Service::Identity) {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some((status, msg)) = input::content_type_refusal(service == Service::Identity, ct) {
            return envelope(service, status, msg);
        }
    }
    next.run(req).await
}
