//! wiremock fakes of a cloudlet: a Keystone that issues tokens whose
//! catalog points compute and placement (and, optionally, more) at the fake
//! itself, for clients that talk to one cloudlet.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The catalog of a DevStack-style endpoint at `base` for `services`
/// (`compute`, `placement`, `image`, `network`, `identity`).
pub fn catalog(base: &str, services: &[&str]) -> Value {
    let url = |svc: &str| match svc {
        "compute" => format!("{base}/compute/v2.1"),
        "identity" => format!("{base}/identity/v3"),
        other => format!("{base}/{other}"),
    };
    Value::Array(
        services
            .iter()
            .map(|svc| {
                json!({"type": svc, "endpoints": [{"interface": "public",
                    "region": "RegionOne", "region_id": "RegionOne", "url": url(svc)}]})
            })
            .collect(),
    )
}

/// Keystone's 201 for a token `tok` scoped to project `demo`, with a
/// compute + placement catalog at `base` and a far expiry.
pub fn token_response(base: &str, tok: &str) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .insert_header("x-subject-token", tok)
        .set_body_json(json!({"token": {
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "project": {"id": "pid", "name": "demo"},
            "catalog": catalog(base, &["compute", "placement"]),
        }}))
}

/// A fake cloudlet whose Keystone issues `tok` to every password request.
pub async fn cloudlet_with_token(tok: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(token_response(&server.uri(), tok))
        .mount(&server)
        .await;
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_issues_a_token_with_its_own_catalog() {
        let server = cloudlet_with_token("tok-1").await;
        let addr = server.address();
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nconnection: close\r\n\r\n{}")
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
        assert!(out.to_ascii_lowercase().contains("x-subject-token: tok-1"));
        assert!(
            out.contains(&format!("{}/compute/v2.1", server.uri())),
            "{out}"
        );
    }
}
