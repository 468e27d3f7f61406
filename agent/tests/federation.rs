//! Four mocks + four agents on loopback, driven over HTTP.

use std::time::{Duration, Instant};

use test_support::federation::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cloudlet_boots_elsewhere_and_federation_survives_a_death() {
    // Cloudlet 1 has no compute capacity at all.
    let mut fed = federation(&[0, 4, 4, 4]).await;
    let tok = fed.login(1, "demo").await;

    // A boot through agent 1 lands elsewhere.
    let (id, owner) = fed.boot(1, &tok, "vm1").await;
    assert_ne!(owner, "cloudlet-1");
    // Any agent can show it; the token from agent 1 works at agent 3.
    let v = fed.wait_status(3, &tok, &id, "ACTIVE").await;
    assert_eq!(v["server"]["id"], id.as_str());
    assert!(v["server"]["links"][0]["href"]
        .as_str()
        .unwrap()
        .starts_with(fed.agent(3).base_url()));

    // One request id follows the request (agent 3 → coordinator agent 1 →
    // owner): the id we send comes back.
    let req = http::Request::get(format!("{}/servers/{id}", fed.compute(3)))
        .header("x-auth-token", &tok)
        .header("x-openstack-request-id", "req-trace-me")
        .body(bytes::Bytes::new())
        .unwrap();
    let r = fed.transport.call(req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-openstack-request-id"], "req-trace-me");
    assert_eq!(r.headers()["x-p2p-agent"], "cloudlet-3");
    assert_eq!(r.headers()["x-p2p-cloudlet"], owner.as_str());

    // A second one, and the list through agent 2 has both.
    let (id2, _) = fed.boot(1, &tok, "vm2").await;
    let (s, _, list) = fed
        .call(
            "GET",
            &format!("{}/servers/detail", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&id2.as_str()),
        "{ids:?}"
    );
    // Pagination across cloudlets.
    let (_, _, p1) = fed
        .call(
            "GET",
            &format!("{}/servers?limit=1", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(p1["servers"].as_array().unwrap().len(), 1);
    let next = p1["servers_links"][0]["href"].as_str().unwrap().to_string();
    let (_, _, p2) = fed.call("GET", &next, Some(&tok), None).await;
    assert_eq!(p2["servers"].as_array().unwrap().len(), 1);
    assert_ne!(p1["servers"][0]["id"], p2["servers"][0]["id"]);
    let (s, _, bad) = fed
        .call(
            "GET",
            &format!("{}/servers?marker=nope", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 400, "{bad}");

    // Delete through agent 3.
    let (s, _, _) = fed
        .call(
            "DELETE",
            &format!("{}/servers/{id}", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let t0 = Instant::now();
    loop {
        let (s, _, _) = fed
            .call(
                "GET",
                &format!("{}/servers/{id}", fed.compute(3)),
                Some(&tok),
                None,
            )
            .await;
        if s == 404 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Federation-wide statistics (admin-only, as Nova's policy): three
    // computes of 4 vcpus, one of 0.
    let (s, _, st) = fed
        .call(
            "GET",
            &format!("{}/os-hypervisors/statistics", fed.compute(1)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 403, "{st}");
    let admin = fed.login(1, "admin").await;
    let (s, _, st) = fed
        .call(
            "GET",
            &format!("{}/os-hypervisors/statistics", fed.compute(1)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["hypervisor_statistics"]["count"], 4);
    assert_eq!(st["hypervisor_statistics"]["vcpus"], 12);

    let (s, _, l) = fed
        .call(
            "GET",
            &format!("{}/limits", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["limits"]["absolute"]["maxTotalInstances"], 40);
    // Another project's quota is refused (Nova: reader of the target
    // project); the caller's own, under its ID, is the federation's sum.
    let (s, _, q) = fed
        .call(
            "GET",
            &format!("{}/os-quota-sets/whatever", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 403, "{q}");
    let own = {
        use base64::Engine;
        let payload = tok.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
        claims["project_id"].as_str().unwrap().to_string()
    };
    let (s, _, q) = fed
        .call(
            "GET",
            &format!("{}/os-quota-sets/{own}", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["quota_set"]["instances"], 40);

    // Kill cloudlet 4 (agent + mock): excluded within the documented bound.
    fed.kill(4);
    let t0 = Instant::now();
    while (1..=3).any(|i| fed.agent(i).members_alive() != 3) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "dead member not detected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("dead member excluded by all after {:?}", t0.elapsed());
    // Every boot accepted now ends ACTIVE, on a live cloudlet.
    let mut ids = vec![];
    for k in 0..4 {
        let (id, owner) = fed.boot(1, &tok, &format!("after-{k}")).await;
        assert_ne!(owner, "cloudlet-4");
        ids.push(id);
    }
    for id in &ids {
        fed.wait_status(2, &tok, id, "ACTIVE").await;
    }
    // vm2 is either visible or (if it lived on cloudlet 4) UNKNOWN, never dropped.
    let (_, _, list) = fed
        .call(
            "GET",
            &format!("{}/servers/detail", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    let vm2 = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id2.as_str())
        .cloned();
    assert!(vm2.is_some(), "vm2 dropped from the list: {list}");
}

#[tokio::test]
async fn p2p_api_rejects_callers_without_the_secret_and_bad_input_gets_envelopes() {
    let fed = federation(&[4]).await;
    let tok = fed.login(1, "demo").await;
    let base = fed.agent(1).base_url().to_string();
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{base}/p2p/v1/boot"),
            Some(&tok),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], 401);
    let (s, _, _) = fed
        .call(
            "GET",
            &format!("{base}/p2p/v1/local/servers/detail"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 401);
    // No token / forged token.
    let (s, _, v) = fed
        .call("GET", &format!("{}/servers", fed.compute(1)), None, None)
        .await;
    assert_eq!(s, 401);
    assert_eq!(v["unauthorized"]["code"], 401);
    let (s, _, _) = fed
        .call(
            "GET",
            &format!("{}/servers", fed.compute(1)),
            Some("p2p1.e30.AAAA"),
            None,
        )
        .await;
    assert_eq!(s, 401);
    // Garbage bodies and IDs.
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/servers", fed.compute(1)),
            Some(&tok),
            Some(serde_json::json!("x")),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["badRequest"]["message"].is_string());
    let bad = serde_json::json!({"server": {"name": "x", "imageRef": "nope", "flavorRef": "1"}});
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/servers", fed.compute(1)),
            Some(&tok),
            Some(bad),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/servers/not-a-uuid", fed.compute(1)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["itemNotFound"]["code"], 404);
    // Wrong password → Keystone envelope.
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": "wrong"}}}}});
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/v3/auth/tokens", fed.agent(1).auth_url()),
            None,
            Some(body),
        )
        .await;
    assert_eq!(s, 401, "{v}");
    // Metrics.
    let req = http::Request::get(format!("{base}/metrics"))
        .body(bytes::Bytes::new())
        .unwrap();
    let r = os_client::Transport::call(&*fed.transport, req)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(r.body());
    assert!(
        text.contains("p2p_members_alive{agent=\"cloudlet-1\"} 1"),
        "{text}"
    );
}

/// A stale capacity view sends a boot to a cloudlet that then fails it
/// (ERROR, no valid host): the coordinator re-places it and the user's ID
/// ends ACTIVE. With retries = 0 the same situation ends in ERROR + fault.
/// The view goes stale because cloudlet 1 is filled behind the agents'
/// back (directly on its Nova) and its report is never refreshed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_before_active_is_retried_elsewhere_with_the_same_id() {
    for retries in retries_under_test() {
        let fed = federation_with(&[1, 4], |c| {
            c.capacity_interval_ms = 600_000;
            c.retries = retries;
        })
        .await;
        let tok = fed.login(1, "demo").await;
        // Fill cloudlet 1 directly.
        let mock1 = fed.mocks[0].as_ref().unwrap();
        let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
        let req = http::Request::post(format!("{}/v3/auth/tokens", mock1.auth_url()))
            .header("content-type", "application/json")
            .body(bytes::Bytes::from(body.to_string()))
            .unwrap();
        let r = fed.transport.call(req).await.unwrap();
        let mock_tok = r
            .headers()
            .get("x-subject-token")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let direct = serde_json::json!({"server": {"name": "squatter", "imageRef": mock_openstack::defaults::IMAGE_ID,
            "flavorRef": "1", "networks": [{"uuid": mock_openstack::defaults::PRIVATE_NET_ID}]}});
        let (s, _, v) = fed
            .call(
                "POST",
                &format!("{}/compute/v2.1/servers", mock1.base_url()),
                Some(&mock_tok),
                Some(direct),
            )
            .await;
        assert_eq!(s, 202, "{v}");

        let (b, owner_b) = fed.boot(1, &tok, "b").await;
        assert_eq!(owner_b, "cloudlet-1", "stale view: local looks free");
        if retries > 0 {
            let v = fed.wait_status(2, &tok, &b, "ACTIVE").await;
            assert_eq!(v["server"]["id"], b.as_str());
            let (_, h, _) = fed
                .call(
                    "GET",
                    &format!("{}/servers/{b}", fed.compute(1)),
                    Some(&tok),
                    None,
                )
                .await;
            assert_eq!(h.get("x-p2p-cloudlet").unwrap(), "cloudlet-2");
        } else {
            let v = fed.wait_status(2, &tok, &b, "ERROR").await;
            assert!(
                v["server"]["fault"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("No valid host"),
                "{v}"
            );
        }
    }
}

fn retries_under_test() -> Vec<u32> {
    match std::env::var("ONLY_RETRIES") {
        Ok(v) => vec![v.parse().unwrap_or(0)],
        Err(_) => vec![2, 0],
    }
}

/// The cloudlet holding a boot dies before the boot is ACTIVE: the
/// coordinator re-places it, and the user's ID ends ACTIVE elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_on_a_cloudlet_that_dies_mid_build_is_not_lost() {
    // Boots take 3 s; cloudlet 1 is full so the boot goes remote.
    let mut fed = federation_full(&[0, 4, 4, 4], 1.0, |_| {}).await;
    let tok = fed.login(1, "demo").await;
    let (id, owner) = fed.boot(1, &tok, "doomed").await;
    let victim: usize = owner.trim_start_matches("cloudlet-").parse().unwrap();
    assert_ne!(victim, 1);
    fed.kill(victim);
    let t0 = Instant::now();
    let v = fed.wait_status(1, &tok, &id, "ACTIVE").await;
    eprintln!(
        "re-placed and ACTIVE {:?} after the owner died",
        t0.elapsed()
    );
    assert_eq!(v["server"]["id"], id.as_str());
    let (_, h, _) = fed
        .call(
            "GET",
            &format!("{}/servers/{id}", fed.compute(1)),
            Some(&tok),
            None,
        )
        .await;
    assert_ne!(h.get("x-p2p-cloudlet").unwrap().to_str().unwrap(), owner);
}

/// A cloudlet dies behind a live agent: its agent reports it unhealthy,
/// placement avoids it, and its servers show as UNKNOWN (not dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_cloudlet_behind_live_agent_is_avoided_and_its_servers_show_unknown() {
    let mut fed = federation(&[0, 4, 4, 4]).await;
    let tok = fed.login(1, "demo").await;
    // Put one server on cloudlet 2 (booted through agent 2, local first).
    let (on2, owner) = fed.boot(2, &tok, "on2").await;
    assert_eq!(owner, "cloudlet-2");
    fed.wait_status(2, &tok, &on2, "ACTIVE").await;
    // Listed once through agent 3, so agent 3 has seen it.
    let _ = fed
        .call(
            "GET",
            &format!("{}/servers/detail", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    fed.kill_mock(2);
    // capacity_interval 200 ms + dissemination.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for k in 0..6 {
        let (id, owner) = fed.boot(1, &tok, &format!("x{k}")).await;
        assert_ne!(owner, "cloudlet-2");
        fed.wait_status(3, &tok, &id, "ACTIVE").await;
    }
    // The agent whose cloudlet is down still serves users: login and boot
    // through it (resolved and placed via its peers).
    let tok2 = fed.login(2, "demo").await;
    let (via2, owner) = fed.boot(2, &tok2, "via2").await;
    assert_ne!(owner, "cloudlet-2");
    fed.wait_status(2, &tok2, &via2, "ACTIVE").await;
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/servers/{on2}", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["status"], "UNKNOWN", "{v}");
    let (_, _, list) = fed
        .call(
            "GET",
            &format!("{}/servers/detail", fed.compute(3)),
            Some(&tok),
            None,
        )
        .await;
    let row = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == on2.as_str())
        .cloned();
    assert_eq!(
        row.map(|r| r["status"].clone()),
        Some(serde_json::json!("UNKNOWN")),
        "{list}"
    );
}

/// A pair dies holding a server it also coordinated (issue 12: before,
/// only the dead agent knew it). Its backup took the record over: an agent
/// that never listed that cloudlet still lists the server and shows it
/// ERROR with the loss as fault; DELETE succeeds, and no agent shows it
/// again, not even the one that listed the cloudlet before the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_of_a_dead_pair_stay_visible_everywhere() {
    let mut fed = federation_with(&[4, 4, 4], |c| c.owner_unreachable_ms = 1_000).await;
    let tok = fed.login(1, "demo").await;
    let (id, owner) = fed.boot(3, &tok, "on3").await;
    assert_eq!(owner, "cloudlet-3", "local first");
    fed.wait_status(3, &tok, &id, "ACTIVE").await;
    // Its coordinator's watcher sees it ACTIVE too and tells the backup
    // (one boot poll); a boot still building at the loss is re-placed.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // Only agent 2 lists before the death.
    let (s, _, _) = fed
        .call(
            "GET",
            &format!("{}/servers/detail", fed.compute(2)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200);
    fed.kill(3);
    let t0 = Instant::now();
    while (1..=2).any(|i| fed.agent(i).members_alive() != 2) {
        assert!(t0.elapsed() < Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status_in_list = |list: &serde_json::Value| {
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id.as_str())
            .map(|r| r["status"].as_str().unwrap_or("").to_string())
    };
    for via in [1, 2] {
        let (s, _, list) = fed
            .call(
                "GET",
                &format!("{}/servers/detail", fed.compute(via)),
                Some(&tok),
                None,
            )
            .await;
        assert_eq!(s, 200, "{list}");
        let st = status_in_list(&list);
        assert!(
            matches!(st.as_deref(), Some("UNKNOWN" | "ERROR")),
            "agent {via}: {list}"
        );
    }
    // Taken over once its cloudlet stayed unreachable for
    // `owner_unreachable_ms` (meanwhile 503, never 404).
    let t0 = Instant::now();
    let (s, h, v) = loop {
        let (s, h, v) = fed
            .call(
                "GET",
                &format!("{}/servers/{id}", fed.compute(1)),
                Some(&tok),
                None,
            )
            .await;
        assert_ne!(s, 404, "{v}");
        if s == 200 || t0.elapsed() > Duration::from_secs(20) {
            break (s, h, v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["status"], "ERROR", "{v}");
    assert!(v["server"]["fault"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("cloudlet-3 was lost"));
    assert_eq!(h["x-p2p-cloudlet"], "cloudlet-3");
    let (s, _, v) = fed
        .call(
            "DELETE",
            &format!("{}/servers/{id}", fed.compute(1)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    // Gone for good, wherever it is asked (agent 2 remembers the
    // cloudlet's list from before the loss).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for via in [1, 2] {
        let (s, _, v) = fed
            .call(
                "GET",
                &format!("{}/servers/{id}", fed.compute(via)),
                Some(&tok),
                None,
            )
            .await;
        assert_eq!(s, 404, "agent {via}: {v}");
        let (_, _, list) = fed
            .call(
                "GET",
                &format!("{}/servers/detail", fed.compute(via)),
                Some(&tok),
                None,
            )
            .await;
        assert_eq!(status_in_list(&list), None, "agent {via}: {list}");
    }
}

/// Seeds may be given by name (`host:port`); the agent resolves them itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_by_host_name_join_the_overlay() {
    assert_eq!(
        agent::resolve("localhost:7946").await.map(|a| a.port()),
        Some(7946),
        "localhost must resolve"
    );
    assert!(agent::resolve("no-such-host.invalid:1").await.is_none());
    let fed = federation_with(&[4, 4, 4], |c| {
        c.seed_peers = c
            .seed_peers
            .iter()
            .map(|s| s.replace("127.0.0.1", "localhost"))
            .collect();
    })
    .await;
    assert_eq!(fed.agent(3).members_alive(), 3);
}
