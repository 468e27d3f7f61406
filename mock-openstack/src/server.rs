//! The socket side: bind, accept, one task per connection, graceful
//! shutdown or abrupt abort.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::MockConfig;
use crate::error::MockError;
use crate::state::State;

/// A running mock deployment.
pub struct MockHandle {
    addr: SocketAddr,
    base_url: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MockHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Keystone's URL: `base_url + "/identity"`.
    pub fn auth_url(&self) -> String {
        format!("{}/identity", self.base_url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (at most 10 s).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            // A client that never finishes its request must not keep the
            // mock alive after shutdown.
            abort.abort();
        }
    }

    /// Kills the listener and every open connection at once (the cloudlet
    /// is lost): new connections are refused afterwards.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Connection hygiene: slow or idle clients and descriptor exhaustion must
/// not take the server down unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Each request's headers, and the idle wait for the next request on a
    /// kept-alive connection, must arrive within this (hyper's header read
    /// timer runs whenever the connection waits for a request head).
    pub header_read: Duration,
    /// Open connections beyond this are answered 503 (in the service's
    /// error envelope, `Retry-After: 1`) and closed.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(30),
            max_connections: connection_cap(0.9),
        }
    }
}

/// The soft limit on open files of this process (Linux `/proc`).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A connection cap that keeps `share` of the descriptor limit for
/// connections (the rest for listeners, outbound calls, files), at least
/// 64; 10,000 when the limit cannot be read.
pub fn connection_cap(share: f64) -> usize {
    match open_files_limit() {
        Some(n) => ((n as f64 * share) as usize).saturating_sub(32).max(64),
        None => 10_000,
    }
}

/// Refusals being written at most at once (beyond: dropped at once).
const MAX_REFUSING: usize = 64;

/// Answers one connection beyond the cap: 503 in the envelope of the
/// service its request line names, then close.
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
    let service = crate::error::service_for_path(path);
    let body = os_wire::ApiError::new(
        service,
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
        // Drain what the client still sends, so closing does not reset
        // the connection before it reads the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Binds `config.listen` (port 0 = a free port) and serves the mock.
pub async fn start(config: MockConfig) -> Result<MockHandle, MockError> {
    start_with_limits(config, ConnLimits::default()).await
}

/// [`start`] with explicit connection limits.
pub async fn start_with_limits(
    config: MockConfig,
    limits: ConnLimits,
) -> Result<MockHandle, MockError> {
    let st = crate::new_state(config.clone())?;
    let app = crate::edge_with_state(st.clone());
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| MockError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, app, rx, st, limits));
    tracing::info!(%addr, name = %config.name, max_connections = limits.max_connections, "mock-openstack listening");
    Ok(MockHandle {
        addr,
        base_url: format!("http://{addr}"),
        shutdown: tx,
        task,
    })
}

/// Counts one open connection for as long as it lives.
struct Open(Arc<State>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    listener: TcpListener,
    app: crate::edge::Edge,
    mut shutdown: watch::Receiver<bool>,
    st: Arc<State>,
    limits: ConnLimits,
) {
    // Connection tasks live in this set: aborting the serve task drops the
    // set, which aborts every connection too.
    let mut conns = JoinSet::new();
    let mut refusing = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let open = st.metrics.connections.load(Ordering::Relaxed);
                    if open >= limits.max_connections as u64 {
                        st.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        if refusing.len() < MAX_REFUSING {
                            refusing.spawn(refuse(stream));
                        }
                        continue;
                    }
                    st.metrics.connections.fetch_add(1, Ordering::Relaxed);
                    let guard = Open(st.clone());
                    let _ = stream.set_nodelay(true);
                    let svc = TowerToHyperService::new(app.clone());
                    let mut stop = shutdown.clone();
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
                        let mut builder = auto::Builder::new(TokioExecutor::new());
                        // Slowloris and idle guard: each request head (and
                        // the wait for it) within `header_read`.
                        builder
                            .http1()
                            .timer(TokioTimer::new())
                            .header_read_timeout(limits.header_read);
                        builder
                            .http2()
                            .timer(TokioTimer::new())
                            .keep_alive_interval(Some(limits.header_read))
                            .keep_alive_timeout(limits.header_read);
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    st.metrics.accept_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    refusing.abort_all();
    while conns.join_next().await.is_some() {}
}
