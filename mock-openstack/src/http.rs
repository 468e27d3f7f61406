//! Cross-cutting HTTP behaviour: request ids, JSON content type, error
//! envelopes for errors raised outside the handlers (404/405/413 …), path
//! normalisation, metrics, and small helpers for JSON bodies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cp_model::ApiKind;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use os_wire::{ApiError, Service};
use serde_json::Value;

use crate::error::{service_for_path, ApiErr, ApiResult};
use crate::state::State;

/// Largest accepted request body (1 MiB); larger → 413.
pub const MAX_BODY: usize = 1 << 20;

/// Index of a service in `state::SERVICE_LABELS`.
pub fn service_index(s: Service) -> usize {
    match s {
        Service::Identity => 0,
        Service::Compute => 1,
        Service::Image => 2,
        Service::Network => 3,
        Service::Placement => 4,
        Service::Control => 5,
    }
}

/// Wraps every response: envelope for bare errors, request id, content type,
/// request counters.
pub async fn envelope(AxState(st): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let service = service_for_path(req.uri().path());
    st.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    // Every OpenStack API call (token issue/validation included) first
    // passes the control plane's API stage.
    let admitted = match service {
        Service::Control => Ok(()),
        _ => {
            let kind = match *req.method() {
                Method::GET | Method::HEAD | Method::OPTIONS => ApiKind::Get,
                Method::DELETE => ApiKind::Delete,
                _ => ApiKind::Post,
            };
            st.engine.api_call(kind).await
        }
    };
    let mut resp = match admitted {
        Ok(()) => next.run(req).await,
        Err((code, message)) => api_rejected(service, code, message),
    };
    st.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            // axum's own rejections (no route, wrong method, body too large,
            // bad path) come as text: re-wrap them in the service's envelope.
            let msg = match status.as_u16() {
                404 => "The resource could not be found.".to_string(),
                405 => "The method is not allowed for the requested URL.".to_string(),
                413 => format!("Request body is larger than {MAX_BODY} bytes."),
                _ => status.canonical_reason().unwrap_or("Error").to_string(),
            };
            let allow = resp.headers().get(header::ALLOW).cloned();
            resp = ApiErr(ApiError::new(service, status, msg)).into_response();
            if let Some(a) = allow {
                resp.headers_mut().insert(header::ALLOW, a);
            }
        }
    }
    let h = resp.headers_mut();
    let rid = st.metrics.request_id();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-openstack-request-id", v.clone());
        if service == Service::Compute {
            h.insert("x-compute-request-id", v);
        }
    }
    if service == Service::Compute {
        crate::compute::microversion_headers(h);
    }
    if status != StatusCode::NO_CONTENT && !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    st.metrics.count(service_index(service), status.as_u16());
    resp
}

/// The API stage refused the call: 503 (backlog full, API unavailable;
/// `Retry-After: 1`) or 504 (waited past the API timeout), in the service's
/// envelope (Nova: `serviceUnavailable` / `computeFault`).
fn api_rejected(service: Service, code: u16, message: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut e = ApiError::new(service, status, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        e = e.with_retry_after(1);
    }
    ApiErr(e).into_response()
}

/// A request body must arrive within this (slow bodies get 408).
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Keystone's answer to a body that is not JSON.
pub const KEYSTONE_NOT_JSON: &str = "Expecting to find application/json in Content-Type header \
     - the server could not comply with the request since it is either malformed or otherwise \
     incorrect. The client is assumed to be in error.";

/// What the real service answers to a request body's Content-Type, if it
/// refuses it: Nova (and the mock's control API) 415 "Unsupported
/// Content-Type" for a type other than JSON (a missing type, or
/// `text/plain`, is read as JSON, as Nova's WSGI layer does); Keystone
/// 400 for anything but JSON.
pub fn content_type_refusal(
    service: Service,
    content_type: Option<&str>,
) -> Option<(StatusCode, &'static str)> {
    let mime = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    match service {
        Service::Identity if !json => Some((StatusCode::BAD_REQUEST, KEYSTONE_NOT_JSON)),
        Service::Identity => None,
        _ if json || mime.is_empty() || mime == "text/plain" => None,
        _ => Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Content-Type",
        )),
    }
}

/// Reads the body within [`BODY_READ_TIMEOUT`] (408 otherwise; 413 beyond
/// [`MAX_BODY`]) and refuses a body whose Content-Type the real service
/// would refuse, before any handler runs.
pub async fn body_checks(req: Request, next: Next) -> Response {
    // Most calls (GET, DELETE) carry no body: nothing to read or time.
    if axum::body::HttpBody::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let service = service_for_path(req.uri().path());
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return ApiErr(ApiError::new(
                    service,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body is larger than {MAX_BODY} bytes."),
                ))
                .into_response()
            }
            Err(_) => {
                return ApiErr(ApiError::new(
                    service,
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body did not arrive in time.",
                ))
                .into_response()
            }
        };
    if !bytes.is_empty() {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some((status, msg)) = content_type_refusal(service, ct) {
            return ApiErr(ApiError::new(service, status, msg)).into_response();
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Strips trailing slashes so `/compute/v2.1/` and `/compute/v2.1` route alike.
pub fn normalize(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && (path.ends_with('/') || path.contains("//")) {
        let mut p = path.to_string();
        while p.contains("//") {
            p = p.replace("//", "/");
        }
        let trimmed = p.trim_end_matches('/');
        let new = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match req.uri().query() {
            Some(q) => format!("{new}?{q}"),
            None => new.to_string(),
        };
        if let Ok(pq) = PathAndQuery::try_from(pq) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}

/// Parses a JSON object body; malformed → 400 in `service`'s envelope.
pub fn json_body(service: Service, body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiErr::bad_request(service, format!("Malformed request body: {e}")))?;
    if !v.is_object() {
        return Err(ApiErr::bad_request(
            service,
            "Malformed request body: expected a JSON object",
        ));
    }
    Ok(v)
}

/// A JSON response serialized straight from a `Serialize` view.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => ApiErr(ApiError::internal(Service::Compute, e.to_string())).into_response(),
    }
}

/// `200 application/json` from a value.
pub fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub fn with_status(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}
