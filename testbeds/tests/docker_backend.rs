//! The Docker backend for real: 4 cloudlets as containers (testcontainers)
//! of the locally built image, boots through two different agents, one
//! cloudlet's containers killed, the dead cloudlet excluded from placement
//! and no accepted boot lost, then nothing of the run left behind.
//!
//! Without a Docker engine the test is skipped with a message, unless
//! `CI=true`, where it fails. Every request goes to 127.0.0.1 published
//! ports, never to a container IP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use os_client::compute::{self, CreateServer};
use os_client::{ClientError, Credentials, OpenStackSession, ReqwestTransport, SharedTransport};
use testbeds::docker::{self, cleanup, DockerTestbed, NetLayout};
use testbeds::embedded::TestbedSpec;
use testbeds::topology::{self, Kind};

const CLOUDLETS: u32 = 4;
/// cloudlet-4 is killed; the boots go through cloudlet-1 and cloudlet-2.
const VICTIM: u32 = 3;
const VICTIM_NAME: &str = "cloudlet-4";
const TIME_SCALE: f64 = 0.25;

struct Boot {
    id: String,
    via: usize,
    owner: Option<String>,
}

/// Final state of one accepted boot.
#[derive(Debug)]
enum Outcome {
    Active(Option<String>),
    ErrorWithFault(String),
    Deleted,
}

async fn session(transport: &SharedTransport, auth_url: &str) -> OpenStackSession {
    let creds = Credentials::password(auth_url, "admin", "secret", "admin");
    OpenStackSession::connect(transport.clone(), creds)
        .await
        .unwrap_or_else(|e| panic!("auth at {auth_url}: {e}"))
}

async fn boot_request(s: &OpenStackSession, name: &str) -> CreateServer {
    let flavor = compute::find_flavor(s, "m1.tiny").await.expect("flavor");
    let image = os_client::image::find_image(s, "cirros-0.6.2-x86_64-disk")
        .await
        .expect("image");
    let net = os_client::network::find_network(s, "private")
        .await
        .expect("network");
    CreateServer {
        name: name.to_string(),
        image_ref: image.id,
        flavor_ref: flavor.id,
        networks: vec![net.id],
        metadata: Default::default(),
    }
}

/// Boots `count` servers through each of `sessions`; every one must be
/// accepted (202).
async fn boot_batch(sessions: &[&OpenStackSession], tag: &str, count: usize) -> Vec<Boot> {
    let mut boots = Vec::new();
    for (via, s) in sessions.iter().enumerate() {
        let req = boot_request(s, &format!("{tag}-via{via}")).await;
        for _ in 0..count {
            let created = compute::create_server(s, &req)
                .await
                .unwrap_or_else(|e| panic!("boot {tag} via entry {via}: {e}"));
            boots.push(Boot {
                id: created.id,
                via,
                owner: created.hint.cloudlet,
            });
        }
    }
    boots
}

