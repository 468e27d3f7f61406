//! Security properties of the agent, probed as an attacker would (issue 12).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::AgentConfig;
use common::*;
use mock_openstack::MockConfig;

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

async fn metric(fed: &Fed, base: &str, name: &str) -> u64 {
    let req = http::Request::get(format!("{base}/metrics"))
        .body(bytes::Bytes::new())
        .unwrap();
    let r = os_client::Transport::call(&*fed.transport, req)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(r.body()).into_owned();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing: {text}"))
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
    // Wrong key, authenticated transport (the attack).
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
    let rejected = metric(&fed, fed.agent(1).base_url(), "p2p_gossip_rejected_total").await;
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
