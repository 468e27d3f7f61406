//! The mock driven by the cp-model engine, end to end through the HTTP
//! router: time-scale invariance, determinism, faults through the admin
//! API, API-stage rejections, stats and metrics.

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use mock_openstack::{router, MockConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    body: Value,
    text: String,
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "mock.test");
    if let Some(t) = token {
        req = req.header("x-auth-token", t);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp { status, body, text }
}

async fn token(app: &Router, user: &str) -> String {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": user, "domain": {"id": "default"}}}}});
    let req = Request::builder()
        .method(Method::POST)
        .uri("/identity/v3/auth/tokens")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.headers()["x-subject-token"]
        .to_str()
        .expect("ascii")
        .to_string()
}

use test_support::fixtures::boot_body;

async fn boot(app: &Router, t: &str, name: &str) -> String {
    let r = call(
        app,
        Method::POST,
        "/compute/v2.1/servers",
        Some(t),
        Some(boot_body(name)),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["server"]["id"].as_str().expect("id").to_string()
}

async fn servers(app: &Router, t: &str) -> Vec<Value> {
    let r = call(
        app,
        Method::GET,
        "/compute/v2.1/servers/detail?all_tenants=1",
        Some(t),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["servers"].as_array().cloned().unwrap_or_default()
}

async fn server(app: &Router, t: &str, id: &str) -> Value {
    let r = call(
        app,
        Method::GET,
        &format!("/compute/v2.1/servers/{id}"),
        Some(t),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server"].clone()
}

fn unlimited(profile: &str, computes: u32, time_scale: f64, seed: u64) -> MockConfig {
    MockConfig {
        profile: profile.into(),
        computes,
        time_scale,
        seed,
        quota_instances: -1,
        quota_cores: -1,
        quota_ram_mb: -1,
        ..MockConfig::default()
    }
}

fn parse_usage(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .expect("launched_at")
        .and_utc()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// 30 concurrent boots of m1.tiny on openstack-2017 with 4 computes, on
/// real time; returns the sorted model-time boot durations (POST → the
/// server's `launched_at`, both in model time).
async fn boot_times(time_scale: f64) -> Vec<f64> {
    let app = router(unlimited("openstack-2017", 4, time_scale, 11)).expect("router");
    let t = token(&app, "admin").await;
    let info = call(&app, Method::GET, "/mock/v1/info", None, None)
        .await
        .body;
    let epoch: DateTime<Utc> = info["epoch"]
        .as_str()
        .expect("epoch")
        .parse()
        .expect("rfc3339");
    let posted_at = info["model_time_s"].as_f64().expect("model time");
    let posts = (0..30).map(|i| {
        let (app, t) = (app.clone(), t.clone());
        tokio::spawn(async move { boot(&app, &t, &format!("inv-{i}")).await })
    });
    for p in posts.collect::<Vec<_>>() {
        p.await.expect("post task");
    }
    // Poll every 2 model seconds until every boot ended.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_secs_f64(2.0 * time_scale)).await;
        let l = servers(&app, &t).await;
        if l.iter().all(|s| s["status"] != "BUILD") {
            let mut d: Vec<f64> = l
                .iter()
                .map(|s| {
                    assert_eq!(s["status"], "ACTIVE", "{s}");
                    let at = parse_usage(s["OS-SRV-USG:launched_at"].as_str().expect("launched"));
                    (at - epoch).num_microseconds().expect("µs") as f64 / 1e6 - posted_at
                })
                .collect();
            d.sort_by(f64::total_cmp);
            return d;
        }
    }
    panic!("boots did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_time_boot_percentiles_do_not_depend_on_the_time_scale() {
    let fast = boot_times(0.02).await;
    let slow = boot_times(0.1).await;
    let (f50, f90, s50, s90) = (
        pct(&fast, 0.5),
        pct(&fast, 0.9),
        pct(&slow, 0.5),
        pct(&slow, 0.9),
    );
    eprintln!("scale 0.02: p50 {f50:.2} p90 {f90:.2}; scale 0.1: p50 {s50:.2} p90 {s90:.2}");
    // Sanity: the calibrated profile boots in seconds, not milliseconds.
    assert!(f50 > 3.0 && f50 < 30.0, "p50 {f50}");
    for (a, b, what) in [(f50, s50, "p50"), (f90, s90, "p90")] {
        assert!(
            (a - b).abs() / b < 0.10,
            "{what}: {a:.2} at 0.02 vs {b:.2} at 0.1"
        );
    }
}

/// One boot at a time, on paused (virtual) tokio time, so every request
/// reaches the engine at the same model time in every run.
async fn outcomes(seed: u64) -> Vec<(String, String, String, String)> {
    let app = router(MockConfig {
        compute_vcpus: 1,
        cpu_allocation_ratio: 4.0,
        faults: serde_json::from_value(json!({
            "boot_errors": [{"name_regex": "^det-", "rate": 0.3}]
        }))
        .expect("faults"),
        ..unlimited("openstack-2017", 3, 1.0, seed)
    })
    .expect("router");
    let t = token(&app, "admin").await;
    for i in 0..16 {
        boot(&app, &t, &format!("det-{i:02}")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    let mut out: Vec<_> = servers(&app, &t)
        .await
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or("").to_string();
            (
                f("name"),
                f("status"),
                f("OS-EXT-SRV-ATTR:host"),
                s["fault"]["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_outcomes_and_hosts_through_the_mock() {
    let a = outcomes(7).await;
    let b = outcomes(7).await;
    assert_eq!(a.len(), 16);
    assert_eq!(a, b);
    // Capacity (3 × 4 vCPU) and the injected 30% error rate both show.
    let count = |st: &str| a.iter().filter(|o| o.1 == st).count();
    assert!(count("ACTIVE") > 0 && count("ERROR") > 0, "{a:?}");
    assert!(a.iter().any(|o| o.3.starts_with("Injected fault")), "{a:?}");
    assert!(a.iter().any(|o| o.3.starts_with("No valid host")), "{a:?}");
    let c = outcomes(8).await;
    assert_ne!(a, c, "another seed draws other errors");
}

#[tokio::test(start_paused = true)]
async fn fault_api_is_admin_only_and_validates() {
    let app = router(MockConfig::default()).expect("router");
    let r = call(&app, Method::GET, "/mock/v1/faults", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let demo = token(&app, "demo").await;
    for (m, uri, body) in [
        (Method::GET, "/mock/v1/faults", None),
        (Method::PUT, "/mock/v1/faults", Some(json!({}))),
        (
            Method::POST,
            "/mock/v1/faults/lose-node",
            Some(json!({"name": "devstack-compute-1"})),
        ),
        (
            Method::POST,
            "/mock/v1/faults/freeze",
            Some(json!({"duration_s": 1.0})),
        ),
        (
            Method::POST,
            "/mock/v1/faults/api-unavailable",
            Some(json!({"duration_s": 1.0})),
        ),
    ] {
        let r = call(&app, m, uri, Some(&demo), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}: {}", r.text);
    }
    let admin = token(&app, "admin").await;
    let r = call(&app, Method::GET, "/mock/v1/faults", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["boot_errors"], json!([]));
    let bad = json!({"boot_errors": [{"name_regex": "(", "rate": 1.0}]});
    let r = call(
        &app,
        Method::PUT,
        "/mock/v1/faults",
        Some(&admin),
        Some(bad),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/lose-node",
        Some(&admin),
        Some(json!({"name": "nope"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/freeze",
        Some(&admin),
        Some(json!({"duration_s": -1.0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test(start_paused = true)]
async fn name_regex_boot_error_gives_error_with_the_configured_fault() {
    let app = router(MockConfig::default()).expect("router");
    let admin = token(&app, "admin").await;
    let set = json!({"boot_errors": [{"name_regex": "^doomed", "rate": 1.0,
        "fault": "Injected: disk on fire"}]});
    let r = call(
        &app,
        Method::PUT,
        "/mock/v1/faults",
        Some(&admin),
        Some(set),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["boot_errors"][0]["fault"], "Injected: disk on fire");
    let doomed = boot(&app, &admin, "doomed-1").await;
    let fine = boot(&app, &admin, "fine-1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = server(&app, &admin, &doomed).await;
    assert_eq!(d["status"], "ERROR");
    assert_eq!(d["fault"]["message"], "Injected: disk on fire");
    assert_eq!(d["fault"]["code"], 500);
    assert_eq!(server(&app, &admin, &fine).await["status"], "ACTIVE");
    // The failed build holds nothing: one VM's worth of usage.
    let h = call(
        &app,
        Method::GET,
        "/compute/v2.1/os-hypervisors/statistics",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(h.body["hypervisor_statistics"]["vcpus_used"], 1);
    let stats = call(&app, Method::GET, "/mock/v1/stats", None, None)
        .await
        .body;
    assert_eq!(stats["boots"]["errors_by_reason"]["injected"], 1);
    assert_eq!(stats["boots"]["active"], 1);
    let m = call(&app, Method::GET, "/metrics", None, None).await.text;
    assert!(
        m.contains("cp_model_boot_errors_total{reason=\"injected\"} 1"),
        "{m}"
    );
    assert!(m.contains("cp_model_stage_workers{stage=\"api\"}"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn api_unavailable_gives_503_in_each_envelope_then_recovers() {
    let app = router(MockConfig::default()).expect("router");
    let admin = token(&app, "admin").await;
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/api-unavailable",
        Some(&admin),
        Some(json!({"duration_s": 10.0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["serviceUnavailable"]["code"], 503, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        "/network/v2.0/networks",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body["NeutronError"].is_object(), "{}", r.text);
    // Token issue goes through the same API stage.
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "secret"}}}}});
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // The mock's own endpoints are not part of the control plane.
    assert_eq!(
        call(&app, Method::GET, "/mock/v1/info", None, None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let stats = call(&app, Method::GET, "/mock/v1/stats", None, None)
        .await
        .body;
    assert_eq!(stats["api"]["rejected_unavailable_503"], 3);
}

#[tokio::test(start_paused = true)]
async fn lost_node_errors_its_instances_and_new_boots_avoid_it() {
    let app = router(unlimited("devstack", 2, 1.0, 3)).expect("router");
    let admin = token(&app, "admin").await;
    let a = boot(&app, &admin, "a").await;
    let b = boot(&app, &admin, "b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sa, sb) = (
        server(&app, &admin, &a).await,
        server(&app, &admin, &b).await,
    );
    assert_eq!(
        (sa["status"].as_str(), sb["status"].as_str()),
        (Some("ACTIVE"), Some("ACTIVE"))
    );
    let lost = sa["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .expect("host")
        .to_string();
    assert_ne!(
        sb["OS-EXT-SRV-ATTR:host"],
        lost.as_str(),
        "spread over both nodes"
    );
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/lose-node",
        Some(&admin),
        Some(json!({"name": lost})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sa = server(&app, &admin, &a).await;
    assert_eq!(sa["status"], "ERROR");
    assert_eq!(sa["fault"]["message"], format!("Compute host {lost} lost"));
    assert_eq!(server(&app, &admin, &b).await["status"], "ACTIVE");
    let hv = call(
        &app,
        Method::GET,
        "/compute/v2.1/os-hypervisors/detail",
        Some(&admin),
        None,
    )
    .await
    .body;
    let state_of = |h: &str| {
        hv["hypervisors"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["hypervisor_hostname"] == h))
            .map(|x| {
                (
                    x["state"].as_str().unwrap_or("").to_string(),
                    x["vcpus_used"].as_u64(),
                )
            })
    };
    // The ERROR instance still holds its claim until it is deleted.
    assert_eq!(state_of(&lost), Some(("down".into(), Some(1))));
    // Like nova, the scheduler only skips the node once its last heartbeat
    // is older than service_down_time (60 s); after that new boots avoid it.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let mut ids = vec![];
    for i in 0..4 {
        ids.push(boot(&app, &admin, &format!("after-{i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in ids {
        let s = server(&app, &admin, &id).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        assert_ne!(s["OS-EXT-SRV-ATTR:host"], lost.as_str());
    }
    // Deleting the ERROR instance on the lost node is immediate.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/compute/v2.1/servers/{a}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = call(
        &app,
        Method::GET,
        &format!("/compute/v2.1/servers/{a}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let hv = call(
        &app,
        Method::GET,
        "/compute/v2.1/os-hypervisors/detail",
        Some(&admin),
        None,
    )
    .await
    .body;
    let used: Vec<_> = hv["hypervisors"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| {
                    (
                        x["hypervisor_hostname"] == lost.as_str(),
                        x["vcpus_used"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(used.contains(&(true, Some(0))), "claim returned: {used:?}");
    assert!(used.contains(&(false, Some(5))), "b + 4 new: {used:?}");
}

#[tokio::test(start_paused = true)]
async fn timestamps_are_model_time_and_info_reports_the_engine() {
    let app = router(MockConfig {
        profile: "openstack-2017".into(),
        time_scale: 0.5,
        seed: 5,
        ..MockConfig::default()
    })
    .expect("router");
    let info = call(&app, Method::GET, "/mock/v1/info", None, None)
        .await
        .body;
    assert_eq!(info["profile"], "openstack-2017");
    assert_eq!(info["profile_hash"].as_str().map(str::len), Some(16));
    assert_eq!(info["time_scale"], 0.5);
    assert_eq!(info["seed"], 5);
    assert_eq!(info["computes"], 1);
    assert_eq!(info["capacity"]["vcpus"], 128);
    let epoch: DateTime<Utc> = info["epoch"]
        .as_str()
        .expect("epoch")
        .parse()
        .expect("rfc3339");
    let t = token(&app, "admin").await;
    // 10 wall seconds at scale 0.5 = 20 model seconds.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let id = boot(&app, &t, "ts").await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let s = server(&app, &t, &id).await;
    assert_eq!(s["status"], "ACTIVE");
    let created: DateTime<Utc> = s["created"]
        .as_str()
        .expect("created")
        .parse()
        .expect("rfc3339");
    let launched = parse_usage(s["OS-SRV-USG:launched_at"].as_str().expect("launched"));
    let c = (created - epoch).num_milliseconds() as f64 / 1e3;
    let l = (launched - epoch).num_milliseconds() as f64 / 1e3;
    assert!((19.0..=21.0).contains(&c), "created at model {c}");
    assert!(l > c + 3.0 && l < c + 30.0, "launched at model {l}");
}

#[tokio::test(start_paused = true)]
async fn a_call_stuck_behind_a_controller_freeze_gets_504_compute_fault() {
    let app = router(MockConfig::default()).expect("router");
    let admin = token(&app, "admin").await;
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/freeze",
        Some(&admin),
        Some(json!({"duration_s": 90.0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // Queued behind the frozen API workers for longer than api.timeout_s (60 s).
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert_eq!(r.body["computeFault"]["code"], 504, "{}", r.text);
    tokio::time::sleep(Duration::from_secs(40)).await;
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "after the freeze: {}", r.text);
    let stats = call(&app, Method::GET, "/mock/v1/stats", None, None)
        .await
        .body;
    assert_eq!(stats["api"]["rejected_timeout_504"], 1);
}

async fn api_done(app: &Router) -> u64 {
    let stats = call(app, Method::GET, "/mock/v1/stats", None, None).await;
    stats.body["api"]["done"].as_u64().expect("api.done")
}

/// On a multi-thread runtime each handler steps the engine for its own call
/// (see `driver`): many at once must all be answered, each once, and the
/// engine must have served every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_stepped_by_their_handlers_are_all_answered() {
    let app = router(MockConfig {
        time_scale: 0.01,
        ..MockConfig::default()
    })
    .expect("router");
    let t = token(&app, "admin").await;
    let before = api_done(&app).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (app, t) = (app.clone(), t.clone());
        set.spawn(async move {
            for _ in 0..40 {
                let r = call(&app, Method::GET, "/compute/v2.1/flavors", Some(&t), None).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("caller");
    }
    assert_eq!(api_done(&app).await - before, 32 * 40);
}

/// Calls whose answer is further off than a few µs of yielding are left to
/// the engine task, which must answer them on (model) time: a call behind a
/// frozen controller gets its 504 after `api.timeout_s` (60 model s), the
/// next one after the freeze a 200, and a GET at time scale 1 takes its
/// 1 ms of service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_left_to_the_engine_task_are_answered_on_model_time() {
    let scale = 0.002;
    let app = router(MockConfig {
        time_scale: scale,
        ..MockConfig::default()
    })
    .expect("router");
    let admin = token(&app, "admin").await;
    let r = call(
        &app,
        Method::POST,
        "/mock/v1/faults/freeze",
        Some(&admin),
        Some(json!({"duration_s": 90.0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let t0 = std::time::Instant::now();
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    let waited = t0.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert!(
        waited >= Duration::from_secs_f64(60.0 * scale) && waited < Duration::from_secs(10),
        "504 after {waited:?}"
    );
    tokio::time::sleep(Duration::from_secs_f64(31.0 * scale)).await;
    let r = call(
        &app,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "after the freeze: {}", r.text);

    let app = router(MockConfig {
        time_scale: 1.0,
        ..MockConfig::default()
    })
    .expect("router");
    let admin = token(&app, "admin").await;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        let r = call(
            &app,
            Method::GET,
            "/compute/v2.1/flavors",
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(
            t0.elapsed() >= Duration::from_millis(1),
            "{:?}",
            t0.elapsed()
        );
    }
}

/// A client that goes away mid-call (its request future dropped) leaves
/// nothing stuck: the model still serves the call, and the calls after it
/// are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_abandoned_mid_wait_leave_nothing_stuck() {
    // A GET is 10 ms of wall time: every call below is dropped mid-wait.
    let app = router(MockConfig {
        time_scale: 10.0,
        ..MockConfig::default()
    })
    .expect("router");
    let admin = token(&app, "admin").await;
    let before = api_done(&app).await;
    for _ in 0..10 {
        let get = call(
            &app,
            Method::GET,
            "/compute/v2.1/flavors",
            Some(&admin),
            None,
        );
        assert!(tokio::time::timeout(Duration::from_millis(1), get)
            .await
            .is_err());
    }
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        call(
            &app,
            Method::GET,
            "/compute/v2.1/flavors",
            Some(&admin),
            None,
        ),
    )
    .await
    .expect("answered");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(api_done(&app).await - before, 11);
}
