//! The socket side: port 0, slow clients do not block others, graceful
//! shutdown and abrupt abort.

use std::time::Duration;

use mock_openstack::{start, MockConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn cfg() -> MockConfig {
    MockConfig {
        listen: "127.0.0.1:0".into(),
        ..MockConfig::default()
    }
}

/// One HTTP/1.1 GET with `Connection: close`; returns the raw response.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test]
async fn binds_a_free_port_and_serves() {
    let mock = start(cfg()).await.expect("start");
    assert_ne!(mock.addr().port(), 0);
    assert_eq!(mock.base_url(), format!("http://{}", mock.addr()));
    assert_eq!(mock.auth_url(), format!("http://{}/identity", mock.addr()));
    let resp = raw_get(mock.addr(), "/identity").await.expect("get");
    assert!(resp.starts_with("HTTP/1.1 300"), "{resp}");
    assert!(
        resp.contains(&format!("http://{}/identity/v3/", mock.addr())),
        "catalog from Host"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn a_slow_client_does_not_block_others() {
    let mock = start(cfg()).await.expect("start");
    // Half a request line, then silence; and a body that never finishes.
    let mut slow = TcpStream::connect(mock.addr()).await.expect("connect");
    slow.write_all(b"GET /identity HT").await.expect("write");
    let mut slow_body = TcpStream::connect(mock.addr()).await.expect("connect");
    slow_body
        .write_all(
            b"POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .expect("write");
    let fast = tokio::time::timeout(
        Duration::from_secs(2),
        raw_get(mock.addr(), "/mock/v1/info"),
    )
    .await
    .expect("not blocked")
    .expect("get");
    assert!(fast.starts_with("HTTP/1.1 200"), "{fast}");
    drop((slow, slow_body));
    mock.shutdown().await;
}

#[tokio::test]
async fn abort_refuses_new_connections_and_drops_open_ones() {
    let mock = start(cfg()).await.expect("start");
    let addr = mock.addr();
    let mut open = TcpStream::connect(addr).await.expect("connect");
    open.write_all(format!("GET /mock/v1/info HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = open.read(&mut buf).await.expect("read");
    assert!(n > 0);
    mock.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener must be gone"
    );
    // The kept-alive connection is closed too (EOF or reset).
    let r = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}

#[tokio::test]
async fn graceful_shutdown_closes_the_listener() {
    let mock = start(cfg()).await.expect("start");
    let addr = mock.addr();
    assert!(raw_get(addr, "/mock/v1/info").await.is_ok());
    tokio::time::timeout(Duration::from_secs(5), mock.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(TcpStream::connect(addr).await.is_err());
}
