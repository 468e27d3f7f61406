//! Random workloads with faults: capacity is never leaked or over-committed.

mod common;

use std::collections::BTreeSet;

use common::*;
use cp_model::{ApiKind, Effect, Input};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn random_workloads_never_leak_or_overcommit_capacity() {
    let (mut reschedules, mut errors, mut lost) = (0, 0, 0);
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = devstack_with(
            "service_time_cv = 0.8\n[scheduler]\nworkers = 3\n\
             [background]\nresource_tracker_interval_s = 0.3\nresource_tracker_cost_s = 0.05\n\
             [compute]\nmax_concurrent_builds = 2\nspawn_median_s = 0.5\n",
        );
        // Small nodes (4 instances each) so claims race and fail.
        let nodes: Vec<_> = one_slot_nodes(4)
            .into_iter()
            .map(|mut n| {
                n.vcpus = 4;
                n.ram_mb = 2048;
                n.disk_gb = 4;
                n
            })
            .collect();
        let mut e = engine(p, nodes, seed);
        let mut alive: BTreeSet<u64> = BTreeSet::new();
        let mut t = 0.0;
        for id in 1..=60u64 {
            t += rng.gen_range(0.0..0.2);
            match rng.gen_range(0..10) {
                0..=5 => {
                    e.submit(
                        t,
                        Input::Boot {
                            instance: id,
                            resources: TINY,
                            name: None,
                        },
                    );
                    alive.insert(id);
                }
                6 | 7 => {
                    if let Some(&victim) = alive.iter().nth(rng.gen_range(0..alive.len().max(1))) {
                        e.submit(t, Input::Delete { instance: victim });
                    }
                }
                8 => e.submit(
                    t,
                    Input::ApiCall {
                        req: id,
                        kind: ApiKind::Get,
                    },
                ),
                _ => {
                    if rng.gen_bool(0.3) {
                        e.submit(t, Input::FreezeController { duration_s: 0.5 });
                    } else if rng.gen_bool(0.1) {
                        e.submit(
                            t,
                            Input::LoseNode {
                                name: "compute-3".into(),
                            },
                        );
                    }
                }
            }
            for (_, fx) in e.advance(t) {
                if let Effect::Deleted { instance } = fx {
                    alive.remove(&instance);
                }
            }
            for n in e.nodes() {
                let cap = &n.capacity;
                assert!(
                    n.vcpus_used <= cap.vcpus && n.ram_mb_used <= cap.ram_mb,
                    "seed {seed}: over-commit {n:?}"
                );
                assert!(n.builds_in_flight <= 2, "seed {seed}: {n:?}");
            }
        }
        // Let everything settle, delete whatever is left, settle again.
        for (_, fx) in run_until(&mut e, t + 200.0) {
            if let Effect::Deleted { instance } = fx {
                alive.remove(&instance);
            }
        }
        for id in alive.clone() {
            e.submit(t + 200.0, Input::Delete { instance: id });
        }
        run_until(&mut e, t + 400.0);
        for n in e.nodes().into_iter().filter(|n| n.up) {
            assert_eq!(
                (
                    n.vcpus_used,
                    n.ram_mb_used,
                    n.disk_gb_used,
                    n.running_vms,
                    n.builds_in_flight,
                    n.builds_queued
                ),
                (0, 0, 0, 0, 0, 0),
                "seed {seed}: leaked on {n:?}"
            );
        }
        let st = e.stats();
        for (name, s) in &st.stages {
            assert_eq!(s.queue_len, 0, "seed {seed}: {name} queue");
        }
        reschedules += st.boots.reschedules;
        errors += st.boots.errors;
        lost += u64::from(st.compute.nodes_up < 4);
    }
    // The workloads did exercise the failure paths.
    assert!(
        reschedules > 0 && errors > 0 && lost > 0,
        "{reschedules} {errors} {lost}"
    );
}
