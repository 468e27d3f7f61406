//! Issue 15: what one OpenStack does for its users, through the federation:
//! keypairs made through one agent usable everywhere, server actions on the
//! owning cloudlet, multi-create, and admin host reads.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::federation::*;

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaL4t3/NhYFlyFmeuKHH3YwTV2EeUPhZEdvWjTJ25Qh t";

async fn keypair_names(fed: &Fed, via: usize, token: &str) -> Vec<String> {
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/os-keypairs", fed.compute(via)),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["keypairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["keypair"]["name"].as_str().map(str::to_string))
        .collect()
}

/// A keypair created through agent 1 is listed and shown (under the
/// user's own name) through the others, a boot with it through agent 2
/// works on whichever cloudlet it lands and shows the user's key name;
/// deleted through agent 3, it is gone through every agent and a boot
/// naming it is refused once (400, not retried elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keypair_made_through_one_agent_is_usable_and_deletable_everywhere() {
    let fed = federation(&[1, 1, 1]).await;
    let demo = fed.login(1, "demo").await;
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/os-keypairs", fed.compute(1)),
            Some(&demo),
            Some(json!({"keypair": {"name": "k1", "public_key": PUBLIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["keypair"]["name"], "k1");
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/os-keypairs", fed.compute(2)),
            Some(&demo),
            Some(json!({"keypair": {"name": "k1", "public_key": PUBLIC_KEY}})),
        )
        .await;
    assert_eq!(s, 409, "one name per user across the federation: {v}");
    for via in [1, 2, 3] {
        assert_eq!(
            keypair_names(&fed, via, &demo).await,
            vec!["k1".to_string()]
        );
    }
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/os-keypairs/k1", fed.compute(3)),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(
        (s, v["keypair"]["public_key"].as_str()),
        (200, Some(PUBLIC_KEY))
    );
    // Another user sees none of it.
    let alt = fed.login(1, "admin").await;
    assert!(keypair_names(&fed, 2, &alt).await.is_empty());
    // One boot per cloudlet (one vCPU each): the key works everywhere.
    let mut owners = vec![];
    for k in 0..3 {
        let (s, v, owner) = fed
            .boot_with(
                2,
                &demo,
                json!({"name": format!("kb-{k}"), "key_name": "k1"}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let id = v["server"]["id"].as_str().unwrap().to_string();
        let shown = fed.wait_status(3, &demo, &id, "ACTIVE").await;
        assert_eq!(shown["server"]["key_name"], "k1", "{shown}");
        owners.push(owner);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    owners.sort();
    owners.dedup();
    assert!(owners.len() > 1, "all boots on one cloudlet: {owners:?}");
    let (s, _, _) = fed
        .call(
            "DELETE",
            &format!("{}/os-keypairs/k1", fed.compute(3)),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 202);
    for via in [1, 2, 3] {
        assert!(keypair_names(&fed, via, &demo).await.is_empty());
        let (s, _, _) = fed
            .call(
                "GET",
                &format!("{}/os-keypairs/k1", fed.compute(via)),
                Some(&demo),
                None,
            )
            .await;
        assert_eq!(s, 404);
    }
    let (s, v, _) = fed
        .boot_with(1, &demo, json!({"name": "nokey", "key_name": "k1"}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["badRequest"]["message"], "Invalid key_name provided.");
}

async fn action(fed: &Fed, via: usize, token: &str, id: &str, body: Value) -> (u16, Value) {
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/servers/{id}/action", fed.compute(via)),
            Some(token),
            Some(body),
        )
        .await;
    (s, v)
}

/// Actions sent to any agent reach the cloudlet holding the server: stop
/// through agent 2 → SHUTOFF seen through agent 3, start → ACTIVE, reboot
/// → ACTIVE; an action in the wrong state gets Nova's 409; another
/// project's server is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_actions_reach_the_owning_cloudlet_through_any_agent() {
    let fed = federation(&[4, 4, 4]).await;
    let demo = fed.login(1, "demo").await;
    let (id, owner) = fed.boot(1, &demo, "act").await;
    assert_eq!(owner, "cloudlet-1");
    fed.wait_status(1, &demo, &id, "ACTIVE").await;
    let (s, v) = action(&fed, 2, &demo, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 202, "{v}");
    fed.wait_status(3, &demo, &id, "SHUTOFF").await;
    let (s, v) = action(&fed, 3, &demo, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["conflictingRequest"]["code"], 409, "{v}");
    let (s, v) = action(&fed, 2, &demo, &id, json!({"os-start": null})).await;
    assert_eq!(s, 202, "{v}");
    fed.wait_status(1, &demo, &id, "ACTIVE").await;
    let (s, v) = action(&fed, 3, &demo, &id, json!({"reboot": {"type": "HARD"}})).await;
    assert_eq!(s, 202, "{v}");
    fed.wait_status(2, &demo, &id, "ACTIVE").await;
    let (s, _) = action(
        &fed,
        2,
        &demo,
        &id,
        json!({"os-stop": null, "os-start": null}),
    )
    .await;
    assert_eq!(s, 400);
    let admin = fed.login(2, "admin").await;
    let (s, v) = action(&fed, 2, &admin, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 404, "another project's server: {v}");
}

/// One call path (issue 15 item 6): an action on a server whose agent is
/// dead while its cloudlet lives reaches that cloudlet directly, as show
/// and delete do: stop through another agent → SHUTOFF, start → ACTIVE;
/// another project's server is still not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_reach_a_live_cloudlet_whose_agent_is_dead() {
    let mut fed = federation(&[4, 4]).await;
    let demo = fed.login(1, "demo").await;
    let (id, owner) = fed.boot(2, &demo, "headless").await;
    assert_eq!(owner, "cloudlet-2", "local first");
    fed.wait_status(2, &demo, &id, "ACTIVE").await;
    fed.kill_agent(2);
    let t0 = Instant::now();
    while fed.agent(1).members_alive() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(20), "death not detected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = action(&fed, 1, &demo, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 202, "{v}");
    fed.wait_status(1, &demo, &id, "SHUTOFF").await;
    let (s, v) = action(&fed, 1, &demo, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = action(&fed, 1, &demo, &id, json!({"os-start": null})).await;
    assert_eq!(s, 202, "{v}");
    fed.wait_status(1, &demo, &id, "ACTIVE").await;
    let admin = fed.login(1, "admin").await;
    let (s, v) = action(&fed, 1, &admin, &id, json!({"os-stop": null})).await;
    assert_eq!(s, 404, "another project's server: {v}");
}

/// `min_count`/`max_count` through an agent: three servers named
/// `multi-1..3`, spread over cloudlets when one has no room, all ACTIVE and
/// listed; `return_reservation_id` answers a reservation ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_create_makes_every_server_named_as_nova_does() {
    let fed = federation(&[2, 2, 2]).await;
    let demo = fed.login(1, "demo").await;
    let (s, v, _) = fed
        .boot_with(
            1,
            &demo,
            json!({"name": "multi", "min_count": 3, "max_count": 3}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(v["server"]["id"].is_string(), "{v}");
    let t0 = Instant::now();
    loop {
        let (_, _, list) = fed
            .call(
                "GET",
                &format!("{}/servers/detail", fed.compute(2)),
                Some(&demo),
                None,
            )
            .await;
        let mut rows: Vec<(String, String)> = list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_string(),
                    s["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        rows.sort();
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["multi-1", "multi-2", "multi-3"], "{list}");
        if rows.iter().all(|(_, st)| st == "ACTIVE") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, v, _) = fed
        .boot_with(
            2,
            &demo,
            json!({"name": "res", "max_count": 2, "return_reservation_id": true}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(
        v["reservation_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("r-")),
        "{v}"
    );
}

/// Admin host reads through an agent: the federated hypervisor list's IDs
/// can be shown (and their uptime read), aggregates are listed; a demo
/// token gets 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypervisor_show_and_aggregates_through_the_federation() {
    let fed = federation(&[2, 2, 2]).await;
    let admin = fed.login(1, "admin").await;
    let (s, _, list) = fed
        .call(
            "GET",
            &format!("{}/os-hypervisors", fed.compute(1)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    let hvs = list["hypervisors"].as_array().unwrap().clone();
    assert!(hvs.len() >= 3, "{list}");
    for h in &hvs {
        let id = h["id"].as_u64().unwrap();
        let (s, _, v) = fed
            .call(
                "GET",
                &format!("{}/os-hypervisors/{id}", fed.compute(2)),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["hypervisor"]["id"], id);
        assert_eq!(
            v["hypervisor"]["hypervisor_hostname"], h["hypervisor_hostname"],
            "{v}"
        );
        let (s, _, v) = fed
            .call(
                "GET",
                &format!("{}/os-hypervisors/{id}/uptime", fed.compute(3)),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/os-hypervisors/{}", fed.compute(1), hvs.len() + 1),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/os-aggregates", fed.compute(1)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["aggregates"].is_array());
    let demo = fed.login(1, "demo").await;
    let (s, _, _) = fed
        .call(
            "GET",
            &format!("{}/os-hypervisors/1", fed.compute(1)),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 403);
}

/// A keypair deleted while a cloudlet does not answer is deleted there
/// when it answers again (before, that cloudlet kept its copy and listed
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keypair_deleted_while_a_cloudlet_is_down_goes_there_when_it_returns() {
    let fed = federation(&[1, 1, 1]).await;
    let demo = fed.login(1, "demo").await;
    let (s, _, v) = fed
        .call(
            "POST",
            &format!("{}/os-keypairs", fed.compute(1)),
            Some(&demo),
            Some(json!({"keypair": {"name": "gone", "public_key": PUBLIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        keypair_names(&fed, 3, &demo).await,
        vec!["gone".to_string()]
    );
    // Cloudlet 3 answers 503 to everything for 30 model s (3 s).
    let cut = fed.cut_cloudlet(3, 30.0).await;
    let (s, _, v) = fed
        .call(
            "DELETE",
            &format!("{}/os-keypairs/gone", fed.compute(1)),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert!(keypair_names(&fed, 2, &demo).await.is_empty());
    while cut.elapsed() < Duration::from_millis(3_500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Cloudlet 3 answers again: the keypair is deleted there too.
    let t0 = Instant::now();
    loop {
        let names = keypair_names(&fed, 3, &demo).await;
        if names.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "cloudlet 3 kept the deleted keypair: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
