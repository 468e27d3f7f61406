//! The agent's accept loop with connection hygiene: slow or idle clients
//! and descriptor exhaustion must not starve the agent unseen.
//!
//! - Each request head (and the idle wait for the next one on a kept-alive
//!   connection) must arrive within [`ConnLimits::header_read`] (hyper's
//!   header read timer runs whenever a connection waits for a head).
//! - A request body must arrive within [`ConnLimits::body_read`] (408).
//! - Beyond [`ConnLimits::max_connections`] open connections, a new one is
//!   answered 503 (in the envelope of the service its request line names,
//!   `Retry-After: 1`) and closed.
//! - Refused connections and `accept()` failures are counted
//!   ([`ConnStats`]); the agent publishes "saturated" to gossip while they
//!   grow or while the open connections are near the cap, and peers stop
//!   placing boots on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

/// Limits of the agent's HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(30),
            body_read: Duration::from_secs(30),
            // Every user request may open calls to the cloudlet and to
            // peers: half the descriptors for incoming connections.
            max_connections: connection_cap(0.5),
        }
    }
}

/// The soft limit on open files of this process (Linux `/proc`).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `share` of the descriptor limit, minus a reserve, at least 64; 10,000
/// when the limit cannot be read.
pub fn connection_cap(share: f64) -> usize {
    match open_files_limit() {
        Some(n) => ((n as f64 * share) as usize).saturating_sub(32).max(64),
        None => 10_000,
    }
}

/// Connection counters, shared with `/metrics` and the capacity reports.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub open: AtomicU64,
    pub refused: AtomicU64,
    pub accept_failures: AtomicU64,
    /// `max_connections` of the running server (0 before it starts).
    pub cap: AtomicU64,
    /// (refused + accept failures) at the last [`ConnStats::pressure`].
    last_trouble: AtomicU64,
}

impl ConnStats {
    /// True when connections were refused or `accept()` failed since the
    /// last call, or when the open connections are at 90 % of the cap.
    pub fn pressure(&self) -> bool {
        let trouble =
            self.refused.load(Ordering::Relaxed) + self.accept_failures.load(Ordering::Relaxed);
        let before = self.last_trouble.swap(trouble, Ordering::Relaxed);
        let cap = self.cap.load(Ordering::Relaxed);
        let open = self.open.load(Ordering::Relaxed);
        trouble > before || (cap > 0 && open * 10 >= cap * 9)
    }
}

struct Open(Arc<ConnStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

const MAX_REFUSING: usize = 64;

fn service_of(path: &str) -> os_wire::Service {
    use os_wire::Service;
    match path.trim_start_matches('/').split('/').next().unwrap_or("") {
        "compute" => Service::Compute,
        "image" => Service::Image,
        "network" => Service::Network,
        "identity" => Service::Identity,
        _ => Service::Control,
    }
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("/compute");
    let body = os_wire::ApiError::new(
        service_of(path),
        http::StatusCode::SERVICE_UNAVAILABLE,
        "Too many open connections; retry later.",
    )
    .body()
    .to_string();
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Reads the whole body within `limit` (408 otherwise) before the
/// handlers run.
pub async fn body_deadline(limit: Duration, req: Request, next: Next) -> Response {
    let service = service_of(req.uri().path());
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => envelope(
            service,
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than {BODY_LIMIT} bytes."),
        ),
        Err(_) => envelope(
            service,
            http::StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.".into(),
        ),
    }
}

/// Largest request body the agent reads (1 MiB, as the mock).
pub const BODY_LIMIT: usize = 1 << 20;

fn envelope(service: os_wire::Service, status: http::StatusCode, msg: String) -> Response {
    let e = os_wire::ApiError::new(service, status, msg);
    let mut r = (status, e.body().to_string()).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Accept loop; every connection task lives in a `JoinSet` owned by this
/// task, so aborting it drops every connection at once.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
) {
    stats
        .cap
        .store(limits.max_connections as u64, Ordering::Relaxed);
    let body_read = limits.body_read;
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        body_deadline(body_read, req, next)
    }));
    let mut conns = tokio::task::JoinSet::new();
    let mut refusing = tokio::task::JoinSet::new();
    let svc = hyper_util::service::TowerToHyperService::new(router);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // e.g. EMFILE under a large burst: back off
                        // instead of spinning on the same error.
                        stats.accept_failures.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if stats.open.load(Ordering::Relaxed) >= limits.max_connections as u64 {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    if refusing.len() < MAX_REFUSING {
                        refusing.spawn(refuse(stream));
                    }
                    continue;
                }
                stats.open.fetch_add(1, Ordering::Relaxed);
                let guard = Open(stats.clone());
                let _ = stream.set_nodelay(true);
                let svc = svc.clone();
                conns.spawn(async move {
                    let _guard = guard;
                    // The protocol sniffing of `auto` waits for the first
                    // bytes with no timer of its own: bound it here.
                    if tokio::time::timeout(limits.header_read, stream.peek(&mut [0u8; 1]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let io = TokioIo::new(stream);
                    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read);
                    builder
                        .http2()
                        .timer(TokioTimer::new())
                        .keep_alive_interval(Some(limits.header_read))
                        .keep_alive_timeout(limits.header_read);
                    let _ = builder.serve_connection(io, svc).await;
                });
            }
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
        }
    }
    refusing.abort_all();
    conns.shutdown().await;
}
