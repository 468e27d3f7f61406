//! Boot watching costs one poll per owner cloudlet and period, not one per
//! boot: what the cloudlets' Nova sees while 8 boots build on one of them.

use std::time::Duration;

use test_support::federation::{federation_profile, Fed};

/// Compute requests every mock has served so far (from its `/metrics`).
async fn compute_requests(fed: &Fed) -> u64 {
    let mut total = 0;
    for m in fed.mocks.iter().flatten() {
        let base = m.auth_url().trim_end_matches("/identity").to_string();
        let req = http::Request::get(format!("{base}/metrics"))
            .body(bytes::Bytes::new())
            .expect("request");
        let r = fed.transport.call(req).await.expect("mock metrics");
        let text = String::from_utf8_lossy(r.body()).into_owned();
        total += text
            .lines()
            .filter(|l| l.starts_with("mock_openstack_requests_total{service=\"compute\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watching_boots_costs_one_poll_per_owner_not_per_boot() {
    // openstack-2017 at time_scale 0.4: a boot builds for ≈ 4 wall seconds
    // (8–10 model s), ≈ 20 polls of 200 ms.
    let fed = federation_profile(&[16, 16, 16, 16], 0.4, "openstack-2017", |_| {}).await;
    let token = fed.login(1, "demo").await;
    let window = Duration::from_millis(8_000);
    // What the federation costs the cloudlets with nothing to watch
    // (capacity polls), over the same window.
    let c0 = compute_requests(&fed).await;
    tokio::time::sleep(window).await;
    let idle = compute_requests(&fed).await - c0;
    let c1 = compute_requests(&fed).await;
    let mut ids = vec![];
    for i in 0..8 {
        let (id, owner) = fed.boot(1, &token, &format!("w{i}")).await;
        assert_eq!(owner, "cloudlet-1", "local placement first");
        ids.push(id);
    }
    let t0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let busy = compute_requests(&fed).await - c1;
    // The 8 creates and their flavor lookups are not the watcher's.
    let watch = busy.saturating_sub(idle + 16);
    eprintln!(
        "compute requests over {window:?}: idle {idle}, with 8 boots {busy}, watching ≈ {watch}"
    );
    for id in &ids {
        let v = fed.wait_status(2, &token, id, "ACTIVE").await;
        assert_eq!(v["server"]["id"], id.as_str());
    }
    // The window covered the builds (else the bound below proves little).
    assert!(
        t0.elapsed() < window + Duration::from_secs(1),
        "builds outlasted the window"
    );
    // One GET per boot and poll is ≈ 8 × 20 (measured 130 with per-boot
    // watchers); batched it is one list per poll plus one GET per boot
    // when it leaves BUILD (measured ≈ 40).
    assert!(
        watch < 80,
        "watching 8 boots cost {watch} compute requests (idle {idle}, busy {busy})"
    );
}
