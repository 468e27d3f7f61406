//! The virtual-time workload runner.

mod common;

use common::*;
use cp_model::{simulate_with, BootResult, Polling, SimOptions, Workload};

#[test]
fn polling_sees_the_end_within_one_interval_and_loads_the_api() {
    let w = Workload::Closed {
        concurrency: 5,
        total: 50,
        flavor: TINY,
        delete_after: true,
    };
    let polled = SimOptions {
        polling: Some(Polling::rally()),
        ..SimOptions::default()
    };
    let p = devstack_with("[compute]\nspawn_median_s = 5.0\n");
    let r = match simulate_with(p.clone(), big_nodes(2), 1, &w, &polled) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.outcomes.len(), 50);
    for o in &r.outcomes {
        assert!(o.succeeded(), "{o:?}");
        let (Some(end), Some(seen), Some(gone)) = (o.ended_at, o.observed_at, o.deleted_at) else {
            panic!("incomplete outcome {o:?}");
        };
        assert!(seen >= end && seen - end <= 2.0 + 0.01, "{o:?}");
        assert!(gone > seen);
        assert!(matches!(o.result, BootResult::Active { .. }));
    }
    // ~5 s boots polled every 2 s: a few GETs per boot on top of POST and DELETE.
    let api = &r.stats.stages["api"];
    assert!(api.served >= 50 * 4, "api served {}", api.served);

    let plain = match simulate_with(p, big_nodes(2), 1, &w, &SimOptions::default()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(plain.stats.stages["api"].served == 100);
    assert!(plain.outcomes.iter().all(|o| o.observed_at.is_none()));
}

#[test]
fn client_gives_up_after_the_poll_timeout() {
    // The only node is lost before the boots: they stay in BUILD forever.
    let p = devstack_with("");
    let mut e = engine(p, big_nodes(1), 1);
    e.submit(
        0.0,
        cp_model::Input::LoseNode {
            name: "compute-0".into(),
        },
    );
    let w = Workload::Burst {
        boots: 3,
        flavor: TINY,
    };
    let opts = SimOptions {
        polling: Some(Polling::rally()),
        horizon: 1000.0,
    };
    let r = cp_model::run(e, &w, &opts);
    let s = r.summary();
    assert_eq!(s.active, 0);
    assert_eq!(s.errors_by_reason.get("client_timeout"), Some(&3));
}

/// The calibration table of docs/performance-model.md: every published
/// point within its stated tolerance (see `cp_model::calibration`).
#[test]
fn published_points_hold_within_their_tolerances() {
    let p = cp_model::Profile::builtin("openstack-2017").expect("builtin");
    let rows = cp_model::calibration::check(&p, 1).expect("runs");
    assert!(rows.len() >= 9);
    let bad: Vec<_> = rows.iter().filter(|r| !r.holds()).collect();
    assert!(
        bad.is_empty(),
        "out of tolerance:\n{}",
        cp_model::calibration::markdown(&rows)
    );
}
