//! Small HTTP helpers shared by the handlers: body limits, the services'
//! Content-Type rules, JSON bodies and responses. What wraps every request
//! (envelopes, request ids, metrics, the API stage) is in `edge`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use os_wire::{ApiError, Service};
use serde_json::Value;

use crate::error::ApiResult;

/// Largest accepted request body (1 MiB); larger → 413.
pub const MAX_BODY: usize = 1 << 20;

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

/// Parses a JSON object body; malformed → 400 in `service`'s envelope.
pub fn json_body(service: Service, body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(service, format!("Malformed request body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            service,
            "Malformed request body: expected a JSON object",
        ));
    }
    Ok(v)
}

/// Headers a response ends with at most (content type, two request ids,
/// three microversion headers; `edge` adds all but the first).
pub const RESPONSE_HEADERS: usize = 8;

/// A JSON response serialized straight from a `Serialize` view.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    // One allocation for a typical body (a server view is ~1.5 KiB).
    let mut bytes = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => json_bytes_response(status, bytes::Bytes::from(bytes)),
        Err(e) => ApiError::internal(Service::Compute, e.to_string()).into_response(),
    }
}

/// A JSON response from bytes already serialized.
pub fn json_bytes_response(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut r = Response::new(axum::body::Body::from(body));
    *r.status_mut() = status;
    // Room for what the edge adds (request ids, microversion headers)
    // without growing the map twice per response.
    *r.headers_mut() = http::HeaderMap::with_capacity(RESPONSE_HEADERS);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `200 application/json` from a value.
pub fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub fn with_status(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}
