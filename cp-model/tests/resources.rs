//! The resources of issue 13 against their analytic expectations, on
//! virtual time: the oslo.db connection pool, the services' threads, the
//! message bus (rate, RPC timeouts while queued, connections), the
//! conductor's workers and the bus load of idle computes.

mod common;

use common::*;
use cp_model::{ApiKind, Effect, FaultReason, Input};

/// Every message of a boot off the bus except the ones named in `extra`.
const NO_BUS: &str = "[bus]\nmessages_per_s = 0.0\n";

fn quiet_bus(rate: f64, extra: &str) -> String {
    let mut out = format!("[bus]\nmessages_per_s = {rate}\n");
    for key in [
        "build_msgs",
        "schedule_msgs",
        "compute_cast_msgs",
        "vif_msgs",
        "complete_msgs",
        "delete_msgs",
        "report_msgs",
        "tracker_msgs",
        "agent_report_msgs",
    ] {
        if !extra.contains(key) {
            out.push_str(&format!("{key} = 0\n"));
        }
    }
    out + extra
}

fn post_calls(e: &mut cp_model::Engine, t: f64, n: u64) {
    for req in 0..n {
        e.submit(
            t,
            Input::ApiCall {
                req,
                kind: ApiKind::Post,
            },
        );
    }
}

/// (time, req) of answered calls, and (time, req, status, message) of refused ones.
#[allow(clippy::type_complexity)]
fn api_results(fx: &[(f64, Effect)]) -> (Vec<(f64, u64)>, Vec<(f64, u64, u16, String)>) {
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for (t, e) in fx {
        match e {
            Effect::ApiDone { req } => done.push((*t, *req)),
            Effect::ApiRejected {
                req,
                status,
                message,
            } => refused.push((*t, *req, *status, message.clone())),
            _ => {}
        }
    }
    (done, refused)
}

/// API workers W, each with a pool of 5 + 50 connections, 1 s per POST (no
/// variability), pool timeout 29.5 s, 200 POSTs at t = 0. A request holds its
/// connection while it waits for the CPU, so 55·W start at once and one more
/// gets a connection each time one finishes (W per second). Those still
/// waiting at 29.5 s fail with 500 `QueuePool limit …`: exactly
/// 55·W + 29·W answered, the rest refused at t = 29.5.
#[test]
fn db_pool_exhaustion_fails_the_waiters_at_the_pool_timeout() {
    for w in [1u32, 2] {
        let p = devstack_with(&format!(
            "[api]\nworkers = {w}\npost_s = 1.0\ntimeout_s = 1e6\n[db]\npool_timeout_s = 29.5\n{NO_BUS}"
        ));
        let mut e = engine(p, big_nodes(1), 1);
        post_calls(&mut e, 0.0, 200);
        let fx = run_until(&mut e, 500.0);
        let (done, refused) = api_results(&fx);
        let expect_done = (55 + 29) * w as usize;
        assert_eq!(done.len(), expect_done, "W={w}");
        assert_eq!(refused.len(), 200 - expect_done, "W={w}");
        for (t, _, status, msg) in &refused {
            assert_eq!(*status, 500);
            assert!(
                msg.contains("QueuePool limit of size 5 overflow 50 reached, connection timed out, timeout 29.5"),
                "{msg}"
            );
            assert!((*t - 29.5).abs() < 1e-9, "refused at {t}");
        }
        let st = e.stats();
        assert_eq!(st.api.rejected_db_pool_500, (200 - expect_done) as u64);
        let api = &st.stages["api"];
        assert_eq!(api.db_connections, 55 * u64::from(w));
        assert_eq!(api.max_db_connections_in_use, 55 * u64::from(w));
        assert_eq!(api.db_pool_timeouts, (200 - expect_done) as u64);
        assert_eq!(api.db_connections_in_use, 0, "every connection returned");
    }
}

/// A larger pool or a longer pool timeout moves the limit as the formula says.
#[test]
fn pool_size_and_timeout_set_how_many_get_through() {
    let p = devstack_with(&format!(
        "[api]\nworkers = 1\npost_s = 1.0\ntimeout_s = 1e6\n[db]\npool_size = 10\nmax_overflow = 20\npool_timeout_s = 9.5\n{NO_BUS}"
    ));
    let mut e = engine(p, big_nodes(1), 1);
    post_calls(&mut e, 0.0, 100);
    let fx = run_until(&mut e, 500.0);
    let (done, refused) = api_results(&fx);
    assert_eq!(done.len(), 30 + 9);
    assert_eq!(refused.len(), 100 - 39);
}

/// The conductor's executor threads bound who can wait for a connection:
/// 1 worker with 10 threads and 5 connections, 1 s per build. At most 5
/// wait for a connection, each less than 5 s: no pool timeout, every boot
/// ACTIVE, and the burst takes 60 builds × 1 s (the worker is the bottleneck).
#[test]
fn executor_threads_bound_the_pool_waiters() {
    let p = devstack_with(&format!(
        "[conductor]\nworkers = 1\nbuild_s = 1.0\nrpc_response_timeout_s = 1e6\n\
         [threads]\nconductor = 10\n[db]\npool_size = 5\nmax_overflow = 0\n\
         [background]\nservice_down_time_s = 1e6\n{NO_BUS}"
    ));
    let mut e = engine(p, big_nodes(4), 1);
    boot_burst(&mut e, 0.0, 1, 60);
    let fx = run_until(&mut e, 1e4);
    let act = actives(&fx);
    assert_eq!(act.len(), 60, "{:?}", errors(&fx).first());
    assert!(errors(&fx).is_empty());
    let st = e.stats();
    let c = &st.stages["conductor"];
    assert_eq!(c.max_db_waiting, 5);
    assert_eq!(c.max_db_connections_in_use, 5);
    assert_eq!(c.db_pool_timeouts, 0);
    assert!(c.max_thread_queue_len >= 50, "{}", c.max_thread_queue_len);
    let end = act[act.len() - 1].0;
    assert!((60.0..61.0).contains(&end), "last ACTIVE at {end}");
}

