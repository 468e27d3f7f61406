//! Issue 12, item 7, on the mock: a client that stops in the middle of its
//! request head is disconnected after the header read timeout, and one
//! whose body does not arrive gets 408 in the service's error envelope
//! after `BODY_READ_TIMEOUT` (30 s: this test takes that long).

use std::time::{Duration, Instant};

use mock_openstack::{start_with_limits, ConnLimits, MockConfig};
use test_support::slow_client::{envelope_code, half_head, read_all, slow_body};

/// The mock's body read timeout (`http::BODY_READ_TIMEOUT`, not public).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    let half = half_head(mock.addr()).await;
    let slow = slow_body(mock.addr()).await;
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
    assert_eq!(envelope_code(&answer), Some(408), "{answer}");
    assert!(t0.elapsed() < limit, "{:?}", t0.elapsed());
    mock.shutdown().await;
}
