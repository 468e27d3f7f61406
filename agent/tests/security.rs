//! Security properties of the agent, probed as an attacker would (issue 12).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::AgentConfig;
use mock_openstack::MockConfig;
use test_support::federation::*;

/// A TCP listener that counts connections and keeps whatever it is sent:
/// the "peer URL" a stranger advertises.
async fn recorder() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    (url, hits)
}

/// Strangers (a wrong key, and an old-style unauthenticated chitchat node)
/// point at a member's gossip port and advertise a peer URL: they are never
/// admitted, no boot is placed on them, and no request (so no token) ever
/// reaches the URL they advertise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_never_admitted_and_never_receives_a_token() {
    let fed = federation(&[8, 8]).await;
    let seed = fed.agent(1).gossip_addr().to_string();
    let (trap_url, hits) = recorder().await;
    let mock = mock_openstack::start(MockConfig {
        name: "cloudlet-0".into(),
        listen: "127.0.0.1:0".into(),
        computes: 1,
        compute_vcpus: 64,
        cpu_allocation_ratio: 1.0,
        time_scale: 0.1,
        ..Default::default()
    })
    .await
    .unwrap();
    let stranger_cfg = |name: &str, secret: &str| AgentConfig {
        name: name.into(),
        cluster_secret: secret.into(),
        peer_url: Some(trap_url.clone()),
        ..agent_config(0, mock.auth_url(), Some(seed.clone()))
    };
    // Wrong key, authenticated transport (the issue's attack).
    let wrong_key = agent::start(
        stranger_cfg("cloudlet-0", "wrong-secret-wrong-secret"),
        fed.transport.clone(),
    )
    .await
    .unwrap();
    // No key at all: plain chitchat UDP, right cluster id.
    let plain = agent::start_with_gossip(
        stranger_cfg("cloudlet-9", "some-other-secret-entirely"),
        fed.transport.clone(),
        &chitchat::transport::UdpTransport,
    )
    .await
    .unwrap();
    // Twenty gossip rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in 1..=2 {
        assert_eq!(
            fed.agent(i).members_alive(),
            2,
            "agent {i} admitted a stranger"
        );
    }
    assert_eq!(
        wrong_key.members_alive(),
        1,
        "the stranger learnt the members"
    );
    assert_eq!(plain.members_alive(), 1, "the stranger learnt the members");
    let rejected = fed.metric(1, "p2p_gossip_rejected_total").await;
    assert!(rejected > 0, "the strangers' datagrams were not counted");
    // Users (admin included) boot and list through both members.
    for user in ["demo", "admin"] {
        for i in 1..=2 {
            let tok = fed.login(i, user).await;
            for k in 0..4 {
                let (_, owner) = fed.boot(i, &tok, &format!("{user}-{i}-{k}")).await;
                assert!(
                    owner == "cloudlet-1" || owner == "cloudlet-2",
                    "boot placed on {owner}"
                );
            }
            let (s, _, v) = fed
                .call(
                    "GET",
                    &format!("{}/servers/detail", fed.compute(i)),
                    Some(&tok),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a member connected to the stranger's URL"
    );
    drop(wrong_key);
    drop(plain);
}

/// No default secret: an agent without one (or with a short one such as
/// the old `change-me`) refuses to start with a clear error.
#[tokio::test]
async fn no_default_secret() {
    let t: os_client::SharedTransport =
        Arc::new(os_client::ReqwestTransport::new(Duration::from_secs(2)).unwrap());
    for secret in ["", "change-me"] {
        let cfg = AgentConfig {
            cluster_secret: secret.into(),
            ..Default::default()
        };
        let err = agent::start(cfg, t.clone()).await.err().expect("started");
        let msg = err.to_string();
        assert!(msg.contains("secret"), "{msg}");
    }
    assert!(AgentConfig::default().cluster_secret.is_empty());
    // A key file is read (trimmed) when no secret is given directly.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key");
    std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
    let mut cfg = AgentConfig {
        cluster_secret_file: Some(p),
        ..Default::default()
    };
    cfg.load_secret_file().unwrap();
    assert_eq!(cfg.cluster_secret, "0123456789abcdef0123456789abcdef");
}

/// One request with the path exactly as given (like `curl --path-as-is`);
/// returns (status, body).
async fn raw(base: &str, method: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// A demo token reads nothing of another project and no admin-only route,
/// whatever the spelling of the path; cloudlet internals are never
/// reachable through a service path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_token_cannot_read_another_project_or_admin_routes() {
    let fed = federation(&[8, 8]).await;
    let admin = fed.login(1, "admin").await;
    let demo = fed.login(1, "demo").await;
    let admin_project = claims_of(&admin)["project_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (admin_vm, _) = fed.boot(1, &admin, "admin-secret-vm").await;
    let (demo_vm, _) = fed.boot(2, &demo, "demo-vm").await;
    fed.wait_status(1, &admin, &admin_vm, "ACTIVE").await;
    fed.wait_status(1, &demo, &demo_vm, "ACTIVE").await;
    let base = fed.agent(1).base_url().to_string();
    let c = "/compute/v2.1";
    let forbidden_markers = [admin_vm.as_str(), "admin-secret-vm", admin_project.as_str()];
    let mut probes: Vec<String> = vec![];
    for list in ["servers", "servers/detail"] {
        for q in [
            "all_tenants=1",
            "all_tenants=True",
            "all_tenants",
            "all_tenants=0&all_tenants=1",
        ] {
            probes.push(format!("{c}/{list}?{q}"));
            probes.push(format!("{c}/{list}/?{q}"));
            probes.push(format!("{c}//{list}?{q}"));
            probes.push(format!("{c}/servers/x/../{list}?{q}"));
            probes.push(format!("{c}/./{list}?{q}"));
            probes.push(format!("{c}/servers/%2e%2e/{list}?{q}"));
        }
    }
    for p in [
        format!("{c}/servers/{admin_vm}"),
        format!("{c}/servers/{admin_vm}/"),
        format!("{c}/servers/{admin_vm}/metadata"),
        format!("{c}/servers/{admin_vm}/os-interface"),
        format!("{c}/servers/{admin_vm}/ips"),
        format!("{c}/os-services"),
        format!("{c}/os-services/"),
        format!("{c}//os-services"),
        format!("{c}/os-hypervisors"),
        format!("{c}/os-hypervisors/detail"),
        format!("{c}/os-hypervisors/statistics"),
        format!("{c}/os-hypervisors/1"),
        format!("{c}/os-aggregates"),
        format!("{c}/os-availability-zone/detail"),
        format!("{c}/os-simple-tenant-usage"),
        format!("{c}/os-simple-tenant-usage/{admin_project}"),
        format!("{c}/os-quota-sets/{admin_project}"),
        format!("{c}/os-quota-sets/{admin_project}/detail"),
        format!("{c}/os-quota-sets/{admin_project}/"),
        format!("{c}/limits?tenant_id={admin_project}"),
        "/network/v2.0/ports".to_string(),
        "/network/v2.0/ports?all_tenants=1".to_string(),
        format!("/network/v2.0/ports?project_id={admin_project}"),
        format!("/network/v2.0/quotas/{admin_project}"),
        "/network/v2.0/agents".to_string(),
        "/image/../mock/v1/faults".to_string(),
        "/image/%2e%2e/mock/v1/faults".to_string(),
        "/image/..%2fmock/v1/faults".to_string(),
        "/network/../placement/resource_providers".to_string(),
        format!("{c}/../../mock/v1/faults"),
        "/mock/v1/faults".to_string(),
        "/mock/v1/info".to_string(),
        "/placement/resource_providers".to_string(),
        "/identity/v3/projects".to_string(),
    ] {
        probes.push(p);
    }
    let mut report = vec![];
    for p in &probes {
        let (status, body) = raw(&base, "GET", p, &demo).await;
        // A 404 naming the ID the caller sent is no leak.
        let body = body.replace(&format!("Instance {admin_vm} could not be found."), "");
        let leaked: Vec<&str> = forbidden_markers
            .iter()
            .copied()
            .filter(|m| body.contains(m))
            .collect();
        // Lists of one's own project are fine; anything else must fail.
        // (Neutron ignores a non-admin's all_tenants: the list stays the
        // caller's own, trimmed by the agent.)
        let own_list = status == 200
            && (p.starts_with("/network/v2.0/ports") || p.starts_with(&format!("{c}/limits")));
        if !leaked.is_empty() || (status == 200 && !own_list) || status == 0 {
            report.push(format!(
                "{status} {p} leaked {leaked:?}: {}",
                &body[..body.len().min(200)]
            ));
        }
        // Errors come in an envelope (JSON).
        if status >= 400 {
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{status} {p}: not JSON: {body}"
            );
        }
    }
    assert!(
        report.is_empty(),
        "demo read what it must not:\n{}",
        report.join("\n")
    );
    // Nova's answers, not just any failure.
    let (s, b) = raw(&base, "GET", &format!("{c}/os-services"), &demo).await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("Policy doesn't allow"), "{b}");
    let (s, _) = raw(
        &base,
        "GET",
        &format!("{c}/servers/detail?all_tenants=1"),
        &demo,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = raw(&base, "GET", &format!("{c}/servers/{admin_vm}"), &demo).await;
    assert_eq!(s, 404);
    // The admin still reads admin routes, and demo its own things.
    let (s, b) = raw(
        &base,
        "GET",
        &format!("{c}/os-hypervisors/statistics"),
        &admin,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = raw(&base, "GET", &format!("{c}/servers/detail"), &demo).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains(&demo_vm) && !b.contains(&admin_vm), "{b}");
    assert!(
        !b.contains("OS-EXT-SRV-ATTR:host"),
        "admin-only attributes shown: {b}"
    );
    let (s, b) = raw(&base, "GET", &format!("{c}/servers/{demo_vm}"), &demo).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = raw(&base, "GET", &format!("{c}/flavors/detail"), &demo).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = raw(&base, "GET", "/image/v2/images", &demo).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = raw(&base, "GET", "/network/v2.0/networks", &demo).await;
    assert_eq!(s, 200, "{b}");
}

/// Sends a request signed with `header` (or none) to agent `base`.
async fn signed(
    fed: &Fed,
    method: &str,
    url: &str,
    token: &str,
    body: &[u8],
    header: &str,
) -> (u16, String) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-auth-token", token)
        .header("x-p2p-auth", header);
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    let r = fed
        .transport
        .call(b.body(bytes::Bytes::copy_from_slice(body)).unwrap())
        .await
        .unwrap();
    (
        r.status().as_u16(),
        String::from_utf8_lossy(r.body()).into_owned(),
    )
}

