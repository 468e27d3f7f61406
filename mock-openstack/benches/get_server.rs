//! Authenticated `GET /compute/v2.1/servers/{id}` through the router,
//! in-process (no socket). Target: < 20 µs per request.

use axum::body::Body;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mock_openstack::{router, MockConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (app, token, uri) = rt.block_on(async {
        // Every call passes the engine's API stage (devstack: 1 ms model for
        // a GET); at this time scale that is 1 ns of wall time, so the bench
        // measures the handler plus the round trip through the engine task.
        let app = router(MockConfig {
            time_scale: 1e-6,
            ..MockConfig::default()
        })
        .expect("router");
        let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
        let resp = app
            .clone()
            .oneshot(
                Request::post("/identity/v3/auth/tokens")
                    .body(Body::from(auth.to_string()))
                    .expect("req"),
            )
            .await
            .expect("auth");
        let token = resp.headers()["x-subject-token"]
            .to_str()
            .expect("token")
            .to_string();
        let boot = json!({"server": {"name": "bench", "flavorRef": "1",
            "imageRef": "5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a", "networks": "auto"}});
        let resp = app
            .clone()
            .oneshot(
                Request::post("/compute/v2.1/servers")
                    .header("x-auth-token", &token)
                    .body(Body::from(boot.to_string()))
                    .expect("req"),
            )
            .await
            .expect("boot");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        let id = v["server"]["id"].as_str().expect("id").to_string();
        // Let the (nanosecond) build finish so the full ACTIVE view is rendered.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        (app, token, format!("/compute/v2.1/servers/{id}"))
    });

    c.bench_function("GET /compute/v2.1/servers/{id} (in-process)", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get(uri.as_str())
                .header("host", "127.0.0.1:8080")
                .header("x-auth-token", token.as_str())
                .body(Body::empty())
                .expect("req");
            let resp = app.clone().oneshot(req).await.expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect().await.expect("body").to_bytes()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