/// Polls a boot until it is ACTIVE, ERROR (with a fault) or gone.
async fn settle(s: &OpenStackSession, id: &str, limit: Duration) -> Outcome {
    let t0 = Instant::now();
    loop {
        let last = match compute::get_server(s, id).await {
            Ok(v) if v.status == "ACTIVE" => return Outcome::Active(v.hint.cloudlet),
            Ok(v) if v.status == "ERROR" => {
                let fault = v.fault.unwrap_or_default();
                assert!(!fault.is_empty(), "server {id} in ERROR without a fault");
                return Outcome::ErrorWithFault(fault);
            }
            Ok(v) => format!("{} (owner {:?})", v.status, v.hint.cloudlet),
            Err(ClientError::Api { status: 404, .. }) => return Outcome::Deleted,
            Err(e) => e.to_string(),
        };
        assert!(
            t0.elapsed() < limit,
            "server {id} did not settle in {limit:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Adds `seconds` (model time) to every spawn of member `i`'s cloudlet,
/// through its mock's admin fault API.
async fn slow_spawns(tb: &DockerTestbed, transport: &SharedTransport, i: u32, seconds: f64) {
    let base = tb.mock_url(i).await.expect("victim mock port");
    let admin = session(transport, &format!("{base}/identity")).await;
    let resp = admin
        .send(
            "compute",
            http::Method::PUT,
            &format!("{base}/mock/v1/faults"),
            Some(&serde_json::json!({"extra_latency": {"compute_s": seconds}})),
        )
        .await
        .expect("fault API");
    assert_eq!(
        resp.status,
        200,
        "PUT /mock/v1/faults: {}",
        String::from_utf8_lossy(&resp.body)
    );
}

async fn hypervisor_count(s: &OpenStackSession) -> u64 {
    let stats = compute::hypervisor_statistics(s)
        .await
        .expect("hypervisor statistics");
    stats
        .get("count")
        .and_then(|c| c.as_u64())
        .expect("statistics.count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_backend_four_cloudlets_lose_one_and_lose_no_boot() {
    if !docker::docker_available() || cleanup::connect().await.is_err() {
        let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
        assert!(
            !ci,
            "CI=true but no Docker engine is reachable: the Docker-backend test cannot run"
        );
        eprintln!(
            "SKIPPED docker_backend: no Docker engine reachable (set CI=true to make this fail)"
        );
        return;
    }
    let t_start = Instant::now();

    // 1. The image, with the same functions as `testbed images` (cheap when
    //    scripts/build-images.sh already ran).
    let source = docker::images::default_source_dir();
    let bin_dir = tokio::task::spawn_blocking(move || docker::static_build(&source))
        .await
        .expect("build task")
        .expect("static build");
    docker::build_image(&bin_dir).await.expect("image build");
    eprintln!("image ready after {:.1?}", t_start.elapsed());

    // 2. Four cloudlets.
    let spec = TestbedSpec {
        kind: Kind::P2p,
        members: CLOUDLETS,
        cells: None,
        sizing: topology::for_profile(CLOUDLETS, "openstack-2017", topology::M1_TINY)
            .expect("builtin profile"),
        profile: "openstack-2017".into(),
        time_scale: TIME_SCALE,
        seed: 7,
        retries: 2,
        cluster_secret: testbeds::compare::random_secret(),
        gossip_interval_ms: None,
        overlay: Default::default(),
    };
    let t_up = Instant::now();
    let tb = DockerTestbed::start(spec).await.expect("docker testbed");
    let run_id = tb.run_id.clone();
    let network = tb.network.clone();
    eprintln!("testbed {run_id} up in {:.1?}", t_up.elapsed());
    // The default layout: one network namespace for the run. Only its
    // holder has an address on the run's network (so the kernel neighbour
    // table holds two entries for it, whatever N); every mock and agent
    // runs in the holder's namespace. The bridge layout (an address per
    // container, N² + 5N entries for P2P; P2PSTACK_DOCKER_NET=bridge runs
    // this test on it) is checked for its own promise instead.
    assert_eq!(NetLayout::default(), NetLayout::Shared);
    assert_eq!(tb.layout, NetLayout::from_env().expect("layout"));
    {
        let d = cleanup::connect().await.expect("docker");
        let net = d
            .inspect_network(
                &network,
                None::<testcontainers::bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .expect("inspect the run's network");
        let attached = net.containers.unwrap_or_default();
        let want = match tb.layout {
            NetLayout::Shared => 1,
            NetLayout::Bridge => 2 * CLOUDLETS as usize,
        };
        assert_eq!(
            attached.len(),
            want,
            "containers with an address on {network}: {:?}",
            attached
                .values()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        );
        let ids = cleanup::containers_of(&d, &run_id)
            .await
            .expect("list containers");
        let holder = usize::from(tb.layout == NetLayout::Shared);
        assert_eq!(ids.len(), 2 * CLOUDLETS as usize + holder);
        let mut joined = 0;
        for id in &ids {
            let c = d
                .inspect_container(
                    id,
                    None::<testcontainers::bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .expect("inspect container");
            let mode = c
                .host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_default();
            if mode.starts_with("container:") {
                joined += 1;
            }
        }
        let want = match tb.layout {
            NetLayout::Shared => 2 * CLOUDLETS as usize,
            NetLayout::Bridge => 0,
        };
        assert_eq!(joined, want, "mocks and agents in the holder's namespace");
    }
    let entries = tb.entries();
    assert_eq!(entries.len(), CLOUDLETS as usize);
    for e in &entries {
        assert!(
            e.starts_with("http://127.0.0.1:"),
            "entry not on loopback: {e}"
        );
    }
    let transport: SharedTransport =
        Arc::new(ReqwestTransport::new(Duration::from_secs(30)).expect("transport"));
    let s1 = session(&transport, &entries[0]).await;
    let s2 = session(&transport, &entries[1]).await;
    assert_eq!(hypervisor_count(&s1).await, u64::from(CLOUDLETS));

    // A panic from here on drops `tb`, whose guard removes the run.
    let mut tb = tb;
    let settle_limit = Duration::from_secs(120);

    // 3. Boots through two different agents, all ACTIVE.
    let first = boot_batch(&[&s1, &s2], "a", 4).await;
    for b in &first {
        let s = if b.via == 0 { &s1 } else { &s2 };
        let out = settle(s, &b.id, settle_limit).await;
        assert!(
            matches!(out, Outcome::Active(_)),
            "boot {} ended {out:?}",
            b.id
        );
    }
    let owners: std::collections::BTreeSet<_> =
        first.iter().filter_map(|b| b.owner.clone()).collect();
    eprintln!("first 8 boots ACTIVE on {owners:?}");

    // 4. Boots in flight, then cloudlet-4's containers are killed.
    // The victim's spawns are slowed first (+600 model s each, through its
    // mock's fault API): a boot placed there is then certainly still
    // building when it dies. Without this the test raced: a boot that went
    // ACTIVE on the victim before the kill (the first boots there can take
    // ~1.5 s wall, about as long as the rest of the burst) rightly stays
    // ACTIVE-then-UNKNOWN (durability contract), and never settles.
    slow_spawns(&tb, &transport, VICTIM, 600.0).await;
    // 16 per entry: more than an agent keeps local (local_max_builds 10),
    // so boots spill over to the other cloudlets, the victim included.
    let second = boot_batch(&[&s1, &s2], "b", 16).await;
    let on_victim: Vec<&Boot> = second
        .iter()
        .filter(|b| b.owner.as_deref() == Some(VICTIM_NAME))
        .collect();
    assert!(
        !on_victim.is_empty(),
        "no boot was placed on {VICTIM_NAME}; the kill would test nothing"
    );
    for b in &on_victim {
        let s = if b.via == 0 { &s1 } else { &s2 };
        let st = compute::get_server(s, &b.id).await.map(|v| v.status);
        assert!(
            matches!(st.as_deref(), Ok("BUILD")),
            "boot {} on {VICTIM_NAME} not building before the kill: {st:?}",
            b.id
        );
    }
    let on_victim = on_victim.len();
    tb.kill(VICTIM).await;
    eprintln!(
        "killed {VICTIM_NAME} with {} boots in flight ({on_victim} placed on it)",
        second.len()
    );
    let mut outcomes = Vec::new();
    let t_kill = Instant::now();
    for b in &second {
        let s = if b.via == 0 { &s1 } else { &s2 };
        let out = settle(s, &b.id, settle_limit).await;
        if let Outcome::Active(Some(owner)) = &out {
            assert_ne!(
                owner, VICTIM_NAME,
                "boot {} reported ACTIVE on the dead cloudlet",
                b.id
            );
        }
        outcomes.push((out, t_kill.elapsed()));
    }
    for (o, t) in &outcomes {
        match o {
            Outcome::Active(owner) => eprintln!("  in-flight boot: ACTIVE on {owner:?} ({t:.1?})"),
            Outcome::ErrorWithFault(fault) => {
                eprintln!("  in-flight boot: ERROR ({fault}) ({t:.1?})")
            }
            Outcome::Deleted => eprintln!("  in-flight boot: deleted ({t:.1?})"),
        }
    }

    // 5. Excluded: hypervisors seen through a live agent drop by one …
    let t0 = Instant::now();
    loop {
        let n = hypervisor_count(&s1).await;
        if n == u64::from(CLOUDLETS - 1) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "hypervisor count still {n} 30 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // … and new boots never land there.
    let third = boot_batch(&[&s1, &s2], "c", 4).await;
    for b in &third {
        assert_ne!(
            b.owner.as_deref(),
            Some(VICTIM_NAME),
            "boot placed on the dead cloudlet"
        );
        let s = if b.via == 0 { &s1 } else { &s2 };
        match settle(s, &b.id, settle_limit).await {
            Outcome::Active(owner) => {
                assert_ne!(
                    owner.as_deref(),
                    Some(VICTIM_NAME),
                    "boot ACTIVE on the dead cloudlet"
                )
            }
            other => panic!("boot {} after the kill ended {other:?}", b.id),
        }
    }
    assert_eq!(tb.entries().len(), CLOUDLETS as usize - 1);

    // 6. Tear down; nothing of the run is left.
    tb.shutdown().await;
    let d = cleanup::connect().await.expect("docker");
    let left = cleanup::containers_of(&d, &run_id)
        .await
        .expect("list containers");
    assert!(left.is_empty(), "containers left: {left:?}");
    let nets = cleanup::networks_of(&d, &run_id)
        .await
        .expect("list networks");
    assert!(nets.is_empty(), "networks left: {nets:?}");
    let by_name = d
        .list_networks(Some(
            testcontainers::bollard::query_parameters::ListNetworksOptions {
                filters: Some(std::collections::HashMap::from([(
                    "name".to_string(),
                    vec![network.clone()],
                )])),
            },
        ))
        .await
        .expect("list networks by name");
    assert!(by_name.is_empty(), "network {network} left");
    eprintln!("docker backend test done in {:.1?}", t_start.elapsed());
}
