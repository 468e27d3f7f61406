//! loadgen against the real mock (loopback and in-process).

use std::sync::Arc;
use std::time::Duration;

use loadgen::{run_boot_burst, BurstConfig, CancellationToken, EntryPolicy, Target};
use mock_openstack::MockConfig;
use os_client::{InProcessTransport, ReqwestTransport, SharedTransport};
use results::Outcome;

fn transport() -> SharedTransport {
    Arc::new(ReqwestTransport::new(Duration::from_secs(10)).unwrap())
}

fn mock_cfg() -> MockConfig {
    MockConfig {
        listen: "127.0.0.1:0".into(),
        computes: 2,
        quota_instances: 1000,
        quota_cores: 1000,
        quota_ram_mb: 1_000_000,
        time_scale: 0.01,
        boot_delay_s: 3.0,
        delete_delay_s: 1.0,
        ..Default::default()
    }
}

fn burst(levels: Vec<u32>) -> BurstConfig {
    BurstConfig {
        levels,
        poll_interval_s: 0.5,
        poll_timeout_s: 60.0,
        delete_timeout_s: 30.0,
        time_scale: None, // read from /mock/v1/info
        ..BurstConfig::default()
    }
}

fn admin(auth_url: String) -> Target {
    Target::password(
        vec![auth_url],
        "admin",
        "secret",
        "admin",
        EntryPolicy::RoundRobin,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_burst_sweep_against_the_mock() {
    let mock = mock_openstack::start(mock_cfg()).await.unwrap();
    let r = run_boot_burst(
        &burst(vec![4, 8]),
        &admin(mock.auth_url()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(r.complete);
    assert_eq!(r.time_scale_source, "target");
    assert!((r.time_scale - 0.01).abs() < 1e-12);
    for (l, n) in r.levels.iter().zip([4u32, 8]) {
        assert_eq!(l.requested, n);
        assert_eq!(l.succeeded, n, "{:?}", l.errors);
        assert!(l.audit.clean, "{:?}", l.audit);
        assert_eq!(l.delete_time.count, u64::from(n));
        // Boot takes 3 model s in this mock; polling adds up to one interval,
        // and at a time scale of 0.01 each wall millisecond of a busy host is
        // 0.1 model s.
        assert!(
            l.boot_time.min_s >= 2.9 && l.boot_time.max_s < 15.0,
            "{:?}",
            l.boot_time
        );
        assert_eq!(l.placement.values().sum::<u32>(), n, "{:?}", l.placement);
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_capacity_errors_are_categorized() {
    // One compute with room for 2 m1.tiny; quota of 3 instances; burst of 5.
    let mut c = mock_cfg();
    c.computes = 1;
    c.compute_vcpus = 2;
    c.cpu_allocation_ratio = 1.0;
    c.quota_instances = 3;
    let mock = mock_openstack::start(c).await.unwrap();
    let r = run_boot_burst(
        &burst(vec![5]),
        &admin(mock.auth_url()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.requested, 5);
    assert_eq!(l.succeeded, 2, "{:?}", l.errors);
    assert_eq!(
        l.outcomes.get(&Outcome::ApiError),
        Some(&2),
        "{:?}",
        l.errors
    );
    assert_eq!(
        l.outcomes.get(&Outcome::ErrorState),
        Some(&1),
        "{:?}",
        l.errors
    );
    assert!(l
        .errors
        .iter()
        .any(|e| e.outcome == Outcome::ErrorState
            && e.message.starts_with("No valid host was found")));
    assert!(l
        .errors
        .iter()
        .any(|e| e.outcome == Outcome::ApiError && e.message.starts_with("403 Quota exceeded")));
    assert!(l.audit.clean, "{:?}", l.audit);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_process_without_sockets() {
    let t = InProcessTransport::new();
    t.insert("mock-a:80", mock_openstack::router(mock_cfg()).unwrap());
    let r = run_boot_burst(
        &burst(vec![6]),
        &admin("http://mock-a:80/identity".into()),
        Arc::new(t),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.levels[0].succeeded, 6, "{:?}", r.levels[0].errors);
    assert!(r.levels[0].audit.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_boots_over_entries_and_audits_each_level() {
    let a = mock_openstack::start(mock_cfg()).await.unwrap();
    let b = mock_openstack::start(mock_cfg()).await.unwrap();
    let mut target = admin(a.auth_url());
    target.entries = vec![a.auth_url(), b.auth_url()];
    let mut c = burst(vec![6]);
    c.audit_every_entry = true;
    let r = run_boot_burst(&c, &target, transport(), CancellationToken::new())
        .await
        .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.succeeded, 6);
    let on_a = l
        .requests
        .iter()
        .filter(|q| q.entry == a.auth_url())
        .count();
    let on_b = l
        .requests
        .iter()
        .filter(|q| q.entry == b.auth_url())
        .count();
    assert_eq!((on_a, on_b), (3, 3));
    assert_eq!(r.target.entries.len(), 2);
    assert!(l.audit.clean, "{:?}", l.audit);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_boot_errors_are_reported_with_their_fault() {
    // Every boot whose name ends in an odd request index fails with a
    // configured fault (mimic-style behaviour by server-name regex).
    let mut c = mock_cfg();
    c.faults = cp_model::FaultSet {
        boot_errors: vec![cp_model::BootErrorRule {
            name_regex: "-[13579]$".into(),
            rate: 1.0,
            fault: "Injected: hypervisor refused the build".into(),
        }],
        ..Default::default()
    };
    let mock = mock_openstack::start(c).await.unwrap();
    let r = run_boot_burst(
        &burst(vec![6]),
        &admin(mock.auth_url()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.requested, 6);
    assert_eq!(l.succeeded, 3, "{:?}", l.errors);
    assert_eq!(
        l.outcomes.get(&Outcome::ErrorState),
        Some(&3),
        "{:?}",
        l.errors
    );
    assert_eq!(
        l.errors,
        vec![results::ErrorCount {
            outcome: Outcome::ErrorState,
            message: "Injected: hypervisor refused the build".into(),
            count: 3,
        }]
    );
    assert!((l.error_rate - 0.5).abs() < 1e-9);
    // ERROR servers are deleted too: nothing is left behind.
    assert!(l.audit.clean, "{:?}", l.audit);
    mock.shutdown().await;
}
