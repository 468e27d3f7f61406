//! Small helpers shared by the service modules: error mapping and JSON parsing.

use std::time::Duration;

use serde_json::Value;

use crate::error::ClientError;
use crate::transport::HttpResponse;

/// Longest raw body echoed into an error message.
const MAX_RAW_MESSAGE: usize = 200;

/// Turns a non-2xx response into [`ClientError::Api`], with the message from
/// any OpenStack error envelope, or the start of the raw body when it has none.
pub fn api_error(resp: &HttpResponse) -> ClientError {
    let status = resp.status().as_u16();
    let parsed: Option<Value> = serde_json::from_slice(resp.body()).ok();
    let message = parsed
        .as_ref()
        .and_then(os_wire::error::message_of)
        .unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(resp.body());
            let raw = raw.trim();
            if raw.is_empty() {
                resp.status()
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string()
            } else {
                raw.chars().take(MAX_RAW_MESSAGE).collect()
            }
        });
    let retry_after = retry_after(resp, parsed.as_ref());
    ClientError::Api {
        status,
        message,
        retry_after,
    }
}

/// `Retry-After` in seconds (header first, then Nova's `retryAfter` in the body).
pub fn retry_after(resp: &HttpResponse, body: Option<&Value>) -> Option<Duration> {
    let from_header = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    let from_body = || {
        body?.as_object()?.values().find_map(|inner| {
            let v = inner.get("retryAfter")?;
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    from_header
        .or_else(from_body)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Parses a JSON body, naming `what` in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    body: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::malformed(what, e))
}
