//! Each mechanism of the model against its analytic expectation, on virtual time.

mod common;

use common::*;
use cp_model::{simulate, Effect, FaultReason, Input, NodeUsage, TaskState, Workload};

/// Scheduler-bound burst: ACTIVE instants are spaced by s0 + s1·N.
#[test]
fn scheduler_throughput_is_one_over_s0_plus_s1_n() {
    for n in [10usize, 50] {
        let p = devstack_with(
            "[scheduler]\nbase_s = 0.1\nper_host_s = 0.004\n[conductor]\nrpc_response_timeout_s = 1e6\n",
        );
        let mut e = engine(p, big_nodes(n), 7);
        boot_burst(&mut e, 0.0, 1, 200);
        let fx = run_until(&mut e, 1e4);
        let act = actives(&fx);
        assert_eq!(act.len(), 200);
        let (first, last) = (act[0].0, act[act.len() - 1].0);
        let measured = (act.len() - 1) as f64 / (last - first);
        let expected = 1.0 / (0.1 + 0.004 * n as f64);
        assert!(
            within(measured, expected, 0.02),
            "N={n}: measured {measured:.3}/s, expected {expected:.3}/s"
        );
    }
}

/// With service-time variability the mean rate still matches.
#[test]
fn scheduler_throughput_with_variable_service() {
    let p = devstack_with(
        "service_time_cv = 0.5\n[scheduler]\nbase_s = 0.05\nper_host_s = 0.001\n[conductor]\nrpc_response_timeout_s = 1e6\n",
    );
    let mut e = engine(p, big_nodes(50), 3);
    boot_burst(&mut e, 0.0, 1, 1000);
    let fx = run_until(&mut e, 1e4);
    let act = actives(&fx);
    assert_eq!(act.len(), 1000);
    let measured = 999.0 / (act[999].0 - act[0].0);
    assert!(
        within(measured, 1.0 / 0.1, 0.07),
        "measured {measured:.3}/s"
    );
}

/// 100 boots on one node: exactly max_concurrent_builds run at once, never more.
#[test]
fn never_more_than_max_concurrent_builds_per_node() {
    let p = devstack_with("[compute]\nspawn_median_s = 5.0\nspawn_sigma = 0.3\n");
    let mut e = engine(p, big_nodes(2), 11);
    boot_burst(&mut e, 0.0, 1, 200);
    let mut peak = 0;
    while let Some(d) = e.next_deadline() {
        if d > 1e3 {
            break;
        }
        e.advance(d);
        let nodes: Vec<NodeUsage> = e.nodes();
        for n in &nodes {
            assert!(
                n.builds_in_flight <= 10,
                "{} runs {} builds",
                n.name,
                n.builds_in_flight
            );
            peak = peak.max(n.builds_in_flight);
        }
    }
    assert_eq!(peak, 10);
    let st = e.stats();
    assert_eq!(st.compute.max_concurrent_builds_seen, 10);
    assert_eq!(st.boots.active, 200);
    // 100 builds per node, 10 at a time, ~5 s each: about 50 s, not 5 s.
    assert!(st.now > 40.0);
}

/// A 1 s scheduler with rpc_response_timeout 60 s: the 60 calls answered
/// within 60 s succeed, the other 40 fail with MessagingTimeout (their
/// requests are still served, uselessly, which keeps the queue long).
#[test]
fn waits_past_rpc_response_timeout_give_messaging_timeout() {
    let p = devstack_with("[scheduler]\nbase_s = 1.0\nper_host_s = 0.0\n");
    let mut e = engine(p, big_nodes(4), 1);
    boot_burst(&mut e, 0.0, 1, 100);
    let fx = run_until(&mut e, 400.0);
    let errs = errors(&fx);
    assert_eq!(actives(&fx).len(), 60);
    assert_eq!(errs.len(), 40);
    for (t, _, fault) in &errs {
        assert!(
            fault.starts_with("MessagingTimeout: Timed out waiting for a reply"),
            "{fault}"
        );
        assert_eq!(FaultReason::classify(fault), FaultReason::MessagingTimeout);
        assert!((60.0..61.0).contains(t), "timeout at {t}");
    }
    let st = e.stats();
    assert_eq!(st.boots.errors_by_reason["messaging_timeout"], 40);
    assert_eq!(st.stages["scheduler"].abandoned, 40);
}

