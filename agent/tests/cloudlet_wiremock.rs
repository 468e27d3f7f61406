//! The agent's calls to its own cloudlet, against wiremock: token caching,
//! re-authentication after 401, capacity from Placement, error and
//! timeout paths.

use std::sync::Arc;
use std::time::Duration;

use agent::cloudlet::{CloudletClient, ProjectRef, Svc};
use agent::{AgentConfig, CallError};
use http::Method;
use os_client::{ReqwestTransport, TransportError};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn token_response(base: &str, tok: &str) -> ResponseTemplate {
    let catalog = json!([
        {"type": "compute", "endpoints": [{"interface": "public", "region_id": "RegionOne", "url": format!("{base}/compute/v2.1")}]},
        {"type": "placement", "endpoints": [{"interface": "public", "region_id": "RegionOne", "url": format!("{base}/placement")}]},
    ]);
    ResponseTemplate::new(201)
        .insert_header("x-subject-token", tok)
        .set_body_json(
            json!({"token": {"expires_at": "2099-01-01T00:00:00.000000Z",
            "project": {"id": "pid", "name": "demo"}, "catalog": catalog}}),
        )
}

fn client(server: &MockServer, timeout_ms: u64) -> CloudletClient {
    let cfg = AgentConfig {
        cloudlet_auth_url: format!("{}/identity", server.uri()),
        request_timeout_ms: timeout_ms,
        ..Default::default()
    };
    CloudletClient::new(
        &cfg,
        Arc::new(ReqwestTransport::new(Duration::from_secs(5)).unwrap()),
    )
}

fn demo() -> ProjectRef {
    ProjectRef {
        name: "demo".into(),
        domain: "Default".into(),
    }
}

#[tokio::test]
async fn token_is_cached_and_renewed_after_401() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .and(body_string_contains("\"demo\""))
        .respond_with(token_response(&server.uri(), "tok-1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(token_response(&server.uri(), "tok-2"))
        .mount(&server)
        .await;
    // tok-1 is refused by Nova (e.g. revoked), tok-2 is fine.
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors"))
        .and(header("x-auth-token", "tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors"))
        .and(header("x-auth-token", "tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"flavors": []})))
        .mount(&server)
        .await;
    let c = client(&server, 2_000);
    let v = c
        .get_json(&demo(), Svc::Compute, "/flavors", "req-1")
        .await
        .unwrap();
    assert_eq!(v, json!({"flavors": []}));
    // Cached now: one more call makes no new token request.
    c.get_json(&demo(), Svc::Compute, "/flavors", "")
        .await
        .unwrap();
    let posts = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn errors_carry_the_openstack_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(token_response(&server.uri(), "t"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"forbidden": {"code": 403,
            "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}})))
        .mount(&server)
        .await;
    let c = client(&server, 2_000);
    let r = c
        .call(
            &demo(),
            Svc::Compute,
            Method::POST,
            "/servers",
            Some(bytes::Bytes::from("{}")),
            "",
        )
        .await
        .unwrap();
    let e = agent::cloudlet::json_of(&r).unwrap_err();
    match e {
        CallError::Status { status, message } => {
            assert_eq!(status, 403);
            assert!(message.starts_with("Quota exceeded"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_service_credentials_and_garbage_are_errors_not_panics() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"code": 401, "title": "Unauthorized", "message": "bad password"}}),
        ))
        .mount(&server)
        .await;
    let c = client(&server, 2_000);
    let e = c.token_for(&demo()).await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    let garbage = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string("<html>"))
        .mount(&garbage)
        .await;
    let e = client(&garbage, 2_000)
        .token_for(&demo())
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::BadResponse(_)), "{e:?}");
}

#[tokio::test]
async fn slow_cloudlet_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(token_response(&server.uri(), "t").set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let c = client(&server, 200);
    let t0 = std::time::Instant::now();
    let e = c.token_for(&demo()).await.unwrap_err();
    assert!(
        matches!(e, CallError::Transport(TransportError::Timeout(_))),
        "{e:?}"
    );
    assert!(e.is_unreachable());
    assert!(t0.elapsed() < Duration::from_millis(700));
}

#[tokio::test]
async fn dead_cloudlet_is_unreachable() {
    let c = {
        let cfg = AgentConfig {
            cloudlet_auth_url: "http://127.0.0.1:1/identity".into(),
            ..Default::default()
        };
        CloudletClient::new(
            &cfg,
            Arc::new(ReqwestTransport::new(Duration::from_secs(2)).unwrap()),
        )
    };
    let e = c.capacity().await.unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
}

#[tokio::test]
async fn capacity_from_placement() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(token_response(&server.uri(), "t"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/placement/resource_providers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resource_providers": [{"uuid": "rp1"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/placement/resource_providers/rp1/inventories"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"inventories": {
            "VCPU": {"total": 8, "reserved": 0, "allocation_ratio": 2.0},
            "MEMORY_MB": {"total": 4096, "reserved": 512, "allocation_ratio": 1.0},
            "DISK_GB": {"total": 100, "reserved": 0, "allocation_ratio": 1.0}}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/placement/resource_providers/rp1/usages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"usages": {"VCPU": 3, "MEMORY_MB": 1024, "DISK_GB": 10}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/detail"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"servers": [{"id": "x"}, {"id": "y"}]})),
        )
        .mount(&server)
        .await;
    let cap = client(&server, 2_000).capacity().await.unwrap();
    assert_eq!(cap.free_vcpus, 13);
    assert_eq!(cap.total_vcpus, 16);
    assert_eq!(cap.free_ram_mb, 2560);
    assert_eq!(cap.free_disk_gb, 90);
    assert_eq!(cap.builds_in_flight, 2);
}