/// A captured signed peer request is refused when replayed, when any part
/// of it (method, path, query, body, user token) is altered, and when its
/// timestamp is outside the window in either direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_or_altered_signed_peer_requests_are_refused() {
    use agent::peer_sig::{sign, Parts, PeerKey, WINDOW_SECS};
    let fed = federation(&[8]).await;
    let demo = fed.login(1, "demo").await;
    let admin = fed.login(1, "admin").await;
    let base = fed.agent(1).base_url().to_string();
    let key = PeerKey::derive(SECRET.as_bytes());
    let now = cp_model::clock::unix_secs();
    let list = Parts {
        method: "GET",
        path: "/p2p/v1/local/servers/detail",
        query: Some("limit=1000"),
        body: b"",
        user_token: &demo,
    };
    let url = format!("{base}/p2p/v1/local/servers/detail?limit=1000");
    let h = sign(&key, now, [1; 16], &list);
    let (s, b) = signed(&fed, "GET", &url, &demo, b"", &h).await;
    assert_eq!(s, 200, "{b}");
    // Replay of the very same request.
    let (s, b) = signed(&fed, "GET", &url, &demo, b"", &h).await;
    assert_eq!(s, 401, "replay accepted: {b}");
    assert!(b.contains("replay"), "{b}");
    // Altered query, path, method, user token (fresh nonces each time).
    let h = sign(&key, now, [2; 16], &list);
    let (s, b) = signed(&fed, "GET", &format!("{url}&all_tenants=1"), &demo, b"", &h).await;
    assert_eq!(s, 401, "altered query accepted: {b}");
    let h = sign(&key, now, [3; 16], &list);
    let (s, _) = signed(
        &fed,
        "GET",
        &format!("{base}/p2p/v1/local/os-hypervisors?limit=1000"),
        &demo,
        b"",
        &h,
    )
    .await;
    assert_eq!(s, 401, "altered path accepted");
    let h = sign(&key, now, [4; 16], &list);
    let (s, _) = signed(&fed, "DELETE", &url, &demo, b"", &h).await;
    assert_eq!(s, 401, "altered method accepted");
    let h = sign(&key, now, [5; 16], &list);
    let (s, _) = signed(&fed, "GET", &url, &admin, b"", &h).await;
    assert_eq!(s, 401, "swapped user token accepted");
    // A signed boot replayed with another body.
    let plan = br#"{"gid":"x"}"#;
    let boot = Parts {
        method: "POST",
        path: "/p2p/v1/boot",
        query: None,
        body: plan,
        user_token: &demo,
    };
    let h = sign(&key, now, [6; 16], &boot);
    let (s, b) = signed(
        &fed,
        "POST",
        &format!("{base}/p2p/v1/boot"),
        &demo,
        br#"{"gid":"y","evil":1}"#,
        &h,
    )
    .await;
    assert_eq!(s, 401, "altered body accepted: {b}");
    // Timestamps outside the window, in the future and in the past.
    for ts in [now + WINDOW_SECS + 5, now - WINDOW_SECS - 5, now + 600] {
        let h = sign(&key, ts, [7; 16], &list);
        let (s, b) = signed(&fed, "GET", &url, &demo, b"", &h).await;
        assert_eq!(s, 401, "ts {ts} (now {now}) accepted: {b}");
    }
    // A fresh, honest request still works; the refusals were counted.
    let h = sign(&key, now, [8; 16], &list);
    let (s, b) = signed(&fed, "GET", &url, &demo, b"", &h).await;
    assert_eq!(s, 200, "{b}");
    let refused = fed
        .metric_at(&base, "p2p_peer_requests_refused_total")
        .await;
    assert!(refused >= 9, "refused {refused}");
}

