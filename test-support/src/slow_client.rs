//! Raw-TCP probes of a server's connection handling: a client that stops in
//! the middle of its request head, one whose announced body never arrives,
//! and the reading of what the server answered.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects and sends half a request head, then nothing.
pub async fn half_head(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /compute/v2.1/servers HT")
        .await
        .expect("write");
    s
}

/// Connects and sends a full head announcing 1,000 bytes of JSON body, then
/// one byte of it.
pub async fn slow_body(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .expect("write");
    s
}

/// Reads until the server closes or `limit` passes: (closed, what arrived).
pub async fn read_all(mut s: TcpStream, limit: Duration) -> (bool, String) {
    let mut out = vec![];
    let done = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    (done.is_ok(), String::from_utf8_lossy(&out).into_owned())
}

/// The `code` inside an OpenStack error envelope (`{"<name>": {"code": N,
/// …}}`) of a raw HTTP answer, if the body is one.
pub fn envelope_code(answer: &str) -> Option<u64> {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).ok()?;
    v.as_object()?.values().next()?.get("code")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_code_reads_the_inner_code() {
        let a = "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n\r\n{\"computeFault\":{\"code\":408,\"message\":\"x\"}}";
        assert_eq!(envelope_code(a), Some(408));
        assert_eq!(envelope_code("HTTP/1.1 408\r\n\r\nplain"), None);
        assert_eq!(envelope_code(""), None);
    }
}
