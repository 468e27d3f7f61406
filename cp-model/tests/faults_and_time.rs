//! Fault injection, determinism and time-scale invariance.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use cp_model::{
    simulate, ApiKind, BootErrorRule, Clock, Effect, FaultSet, Input, Profile, StageLatency,
    Workload,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn closed(concurrency: u32, total: u32) -> Workload {
    Workload::Closed {
        concurrency,
        total,
        flavor: TINY,
        delete_after: false,
    }
}

fn profile_2017() -> Profile {
    match Profile::builtin("openstack-2017") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn same_seed_same_outcomes_other_seed_differs() {
    let run = |seed| match simulate(profile_2017(), big_nodes(8), seed, &closed(20, 200), 1e6) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let (a, b, c) = (run(42), run(42), run(43));
    assert_eq!(a.outcomes, b.outcomes);
    assert_eq!(a.stats, b.stats);
    assert_ne!(a.outcomes, c.outcomes);
}

/// A wall-clock driver emulated without sleeping: it wakes up late by a
/// random 0–2 ms of *wall* time after each deadline (like a real timer),
/// reads model time from the clock ledger and reacts at that time.
fn wall_driven_boot_times(scale: f64) -> Vec<f64> {
    let clock = match Clock::new(scale) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let mut e = engine(profile_2017(), big_nodes(4), 2024);
    let mut timer = ChaCha8Rng::seed_from_u64(7);
    let mut wall = Duration::ZERO;
    let (concurrency, total) = (5u64, 100u64);
    let mut posted: BTreeMap<u64, f64> = BTreeMap::new();
    let mut times = Vec::new();
    let mut next = 1u64;
    for _ in 0..concurrency {
        e.submit(
            0.0,
            Input::ApiCall {
                req: next,
                kind: ApiKind::Post,
            },
        );
        posted.insert(next, 0.0);
        next += 1;
    }
    while (times.len() as u64) < total {
        let Some(d) = e.next_deadline() else { break };
        wall = clock.wall_offset(d).max(wall) + Duration::from_micros(timer.gen_range(0..2000));
        let now = clock.model_time(wall);
        for (t, fx) in e.advance(now) {
            match fx {
                Effect::ApiDone { req } => e.submit(
                    now,
                    Input::Boot {
                        instance: req,
                        resources: TINY,
                        name: None,
                    },
                ),
                Effect::Active { instance, .. } => {
                    times.push(t - posted[&instance]);
                    if next <= total {
                        e.submit(
                            now,
                            Input::ApiCall {
                                req: next,
                                kind: ApiKind::Post,
                            },
                        );
                        posted.insert(next, now);
                        next += 1;
                    }
                }
                Effect::Error { fault, .. } => panic!("unexpected error {fault}"),
                _ => {}
            }
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

#[test]
fn model_time_percentiles_do_not_depend_on_the_time_scale() {
    let slow = wall_driven_boot_times(0.1);
    let fast = wall_driven_boot_times(0.02);
    assert_eq!(slow.len(), 100);
    assert_eq!(fast.len(), 100);
    for p in [50usize, 90] {
        let (a, b) = (slow[p - 1], fast[p - 1]);
        assert!(
            within(b, a, 0.10),
            "p{p}: scale 0.1 → {a:.2} s, scale 0.02 → {b:.2} s"
        );
    }
}

#[test]
fn boot_error_rule_by_name_regex() {
    let mut e = engine(devstack_with(""), big_nodes(2), 1);
    let faults = FaultSet {
        boot_errors: vec![BootErrorRule {
            name_regex: "^fail-".into(),
            rate: 1.0,
            fault: "Injected: hypervisor exploded".into(),
        }],
        ..FaultSet::default()
    };
    assert!(e.set_faults(0.0, faults).is_ok());
    for (id, name) in [(1, "fail-1"), (2, "ok-1"), (3, "fail-2")] {
        e.submit(
            0.0,
            Input::Boot {
                instance: id,
                resources: TINY,
                name: Some(name.into()),
            },
        );
    }
    let fx = run_until(&mut e, 10.0);
    let mut errs: Vec<u64> = errors(&fx).iter().map(|x| x.1).collect();
    errs.sort();
    assert_eq!(errs, [1, 3]);
    assert_eq!(actives(&fx).len(), 1);
    assert_eq!(e.stats().boots.errors_by_reason["injected"], 2);

    let bad = FaultSet {
        boot_errors: vec![BootErrorRule {
            name_regex: "(".into(),
            rate: 0.5,
            fault: String::new(),
        }],
        ..FaultSet::default()
    };
    assert!(e.set_faults(10.0, bad).is_err());
}

#[test]
fn boot_error_rate_is_honoured() {
    let mut e = engine(devstack_with(""), big_nodes(4), 3);
    let rule = BootErrorRule {
        name_regex: "vm-".into(),
        rate: 0.3,
        fault: "x".into(),
    };
    let ok = e.set_faults(
        0.0,
        FaultSet {
            boot_errors: vec![rule],
            ..FaultSet::default()
        },
    );
    assert!(ok.is_ok());
    boot_burst(&mut e, 0.0, 1, 1000);
    let fx = run_until(&mut e, 1000.0);
    let n = errors(&fx).len();
    assert!((250..350).contains(&n), "{n} errors of 1000 at rate 0.3");
}

#[test]
fn api_unavailable_backlog_and_timeout() {
    // One worker thread: calls beyond it wait in the socket backlog.
    let p = devstack_with(
        "[api]\nworkers = 1\npost_s = 1.0\nbacklog = 3\ntimeout_s = 2.5\n[threads]\napi = 1\n",
    );
    let mut e = engine(p, big_nodes(1), 1);
    for req in 1..=5 {
        e.submit(
            0.0,
            Input::ApiCall {
                req,
                kind: ApiKind::Post,
            },
        );
    }
    let fx = run_until(&mut e, 10.0);
    let mut got: Vec<(u64, String)> = fx
        .iter()
        .map(|(t, fx)| match fx {
            Effect::ApiDone { req } => (*req, format!("done@{t:.1}")),
            Effect::ApiRejected { req, status, .. } => (*req, format!("{status}@{t:.1}")),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    // 1 in service, 3 queued, 1 refused; the 3rd and 4th wait past 2.5 s.
    let want = [
        (1, "done@1.0"),
        (2, "done@2.0"),
        (3, "504@2.5"),
        (4, "504@2.5"),
        (5, "503@0.0"),
    ];
    let want: Vec<(u64, String)> = want.iter().map(|(r, s)| (*r, s.to_string())).collect();
    assert_eq!(got, want);

    e.submit(10.0, Input::ApiUnavailable { duration_s: 5.0 });
    e.submit(
        12.0,
        Input::ApiCall {
            req: 6,
            kind: ApiKind::Get,
        },
    );
    e.submit(
        16.0,
        Input::ApiCall {
            req: 7,
            kind: ApiKind::Get,
        },
    );
    let fx = run_until(&mut e, 20.0);
    assert!(matches!(
        fx[0].1,
        Effect::ApiRejected {
            req: 6,
            status: 503,
            ..
        }
    ));
    assert!(matches!(fx[1].1, Effect::ApiDone { req: 7 }));
}

#[test]
fn frozen_controller_delays_everything_by_the_freeze() {
    let mut e = engine(devstack_with(""), big_nodes(1), 1);
    e.submit(0.0, Input::FreezeController { duration_s: 30.0 });
    boot_burst(&mut e, 1.0, 1, 1);
    let fx = run_until(&mut e, 100.0);
    let act = actives(&fx);
    assert_eq!(act.len(), 1);
    assert!((30.0..31.0).contains(&act[0].0), "active at {}", act[0].0);
}

#[test]
fn lost_node_errors_its_instances_and_is_avoided_after_service_down_time() {
    let mut e = engine(devstack_with(""), big_nodes(2), 1);
    boot_burst(&mut e, 0.0, 1, 4);
    let fx = run_until(&mut e, 5.0);
    let mut on0: Vec<u64> = actives(&fx)
        .iter()
        .filter(|a| a.2 == "compute-0")
        .map(|a| a.1)
        .collect();
    assert_eq!(on0.len(), 2, "spread over both nodes");
    on0.sort();
    e.submit(
        5.0,
        Input::LoseNode {
            name: "compute-0".into(),
        },
    );
    let fx = run_until(&mut e, 6.0);
    let errs = errors(&fx);
    let mut lost: Vec<u64> = errs.iter().map(|x| x.1).collect();
    lost.sort();
    assert_eq!(lost, on0);
    assert!(errs.iter().all(|x| x.2 == "Compute host compute-0 lost"));
    assert!(!e.nodes()[0].up);
    // Long after service_down_time (60 s) nothing more goes to compute-0.
    boot_burst(&mut e, 100.0, 10, 6);
    let fx = run_until(&mut e, 110.0);
    let act = actives(&fx);
    assert_eq!(act.len(), 6);
    assert!(act.iter().all(|a| a.2 == "compute-1"));
}

#[test]
fn extra_latency_adds_to_the_stage() {
    let base = {
        let mut e = engine(devstack_with(""), big_nodes(1), 1);
        boot_burst(&mut e, 0.0, 1, 1);
        actives(&run_until(&mut e, 100.0))[0].0
    };
    let mut e = engine(devstack_with(""), big_nodes(1), 1);
    let slow = FaultSet {
        extra_latency: StageLatency {
            scheduler_s: 2.0,
            compute_s: 3.0,
            ..StageLatency::default()
        },
        ..FaultSet::default()
    };
    assert!(e.set_faults(0.0, slow).is_ok());
    boot_burst(&mut e, 0.0, 1, 1);
    let t = actives(&run_until(&mut e, 100.0))[0].0;
    assert!((t - base - 5.0).abs() < 0.05, "{base} → {t}");
}

#[test]
fn fault_set_is_plain_json() {
    let text = r#"{"boot_errors":[{"name_regex":"^x","rate":0.5}],"api_unavailable":[{"start_s":1,"end_s":2}]}"#;
    let set: FaultSet = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(set.boot_errors[0].fault, "Injected fault: build failed");
    let back: FaultSet = match serde_json::to_string(&set).and_then(|s| serde_json::from_str(&s)) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(back, set);
}

#[test]
fn non_finite_times_are_refused_not_looped_on() {
    let mut e = engine(devstack_with(""), big_nodes(1), 1);
    assert!(e.advance(f64::INFINITY).is_empty());
    assert!(e.advance(f64::NAN).is_empty());
    assert!(e
        .try_submit(f64::NAN, Input::Delete { instance: 1 })
        .is_err());
    assert!(e
        .try_submit(
            0.0,
            Input::LoseNode {
                name: "nope".into()
            }
        )
        .is_err());
    assert_eq!(e.stats().invalid_inputs, 2);
}

#[test]
fn calls_waiting_through_a_long_freeze_time_out() {
    let mut e = engine(devstack_with(""), big_nodes(1), 1);
    e.submit(0.0, Input::FreezeController { duration_s: 100.0 });
    e.submit(
        1.0,
        Input::ApiCall {
            req: 1,
            kind: ApiKind::Get,
        },
    );
    boot_burst(&mut e, 1.0, 10, 1);
    let fx = run_until(&mut e, 200.0);
    let api: Vec<&(f64, Effect)> = fx
        .iter()
        .filter(|(_, e)| matches!(e, Effect::ApiRejected { .. } | Effect::ApiDone { .. }))
        .collect();
    assert_eq!(api.len(), 1);
    let (t, ref answer) = *api[0];
    assert!(matches!(
        answer,
        Effect::ApiRejected {
            req: 1,
            status: 504,
            ..
        }
    ));
    assert!((t - 61.0).abs() < 1e-9, "answered at {t}");
    // The boot's build cast waits out the freeze; its RPC call to the
    // scheduler is only sent afterwards, so it still succeeds.
    let act = actives(&fx);
    assert_eq!(act.len(), 1);
    assert!(act[0].0 > 100.0);
}