/// Bad input gets the real service's status and envelope (issue 12, 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_counts_and_content_types_get_novas_answers() {
    let fed = federation(&[4]).await;
    let demo = fed.login(1, "demo").await;
    let url = format!("{}/servers", fed.compute(1));
    let boot = |extra: serde_json::Value| {
        let mut b = serde_json::json!({"server": {"name": "x",
            "imageRef": mock_openstack::defaults::IMAGE_ID, "flavorRef": "1",
            "networks": [{"uuid": mock_openstack::defaults::PRIVATE_NET_ID}]}});
        for (k, v) in extra.as_object().unwrap() {
            b["server"][k] = v.clone();
        }
        b
    };
    for (extra, want) in [
        (
            serde_json::json!({"min_count": 1.5}),
            "Invalid input for field/attribute min_count",
        ),
        (
            serde_json::json!({"min_count": "abc"}),
            "Invalid input for field/attribute min_count",
        ),
        (
            serde_json::json!({"max_count": 0}),
            "Invalid input for field/attribute max_count",
        ),
        (
            serde_json::json!({"min_count": 5, "max_count": 2}),
            "min_count must be <= max_count",
        ),
    ] {
        let (s, _, v) = fed
            .call("POST", &url, Some(&demo), Some(boot(extra.clone())))
            .await;
        assert_eq!(s, 400, "{extra}: {v}");
        let msg = v["badRequest"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{extra}: {v}");
    }
    // Valid counts are served (multi-create): a string of digits too; and
    // all or nothing: 11 servers do not fit the project's quota of 10, so
    // none is left.
    let (s, _, v) = fed
        .call(
            "POST",
            &url,
            Some(&demo),
            Some(boot(serde_json::json!({"min_count": "2"}))),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let (s, _, v) = fed
        .call(
            "POST",
            &url,
            Some(&demo),
            Some(boot(serde_json::json!({"name": "many", "min_count": 11}))),
        )
        .await;
    // Refused by the quota (403) or by placement (no room: 500).
    assert!(s == 403 || s == 500, "{s} {v}");
    let t0 = std::time::Instant::now();
    loop {
        let (_, _, list) = fed
            .call("GET", &format!("{url}/detail"), Some(&demo), None)
            .await;
        let left = list["servers"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("many-")))
                .count()
        });
        if left == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{left} left: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Content types.
    let send =
        |url: String, ct: Option<&'static str>, body: serde_json::Value, tok: Option<String>| {
            let fed = &fed;
            async move {
                let mut b = http::Request::post(url);
                if let Some(ct) = ct {
                    b = b.header("content-type", ct);
                }
                if let Some(t) = tok {
                    b = b.header("x-auth-token", t);
                }
                let r = fed
                    .transport
                    .call(b.body(bytes::Bytes::from(body.to_string())).unwrap())
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap_or_default();
                (r.status().as_u16(), v)
            }
        };
    let (s, v) = send(
        url.clone(),
        Some("application/xml"),
        boot(serde_json::json!({})),
        Some(demo.clone()),
    )
    .await;
    assert_eq!(s, 415, "{v}");
    assert_eq!(v["badMediaType"]["message"], "Unsupported Content-Type");
    let auth = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": "secret"}}}}});
    let auth_url = format!("{}/v3/auth/tokens", fed.agent(1).auth_url());
    for ct in [None, Some("text/plain")] {
        let (s, v) = send(auth_url.clone(), ct, auth.clone(), None).await;
        assert_eq!(s, 400, "{ct:?}: {v}");
        assert_eq!(v["error"]["code"], 400);
    }
    // Nothing was created by any of the refused requests.
    let (s, _, v) = fed
        .call("GET", &format!("{url}/detail"), Some(&demo), None)
        .await;
    assert_eq!(s, 200);
    let refused_made = v["servers"].as_array().map(|a| {
        a.iter()
            .filter(|s| !s["name"].as_str().unwrap_or("").starts_with("x-"))
            .count()
    });
    assert_eq!(refused_made, Some(0), "{v}");
}

