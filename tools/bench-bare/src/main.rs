//! `bench-bare`: the baseline for `scripts/bench-mock.sh`. A hyper server
//! with nothing but the HTTP work: every request, whatever its method and
//! path, is answered `200 application/json` with the bytes of one file (the
//! script saves the mock's own answer to the request it benchmarks, so both
//! servers send the same body). Same runtime and connection builder as the
//! mock (multi-thread tokio, hyper-util `auto`, `TCP_NODELAY`), so the
//! difference between the two is the mock's own work.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// A bare hyper server answering every request with one fixed body.
#[derive(Debug, Parser)]
#[command(name = "bench-bare", version)]
struct Cli {
    /// Address to bind (port 0 picks a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The response body, sent as application/json.
    #[arg(long, value_name = "FILE")]
    body: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let body = Bytes::from(
        std::fs::read(&cli.body).with_context(|| format!("cannot read {}", cli.body.display()))?,
    );
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot bind {}", cli.listen))?;
    println!("bench-bare listening on http://{}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. out of descriptors: back off rather than spin.
                        eprintln!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let body = body.clone();
                        async move {
                            let mut resp = Response::new(Full::new(body));
                            resp.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
