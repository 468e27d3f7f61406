//! The owner-side status feed (`POST /p2p/v1/statuses`): a coordinator
//! learns the outcome of its boots on a peer's cloudlet from that peer's
//! agent, and the owner answers only about the signed caller's project.

mod common;

use std::time::{Duration, Instant};

use agent::peer_sig::{sign, Parts, PeerKey};
use agent::protocol::{routes, StatusQuery, StatusReport};
use bytes::Bytes;
use common::{Fed, SECRET};
use serde_json::{json, Value};

/// A token of mock `i`'s own admin (for fault injection and direct reads).
async fn mock_admin_token(fed: &Fed, i: usize) -> String {
    let m = fed.mocks[i - 1].as_ref().unwrap();
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let req = http::Request::post(format!("{}/v3/auth/tokens", m.auth_url()))
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let r = fed.transport.call(req).await.unwrap();
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

fn mock_base(fed: &Fed, i: usize) -> String {
    fed.mocks[i - 1].as_ref().unwrap().base_url().to_string()
}

async fn set_faults(fed: &Fed, i: usize, faults: Value) {
    let admin = mock_admin_token(fed, i).await;
    let url = format!("{}/mock/v1/faults", mock_base(fed, i));
    let (s, _, v) = fed.call("PUT", &url, Some(&admin), Some(faults)).await;
    assert_eq!(s, 200, "{v}");
}

/// Every server on mock `i` (all projects) as (name, local id).
async fn on_mock(fed: &Fed, i: usize) -> Vec<(String, String)> {
    let admin = mock_admin_token(fed, i).await;
    let url = format!(
        "{}/compute/v2.1/servers?all_tenants=1&limit=1000",
        mock_base(fed, i)
    );
    let (s, _, v) = fed.call("GET", &url, Some(&admin), None).await;
    assert_eq!(s, 200, "{v}");
    v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn local_id(fed: &Fed, i: usize, name: &str) -> String {
    on_mock(fed, i)
        .await
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not on cloudlet-{i}"))
        .1
}

/// A `POST /p2p/v1/statuses` to agent `i`, signed with the cluster key
/// (nonce `n`) over `signed_body`, sending `body`.
async fn ask(
    fed: &Fed,
    i: usize,
    token: &str,
    signed_body: &[u8],
    body: &[u8],
    n: u64,
) -> (u16, Value) {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    let key = PeerKey::derive(SECRET.as_bytes());
    let header = sign(
        &key,
        cp_model::clock::unix_secs(),
        nonce,
        &Parts {
            method: "POST",
            path: routes::STATUSES,
            query: None,
            body: signed_body,
            user_token: token,
        },
    );
    let req = http::Request::post(format!("{}{}", fed.agent(i).base_url(), routes::STATUSES))
        .header("x-auth-token", token)
        .header("x-p2p-auth", header)
        .header("content-type", "application/json")
        .body(Bytes::copy_from_slice(body))
        .unwrap();
    let r = fed.transport.call(req).await.unwrap();
    let v = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
    (r.status().as_u16(), v)
}

/// The statuses agent `i` reports for `ids` to the holder of `token`.
async fn statuses(fed: &Fed, i: usize, token: &str, ids: &[&str], n: u64) -> StatusReport {
    let q = StatusQuery {
        local_ids: ids.iter().map(|s| s.to_string()).collect(),
    };
    let body = serde_json::to_vec(&q).unwrap();
    let (s, v) = ask(fed, i, token, &body, &body, n).await;
    assert_eq!(s, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

fn status_of<'a>(r: &'a StatusReport, id: &str) -> Option<&'a str> {
    r.servers
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.status.as_str())
}

async fn agent_requests(fed: &Fed, i: usize) -> u64 {
    let url = format!("{}/metrics", fed.agent(i).base_url());
    let req = http::Request::get(url).body(Bytes::new()).unwrap();
    let r = fed.transport.call(req).await.unwrap();
    String::from_utf8_lossy(r.body())
        .lines()
        .find(|l| l.starts_with("p2p_http_requests_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("p2p_http_requests_total")
}

/// The owner reports BUILD, ACTIVE, ERROR (with its fault) and gone for
/// its own project's instances, and leaves out another project's; bad
/// signatures and malformed IDs are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_answers_only_about_the_signed_callers_project() {
    // No retries: a boot in ERROR stays (else its coordinator re-places
    // it and deletes the failed instance).
    let fed = common::federation_with(&[8, 8], |c| c.retries = 0).await;
    // Spawns on cloudlet 2 take 30 model s more (3 s here): still BUILD
    // when first asked; boots named `e-` fail.
    set_faults(
        &fed,
        2,
        json!({"extra_latency": {"compute_s": 30.0},
               "boot_errors": [{"name_regex": "^e-", "rate": 1.0}]}),
    )
    .await;
    let demo = fed.login(2, "demo").await;
    let admin = fed.login(2, "admin").await;
    let (_, o1) = fed.boot(2, &demo, "d-0").await;
    let (_, o2) = fed.boot(2, &demo, "e-0").await;
    let (_, o3) = fed.boot(2, &admin, "a-0").await;
    assert_eq!(
        (o1.as_str(), o2.as_str(), o3.as_str()),
        ("cloudlet-2", "cloudlet-2", "cloudlet-2")
    );
    let d = local_id(&fed, 2, "d-0").await;
    let e = local_id(&fed, 2, "e-0").await;
    let a = local_id(&fed, 2, "a-0").await;
    let nobody = "00000000-0000-4000-8000-000000000000";
    let all = [d.as_str(), e.as_str(), a.as_str(), nobody];

    let r = statuses(&fed, 2, &demo, &all, 1).await;
    assert_eq!(status_of(&r, &d), Some("BUILD"), "{r:?}");
    assert_eq!(
        status_of(&r, &a),
        None,
        "another project's server answered: {r:?}"
    );
    assert_eq!(status_of(&r, nobody), None, "{r:?}");
    let r = statuses(&fed, 2, &admin, &all, 2).await;
    assert_eq!(status_of(&r, &a), Some("BUILD"), "{r:?}");
    assert_eq!(
        status_of(&r, &d),
        None,
        "another project's server answered: {r:?}"
    );
    assert_eq!(status_of(&r, &e), None, "{r:?}");

    // Outcomes once the builds end (the snapshot is at most one poll old).
    let mut n = 10;
    let t0 = Instant::now();
    let r = loop {
        n += 1;
        let r = statuses(&fed, 2, &demo, &all, n).await;
        if status_of(&r, &d) == Some("ACTIVE") && status_of(&r, &e) == Some("ERROR") {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "builds never ended: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fault = r
        .servers
        .iter()
        .find(|s| s.id == e)
        .and_then(|s| s.fault.clone());
    assert!(
        fault.is_some_and(|f| !f.is_empty()),
        "ERROR without its fault: {r:?}"
    );
    assert_eq!(status_of(&r, &a), None, "{r:?}");

    // Gone: deleted on the cloudlet behind the agents' back.
    let madmin = mock_admin_token(&fed, 2).await;
    let url = format!("{}/compute/v2.1/servers/{d}", mock_base(&fed, 2));
    let (s, _, _) = fed.call("DELETE", &url, Some(&madmin), None).await;
    assert_eq!(s, 204);
    let t0 = Instant::now();
    loop {
        n += 1;
        if status_of(&statuses(&fed, 2, &demo, &[&d], n).await, &d).is_none() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "deleted server still reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refusals: a body other than the signed one, no signature, an ID that
    // is not an ID.
    let q = serde_json::to_vec(&StatusQuery {
        local_ids: vec![a.clone()],
    })
    .unwrap();
    let other = serde_json::to_vec(&StatusQuery {
        local_ids: vec![d.clone()],
    })
    .unwrap();
    let (s, v) = ask(&fed, 2, &demo, &other, &q, 90).await;
    assert_eq!(s, 401, "{v}");
    let req = http::Request::post(format!("{}{}", fed.agent(2).base_url(), routes::STATUSES))
        .header("x-auth-token", &demo)
        .header("content-type", "application/json")
        .body(Bytes::from(q.clone()))
        .unwrap();
    assert_eq!(fed.transport.call(req).await.unwrap().status(), 401);
    let bad = serde_json::to_vec(&json!({"local_ids": [format!("{d}/action")]})).unwrap();
    let (s, v) = ask(&fed, 2, &demo, &bad, &bad, 91).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("Malformed"), "{v}");
}

/// A coordinator (agent 1) whose boots landed on cloudlet 2 learns their
/// outcome from agent 2's feed: an ERROR is re-placed elsewhere (and the
/// failed instance deleted), an ACTIVE boot and one deleted behind its
/// back end the watching (no more calls to agent 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_learns_active_error_and_gone_of_boots_on_a_peer() {
    // Cloudlet 1 holds one m1.tiny; cloudlet 2 has the most headroom, so
    // agent 1's next boots land there; cloudlet 3 takes the re-placement.
    let fed = common::federation(&[1, 16, 4]).await;
    let demo = fed.login(1, "demo").await;
    let (fill, owner) = fed.boot(1, &demo, "fill").await;
    assert_eq!(owner, "cloudlet-1");
    fed.wait_status(1, &demo, &fill, "ACTIVE").await;
    // Until cloudlet 1's capacity report says it is full (capacity polls
    // and gossip every 200 ms), agent 1 may still place locally.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    set_faults(
        &fed,
        2,
        json!({"extra_latency": {"compute_s": 20.0},
               "boot_errors": [{"name_regex": "^err", "rate": 1.0}]}),
    )
    .await;
    let (err, o_err) = fed.boot(1, &demo, "err-0").await;
    let (ok, o_ok) = fed.boot(1, &demo, "ok-0").await;
    let (gone, o_gone) = fed.boot(1, &demo, "gone-0").await;
    assert_eq!(
        (o_err.as_str(), o_ok.as_str(), o_gone.as_str()),
        ("cloudlet-2", "cloudlet-2", "cloudlet-2")
    );
    // Deleted on cloudlet 2 while it builds.
    let gone_local = local_id(&fed, 2, "gone-0").await;
    let err_local = local_id(&fed, 2, "err-0").await;
    let madmin = mock_admin_token(&fed, 2).await;
    let url = format!("{}/compute/v2.1/servers/{gone_local}", mock_base(&fed, 2));
    let (s, _, _) = fed.call("DELETE", &url, Some(&madmin), None).await;
    assert_eq!(s, 204);

    // ERROR learnt: re-placed on cloudlet 3, where it becomes ACTIVE.
    let t0 = Instant::now();
    loop {
        let (s, h, v) = fed
            .call(
                "GET",
                &format!("{}/servers/{err}", fed.compute(1)),
                Some(&demo),
                None,
            )
            .await;
        let owner = h.get("x-p2p-cloudlet").and_then(|o| o.to_str().ok());
        if s == 200 && owner == Some("cloudlet-3") && v["server"]["status"] == "ACTIVE" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never re-placed: {s} {owner:?} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The failed instance goes for certain.
    let t0 = Instant::now();
    while on_mock(&fed, 2)
        .await
        .iter()
        .any(|(_, id)| *id == err_local)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "failed instance kept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The others: ACTIVE on cloudlet 2, and gone.
    fed.wait_status(1, &demo, &ok, "ACTIVE").await;
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/servers/{gone}", fed.compute(1)),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    // Nothing is watched any more: agent 2 hears nothing over ten polls.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = agent_requests(&fed, 2).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let after = agent_requests(&fed, 2).await;
    assert!(
        after - before <= 1,
        "agent 2 still polled: {} requests in 2 s",
        after - before
    );
}
