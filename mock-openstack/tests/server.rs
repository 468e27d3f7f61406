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

#[tokio::test]
async fn bad_listen_address_is_a_typed_error() {
    let err = start(MockConfig {
        listen: "256.0.0.1:99999".into(),
        ..MockConfig::default()
    })
    .await
    .err()
    .expect("must fail");
    assert!(
        matches!(err, mock_openstack::MockError::Bind { .. }),
        "{err}"
    );
    let err = start(MockConfig {
        time_scale: f64::NAN,
        ..cfg()
    })
    .await
    .err()
    .expect("must fail");
    assert!(matches!(err, mock_openstack::MockError::Config(_)), "{err}");
}

/// The binary: flags and TOML, the printed URL, and a clouds.yaml whose
/// auth_url has the real port.
#[tokio::test]
async fn binary_prints_url_and_writes_clouds_yaml() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = dir.path().join("mock.toml");
    std::fs::write(&toml, "name = \"edge7\"\ncomputes = 3\nseed = 7\n").expect("toml");
    let clouds = dir.path().join("clouds.yaml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-openstack"))
        .arg("--config")
        .arg(&toml)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "0.5",
            "--clouds-yaml",
        ])
        .arg(&clouds)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("prints in time")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("mock-openstack listening on ")
        .expect("the URL line")
        .to_string();
    let yaml = std::fs::read_to_string(&clouds).expect("clouds.yaml");
    assert!(
        yaml.contains("\"edge7\":") && yaml.contains("\"edge7-demo\":"),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("auth_url: \"{url}/identity\"")),
        "{yaml}"
    );
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("addr");
    let info = raw_get(addr, "/mock/v1/info").await.expect("info");
    assert!(
        info.contains("\"computes\":3") && info.contains("\"time_scale\":0.5"),
        "{info}"
    );
    assert!(info.contains("\"name\":\"edge7\""), "{info}");
    child.kill().await.expect("kill");
}

/// `--time-scale 0` (and a missing profile) fail at start with one clear line.
#[test]
fn binary_rejects_a_zero_time_scale_and_unknown_profiles() {
    for (args, want) in [
        (
            ["--time-scale", "0"],
            "time_scale must be a finite number > 0",
        ),
        (["--profile", "no-such-profile"], "unknown profile"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mock-openstack"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Issue 12, item 7: beyond the connection cap a client gets a 503 in the
/// envelope at once; idle connections are closed after the header read
/// timeout, which frees room again.
#[tokio::test]
async fn connection_cap_answers_503_and_idle_connections_are_closed() {
    let limits = mock_openstack::ConnLimits {
        header_read: Duration::from_secs(1),
        max_connections: 4,
    };
    let mock = mock_openstack::start_with_limits(cfg(), limits)
        .await
        .expect("start");
    let mut idle = vec![];
    for _ in 0..4 {
        idle.push(TcpStream::connect(mock.addr()).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(3),
        raw_get(mock.addr(), "/compute/v2.1/flavors"),
    )
    .await
    .expect("refusal is prompt")
    .expect("get");
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("serviceUnavailable"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 1"),
        "{resp}"
    );
    // The idle ones are closed by the server after ~1 s.
    for mut s in idle {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("idle connection closed by the server");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = raw_get(mock.addr(), "/mock/v1/info").await.expect("get");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // A kept-alive connection that goes idle after a request is closed too.
    let mut ka = TcpStream::connect(mock.addr()).await.expect("connect");
    ka.write_all(b"GET /mock/v1/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 8192];
    let n = ka.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ka.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle keep-alive connection never closed");
    let metrics = raw_get(mock.addr(), "/metrics").await.expect("get");
    assert!(
        metrics.contains("mock_openstack_connections_refused_total 1"),
        "{metrics}"
    );
    mock.shutdown().await;
}
