//! The CYCLON overlay (`overlay = cyclon`) with real agents and mocks on
//! loopback: global reads reach cloudlets that no single agent knows.

use agent::config::Overlay;
use serde_json::Value;
use test_support::federation::{agent_config, start_mock, transport, Fed};

const N: usize = 6;

/// `N` cloudlets of 4 vCPUs whose agents hold views of 2, no candidate
/// cache and no address book: each knows itself and two others.
async fn narrow_federation() -> Fed {
    let transport = transport();
    let (mut mocks, mut agents) = (vec![], vec![]);
    let mut seed: Option<String> = None;
    for i in 1..=N {
        let m = start_mock(i, 4, 0.1, "devstack").await;
        let mut cfg = agent_config(i, m.auth_url(), seed.clone());
        cfg.overlay = Overlay::Cyclon;
        cfg.cyclon_view_size = 2;
        cfg.cyclon_shuffle_len = 1;
        cfg.cyclon_cache_size = 0;
        cfg.cyclon_book_size = 0;
        cfg.gossip_interval_ms = 100;
        let a = agent::start(cfg, transport.clone()).await.unwrap();
        seed.get_or_insert_with(|| a.gossip_addr().to_string());
        mocks.push(Some(m));
        agents.push(Some(a));
    }
    let fed = Fed {
        mocks,
        agents,
        transport,
        cuts: Default::default(),
    };
    fed.wait_until("views of 2 filled", |a| {
        a.partial_view().map(|(len, _)| len) == Some(2)
    })
    .await;
    fed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_statistics_reach_cloudlets_no_agent_knows() {
    let fed = narrow_federation().await;
    let tok = fed.login(1, "demo").await;
    // One server on each cloudlet, each booted (and placed locally) by
    // that cloudlet's own agent.
    let mut ids = vec![];
    for i in 1..=N {
        let t = fed.login(i, "demo").await;
        let (id, owner) = fed.boot(i, &t, &format!("vm-{i}")).await;
        assert_eq!(owner, format!("cloudlet-{i}"));
        ids.push(id);
    }
    // Agent 1 knows itself and its view of 2: not everyone.
    assert!(fed.agent(1).members_alive() < N, "not a partial view");

    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{}/servers", fed.compute(1)),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<&str> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    for id in &ids {
        assert!(
            listed.contains(&id.as_str()),
            "{id} missing from {listed:?}"
        );
    }

    // Federation-wide statistics (admin) count every cloudlet.
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
    assert_eq!(st["hypervisor_statistics"]["count"], Value::from(N));
    assert_eq!(st["hypervisor_statistics"]["vcpus"], Value::from(4 * N));
}

/// `server show <id>` through an agent that does not know the ID's
/// coordinator: the coordinator is looked up over the overlay by tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_by_id_reaches_a_coordinator_no_agent_here_knows() {
    let fed = narrow_federation().await;
    let mut ids = vec![];
    for i in 1..=N {
        let t = fed.login(i, "demo").await;
        ids.push(fed.boot(i, &t, &format!("vm-{i}")).await.0);
    }
    let tok = fed.login(1, "demo").await;
    for id in &ids {
        let (s, _, v) = fed
            .call(
                "GET",
                &format!("{}/servers/{id}", fed.compute(1)),
                Some(&tok),
                None,
            )
            .await;
        assert_eq!(s, 200, "{id}: {v}");
        assert_eq!(v["server"]["id"], Value::from(id.as_str()));
    }
}