/// Neutron never reports the VIF: every build fails at spawn start + vif_plugging_timeout.
#[test]
fn vif_plugging_timeout_fails_the_build() {
    let p = devstack_with("[networking]\nagent_delay_median_s = 1000.0\n");
    let mut e = engine(p, big_nodes(1), 1);
    boot_burst(&mut e, 0.0, 1, 3);
    let fx = run_until(&mut e, 1000.0);
    let errs = errors(&fx);
    assert_eq!(errs.len(), 3);
    for (t, _, fault) in errs {
        assert!(
            fault.contains("Failed to allocate the network(s), not rescheduling."),
            "{fault}"
        );
        assert!((300.0..300.1).contains(&t), "failed at {t}");
    }
    // ... and not fatal when vif_plugging_is_fatal = false.
    let p = devstack_with(
        "[networking]\nagent_delay_median_s = 1000.0\nvif_plugging_is_fatal = false\n",
    );
    let mut e = engine(p, big_nodes(1), 1);
    boot_burst(&mut e, 0.0, 1, 3);
    let fx = run_until(&mut e, 1000.0);
    assert_eq!(actives(&fx).len(), 3);
}

/// Six parallel scheduler workers each with an empty host-state cache all
/// pick the same host; every failed claim reschedules, and after
/// max_attempts (3) the rest go to ERROR "Exceeded maximum number of retries".
#[test]
fn stale_host_state_races_reschedule_then_exceed_max_attempts() {
    let p = devstack_with("[scheduler]\nworkers = 6\n");
    let mut e = engine(p, one_slot_nodes(6), 1);
    boot_burst(&mut e, 0.0, 1, 6);
    let fx = run_until(&mut e, 100.0);
    let act = actives(&fx);
    let errs = errors(&fx);
    assert_eq!(act.len(), 3, "{fx:?}");
    assert_eq!(errs.len(), 3);
    for (_, _, fault) in &errs {
        assert!(fault.starts_with("No valid host was found. Exceeded maximum number of retries."));
    }
    let mut hosts: Vec<String> = act.iter().map(|a| a.2.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, ["compute-0", "compute-1", "compute-2"]);
    // 5 + 4 + 3 failed claims.
    assert_eq!(e.stats().boots.reschedules, 12);
}

/// The same burst with one scheduler worker: its own claims are remembered,
/// no race, every instance lands on its own host.
#[test]
fn one_scheduler_worker_remembers_its_claims() {
    let p = devstack_with("[scheduler]\nworkers = 1\n");
    let mut e = engine(p, one_slot_nodes(6), 1);
    boot_burst(&mut e, 0.0, 1, 7);
    let fx = run_until(&mut e, 100.0);
    assert_eq!(actives(&fx).len(), 6);
    let errs = errors(&fx);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].2,
        "No valid host was found. There are not enough hosts available."
    );
    assert_eq!(e.stats().boots.reschedules, 0);
}

/// A periodic resource-tracker write computed before an in-flight build
/// claimed erases the scheduler's memory of that choice: a single worker
/// then over-commits and the build reschedules. Without tracker writes in
/// that window the same arrivals never reschedule.
#[test]
fn tracker_record_overwrites_scheduler_memory() {
    let run = |tracker_interval: f64| {
        // Builds wait 3 s for the node's single build slot; the tracker runs
        // every `tracker_interval` and its write lands 0.3 s after its snapshot.
        let p = devstack_with(&format!(
            "[background]\nresource_tracker_interval_s = {tracker_interval}\nresource_tracker_cost_s = 0.3\n\
             [conductor]\nworkers = 64\n[compute]\nmax_concurrent_builds = 1\nspawn_median_s = 3.0\nspawn_sigma = 0.0\n"
        ));
        // Two nodes with room for 2 each; 4 boots arrive 0.7 s apart.
        let nodes: Vec<_> = one_slot_nodes(2)
            .into_iter()
            .map(|mut n| {
                n.vcpus = 2;
                n.ram_mb = 1024;
                n.disk_gb = 2;
                n
            })
            .collect();
        let mut e = engine(p, nodes, 5);
        for i in 0..4u64 {
            boot_burst(&mut e, i as f64 * 0.7, i + 1, 1);
        }
        let fx = run_until(&mut e, 200.0);
        assert_eq!(actives(&fx).len() + errors(&fx).len(), 4);
        e.stats().boots.reschedules
    };
    assert!(run(0.5) > 0, "tracker writes every 0.5 s should race");
    assert_eq!(run(1000.0), 0, "no tracker write, no race");
}

