//! HTTP edge cases against wiremock: 401 then re-auth, 503, 413 with
//! Retry-After, malformed bodies, pagination with a marker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use os_client::compute::{self, CreateServer};
use os_client::{
    ClientError, Credentials, OpenStackSession, ReqwestTransport, RetryPolicy, SharedTransport,
};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn token_body(base: &str) -> serde_json::Value {
    json!({"token": {
    "methods": ["password"], "expires_at": "2099-01-01T00:00:00Z",
    "project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
    "user": {"id": "u1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
    "roles": [{"id": "r", "name": "member"}],
    "catalog": [
        {"type": "compute", "name": "nova", "endpoints": [
            {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": format!("{base}/compute/v2.1")}]},
    ]}})
}

async fn auth_mock(server: &MockServer, token: &str, times: Option<u64>) {
    let m = Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", token)
                .set_body_json(token_body(&server.uri())),
        );
    let m = match times {
        Some(n) => m.up_to_n_times(n),
        None => m,
    };
    m.mount(server).await;
}

fn transport() -> SharedTransport {
    Arc::new(ReqwestTransport::new(Duration::from_secs(5)).unwrap())
}

fn creds(server: &MockServer) -> Credentials {
    Credentials::password(
        format!("{}/identity", server.uri()),
        "demo",
        "secret",
        "demo",
    )
}

#[tokio::test]
async fn reauthenticates_once_after_401() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", Some(1)).await;
    auth_mock(&server, "t2", None).await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/abc"))
        .and(header("x-auth-token", "t1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": 401, "title": "Unauthorized", "message": "expired"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/abc"))
        .and(header("x-auth-token", "t2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"server": {"id": "abc", "status": "ACTIVE"}})),
        )
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    let v = compute::get_server(&s, "abc").await.unwrap();
    assert_eq!(v.status, "ACTIVE");
    assert_eq!(s.token().value, "t2");
}

#[tokio::test]
async fn persistent_401_is_reported_after_one_reauth() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", None).await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/abc"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    let e = compute::get_server(&s, "abc").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
        ))
        .mount(&server)
        .await;
    let e = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("requires authentication"));
}

#[tokio::test]
async fn service_unavailable_is_reported_with_its_message() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", None).await;
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(
            ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
        )
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    let req = CreateServer {
        name: "x".into(),
        image_ref: "i".into(),
        flavor_ref: "1".into(),
        networks: vec![],
        metadata: Default::default(),
    };
    let e = compute::create_server(&s, &req).await.unwrap_err();
    match e {
        ClientError::Api {
            status, message, ..
        } => {
            assert_eq!(status, 503);
            assert!(message.contains("Service Unavailable"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn over_limit_413_carries_retry_after_and_is_retried_when_asked() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", None).await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/abc"))
        .respond_with(
            ResponseTemplate::new(413)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"overLimit": {"code": 413, "message": "This request was rate-limited.", "retryAfter": "1"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/abc"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"server": {"id": "abc", "status": "BUILD"}})),
        )
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    // Without retries: the 413 and its Retry-After are reported.
    let e = compute::get_server(&s, "abc").await.unwrap_err();
    assert_eq!(
        e,
        ClientError::Api {
            status: 413,
            message: "This request was rate-limited.".into(),
            retry_after: Some(Duration::from_secs(1))
        }
    );
    // Same again with a retry policy: waits Retry-After (capped), then succeeds.
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/def"))
        .respond_with(ResponseTemplate::new(413).insert_header("Retry-After", "30"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/def"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"server": {"id": "def", "status": "ACTIVE"}})),
        )
        .mount(&server)
        .await;
    let policy = RetryPolicy {
        max_retries: 2,
        default_wait: Duration::from_millis(10),
        max_wait: Duration::from_millis(200),
    };
    let t0 = Instant::now();
    let v = compute::get_server_with(&s, "def", policy).await.unwrap();
    assert_eq!(v.status, "ACTIVE");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn malformed_bodies_are_errors_not_panics() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", None).await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/trunc"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"server\": {\"id\": "))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/nostatus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"server": {"id": 7}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"nothing": true})))
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    for id in ["trunc", "nostatus"] {
        let e = compute::get_server(&s, id).await.unwrap_err();
        assert!(matches!(e, ClientError::Malformed { .. }), "{id}: {e:?}");
    }
    let req = CreateServer {
        name: "x".into(),
        image_ref: "i".into(),
        flavor_ref: "1".into(),
        networks: vec![],
        metadata: Default::default(),
    };
    assert!(matches!(
        compute::create_server(&s, &req).await.unwrap_err(),
        ClientError::Malformed { .. }
    ));
    // A token answer without the header, and one that is not JSON.
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_string("not json"))
        .mount(&bad)
        .await;
    let e = OpenStackSession::connect(transport(), creds(&bad))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Malformed { .. }), "{e:?}");
}

#[tokio::test]
async fn list_servers_follows_the_marker() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", None).await;
    let link = |m: &str| json!([{"rel": "next", "href": format!("{}/compute/v2.1/servers?limit=2&marker={m}", server.uri())}]);
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers"))
        .and(query_param("marker", "b"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"servers": [{"id": "c", "name": "c"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers"))
        .and(query_param("limit", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"servers": [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}], "servers_links": link("b")}),
        ))
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    let all = compute::list_servers(&s, 2, false).await.unwrap();
    let ids: Vec<_> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn missing_compute_service_is_named() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", "t")
                .set_body_json(json!({"token": {"catalog": []}})),
        )
        .mount(&server)
        .await;
    let s = OpenStackSession::connect(transport(), creds(&server))
        .await
        .unwrap();
    let e = s.endpoint("compute").unwrap_err();
    assert!(e.to_string().contains("compute"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_seeing_401_cause_one_reauth() {
    let server = MockServer::start().await;
    auth_mock(&server, "t1", Some(1)).await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", "t2")
                .set_body_json(token_body(&server.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("x-auth-token", "t1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("x-auth-token", "t2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"server": {"id": "x", "status": "ACTIVE"}})),
        )
        .mount(&server)
        .await;
    let s = Arc::new(
        OpenStackSession::connect(transport(), creds(&server))
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { compute::get_server(&s, &format!("id{i}")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, "ACTIVE");
    }
    // `expect(1)` on the second auth is verified when `server` drops.
}
