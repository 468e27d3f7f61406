//! loadgen against a stateful wiremock fake: counts, error categories,
//! leaks caught by the audit, late starts, cancellation, fail-fast.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start, FakeOptions};
use loadgen::{
    run_boot_burst, run_boot_delete, BootDeleteConfig, BootDeleteModel, BurstConfig,
    CancellationToken, EntryPolicy, LevelEvent, LoadgenError, Target,
};
use os_client::{ReqwestTransport, SharedTransport};
use results::Outcome;

fn transport() -> SharedTransport {
    Arc::new(ReqwestTransport::new(Duration::from_secs(10)).unwrap())
}

fn target(uri: &str) -> Target {
    Target::password(
        vec![format!("{uri}/identity")],
        "demo",
        "secret",
        "demo",
        EntryPolicy::RoundRobin,
    )
}

fn cfg(levels: Vec<u32>) -> BurstConfig {
    BurstConfig {
        levels,
        flavor: "m1.tiny".into(),
        image: "cirros".into(),
        network: Some("private".into()),
        poll_interval_s: 1.0,
        poll_timeout_s: 30.0,
        delete_timeout_s: 10.0,
        time_scale: Some(0.01),
        ..BurstConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_sweep_counts_and_placement() {
    let (server, fake) = start(FakeOptions {
        build_polls: 2,
        p2p: Some(("c2".into(), "c1".into())),
        ..Default::default()
    })
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut c = cfg(vec![3, 5]);
    c.events = Some(tx);
    let r = run_boot_burst(
        &c,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(r.complete);
    assert_eq!(r.time_scale_source, "flag");
    assert_eq!(r.levels.len(), 2);
    for (l, n) in r.levels.iter().zip([3u32, 5]) {
        assert_eq!(l.requested, n);
        assert_eq!(l.succeeded, n);
        assert_eq!(l.failed, 0);
        assert_eq!(l.outcomes.get(&Outcome::Active), Some(&n));
        assert_eq!(l.boot_time.count, u64::from(n));
        assert_eq!(l.delete_time.count, u64::from(n));
        assert!(l.audit.clean, "{:?}", l.audit);
        assert!(l.makespan_s > 0.0 && l.throughput_per_s > 0.0);
        // Boot takes ≥ 3 polls of ~1 model s: at least ~2 model s.
        assert!(l.boot_time.min_s >= 1.5, "{}", l.boot_time.min_s);
        assert_eq!(l.placement.get("c2"), Some(&n));
        assert_eq!(l.placed_remotely, Some(n));
        assert_eq!(l.requests.len() as u32, n);
        assert!(l
            .requests
            .iter()
            .all(|q| q.host.as_deref() == Some("compute-1")));
    }
    assert_eq!(fake.servers_left(), 0);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert_eq!(
        events.first(),
        Some(&LevelEvent::Started { index: 0, level: 3 })
    );
    assert!(events.contains(&LevelEvent::Finished {
        index: 1,
        level: 5,
        clean: true
    }));
    // A level's boot POSTs are all answered after they were sent and
    // before its boots are final (cloudlet-loss kills at that moment).
    for (index, level) in [(0usize, 3u32), (1, 5)] {
        let at = |want: &dyn Fn(&LevelEvent) -> bool| events.iter().position(want);
        let sent = at(&|e| *e == LevelEvent::AllSent { index, level }).expect("AllSent");
        let answered =
            at(&|e| *e == LevelEvent::AllAnswered { index, level }).expect("AllAnswered");
        let fin = at(&|e| matches!(e, LevelEvent::BootsFinal { index: i, .. } if *i == index))
            .expect("BootsFinal");
        assert!(sent < answered && answered < fin, "{events:?}");
    }
    let table = loadgen::summary_table(&r);
    assert!(table.contains("clean"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_land_in_their_categories() {
    let (server, _fake) = start(FakeOptions {
        build_polls: 1,
        error_every: Some((
            3,
            "No valid host was found. There are not enough hosts available.".into(),
        )),
        quota_every: Some(4),
        ..Default::default()
    })
    .await;
    let r = run_boot_burst(
        &cfg(vec![12]),
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    // POSTs 4, 8, 12 → 403; of the others, 3, 6, 9 → ERROR.
    assert_eq!(l.outcomes.get(&Outcome::ApiError), Some(&3));
    assert_eq!(l.outcomes.get(&Outcome::ErrorState), Some(&3));
    assert_eq!(l.succeeded, 6);
    assert!((l.error_rate - 0.5).abs() < 1e-9);
    let quota = l
        .errors
        .iter()
        .find(|e| e.outcome == Outcome::ApiError)
        .unwrap();
    assert!(
        quota.message.starts_with("403 Quota exceeded"),
        "{}",
        quota.message
    );
    assert_eq!(quota.count, 3);
    let nvh = l
        .errors
        .iter()
        .find(|e| e.outcome == Outcome::ErrorState)
        .unwrap();
    assert!(nvh.message.starts_with("No valid host"), "{}", nvh.message);
    assert!(l.audit.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaking_target_is_caught_by_the_audit() {
    let (server, _fake) = start(FakeOptions {
        leak: true,
        ..Default::default()
    })
    .await;
    let mut c = cfg(vec![4]);
    c.audit_page_size = 3; // force pagination with a marker
    let r = run_boot_burst(
        &c,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.succeeded, 4);
    assert!(!l.audit.clean);
    assert_eq!(l.audit.leftovers.len(), 4, "{:?}", l.audit);
    assert!(loadgen::summary_table(&r).contains("LEFTOVER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_counts_late_starts_when_the_target_is_slow() {
    // 20 arrivals/s for 1 s, but each POST takes 150 ms and only 2 may be in
    // flight: starts queue and are late; latency counts from the intended start.
    let (server, _fake) = start(FakeOptions {
        post_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let mut base = cfg(vec![]);
    base.time_scale = Some(1.0);
    base.poll_interval_s = 0.01;
    let c = BootDeleteConfig {
        base,
        model: BootDeleteModel::Open {
            rates: vec![20.0],
            duration_s: 1.0,
            max_in_flight: 2,
            max_lateness_s: 60.0,
        },
    };
    let r = run_boot_delete(
        &c,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.requested, 20);
    assert_eq!(l.succeeded, 20);
    assert_eq!(l.dropped_starts, 0);
    assert!(l.late_starts >= 10, "late {}", l.late_starts);
    // Service time ~0.16 s, but the last arrivals waited ~1 s in the queue.
    assert!(l.boot_time.max_s > 0.8, "{:?}", l.boot_time);
    assert!(l.post_latency.max_s < 0.5, "{:?}", l.post_latency);
    assert!(l.audit.clean);

    // Same with a short lateness bound: starts are dropped, not hidden.
    let mut c2 = c.clone();
    c2.model = BootDeleteModel::Open {
        rates: vec![20.0],
        duration_s: 1.0,
        max_in_flight: 1,
        max_lateness_s: 0.05,
    };
    let r = run_boot_delete(
        &c2,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.requested, 20);
    assert!(l.dropped_starts > 0);
    assert_eq!(
        l.outcomes.get(&Outcome::Dropped).copied().unwrap_or(0),
        l.dropped_starts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_cycles_boot_and_delete() {
    let (server, fake) = start(FakeOptions::default()).await;
    let c = BootDeleteConfig {
        base: cfg(vec![]),
        model: BootDeleteModel::Closed {
            concurrency: vec![3],
            duration_s: 20.0,
        },
    };
    let r = run_boot_delete(
        &c,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let l = &r.levels[0];
    assert_eq!(l.level, 3);
    assert!(l.requested >= 6, "{}", l.requested);
    assert_eq!(l.succeeded, l.requested);
    assert_eq!(l.delete_time.count, u64::from(l.requested));
    assert!(l.audit.clean);
    assert_eq!(fake.servers_left(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_what_was_created_and_marks_incomplete() {
    let (server, fake) = start(FakeOptions {
        build_polls: 1_000_000,
        ..Default::default()
    })
    .await;
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let r = run_boot_burst(
        &cfg(vec![5, 10]),
        &target(&server.uri()),
        transport(),
        cancel,
    )
    .await
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(!r.complete);
    assert!(r.incomplete_reason.is_some());
    assert_eq!(r.levels.len(), 1);
    assert_eq!(fake.servers_left(), 0);
    assert!(r.levels[0].audit.clean);
}

#[tokio::test]
async fn bad_targets_fail_fast_with_one_line() {
    let cases: Vec<(FakeOptions, &str, &str)> = vec![
        (
            FakeOptions {
                wrong_password: true,
                ..Default::default()
            },
            "m1.tiny",
            "wrong credentials",
        ),
        (
            FakeOptions {
                no_compute: true,
                ..Default::default()
            },
            "m1.tiny",
            "compute",
        ),
        (FakeOptions::default(), "m1.huge", "no flavor named"),
    ];
    for (opts, flavor, expect) in cases {
        let (server, _fake) = start(opts).await;
        let mut c = cfg(vec![1]);
        c.flavor = flavor.into();
        let t0 = Instant::now();
        let e = run_boot_burst(
            &c,
            &target(&server.uri()),
            transport(),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5));
        let line = e.to_string();
        assert!(matches!(e, LoadgenError::Target { .. }), "{line}");
        assert!(line.contains(expect), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    let mut c = cfg(vec![1]);
    c.image = "nope".into();
    let (server, _fake) = start(FakeOptions::default()).await;
    let e = run_boot_burst(
        &c,
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no image named"), "{e}");
    let e = run_boot_burst(
        &cfg(vec![1]),
        &target("http://127.0.0.1:1"),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[tokio::test]
async fn results_file_is_written_atomically_and_parses() {
    let (server, _fake) = start(FakeOptions::default()).await;
    let r = run_boot_burst(
        &cfg(vec![2]),
        &target(&server.uri()),
        transport(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/out.json");
    loadgen::write_results_atomic(&p, &r).unwrap();
    let back = results::parse(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(back.levels[0].succeeded, 2);
    assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
}