/// Background load: a conductor-bound closed loop boots at
/// (1 - ρ_bg) / c_build per second, ρ_bg = N · report_cost / report_interval.
#[test]
fn background_load_reduces_boot_throughput_as_n_grows() {
    let mut rates = Vec::new();
    for n in [5usize, 40] {
        let p = devstack_with(
            "[conductor]\nworkers = 1\nbuild_s = 0.1\ncomplete_s = 0.0\n\
             [background]\nreport_interval_s = 1.0\nreport_cost_s = 0.01\nresource_tracker_cost_s = 0.0\n",
        );
        let w = Workload::Closed {
            concurrency: 6,
            total: 600,
            flavor: TINY,
            delete_after: false,
        };
        let r = match simulate(p, big_nodes(n), 9, &w, 1e5) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let mut ends: Vec<f64> = r.outcomes.iter().filter_map(|o| o.ended_at).collect();
        ends.sort_by(f64::total_cmp);
        assert_eq!(ends.len(), 600);
        // Steady state: skip the first and last 50.
        let rate = 500.0 / (ends[549] - ends[49]);
        let rho = n as f64 * 0.01 / 1.0;
        let expected = (1.0 - rho) / 0.1;
        assert!(
            within(rate, expected, 0.05),
            "N={n}: {rate:.2}/s vs {expected:.2}/s"
        );
        assert_eq!(r.stats.background.skipped, 0);
        rates.push(rate);
    }
    assert!(rates[1] < rates[0] * 0.7);
}

/// First boot on a node pays the image download, later ones do not.
#[test]
fn first_boot_per_node_downloads_the_image() {
    let p = devstack_with("[compute]\nfirst_boot_image_s = 10.0\nspawn_sigma = 0.0\n");
    let mut e = engine(p, big_nodes(1), 1);
    boot_burst(&mut e, 0.0, 1, 2);
    boot_burst(&mut e, 20.0, 3, 1);
    let fx = run_until(&mut e, 100.0);
    let act = actives(&fx);
    assert_eq!(act.len(), 3);
    assert!(
        act[0].0 > 10.0 && act[1].0 > 10.0,
        "both first builds wait for one download"
    );
    assert!(act[2].0 - 20.0 < 1.0, "cached afterwards: {:?}", act[2]);
    assert_eq!(e.stats().compute.image_downloads, 1);
}

/// Task states arrive in nova's order; delete frees capacity for a new boot.
#[test]
fn task_states_and_delete_frees_capacity() {
    let mut e = engine(devstack_with(""), one_slot_nodes(1), 1);
    boot_burst(&mut e, 0.0, 1, 1);
    let fx = run_until(&mut e, 10.0);
    let states: Vec<TaskState> = fx
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::TaskState { task_state, .. } => Some(*task_state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            TaskState::Scheduling,
            TaskState::Networking,
            TaskState::Spawning
        ]
    );
    assert_eq!(actives(&fx).len(), 1);
    assert_eq!(e.nodes()[0].running_vms, 1);

    // Full: a second boot finds no host.
    boot_burst(&mut e, 10.0, 2, 1);
    let fx = run_until(&mut e, 20.0);
    assert_eq!(errors(&fx).len(), 1);

    e.submit(20.0, Input::Delete { instance: 1 });
    e.submit(20.0, Input::Delete { instance: 2 });
    let fx = run_until(&mut e, 30.0);
    let deleted = fx
        .iter()
        .filter(|(_, e)| matches!(e, Effect::Deleted { .. }))
        .count();
    assert_eq!(deleted, 2);
    assert_eq!(e.nodes()[0].running_vms, 0);
    assert_eq!(e.nodes()[0].vcpus_used, 0);

    boot_burst(&mut e, 30.0, 3, 1);
    let fx = run_until(&mut e, 40.0);
    assert_eq!(actives(&fx).len(), 1);
}

/// A delete during the build waits for the build and then removes it.
#[test]
fn delete_during_build() {
    let mut e = engine(devstack_with(""), big_nodes(1), 1);
    boot_burst(&mut e, 0.0, 1, 1);
    e.submit(0.0, Input::Delete { instance: 1 });
    let fx = run_until(&mut e, 10.0);
    assert!(actives(&fx).is_empty());
    assert!(fx
        .iter()
        .any(|(_, e)| matches!(e, Effect::Deleted { instance: 1 })));
    assert_eq!(e.nodes()[0].running_vms, 0);
}
