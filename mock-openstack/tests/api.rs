//! In-process API tests through `router()` + `oneshot`: identity, scoping,
//! lifecycle, capacity, quotas, pagination and every error path.

use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use mock_openstack::defaults::IMAGE_ID;
use mock_openstack::{router, MockConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "mock.test:8080");
    if let Some(t) = token {
        req = req.header("x-auth-token", t);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

async fn get(app: &Router, uri: &str, token: &str) -> Resp {
    call(app, Method::GET, uri, Some(token), None).await
}

async fn post(app: &Router, uri: &str, token: &str, body: Value) -> Resp {
    call(
        app,
        Method::POST,
        uri,
        Some(token),
        Some(body.to_string().into_bytes()),
    )
    .await
}

fn auth_body(user: &str, project: Option<&str>) -> Value {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": "secret"}}}});
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
    }
    json!({ "auth": auth })
}

async fn token(app: &Router, user: &str, project: &str) -> String {
    let r = call(
        app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(auth_body(user, Some(project)).to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.headers["x-subject-token"]
        .to_str()
        .expect("ascii")
        .to_string()
}

fn cfg() -> MockConfig {
    MockConfig {
        boot_delay_s: 3.0,
        delete_delay_s: 1.0,
        ..MockConfig::default()
    }
}

use test_support::fixtures::boot_body as boot;

async fn create(app: &Router, t: &str, body: Value) -> String {
    let r = post(app, "/compute/v2.1/servers", t, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.headers.contains_key("location"));
    r.body["server"]["id"].as_str().expect("id").to_string()
}

async fn sleep(s: f64) {
    tokio::time::sleep(std::time::Duration::from_secs_f64(s)).await;
}

// ---- identity ------------------------------------------------------------

#[tokio::test]
async fn keystone_discovery_and_catalog_from_host() {
    let app = router(cfg()).expect("router");
    let r = call(&app, Method::GET, "/identity", None, None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.body["versions"]["values"][0]["id"], "v3.14");
    assert_eq!(
        r.body["versions"]["values"][0]["links"][0]["href"],
        "http://mock.test:8080/identity/v3/"
    );
    let r = call(&app, Method::GET, "/identity/v3/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"]["id"], "v3.14");

    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(auth_body("admin", Some("admin")).to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let tok = &r.body["token"];
    assert_eq!(tok["project"]["name"], "admin");
    assert!(tok["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .any(|x| x["name"] == "admin"));
    assert!(tok["expires_at"].as_str().expect("expires").ends_with('Z'));
    let compute = tok["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .find(|e| e["type"] == "compute")
        .expect("compute entry");
    assert_eq!(
        compute["endpoints"][0]["url"],
        "http://mock.test:8080/compute/v2.1"
    );
    assert_eq!(compute["endpoints"][0]["region_id"], "RegionOne");
}

#[tokio::test]
async fn keystone_scopes_and_failures() {
    let app = router(MockConfig {
        public_url: Some("https://cloud.example/".into()),
        ..cfg()
    })
    .expect("router");
    // Project by id.
    let mut b = auth_body("demo", None);
    b["auth"]["scope"] = json!({"project": {"id": "d3e0b7c2a9f84e1d9b6c5a4f3e2d1c20"}});
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(b.to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.body["token"]["catalog"][0]["endpoints"][0]["url"],
        "https://cloud.example/identity"
    );
    // Domain-scoped.
    let mut b = auth_body("admin", None);
    b["auth"]["scope"] = json!({"domain": {"name": "Default"}});
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(b.to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["token"]["domain"]["id"], "default");
    assert!(r.body["token"].get("project").is_none());
    // Unscoped: no roles, empty catalog.
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(auth_body("demo", None).to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["token"]["catalog"], json!([]));
    // ?nocatalog.
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens?nocatalog",
        None,
        Some(auth_body("admin", Some("admin")).to_string().into_bytes()),
    )
    .await;
    assert!(r.body["token"].get("catalog").is_none());
    // Wrong password → 401 in Keystone's envelope.
    let mut b = auth_body("admin", Some("admin"));
    b["auth"]["identity"]["password"]["user"]["password"] = json!("wrong");
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(b.to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], 401);
    assert_eq!(r.body["error"]["title"], "Unauthorized");
    // demo has no role on the admin project.
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(auth_body("demo", Some("admin")).to_string().into_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Malformed and incomplete bodies → 400.
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(b"{nope".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], 400);
    let r = call(
        &app,
        Method::POST,
        "/identity/v3/auth/tokens",
        None,
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_service_requires_a_valid_token_in_its_envelope() {
    let app = router(cfg()).expect("router");
    let cases = [
        ("/compute/v2.1/servers", "/unauthorized/code"),
        ("/compute/v2.1/flavors", "/unauthorized/code"),
        ("/image/v2/images", "/code"),
        ("/network/v2.0/networks", "/NeutronError/type"),
        ("/placement/resource_providers", "/errors/0/status"),
        ("/identity/v3/projects", "/error/code"),
    ];
    for (uri, ptr) in cases {
        for tok in [None, Some("bogus")] {
            let r = call(&app, Method::GET, uri, tok, None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(r.body.pointer(ptr).is_some(), "{uri}: {}", r.text);
        }
    }
}

#[tokio::test]
async fn expired_tokens_are_rejected() {
    let app = router(MockConfig {
        token_ttl_s: 0,
        ..cfg()
    })
    .expect("router");
    let t = token(&app, "admin", "admin").await;
    let r = get(&app, "/compute/v2.1/servers", &t).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---- robustness ---------------------------------------------------------

#[tokio::test]
async fn bad_input_gets_json_errors_in_the_right_envelope() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "admin", "admin").await;
    // Malformed JSON.
    let r = call(
        &app,
        Method::POST,
        "/compute/v2.1/servers",
        Some(&t),
        Some(b"{\"server\":".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["badRequest"]["code"], 400);
    // Not an object.
    let r = call(
        &app,
        Method::POST,
        "/compute/v2.1/servers",
        Some(&t),
        Some(b"[1,2]".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Body over 1 MiB.
    let big = vec![b' '; (1 << 20) + 10];
    let r = call(
        &app,
        Method::POST,
        "/compute/v2.1/servers",
        Some(&t),
        Some(big),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["overLimit"]["code"], 413);
    // Unknown paths.
    let r = get(&app, "/compute/v2.1/nonsense", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["itemNotFound"]["code"], 404);
    let r = get(&app, "/nowhere", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], 404);
    let r = get(&app, "/network/v2.0/bogus-things", &t).await;
    assert_eq!(r.body["NeutronError"]["type"], "NotFound");
    // Wrong method.
    let r = call(&app, Method::PUT, "/compute/v2.1/flavors", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["badMethod"]["code"], 405);
    let r = call(&app, Method::DELETE, "/image/v2/images", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["code"], 405);
    // Every response: request id + JSON content type.
    for (uri, tok) in [
        ("/identity", None),
        ("/compute/v2.1/flavors", Some(t.as_str())),
        ("/compute/v2.1/flavors", None),
        ("/nowhere", None),
        ("/image/v2/images", Some(t.as_str())),
    ] {
        let h = call(&app, Method::GET, uri, tok, None).await.headers;
        assert!(
            h["x-openstack-request-id"]
                .to_str()
                .expect("ascii")
                .starts_with("req-"),
            "{uri}"
        );
        assert_eq!(h["content-type"], "application/json", "{uri}");
    }
    // Bad server bodies.
    for (body, what) in [
        (
            json!({"server": {"name": "x", "flavorRef": "99", "imageRef": IMAGE_ID}}),
            "flavor",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": "nope"}}),
            "image",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": IMAGE_ID, "networks": [{"uuid": "nope"}]}}),
            "network",
        ),
        (json!({"server": {"flavorRef": "1"}}), "name"),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": IMAGE_ID, "min_count": "zero"}}),
            "count",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": IMAGE_ID, "metadata": {"a": 1}}}),
            "metadata",
        ),
        (
            json!({"server": {"name": "x", "flavorRef": "1", "imageRef": IMAGE_ID, "key_name": "nokey"}}),
            "key",
        ),
        (json!({"nope": 1}), "server"),
    ] {
        let r = post(&app, "/compute/v2.1/servers", &t, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text);
        assert!(r.body["badRequest"]["message"].is_string(), "{what}");
    }
    // Lookups by name are 404, never 500.
    assert_eq!(
        get(&app, "/compute/v2.1/flavors/m1.tiny", &t).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/compute/v2.1/servers/vm1", &t).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/image/v2/images/cirros", &t).await.status,
        StatusCode::NOT_FOUND
    );
    let r = get(&app, "/network/v2.0/networks/private", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["NeutronError"]["type"], "NetworkNotFound");
    let r = get(&app, "/placement/resource_providers/nope/usages", &t).await;
    assert_eq!(r.body["errors"][0]["status"], 404);
}

// ---- lifecycle, capacity, quota -------------------------------------------

#[tokio::test(start_paused = true)]
async fn server_goes_build_scheduling_networking_spawning_active_then_deleted() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "admin", "admin").await;
    let id = create(&app, &t, boot("vm1")).await;
    let uri = format!("/compute/v2.1/servers/{id}");
    // devstack profile with a 3 s spawn (boot_delay_s): scheduling and
    // networking take milliseconds, spawning 3 model seconds.
    let s = get(&app, &uri, &t).await.body["server"].clone();
    assert_eq!(s["status"], "BUILD");
    assert_eq!(s["OS-EXT-STS:power_state"], 0);
    sleep(1.5).await;
    let s = get(&app, &uri, &t).await.body["server"].clone();
    assert_eq!(s["OS-EXT-STS:task_state"], "spawning");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "devstack-compute-1");
    assert!(s["addresses"]["private"][0]["addr"]
        .as_str()
        .expect("ip")
        .starts_with("10.0."));
    sleep(2.5).await;
    let s = get(&app, &uri, &t).await.body["server"].clone();
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["OS-EXT-STS:vm_state"], "active");
    assert!(s["OS-EXT-STS:task_state"].is_null());
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    // Every field clients read, with the right JSON type.
    for (k, ty) in [
        ("id", "s"),
        ("name", "s"),
        ("tenant_id", "s"),
        ("user_id", "s"),
        ("created", "s"),
        ("updated", "s"),
        ("progress", "n"),
        ("hostId", "s"),
        ("image", "o"),
        ("flavor", "o"),
        ("addresses", "o"),
        ("metadata", "o"),
        ("links", "a"),
        ("config_drive", "s"),
        ("security_groups", "a"),
        ("OS-EXT-AZ:availability_zone", "s"),
        ("OS-SRV-USG:launched_at", "s"),
        ("os-extended-volumes:volumes_attached", "a"),
        ("OS-DCF:diskConfig", "s"),
    ] {
        let v = &s[k];
        let good = match ty {
            "s" => v.is_string(),
            "n" => v.is_u64(),
            "o" => v.is_object(),
            _ => v.is_array(),
        };
        assert!(good, "{k} = {v}");
    }
    assert!(s.get("key_name").is_some() && s["OS-SRV-USG:terminated_at"].is_null());
    assert!(s["created"].as_str().expect("created").ends_with('Z'));
    assert!(!s["OS-SRV-USG:launched_at"]
        .as_str()
        .expect("launched")
        .ends_with('Z'));
    let stats = get(&app, "/compute/v2.1/os-hypervisors/statistics", &t)
        .await
        .body;
    assert_eq!(stats["hypervisor_statistics"]["vcpus_used"], 1);

    let r = call(&app, Method::DELETE, &uri, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let s = get(&app, &uri, &t).await.body["server"].clone();
    assert_eq!(s["OS-EXT-STS:task_state"], "deleting");
    sleep(1.5).await;
    let r = get(&app, &uri, &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Instance {id} could not be found.")
    );
    let stats = get(&app, "/compute/v2.1/os-hypervisors/statistics", &t)
        .await
        .body;
    assert_eq!(stats["hypervisor_statistics"]["vcpus_used"], 0);
    assert_eq!(
        call(&app, Method::DELETE, &uri, Some(&t), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn no_valid_host_is_error_with_fault_and_capacity_is_per_node() {
    let app = router(MockConfig {
        computes: 2,
        compute_vcpus: 1,
        cpu_allocation_ratio: 1.0,
        quota_instances: 100,
        quota_cores: 100,
        ..cfg()
    })
    .expect("router");
    let t = token(&app, "admin", "admin").await;
    let a = create(&app, &t, boot("a")).await;
    let b = create(&app, &t, boot("b")).await;
    let c = create(&app, &t, boot("c")).await;
    sleep(4.0).await;
    let host = |s: &Value| {
        s["server"]["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .map(String::from)
    };
    let (sa, sb, sc) = (
        get(&app, &format!("/compute/v2.1/servers/{a}"), &t)
            .await
            .body,
        get(&app, &format!("/compute/v2.1/servers/{b}"), &t)
            .await
            .body,
        get(&app, &format!("/compute/v2.1/servers/{c}"), &t)
            .await
            .body,
    );
    assert_eq!(sa["server"]["status"], "ACTIVE");
    assert_eq!(sb["server"]["status"], "ACTIVE");
    assert_ne!(host(&sa), host(&sb), "spread over both nodes");
    assert_eq!(sc["server"]["status"], "ERROR");
    assert_eq!(sc["server"]["fault"]["code"], 500);
    assert!(sc["server"]["fault"]["message"]
        .as_str()
        .expect("msg")
        .starts_with("No valid host was found."));
    // Placement usages reflect the claims.
    let rps = get(&app, "/placement/resource_providers", &t).await.body;
    let uuid = rps["resource_providers"][0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let u = get(
        &app,
        &format!("/placement/resource_providers/{uuid}/usages"),
        &t,
    )
    .await
    .body;
    assert_eq!(u["usages"]["VCPU"], 1);
    let inv = get(
        &app,
        &format!("/placement/resource_providers/{uuid}/inventories"),
        &t,
    )
    .await
    .body;
    assert_eq!(inv["inventories"]["VCPU"]["total"], 1);
    assert_eq!(inv["inventories"]["MEMORY_MB"]["allocation_ratio"], 1.5);
}

#[tokio::test]
async fn instance_quota_gives_403() {
    let app = router(MockConfig {
        quota_instances: 2,
        ..cfg()
    })
    .expect("router");
    let t = token(&app, "demo", "demo").await;
    create(&app, &t, boot("a")).await;
    create(&app, &t, boot("b")).await;
    let r = post(&app, "/compute/v2.1/servers", &t, boot("c")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    );
    let l = get(&app, "/compute/v2.1/limits", &t).await.body;
    assert_eq!(l["limits"]["absolute"]["totalInstancesUsed"], 2);
    assert_eq!(l["limits"]["absolute"]["maxTotalInstances"], 2);
    // Another project is not charged.
    let admin = token(&app, "admin", "admin").await;
    create(&app, &admin, boot("x")).await;
}

#[tokio::test]
async fn min_max_count_flavor_url_and_network_modes() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "admin", "admin").await;
    let mut b = boot("multi");
    b["server"]["min_count"] = json!(1);
    b["server"]["max_count"] = json!("3");
    b["server"]["flavorRef"] = json!("http://mock.test:8080/compute/v2.1/flavors/2");
    b["server"]["networks"] = json!("auto");
    create(&app, &t, b).await;
    let l = get(&app, "/compute/v2.1/servers/detail?name=^multi-", &t)
        .await
        .body;
    let names: Vec<&str> = l["servers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(l["servers"]
        .as_array()
        .expect("list")
        .iter()
        .all(|s| s["flavor"]["id"] == "2"));
    let mut b = boot("nonet");
    b["server"]["networks"] = json!("none");
    create(&app, &t, b).await;
}

// ---- scoping and pagination ---------------------------------------------

#[tokio::test]
async fn projects_are_isolated_and_admin_all_tenants_sees_all() {
    let app = router(cfg()).expect("router");
    let demo = token(&app, "demo", "demo").await;
    let admin = token(&app, "admin", "admin").await;
    let d = create(&app, &demo, boot("demo-vm")).await;
    let a = create(&app, &admin, boot("admin-vm")).await;
    let ids = |v: &Value| -> Vec<String> {
        v["servers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|s| s["id"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        ids(&get(&app, "/compute/v2.1/servers", &demo).await.body),
        vec![d.clone()]
    );
    assert_eq!(
        ids(&get(&app, "/compute/v2.1/servers", &admin).await.body),
        vec![a.clone()]
    );
    let all = ids(&get(
        &app,
        "/compute/v2.1/servers/detail?all_tenants=True",
        &admin,
    )
    .await
    .body);
    assert_eq!(all.len(), 2);
    // all_tenants=0 is false; an empty value is true (nova's
    // is_all_tenants); a non-admin's all_tenants is refused by policy, like
    // nova (never an empty or partial success); a value that is no boolean
    // is a 400.
    assert_eq!(
        ids(&get(&app, "/compute/v2.1/servers?all_tenants=0", &admin)
            .await
            .body)
        .len(),
        1
    );
    assert_eq!(
        ids(&get(&app, "/compute/v2.1/servers?all_tenants", &admin)
            .await
            .body)
        .len(),
        2
    );
    for (path, rule) in [
        ("servers?all_tenants=1", "index"),
        ("servers/detail?all_tenants=True", "detail"),
    ] {
        let r = get(&app, &format!("/compute/v2.1/{path}"), &demo).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(
            r.body["forbidden"]["message"],
            format!("Policy doesn't allow os_compute_api:servers:{rule}:get_all_tenants to be performed.")
        );
    }
    let r = get(&app, "/compute/v2.1/servers?all_tenants=maybe", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Admin pages through every project's servers with limit/marker.
    let p1 = get(&app, "/compute/v2.1/servers?all_tenants=1&limit=1", &admin)
        .await
        .body;
    assert_eq!(ids(&p1), vec![a.clone()]);
    let next = p1["servers_links"][0]["href"].as_str().expect("next link");
    assert!(
        next.contains("all_tenants=1") && next.contains(&format!("marker={a}")),
        "{next}"
    );
    let p2 = get(
        &app,
        &format!("/compute/v2.1/servers?all_tenants=1&limit=1&marker={a}"),
        &admin,
    )
    .await
    .body;
    assert_eq!(ids(&p2), vec![d.clone()]);
    // A project cannot see or delete another's server; admin can see it.
    assert_eq!(
        get(&app, &format!("/compute/v2.1/servers/{a}"), &demo)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/compute/v2.1/servers/{a}"),
            Some(&demo),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let s = get(&app, &format!("/compute/v2.1/servers/{d}"), &admin)
        .await
        .body;
    assert!(s["server"].get("OS-EXT-SRV-ATTR:host").is_some());
    let s = get(&app, &format!("/compute/v2.1/servers/{d}"), &demo)
        .await
        .body;
    assert!(s["server"].get("OS-EXT-SRV-ATTR:host").is_none());
    // Hypervisors are admin-only.
    assert_eq!(
        get(&app, "/compute/v2.1/os-hypervisors/detail", &demo)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let h = get(&app, "/compute/v2.1/os-hypervisors/detail", &admin)
        .await
        .body;
    assert_eq!(
        h["hypervisors"][0]["hypervisor_hostname"],
        "devstack-compute-1"
    );
    // Neutron: demo sees private (its own) and public (external).
    let n = get(&app, "/network/v2.0/networks?name=private", &demo)
        .await
        .body;
    assert_eq!(n["networks"].as_array().expect("nets").len(), 1);
}

#[tokio::test]
async fn server_pagination_with_marker_until_an_empty_page() {
    let app = router(MockConfig {
        quota_instances: 50,
        quota_cores: 50,
        ..cfg()
    })
    .expect("router");
    let t = token(&app, "admin", "admin").await;
    let mut b = boot("p");
    b["server"]["min_count"] = json!(5);
    b["server"]["max_count"] = json!(5);
    create(&app, &t, b).await;
    let mut seen = vec![];
    let mut uri = "/compute/v2.1/servers?limit=2".to_string();
    loop {
        let r = get(&app, &uri, &t).await;
        assert_eq!(r.status, StatusCode::OK);
        let page = r.body["servers"].as_array().expect("list").clone();
        if page.is_empty() {
            break;
        }
        seen.extend(
            page.iter()
                .filter_map(|s| s["name"].as_str().map(String::from)),
        );
        match r.body["servers_links"][0]["href"].as_str() {
            Some(next) => uri = next.trim_start_matches("http://mock.test:8080").to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["p-5", "p-4", "p-3", "p-2", "p-1"],
        "newest first, all pages"
    );
    let r = get(&app, "/compute/v2.1/servers?marker=does-not-exist", &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["badRequest"]["message"],
        "marker [does-not-exist] not found"
    );
    assert_eq!(
        get(&app, "/compute/v2.1/servers?limit=-1", &t).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/compute/v2.1/servers?limit=abc", &t)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/compute/v2.1/servers?changes-since=yesterday", &t)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/compute/v2.1/servers?name=(", &t).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = get(
        &app,
        "/compute/v2.1/servers?changes-since=2000-01-01T00:00:00Z&status=build&name=p-[12]",
        &t,
    )
    .await;
    assert_eq!(r.body["servers"].as_array().expect("list").len(), 2);
    let r = get(
        &app,
        "/compute/v2.1/servers?changes-since=2999-01-01T00:00:00",
        &t,
    )
    .await;
    assert_eq!(r.body["servers"].as_array().expect("list").len(), 0);
}

#[tokio::test]
async fn glance_neutron_placement_shapes() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "demo", "demo").await;
    let r = call(&app, Method::GET, "/image/", None, None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    let r = get(&app, "/image/v2/images?limit=1", &t).await.body;
    assert_eq!(r["images"][0]["name"], "cirros-0.6.2-x86_64-disk");
    assert_eq!(
        r["next"],
        "/v2/images?marker=5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a&limit=1"
    );
    let r = get(
        &app,
        &format!(
            "/image/v2/images?{}",
            "marker=5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a"
        ),
        &t,
    )
    .await
    .body;
    assert_eq!(r["images"], json!([]));
    assert_eq!(
        get(&app, "/image/v2/images?marker=zzz", &t).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/image/v2/images?os_hidden=True", &t).await.body["images"],
        json!([])
    );
    assert_eq!(
        get(
            &app,
            "/image/v2/images?id=in:x,5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a",
            &t
        )
        .await
        .body["images"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let img = get(
        &app,
        "/image/v2/images/5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a",
        &t,
    )
    .await
    .body;
    assert_eq!(img["status"], "active");
    assert!(get(&app, "/image/v2/schemas/image", &t).await.body["properties"].is_object());
    assert!(get(&app, "/image/v2/schemas/images", &t).await.body["links"].is_array());
    let n = get(
        &app,
        "/network/v2.0/networks?id=6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f",
        &t,
    )
    .await
    .body;
    assert_eq!(n["networks"][0]["router:external"], true);
    let n = get(&app, "/network/v2.0/networks?limit=1", &t).await.body;
    assert!(n["networks_links"][0]["href"].is_string());
    let q = get(
        &app,
        "/network/v2.0/quotas/d3e0b7c2a9f84e1d9b6c5a4f3e2d1c20",
        &t,
    )
    .await
    .body;
    assert_eq!(q["quota"]["network"], 100);
    assert_eq!(
        get(&app, "/network/v2.0/subnets", &t).await.body["subnets"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        get(&app, "/network/v2.0/floatingips", &t).await.body["floatingips"],
        json!([])
    );
    let p = call(&app, Method::GET, "/placement", None, None).await.body;
    assert_eq!(p["versions"][0]["max_version"], "1.39");
}

#[tokio::test]
async fn nova_misc_endpoints() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "demo", "demo").await;
    let r = get(&app, "/compute/v2.1/", &t).await;
    assert_eq!(r.body["version"]["version"], "2.1");
    assert_eq!(r.headers["openstack-api-version"], "compute 2.1");
    assert!(get(&app, "/compute/", &t).await.body["versions"].is_array());
    assert_eq!(
        get(&app, "/compute/v2.1/flavors/detail?is_public=None", &t)
            .await
            .body["flavors"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let f = get(&app, "/compute/v2.1/flavors/3", &t).await.body;
    assert_eq!(
        (f["flavor"]["ram"].as_u64(), f["flavor"]["vcpus"].as_u64()),
        (Some(4096), Some(2))
    );
    assert_eq!(
        get(&app, "/compute/v2.1/flavors/1/os-extra_specs", &t)
            .await
            .body,
        json!({"extra_specs": {}})
    );
    let q = get(
        &app,
        "/compute/v2.1/os-quota-sets/d3e0b7c2a9f84e1d9b6c5a4f3e2d1c20",
        &t,
    )
    .await
    .body;
    assert_eq!(q["quota_set"]["instances"], 10);
    assert_eq!(
        get(&app, "/compute/v2.1/os-quota-sets/x/defaults", &t)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/compute/v2.1/os-server-groups", &t).await.body,
        json!({"server_groups": []})
    );
    let g = post(
        &app,
        "/compute/v2.1/os-server-groups",
        &t,
        json!({"server_group": {"name": "g", "policies": ["anti-affinity"]}}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(
        post(
            &app,
            "/compute/v2.1/os-server-groups",
            &t,
            json!({"server_group": {"name": "g", "policies": ["bogus"]}})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/compute/v2.1/os-keypairs", &t).await.body,
        json!({"keypairs": []})
    );
    let k = post(
        &app,
        "/compute/v2.1/os-keypairs",
        &t,
        json!({"keypair": {"name": "k1"}}),
    )
    .await;
    assert_eq!(k.status, StatusCode::OK);
    // A generated pair is a real OpenSSH key pair.
    assert!(k.body["keypair"]["private_key"]
        .as_str()
        .is_some_and(|p| p.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")));
    assert!(k.body["keypair"]["public_key"]
        .as_str()
        .is_some_and(|p| p.starts_with("ssh-ed25519 ")));
    // Imported: nova's MD5 fingerprint; no private key; junk is a 400.
    let imported = post(
        &app,
        "/compute/v2.1/os-keypairs",
        &t,
        json!({"keypair": {"name": "k2", "public_key":
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl u@h"}}),
    )
    .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(
        imported.body["keypair"]["fingerprint"],
        "65:96:2d:fc:e8:d5:a9:11:64:0c:0f:ea:00:6e:5b:bd"
    );
    assert!(imported.body["keypair"].get("private_key").is_none());
    for (body, msg) in [
        (
            json!({"keypair": {"name": "k3", "public_key": "ssh-rsa notakey"}}),
            "Keypair data is invalid: failed to generate fingerprint",
        ),
        (
            json!({"keypair": {"name": "bad/name"}}),
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ),
    ] {
        let r = post(&app, "/compute/v2.1/os-keypairs", &t, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.body["badRequest"]["message"], msg);
    }
    let shown = get(&app, "/compute/v2.1/os-keypairs/k2", &t).await.body;
    assert_eq!(shown["keypair"]["id"], 2);
    assert_eq!(
        post(
            &app,
            "/compute/v2.1/os-keypairs",
            &t,
            json!({"keypair": {"name": "k1"}})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let mut b = boot("with-key");
    b["server"]["key_name"] = json!("k1");
    create(&app, &t, b).await;
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            "/compute/v2.1/os-keypairs/k1",
            Some(&t),
            None
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn info_and_metrics_need_no_token() {
    let app = router(MockConfig {
        computes: 3,
        time_scale: 0.5,
        ..cfg()
    })
    .expect("router");
    let r = call(&app, Method::GET, "/mock/v1/info", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["time_scale"], 0.5);
    assert_eq!(r.body["computes"], 3);
    assert_eq!(r.body["capacity"]["vcpus"], 3 * 8 * 16);
    assert_eq!(r.body["name"], "devstack");
    let t = token(&app, "admin", "admin").await;
    create(&app, &t, boot("m")).await;
    let r = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        r.text
            .contains("mock_openstack_servers{status=\"BUILD\"} 1"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("mock_openstack_requests_total{service=\"identity\",code=\"201\"} 1"),
        "{}",
        r.text
    );
}

#[tokio::test(start_paused = true)]
async fn multi_create_schedules_in_request_order() {
    let app = router(MockConfig {
        compute_vcpus: 1,
        cpu_allocation_ratio: 2.0,
        ..cfg()
    })
    .expect("router");
    let t = token(&app, "admin", "admin").await;
    let names_and_status = |l: &Value| -> Vec<(String, String)> {
        let mut got: Vec<(String, String)> = l["servers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_string(),
                    s["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        got.sort();
        got
    };
    let pairs = |want: &[(&str, &str)]| -> Vec<(String, String)> {
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Room for two: three in one request are all refused by the scheduler
    // (nova's all-or-nothing NoValidHost), two fit.
    let mut b = boot("many");
    b["server"]["min_count"] = json!(3);
    b["server"]["max_count"] = json!(3);
    create(&app, &t, b).await;
    let mut b = boot("two");
    b["server"]["min_count"] = json!(2);
    b["server"]["max_count"] = json!(2);
    b["server"]["return_reservation_id"] = json!(true);
    let r = post(&app, "/compute/v2.1/servers", &t, b).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let resv = r.body["reservation_id"].as_str().expect("reservation_id");
    assert!(resv.starts_with("r-") && resv.len() == 10, "{resv}");
    assert!(r.body.get("server").is_none());
    sleep(4.0).await;
    let l = get(&app, "/compute/v2.1/servers/detail", &t).await.body;
    assert_eq!(
        names_and_status(&l),
        pairs(&[
            ("many-1", "ERROR"),
            ("many-2", "ERROR"),
            ("many-3", "ERROR"),
            ("two-1", "ACTIVE"),
            ("two-2", "ACTIVE"),
        ])
    );
    let fault = &l["servers"][4]["fault"]["message"];
    assert!(
        fault
            .as_str()
            .is_some_and(|m| m.starts_with("No valid host")),
        "{fault}"
    );
    // An ERROR server that never launched: os-stop passes the vm_state
    // check (active or error) but not nova's must_have_launched.
    let never = l["servers"][4]["id"].as_str().expect("id");
    let r = post(
        &app,
        &format!("/compute/v2.1/servers/{never}/action"),
        &t,
        json!({"os-stop": null}),
    )
    .await;
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'stop' instance {never} while it is in launched_at None")
    );
    let after = get(&app, &format!("/compute/v2.1/servers/{never}"), &t)
        .await
        .body;
    assert!(
        after["server"]["OS-EXT-STS:task_state"].is_null(),
        "unchanged"
    );
    let l = get(
        &app,
        &format!("/compute/v2.1/servers/detail?reservation_id={resv}"),
        &t,
    )
    .await
    .body;
    assert_eq!(
        names_and_status(&l),
        pairs(&[("two-1", "ACTIVE"), ("two-2", "ACTIVE")])
    );
    // Bad counts are 400s, as nova's schema and min <= max check.
    for (min, max) in [
        (json!(2.5), json!(3)),
        (json!("two"), json!(3)),
        (json!(0), json!(1)),
        (json!(3), json!(2)),
        (json!(1), json!(-1)),
    ] {
        let mut b = boot("bad");
        b["server"]["min_count"] = min.clone();
        b["server"]["max_count"] = max.clone();
        let r = post(&app, "/compute/v2.1/servers", &t, b).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{min} {max}: {}", r.text);
    }
    let r = get(&app, "/compute/v2.1/os-services", &t).await.body;
    assert_eq!(r["services"].as_array().map(Vec::len), Some(3));
}

/// Issue 12, item 8: bodies the real services refuse by Content-Type, and
/// fault durations that would disable the mock until restart.
#[tokio::test]
async fn content_type_and_fault_bounds_are_enforced() {
    let app = router(cfg()).expect("router");
    let t = token(&app, "admin", "admin").await;
    let send = |uri: &'static str, ct: Option<&'static str>, body: Value| {
        let app = app.clone();
        let t = t.clone();
        async move {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header("x-auth-token", t);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let resp = app
                .oneshot(req.body(Body::from(body.to_string())).expect("request"))
                .await
                .expect("infallible");
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    // Nova: a type other than JSON → 415 badMediaType; none → read as JSON.
    let (s, v) = send("/compute/v2.1/servers", Some("application/xml"), boot("x")).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_eq!(v["badMediaType"]["message"], "Unsupported Content-Type");
    let (s, v) = send("/compute/v2.1/servers", None, boot("x")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // Keystone: anything but JSON → 400 in Keystone's envelope.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (s, v) = send("/identity/v3/auth/tokens", ct, auth_body("admin", None)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ct:?}: {v}");
        assert_eq!(v["error"]["code"], 400);
    }
    // Faults: bounded durations only.
    for d in [json!(1e308), json!(-1.0), json!(86_401.0), json!("5")] {
        let (s, v) = send(
            "/mock/v1/faults/freeze",
            Some("application/json"),
            json!({ "duration_s": d }),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{d}: {v}");
        assert_eq!(v["error"]["code"], 400);
    }
    let (s, _) = send(
        "/mock/v1/faults/freeze",
        Some("application/json"),
        json!({"duration_s": 0.5}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

// ---- server actions and aggregates (issue 15) ----------------------------

async fn server(app: &Router, t: &str, id: &str) -> Value {
    get(app, &format!("/compute/v2.1/servers/{id}"), t)
        .await
        .body["server"]
        .clone()
}

fn states(s: &Value) -> (String, Value, Value, Value) {
    (
        s["status"].as_str().unwrap_or("").to_string(),
        s["OS-EXT-STS:vm_state"].clone(),
        s["OS-EXT-STS:task_state"].clone(),
        s["OS-EXT-STS:power_state"].clone(),
    )
}

/// Actions change state after the profile's model time (openstack-2017:
/// stop 4 s, start 4 s, soft reboot 10 s, pause 0.5 s), and a wrong
/// state is nova's 409.
#[tokio::test(start_paused = true)]
async fn server_actions_change_state_after_their_model_time() {
    let app = router(MockConfig {
        profile: "openstack-2017".into(),
        ..MockConfig::default()
    })
    .expect("router");
    let t = token(&app, "demo", "demo").await;
    let id = create(&app, &t, boot("acts")).await;
    let act = format!("/compute/v2.1/servers/{id}/action");
    // Still building: hard reboot is refused on the vm_state.
    let r = post(&app, &act, &t, json!({"reboot": {"type": "HARD"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'reboot' instance {id} while it is in vm_state building")
    );
    sleep(30.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "ACTIVE");

    let r = post(&app, &act, &t, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    sleep(1.0).await;
    assert_eq!(
        states(&server(&app, &t, &id).await),
        (
            "ACTIVE".into(),
            json!("active"),
            json!("powering-off"),
            json!(1)
        )
    );
    // Busy: another action sees the task_state.
    let r = post(&app, &act, &t, json!({"pause": null})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'pause' instance {id} while it is in task_state powering-off")
    );
    sleep(4.0).await;
    assert_eq!(
        states(&server(&app, &t, &id).await),
        ("SHUTOFF".into(), json!("stopped"), Value::Null, json!(4))
    );
    let r = post(&app, &act, &t, json!({"os-stop": null})).await;
    assert_eq!(
        r.body,
        json!({"conflictingRequest": {"code": 409,
            "message": format!("Cannot 'stop' instance {id} while it is in vm_state stopped")}})
    );
    assert_eq!(
        server(&app, &t, &id).await["status"],
        "SHUTOFF",
        "a refused action changes nothing"
    );

    post(&app, &act, &t, json!({"os-start": null})).await;
    sleep(5.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "ACTIVE");

    let r = post(&app, &act, &t, json!({"reboot": {"type": "SOFT"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    sleep(1.0).await;
    let s = server(&app, &t, &id).await;
    assert_eq!(
        (&s["status"], &s["OS-EXT-STS:task_state"]),
        (&json!("REBOOT"), &json!("rebooting"))
    );
    // A hard reboot takes over a soft one (task_states.ALLOW_REBOOT).
    post(&app, &act, &t, json!({"reboot": {"type": "hard"}})).await;
    assert_eq!(server(&app, &t, &id).await["status"], "HARD_REBOOT");
    sleep(6.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "ACTIVE");

    post(&app, &act, &t, json!({"pause": null})).await;
    sleep(1.0).await;
    assert_eq!(
        states(&server(&app, &t, &id).await),
        ("PAUSED".into(), json!("paused"), Value::Null, json!(3))
    );
    post(&app, &act, &t, json!({"unpause": null})).await;
    sleep(1.0).await;
    post(&app, &act, &t, json!({"suspend": null})).await;
    sleep(4.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "SUSPENDED");
    post(&app, &act, &t, json!({"resume": null})).await;
    sleep(4.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "ACTIVE");

    // Rebuild answers the server (REBUILD) and lands ACTIVE.
    let r = post(
        &app,
        &act,
        &t,
        json!({"rebuild": {"imageRef": IMAGE_ID, "name": "acts2"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["server"]["status"], "REBUILD");
    assert_eq!(r.body["server"]["name"], "acts2");
    sleep(9.0).await;
    assert_eq!(server(&app, &t, &id).await["status"], "ACTIVE");

    // Unknown action and bad reboot type: 400.
    let r = post(&app, &act, &t, json!({"explode": null})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(&app, &act, &t, json!({"reboot": {"type": "WARM"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Another project's server is not found.
    let admin = token(&app, "admin", "admin").await;
    let other = create(&app, &admin, boot("adminvm")).await;
    let r = post(
        &app,
        &format!("/compute/v2.1/servers/{other}/action"),
        &t,
        json!({"os-stop": null}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// lock: the owner's actions and deletes are 409 while an admin's pass; a
/// lock taken by an admin cannot be lifted by the owner (403).
#[tokio::test(start_paused = true)]
async fn locked_servers_refuse_actions_for_non_admins() {
    let app = router(cfg()).expect("router");
    let demo = token(&app, "demo", "demo").await;
    let admin = token(&app, "admin", "admin").await;
    let id = create(&app, &demo, boot("locked")).await;
    let act = format!("/compute/v2.1/servers/{id}/action");
    sleep(5.0).await;
    let r = post(&app, &act, &demo, json!({"lock": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let locked = json!({"conflictingRequest": {"code": 409,
        "message": format!("Instance {id} is locked")}});
    let r = post(&app, &act, &demo, json!({"os-stop": null})).await;
    assert_eq!((r.status, &r.body), (StatusCode::CONFLICT, &locked));
    let r = call(
        &app,
        Method::DELETE,
        &format!("/compute/v2.1/servers/{id}"),
        Some(&demo),
        None,
    )
    .await;
    assert_eq!((r.status, &r.body), (StatusCode::CONFLICT, &locked));
    // The owner's lock can be lifted by the owner.
    post(&app, &act, &demo, json!({"unlock": null})).await;
    let r = post(&app, &act, &demo, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    sleep(1.0).await;
    // An admin's lock: the admin still acts, the owner may not unlock.
    post(&app, &act, &admin, json!({"lock": null})).await;
    let r = post(&app, &act, &admin, json!({"os-start": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = post(&app, &act, &demo, json!({"unlock": null})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed."
    );
    post(&app, &act, &admin, json!({"unlock": null})).await;
    let r = call(
        &app,
        Method::DELETE,
        &format!("/compute/v2.1/servers/{id}"),
        Some(&demo),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn aggregates_and_hypervisor_show() {
    let app = router(MockConfig {
        computes: 2,
        ..cfg()
    })
    .expect("router");
    let demo = token(&app, "demo", "demo").await;
    let admin = token(&app, "admin", "admin").await;
    let r = get(&app, "/compute/v2.1/os-aggregates", &demo).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-aggregates:index to be performed."
    );
    assert_eq!(
        get(&app, "/compute/v2.1/os-aggregates", &admin).await.body,
        json!({"aggregates": []})
    );
    let r = post(
        &app,
        "/compute/v2.1/os-aggregates",
        &admin,
        json!({"aggregate": {"name": "fast", "availability_zone": "az1"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["aggregate"]["id"].as_u64().expect("integer id");
    assert!(r.body["aggregate"].get("hosts").is_none());
    let r = post(
        &app,
        "/compute/v2.1/os-aggregates",
        &admin,
        json!({"aggregate": {"name": "fast"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let act = format!("/compute/v2.1/os-aggregates/{id}/action");
    let r = post(
        &app,
        &act,
        &admin,
        json!({"add_host": {"host": "devstack-compute-2"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["aggregate"]["hosts"], json!(["devstack-compute-2"]));
    let r = post(&app, &act, &admin, json!({"add_host": {"host": "nowhere"}})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(
        &app,
        &act,
        &admin,
        json!({"add_host": {"host": "devstack-compute-2"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let a = get(&app, &format!("/compute/v2.1/os-aggregates/{id}"), &admin)
        .await
        .body;
    assert_eq!(a["aggregate"]["metadata"]["availability_zone"], "az1");
    assert_eq!(
        get(&app, "/compute/v2.1/os-aggregates/99", &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/compute/v2.1/os-aggregates/fast", &admin)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = call(
        &app,
        Method::DELETE,
        &format!("/compute/v2.1/os-aggregates/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "not empty");
    post(
        &app,
        &act,
        &admin,
        json!({"remove_host": {"host": "devstack-compute-2"}}),
    )
    .await;
    let r = call(
        &app,
        Method::DELETE,
        &format!("/compute/v2.1/os-aggregates/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let h = get(&app, "/compute/v2.1/os-hypervisors/2", &admin).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(
        h.body["hypervisor"]["hypervisor_hostname"],
        "devstack-compute-2"
    );
    assert_eq!(
        h.body["hypervisor"]["service"]["host"],
        "devstack-compute-2"
    );
    let u = get(&app, "/compute/v2.1/os-hypervisors/2/uptime", &admin)
        .await
        .body;
    assert!(
        u["hypervisor"]["uptime"]
            .as_str()
            .is_some_and(|s| s.contains(" up ")),
        "{u}"
    );
    assert_eq!(
        get(&app, "/compute/v2.1/os-hypervisors/2", &demo)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// `GET /servers/{id}` answers a kept rendering of an unchanged record
/// (servers_store): never one made for another audience (admin-only
/// fields) or another base URL (links), never one older than a change.
#[tokio::test(start_paused = true)]
async fn a_shown_server_is_never_stale_nor_shown_to_the_wrong_audience() {
    let app = router(cfg()).expect("router");
    let admin = token(&app, "admin", "admin").await;
    let demo = token(&app, "demo", "demo").await;
    let id = create(&app, &demo, boot("seen")).await;
    let uri = format!("/compute/v2.1/servers/{id}");
    sleep(4.0).await;
    let first = get(&app, &uri, &demo).await;
    assert_eq!(first.body["server"]["status"], "ACTIVE", "{}", first.text);
    assert!(first.body["server"].get("OS-EXT-SRV-ATTR:host").is_none());
    // Shown again unchanged: the same bytes.
    assert_eq!(get(&app, &uri, &demo).await.text, first.text);
    // An admin sees the admin-only fields, then the member again does not.
    let a = get(&app, &uri, &admin).await;
    assert_eq!(
        a.body["server"]["OS-EXT-SRV-ATTR:host"],
        "devstack-compute-1"
    );
    assert_eq!(get(&app, &uri, &demo).await.text, first.text);
    // Links follow the Host the request came to.
    let req = Request::builder()
        .uri(&uri)
        .header("host", "elsewhere.test:9999")
        .header("x-auth-token", &demo)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let other: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        other["server"]["links"][0]["href"],
        format!("http://elsewhere.test:9999{uri}")
    );
    assert_eq!(get(&app, &uri, &demo).await.text, first.text);
    // A state change shows at once (the action's task_state), then its end.
    let act = format!("{uri}/action");
    let r = post(&app, &act, &demo, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = get(&app, &uri, &demo).await.body["server"].clone();
    assert_eq!(s["OS-EXT-STS:task_state"], "powering-off");
    sleep(10.0).await;
    let s = get(&app, &uri, &demo).await.body["server"].clone();
    assert_eq!(s["status"], "SHUTOFF");
    // Deleted: the rendering goes with the record.
    let r = call(&app, Method::DELETE, &uri, Some(&demo), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, &uri, &demo).await.body["server"]["OS-EXT-STS:task_state"],
        "deleting"
    );
    sleep(2.0).await;
    assert_eq!(get(&app, &uri, &demo).await.status, StatusCode::NOT_FOUND);
}
