//! The transport abstraction and its two implementations.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub type HttpRequest = http::Request<Bytes>;
pub type HttpResponse = http::Response<Bytes>;

/// Why a request got no HTTP response at all.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("transport error: {0}")]
    Other(String),
}

/// Sends one HTTP request and returns the whole response.
pub trait Transport: Send + Sync + 'static {
    fn call(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>>;
}

pub type SharedTransport = Arc<dyn Transport>;

/// Real network I/O through a pooled reqwest client.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    timeout: Duration,
}

impl ReqwestTransport {
    /// `timeout` bounds each request from send to last body byte.
    pub fn new(timeout: Duration) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| TransportError::Other(e.to_string()))?;
        Ok(Self { client, timeout })
    }
}

impl Transport for ReqwestTransport {
    fn call(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        let client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let url = parts.uri.to_string();
            let mut builder = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .timeout(timeout);
            if !body.is_empty() {
                builder = builder.body(body);
            }
            let mut resp = builder
                .send()
                .await
                .map_err(|e| classify(&url, timeout, e))?;
            let status = resp.status();
            // Taken, not cloned: the body is read without them.
            let headers = std::mem::take(resp.headers_mut());
            let bytes = resp.bytes().await.map_err(|e| classify(&url, timeout, e))?;
            let mut out = http::Response::new(bytes);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

fn classify(url: &str, timeout: Duration, e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout(timeout)
    } else if e.is_connect() {
        TransportError::Connect(url.to_string())
    } else if e.is_builder() {
        TransportError::InvalidRequest(e.to_string())
    } else {
        TransportError::Other(e.to_string())
    }
}

/// Routes requests to in-process axum routers by URI authority
/// (`host:port`), with no socket in between.
#[derive(Clone, Default)]
pub struct InProcessTransport {
    routes: Arc<RwLock<HashMap<String, axum::Router>>>,
}

impl InProcessTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `authority` (e.g. `cloudlet-3:8080`) with `router`.
    pub fn insert(&self, authority: impl Into<String>, router: axum::Router) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(authority.into(), router);
        }
    }

    /// Takes `authority` away: later calls fail as a refused connection would.
    pub fn remove(&self, authority: &str) {
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(authority);
        }
    }
}

impl Transport for InProcessTransport {
    fn call(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let router = self
            .routes
            .read()
            .ok()
            .and_then(|r| r.get(&authority).cloned());
        Box::pin(async move {
            let router = router.ok_or_else(|| TransportError::Connect(authority.clone()))?;
            let (mut parts, body) = req.into_parts();
            if !parts.headers.contains_key(http::header::HOST) {
                if let Ok(v) = http::HeaderValue::from_str(&authority) {
                    parts.headers.insert(http::header::HOST, v);
                }
            }
            let req = http::Request::from_parts(parts, axum::body::Body::from(body));
            let resp = router
                .oneshot(req)
                .await
                .map_err(|e| TransportError::Other(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| TransportError::Other(e.to_string()))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn in_process_routes_by_authority_and_refuses_unknown() {
        let t = InProcessTransport::new();
        t.insert(
            "a:1",
            axum::Router::new().route("/x", get(|| async { "hello" })),
        );
        let ok = t
            .call(
                http::Request::get("http://a:1/x")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.body().as_ref(), b"hello");
        let err = t
            .call(
                http::Request::get("http://b:1/x")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect(_)));
        t.remove("a:1");
        assert!(t
            .call(
                http::Request::get("http://a:1/x")
                    .body(Bytes::new())
                    .unwrap()
            )
            .await
            .is_err());
    }

    #[tokio::test]
    async fn reqwest_reports_refused_connection() {
        let t = ReqwestTransport::new(Duration::from_secs(2)).unwrap();
        // Port 1 on loopback is closed on any sane machine.
        let err = t
            .call(
                http::Request::get("http://127.0.0.1:1/")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
    }
}
