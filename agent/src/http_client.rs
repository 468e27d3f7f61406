//! The agent's HTTP client on real sockets: one pooled HTTP/1.1 keep-alive
//! client (hyper) for the cloudlet and the peers at IP addresses, the
//! general client ([`ReqwestTransport`]) for everything else (host names,
//! resolved with its pure-Rust resolver; HTTPS).
//!
//! Every user request the agent proxies makes at least one call here, so
//! the per-call cost counts (issue 17): the request goes to hyper as it
//! is (no URL re-parsing, header map moved, not copied), the answer's body
//! is collected into one buffer, and the whole call is bounded by one
//! timer.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use os_client::{HttpRequest, HttpResponse, ReqwestTransport, Transport, TransportError};

/// Idle keep-alive connections kept per host (the agent's fan-outs open
/// many calls to one cloudlet at once).
const IDLE_PER_HOST: usize = 1024;

/// See the module documentation.
#[derive(Clone)]
pub struct AgentTransport {
    direct: Client<HttpConnector, Full<Bytes>>,
    general: ReqwestTransport,
    timeout: Duration,
}

impl AgentTransport {
    /// `timeout` bounds each call from send to last body byte.
    pub fn new(timeout: Duration) -> Result<Self, TransportError> {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let direct = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .build(conn);
        Ok(Self {
            direct,
            general: ReqwestTransport::new(timeout)?,
            timeout,
        })
    }
}

/// Whether `req` goes to plain HTTP at an IP address (no name to resolve).
fn is_direct(req: &HttpRequest) -> bool {
    let uri = req.uri();
    uri.scheme_str() == Some("http")
        && uri.host().is_some_and(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
        })
}

impl Transport for AgentTransport {
    fn call(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, TransportError>> {
        if !is_direct(&req) {
            return self.general.call(req);
        }
        let client = self.direct.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            // For the error only (a `Uri` clone shares its bytes).
            let uri = req.uri().clone();
            let call = async {
                let (parts, body) = req.into_parts();
                let resp = client
                    .request(http::Request::from_parts(parts, Full::new(body)))
                    .await
                    .map_err(|e| {
                        if e.is_connect() {
                            TransportError::Connect(uri.to_string())
                        } else {
                            TransportError::Other(e.to_string())
                        }
                    })?;
                let (parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| TransportError::Other(e.to_string()))?
                    .to_bytes();
                Ok(http::Response::from_parts(parts, bytes))
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout(timeout)),
            }
        })
    }
}
