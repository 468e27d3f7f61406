//! An authenticated session: transport + credentials + token + catalog.
//!
//! One [`OpenStackSession`] is shared by any number of concurrent tasks
//! (wrap it in an `Arc`). It authenticates once; when any service answers
//! 401 it re-authenticates once (single-flight: thousands of tasks that see
//! the same expired token cause one new auth) and retries the request once,
//! as keystoneauth does.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::auth::{authenticate, Credentials, Token};
use crate::error::ClientError;
use crate::http_util::{api_error, parse_json};
use crate::transport::SharedTransport;

/// What to do on 413, 429 and 503 answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Extra attempts after an over-limit or unavailable answer (0: none).
    pub max_retries: u32,
    /// Wait used when the answer has no `Retry-After`.
    pub default_wait: Duration,
    /// Upper bound on any single wait, whatever `Retry-After` says.
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// Never retry: every answer is reported as it came.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        default_wait: Duration::from_secs(1),
        max_wait: Duration::from_secs(0),
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::NONE
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The URL that was called.
    pub url: String,
}

impl ApiResponse {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        parse_json(&self.url, &self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An authenticated, shareable OpenStack session.
pub struct OpenStackSession {
    transport: SharedTransport,
    creds: Credentials,
    token: RwLock<Arc<Token>>,
    reauth: tokio::sync::Mutex<()>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for OpenStackSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackSession")
            .field("auth_url", &self.creds.auth_url)
            .field("username", &self.creds.username)
            .finish_non_exhaustive()
    }
}

impl OpenStackSession {
    /// Authenticates and returns a ready session.
    pub async fn connect(
        transport: SharedTransport,
        creds: Credentials,
    ) -> Result<Self, ClientError> {
        let token = authenticate(&transport, &creds).await?;
        Ok(Self {
            transport,
            creds,
            token: RwLock::new(Arc::new(token)),
            reauth: tokio::sync::Mutex::new(()),
            retry: RetryPolicy::NONE,
        })
    }

    /// Sets the default policy for over-limit and unavailable answers.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    pub fn transport(&self) -> &SharedTransport {
        &self.transport
    }

    /// The current token (and its catalog).
    pub fn token(&self) -> Arc<Token> {
        match self.token.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The catalog URL of `service_type` for this session's interface and region.
    pub fn endpoint(&self, service_type: &str) -> Result<String, ClientError> {
        let interface = self.creds.interface.as_deref().unwrap_or("public");
        self.token()
            .catalog
            .endpoint(service_type, interface, self.creds.region_name.as_deref())
    }

    /// Re-authenticates unless another task already did since `seen` was current.
    async fn reauthenticate(&self, seen: &Arc<Token>) -> Result<Arc<Token>, ClientError> {
        let _guard = self.reauth.lock().await;
        let current = self.token();
        if !Arc::ptr_eq(&current, seen) {
            return Ok(current);
        }
        tracing::debug!(auth_url = %self.creds.auth_url, "re-authenticating after 401");
        let fresh = Arc::new(authenticate(&self.transport, &self.creds).await?);
        match self.token.write() {
            Ok(mut t) => *t = fresh.clone(),
            Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }

    /// Sends `method` to `path` of `service_type` (or to `path` itself when it
    /// is an absolute URL, e.g. a pagination link) with the session's retry policy.
    pub async fn send(
        &self,
        service_type: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, ClientError> {
        self.send_with(service_type, method, path, body, self.retry)
            .await
    }

    /// Like [`send`](Self::send) with an explicit retry policy.
    pub async fn send_with(
        &self,
        service_type: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: RetryPolicy,
    ) -> Result<ApiResponse, ClientError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            let base = self.endpoint(service_type)?;
            if path.is_empty() {
                base
            } else {
                format!("{base}/{}", path.trim_start_matches('/'))
            }
        };
        let body = match body {
            Some(v) => Bytes::from(
                serde_json::to_vec(v)
                    .map_err(|e| ClientError::Config(format!("cannot encode a request: {e}")))?,
            ),
            None => Bytes::new(),
        };
        let mut token = self.token();
        let mut reauthed = false;
        let mut retries = 0u32;
        loop {
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(http::header::ACCEPT, "application/json")
                .header("x-auth-token", token.value.as_str());
            if !body.is_empty() {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            }
            let req = builder
                .body(body.clone())
                .map_err(|_| ClientError::Url(url.clone()))?;
            let resp = self.transport.call(req).await?;
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                let (parts, body) = resp.into_parts();
                return Ok(ApiResponse {
                    status,
                    headers: parts.headers,
                    body,
                    url,
                });
            }
            if status == 401 && !reauthed {
                reauthed = true;
                token = self.reauthenticate(&token).await?;
                continue;
            }
            let err = api_error(&resp);
            if matches!(status, 413 | 429 | 503) && retries < retry.max_retries {
                retries += 1;
                let wait = match &err {
                    ClientError::Api {
                        retry_after: Some(d),
                        ..
                    } => *d,
                    _ => retry.default_wait,
                }
                .min(retry.max_wait);
                tracing::debug!(%url, status, ?wait, "retrying after over-limit answer");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(err);
        }
    }

    /// GET and parse JSON.
    pub async fn get_json(&self, service_type: &str, path: &str) -> Result<Value, ClientError> {
        self.send(service_type, Method::GET, path, None)
            .await?
            .json()
    }
}
