//! Issue 12, item 7, on the mock: a client that stops in the middle of its
//! request head is disconnected after the header read timeout, and one
//! whose body does not arrive gets 408 in the service's error envelope
//! after `BODY_READ_TIMEOUT` (30 s: this test takes that long).

use std::time::{Duration, Instant};

use mock_openstack::{start_with_limits, ConnLimits, MockConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The mock's body read timeout (`http::BODY_READ_TIMEOUT`, not public).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

async fn read_all(mut s: TcpStream, limit: Duration) -> (bool, String) {
    let mut out = vec![];
    let done = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    (done.is_ok(), String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn slow_heads_are_closed_and_slow_bodies_get_408() {
    let limits = ConnLimits {
        header_read: Duration::from_millis(500),
        max_connections: 16,
    };
    let cfg = MockConfig {
        listen: "127.0.0.1:0".into(),
        ..MockConfig::default()
    };
    let mock = start_with_limits(cfg, limits).await.expect("start");
    let mut half = TcpStream::connect(mock.addr()).await.expect("connect");
    half.write_all(b"POST /compute/v2.1/servers HT")
        .await
        .expect("write");
    let mut slow = TcpStream::connect(mock.addr()).await.expect("connect");
    slow.write_all(
        b"POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .expect("write");
    let t0 = Instant::now();
    let (closed, answer) = read_all(half, Duration::from_secs(5)).await;
    assert!(closed, "half a head: connection left open");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let limit = BODY_READ_TIMEOUT + Duration::from_secs(5);
    let (_, answer) = read_all(slow, limit).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "slow body: {answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let inner = v.as_object().and_then(|o| o.values().next()).cloned();
    assert_eq!(
        inner.and_then(|i| i["code"].as_u64()),
        Some(408),
        "{answer}"
    );
    assert!(t0.elapsed() < limit, "{:?}", t0.elapsed());
    mock.shutdown().await;
}