/// Beyond its connection cap an agent answers 503 in the envelope at once,
/// and it tells the overlay it is saturated (peers then place no boots on
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_agent_answers_503_and_says_so_in_gossip() {
    use agent::peer_sig::{sign, Parts, PeerKey};
    let fed = federation_with(&[4, 4], |c| c.max_connections = 8).await;
    let target = fed
        .agent(2)
        .base_url()
        .trim_start_matches("http://")
        .to_string();
    let mut idle = vec![];
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(&target).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, body) = raw(fed.agent(2).base_url(), "GET", "/compute/v2.1/flavors", "x").await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("serviceUnavailable"), "{body}");
    // Agent 1 learns that agent 2 is saturated.
    let demo = fed.login(1, "demo").await;
    let key = PeerKey::derive(SECRET.as_bytes());
    let base = fed.agent(1).base_url().to_string();
    let t0 = std::time::Instant::now();
    let mut n = 0u8;
    loop {
        n += 1;
        let parts = Parts {
            method: "GET",
            path: "/p2p/v1/view",
            query: None,
            body: b"",
            user_token: &demo,
        };
        let h = sign(&key, cp_model::clock::unix_secs(), [n; 16], &parts);
        let (s, b) = signed(&fed, "GET", &format!("{base}/p2p/v1/view"), &demo, b"", &h).await;
        assert_eq!(s, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let sat = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["state"]["name"] == "cloudlet-2" && m["state"]["saturated"] == true);
        if sat {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never saturated: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Boots through agent 1 stay on cloudlet 1 (local first anyway; that a
    // saturated member never fits is `placement::saturated_agents_get_no_boots`).
    for k in 0..3 {
        let (_, owner) = fed.boot(1, &demo, &format!("s{k}")).await;
        assert_eq!(owner, "cloudlet-1");
    }
    drop(idle);
}

/// Issue 12, item 7: the agent's accept loop (`agent::conn::serve`, with
/// short limits) closes a client that sends no request head and answers
/// 408 in the envelope to one whose body does not arrive; a well-behaved
/// client is served meanwhile.
#[tokio::test]
async fn idle_and_slow_clients_get_closed_or_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/compute/v2.1/servers",
        axum::routing::post(|body: bytes::Bytes| async move { format!("{}", body.len()) }),
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let limits = agent::conn::ConnLimits {
        header_read: Duration::from_millis(500),
        body_read: Duration::from_millis(500),
        max_connections: 16,
    };
    let server = tokio::spawn(agent::conn::serve(
        listener,
        router,
        stop,
        limits,
        Default::default(),
    ));
    let read_all = |mut s: tokio::net::TcpStream| async move {
        let mut out = vec![];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        (r.is_ok(), String::from_utf8_lossy(&out).to_string())
    };
    // Idle: connects, says nothing.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Half a head, then silence.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /compute/v2.1/servers HT")
        .await
        .unwrap();
    // A full head announcing 1,000 bytes, then 1 byte.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    // Meanwhile a good client is served.
    let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();
    good.write_all(
        b"POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nconnection: close\r\n\r\n{}",
    )
    .await
    .unwrap();
    let (closed, answer) = read_all(good).await;
    assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");
    let t0 = std::time::Instant::now();
    let (closed, answer) = read_all(idle).await;
    assert!(closed && answer.is_empty(), "idle: {answer:?}");
    let (closed, answer) = read_all(half).await;
    assert!(closed, "half a head: connection left open");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let (closed, answer) = read_all(slow).await;
    assert!(closed, "slow body: connection left open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The service's error envelope, not plain text.
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let inner = v.as_object().and_then(|o| o.values().next()).cloned();
    assert_eq!(
        inner.and_then(|i| i["code"].as_u64()),
        Some(408),
        "{answer}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    server.abort();
}

/// A keypair removal sent late by a peer (a member that did not answer at
/// the delete is sent it again) names the public key it removes: a keypair
/// made again under that name with another key is kept (204, nothing
/// removed); a removal naming the key held removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_keypair_removal_keeps_a_keypair_made_again() {
    use agent::peer_sig::{sign, Parts, PeerKey};
    use sha2::Digest;
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaL4t3/NhYFlyFmeuKHH3YwTV2EeUPhZEdvWjTJ25Qh t";
    const OLD_KEY: &str = "ssh-ed25519 AAAAold u";
    let fed = federation(&[4]).await;
    let demo = fed.login(1, "demo").await;
    let compute = fed.compute(1);
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{compute}/os-keypairs"),
            Some(&demo),
            Some(serde_json::json!({"keypair": {"name": "k", "public_key": KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The name the agents store demo's "k" under (core::keypairs).
    let tag: String = sha2::Sha256::new()
        .chain_update(b"Default")
        .chain_update([0u8])
        .chain_update(b"demo")
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let stored = format!("p2p.{tag}.k");
    let key = PeerKey::derive(SECRET.as_bytes());
    let url = format!("{}/p2p/v1/keypair", fed.agent(1).base_url());
    let removal = |public_key: &str, nonce: u8| {
        let body = serde_json::json!({"name": stored, "if_public_key": public_key}).to_string();
        let h = sign(
            &key,
            cp_model::clock::unix_secs(),
            [nonce; 16],
            &Parts {
                method: "POST",
                path: "/p2p/v1/keypair",
                query: None,
                body: body.as_bytes(),
                user_token: &demo,
            },
        );
        (body, h)
    };
    let (body, h) = removal(OLD_KEY, 7);
    let (s, b) = signed(&fed, "POST", &url, &demo, body.as_bytes(), &h).await;
    assert_eq!(s, 204, "{b}");
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{compute}/os-keypairs/k"),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(
        (s, v["keypair"]["public_key"].as_str()),
        (200, Some(KEY)),
        "a late removal of the old key removed the new keypair"
    );
    let (body, h) = removal(KEY, 8);
    let (s, b) = signed(&fed, "POST", &url, &demo, body.as_bytes(), &h).await;
    assert_eq!(s, 204, "{b}");
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{compute}/os-keypairs/k"),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
}
