//! The socket side: bind, accept, one task per connection, graceful
//! shutdown or abrupt abort.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::MockConfig;
use crate::error::MockError;

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

/// Binds `config.listen` (port 0 = a free port) and serves the mock.
pub async fn start(config: MockConfig) -> Result<MockHandle, MockError> {
    let app = crate::router(config.clone())?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| MockError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, app, rx));
    tracing::info!(%addr, name = %config.name, "mock-openstack listening");
    Ok(MockHandle {
        addr,
        base_url: format!("http://{addr}"),
        shutdown: tx,
        task,
    })
}

async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    // Connection tasks live in this set: aborting the serve task drops the
    // set, which aborts every connection too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let svc = TowerToHyperService::new(app.clone());
                    let mut stop = shutdown.clone();
                    conns.spawn(async move {
                        let mut builder = auto::Builder::new(TokioExecutor::new());
                        // Slowloris guard: headers must arrive within 30 s.
                        builder
                            .http1()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(30));
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
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