/// Conductor-bound burst: the burst takes boots × build_s / workers.
#[test]
fn conductor_throughput_is_workers_over_build_s() {
    for w in [1u32, 3] {
        let p = devstack_with(&format!(
            "[conductor]\nworkers = {w}\nbuild_s = 0.5\nrpc_response_timeout_s = 1e6\n\
             [background]\nservice_down_time_s = 1e6\n{NO_BUS}"
        ));
        let mut e = engine(p, big_nodes(20), 1);
        boot_burst(&mut e, 0.0, 1, 150);
        let fx = run_until(&mut e, 1e4);
        let act = actives(&fx);
        assert_eq!(act.len(), 150, "{:?}", errors(&fx).first());
        let rate = 150.0 / act[act.len() - 1].0;
        assert!(within(rate, f64::from(w) / 0.5, 0.03), "W={w}: {rate}/s");
    }
}

/// A bus-bound burst: with one message per boot at 10 messages/s, boots
/// reach the conductor (and ACTIVE) at 10 per second.
#[test]
fn bus_rate_bounds_boot_throughput() {
    let p = devstack_with(&quiet_bus(10.0, "build_msgs = 1\n"));
    let mut e = engine(p, big_nodes(20), 1);
    boot_burst(&mut e, 0.0, 1, 100);
    let fx = run_until(&mut e, 1e4);
    let act = actives(&fx);
    assert_eq!(act.len(), 100);
    let rate = 99.0 / (act[99].0 - act[0].0);
    assert!(within(rate, 10.0, 0.02), "rate {rate}");
    let st = e.stats();
    assert_eq!(st.bus.messages, 100);
    assert!(within(st.stages["bus"].utilization * st.now, 10.0, 0.01));
}

/// An RPC call waiting in the broker keeps its `rpc_response_timeout`:
/// `select_destinations` needs 7 messages at 1 message/s, so call i is
/// forwarded at 7(i + 1) s; the 8 forwarded by 56 s succeed, the other 12
/// fail with MessagingTimeout at 60 s (and are still forwarded afterwards).
#[test]
fn calls_queued_in_the_bus_time_out() {
    let p = devstack_with(&quiet_bus(1.0, "schedule_msgs = 7\n"));
    let mut e = engine(p, big_nodes(4), 1);
    boot_burst(&mut e, 0.0, 1, 20);
    let fx = run_until(&mut e, 1000.0);
    assert_eq!(actives(&fx).len(), 8);
    let errs = errors(&fx);
    assert_eq!(errs.len(), 12);
    for (t, _, fault) in &errs {
        assert_eq!(FaultReason::classify(fault), FaultReason::MessagingTimeout);
        assert!((60.0..60.1).contains(t), "timed out at {t}");
    }
    let st = e.stats();
    assert_eq!(st.bus.messages, 20 * 7);
    assert_eq!(st.stages["bus"].abandoned, 12);
    assert_eq!(st.stages["bus"].served, 20);
}

/// Broker connections: 1000 allowed, 100 for the controller, 100 per
/// compute: 9 of 12 computes connect; the other 3 never report and are
/// never chosen, so 12 one-slot nodes take 9 boots and 3 get No valid host.
#[test]
fn computes_past_the_broker_connection_limit_are_never_chosen() {
    let p = devstack_with(
        "[scheduler]\nworkers = 1\n[bus]\nmax_connections = 1000\ncontroller_connections = 100\nconnections_per_compute = 100\n",
    );
    let mut e = engine(p, one_slot_nodes(12), 1);
    boot_burst(&mut e, 0.0, 1, 12);
    let fx = run_until(&mut e, 100.0);
    let act = actives(&fx);
    assert_eq!(act.len(), 9);
    let errs = errors(&fx);
    assert_eq!(errs.len(), 3);
    for (_, _, f) in &errs {
        assert_eq!(FaultReason::classify(f), FaultReason::NoValidHost, "{f}");
    }
    let hosts: std::collections::BTreeSet<String> = act.into_iter().map(|a| a.2).collect();
    for i in 9..12 {
        assert!(!hosts.contains(&format!("compute-{i}")));
    }
    let st = e.stats();
    assert_eq!(st.bus.computes_refused, 3);
    assert_eq!(st.bus.connections, 1000);
    assert_eq!(st.bus.connections_refused, 300);
    assert_eq!(st.compute.nodes_up, 9);
}

/// Idle computes load the bus: N · (report/10 s + tracker/60 s + agent/30 s)
/// messages per second, here with openstack-2017's message counts (2, 4, 2):
/// N/3 per second. Measured over 600 idle seconds within 1%.
#[test]
fn idle_bus_load_grows_with_the_number_of_computes() {
    for n in [30usize, 300] {
        let p = devstack_with("[bus]\nmessages_per_s = 5100.0\n");
        let mut e = engine(p, big_nodes(n), 1);
        run_until(&mut e, 600.0);
        let st = e.stats();
        let expected = n as f64 * (2.0 / 10.0 + 4.0 / 60.0 + 2.0 / 30.0);
        assert!(within(
            st.bus.offered_background_messages_per_s,
            expected,
            1e-9
        ));
        let measured = st.bus.messages as f64 / 600.0;
        assert!(
            within(measured, expected, 0.01),
            "N={n}: {measured} msgs/s, expected {expected}"
        );
    }
}
