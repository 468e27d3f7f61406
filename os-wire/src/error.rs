//! Error envelopes, one shape per OpenStack service.
//!
//! Clients parse the error body to show the user a message, so each service
//! answers in its own envelope:
//! - Keystone: `{"error":{"code":401,"title":"Unauthorized","message":"…"}}`
//! - Nova: `{"itemNotFound":{"code":404,"message":"…"}}` (name by status)
//! - Glance: `{"code":404,"title":"Not Found","message":"…"}` (webob style)
//! - Neutron: `{"NeutronError":{"type":"NetworkNotFound","message":"…","detail":""}}`
//! - Placement: `{"errors":[{"status":404,"title":"Not Found","detail":"…"}]}`

use http::StatusCode;
use serde_json::{json, Value};

/// The OpenStack service whose envelope an error must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Identity,
    Compute,
    Image,
    Network,
    Placement,
    /// The project's own control and peer APIs (`/mock/v1`, `/p2p/v1`);
    /// they use the Keystone-like `{"error":{…}}` shape.
    Control,
}

/// One API error: a status, a message, and the service whose envelope it uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub service: Service,
    pub status: StatusCode,
    pub message: String,
    /// Neutron's error `type` (e.g. `NetworkNotFound`); defaults by status.
    pub kind: Option<String>,
    /// Seconds for `Retry-After` on 413/429/503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(service: Service, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            service,
            status,
            message: message.into(),
            kind: None,
            retry_after: None,
        }
    }

    pub fn bad_request(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::BAD_REQUEST, message)
    }

    /// Nova's 400 for a request body without a required property (the
    /// message of its JSON-schema validation).
    pub fn required(service: Service, property: &str) -> Self {
        Self::bad_request(
            service,
            format!("Invalid input: '{property}' is a required property"),
        )
    }

    pub fn unauthorized(service: Service) -> Self {
        Self::new(
            service,
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }

    pub fn forbidden(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::CONFLICT, message)
    }

    pub fn internal(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Sets Neutron's error `type`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body in the service's own envelope.
    pub fn body(&self) -> Value {
        let code = self.status.as_u16();
        let title = self.status.canonical_reason().unwrap_or("Error");
        match self.service {
            Service::Identity | Service::Control => json!({
                "error": {"code": code, "title": title, "message": self.message}
            }),
            Service::Compute => {
                let mut inner = json!({"code": code, "message": self.message});
                if let Some(s) = self.retry_after {
                    inner["retryAfter"] = json!(s.to_string());
                }
                let mut outer = serde_json::Map::new();
                outer.insert(nova_fault_name(self.status).to_string(), inner);
                Value::Object(outer)
            }
            Service::Image => json!({"code": code, "title": title, "message": self.message}),
            Service::Network => json!({
                "NeutronError": {
                    "type": self.kind.clone().unwrap_or_else(|| neutron_type(self.status).to_string()),
                    "message": self.message,
                    "detail": "",
                }
            }),
            Service::Placement => json!({
                "errors": [{"status": code, "title": title, "detail": self.message, "request_id": null}]
            }),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Nova's fault name for a status (nova/api/openstack/wsgi.py `_FAULT_NAMES`).
pub fn nova_fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

fn neutron_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        _ => "InternalServerError",
    }
}

/// Reads the human message out of any OpenStack error body, whatever its
/// envelope. Used by clients (loadgen, the agent) to report why a call failed.
pub fn message_of(body: &Value) -> Option<String> {
    if let Some(s) = body.get("message").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        if let Some(d) = errors
            .first()
            .and_then(|e| e.get("detail").or_else(|| e.get("title")))
            .and_then(Value::as_str)
        {
            return Some(d.to_string());
        }
    }
    if let Some(obj) = body.as_object() {
        for inner in obj.values() {
            if let Some(m) = inner.get("message").and_then(Value::as_str) {
                return Some(m.to_string());
            }
        }
    }
    None
}

/// An error answers in its service's envelope, with `Retry-After` when set.
#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let mut r = (self.status, self.body().to_string()).into_response();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_envelope_is_named_by_status() {
        let e = ApiError::not_found(Service::Compute, "Instance x could not be found.");
        assert_eq!(
            e.body(),
            json!({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}})
        );
        let e = ApiError::new(Service::Compute, StatusCode::TOO_MANY_REQUESTS, "slow down")
            .with_retry_after(3);
        assert_eq!(e.body()["overLimit"]["retryAfter"], "3");
    }

    #[test]
    fn keystone_neutron_placement_envelopes() {
        let k = ApiError::unauthorized(Service::Identity).body();
        assert_eq!(k["error"]["code"], 401);
        assert_eq!(k["error"]["title"], "Unauthorized");
        let n = ApiError::not_found(Service::Network, "Network x could not be found.")
            .with_kind("NetworkNotFound")
            .body();
        assert_eq!(n["NeutronError"]["type"], "NetworkNotFound");
        let p = ApiError::not_found(Service::Placement, "no such provider").body();
        assert_eq!(p["errors"][0]["status"], 404);
    }

    #[test]
    fn message_is_found_in_every_envelope() {
        for service in [
            Service::Identity,
            Service::Compute,
            Service::Image,
            Service::Network,
            Service::Placement,
        ] {
            let body = ApiError::bad_request(service, "bad thing").body();
            assert_eq!(
                message_of(&body).as_deref(),
                Some("bad thing"),
                "{service:?}"
            );
        }
        assert_eq!(message_of(&json!({"weird": 1})), None);
    }
}
