//! Cells v2 against analytic expectations: splitting the same nodes into K
//! cells divides the work of the per-cell stages (cell conductor, cell bus)
//! by K and leaves the global ones (API, super-conductor, scheduler,
//! neutron-server, top bus) exactly as loaded as in the monolith.

mod common;

use common::*;
use cp_model::{ApiKind, Engine, Input, Profile};

fn cells_engine(p: Profile, nodes: usize, k: usize) -> Engine {
    match Engine::with_cells(p, big_nodes(nodes), 1, k) {
        Ok(e) => e,
        Err(e) => panic!("engine: {e}"),
    }
}

/// Last ACTIVE time of a `boots`-boot burst on `nodes` nodes in `k` cells,
/// and the most boots any one cell got.
fn burst(p: &Profile, nodes: usize, k: usize, boots: u64) -> (f64, usize) {
    let mut e = cells_engine(p.clone(), nodes, k);
    boot_burst(&mut e, 0.0, 1, boots);
    let fx = run_until(&mut e, 500.0);
    let act = actives(&fx);
    assert_eq!(act.len() as u64, boots, "{:?}", errors(&fx).first());
    let mut per_cell = vec![0usize; k];
    for (_, _, host) in &act {
        let i: usize = host.trim_start_matches("compute-").parse().unwrap_or(0);
        per_cell[e.node_cell(i)] += 1;
    }
    (
        act[act.len() - 1].0,
        per_cell.into_iter().max().unwrap_or(0),
    )
}

fn burst_makespan(p: &Profile, nodes: usize, k: usize, boots: u64) -> f64 {
    burst(p, nodes, k, boots).0
}

const QUIET: &str = "[background]\nservice_down_time_s = 1e6\nreport_cost_s = 0.0\n\
                     resource_tracker_cost_s = 0.0\nagent_report_cost_s = 0.0\n\
                     [bus]\nmessages_per_s = 0.0\n";

/// The final `instance.save()` runs on the cell conductor: with one worker
/// at 1 s per save, a 100-boot burst takes ~100 s in the monolith and ~100/K
/// s in K cells (the spreading weigher spreads boots evenly over the cells).
#[test]
fn cells_divide_the_per_cell_conductor_load() {
    let p = devstack_with(&format!(
        "[conductor]\nworkers = 1\ncomplete_s = 1.0\nrpc_response_timeout_s = 1e6\n{QUIET}"
    ));
    let mono = burst_makespan(&p, 20, 1, 100);
    assert!(within(mono, 100.0, 0.02), "monolith {mono}");
    for k in [2usize, 4, 10] {
        let (t, most) = burst(&p, 20, k, 100);
        // The boots spread evenly; the busiest cell conductor sets the pace.
        assert!(most <= 100 / k + 1, "K={k}: {most} boots in one cell");
        let want = most as f64;
        assert!(t >= want && t <= want + 0.5, "K={k}: {t} s, want ~{want}");
    }
}

/// The scheduler is global: a scheduler-bound burst takes boots × s0 for
/// any number of cells.
#[test]
fn cells_do_not_relieve_the_global_scheduler() {
    let p = devstack_with(&format!(
        "[scheduler]\nbase_s = 0.5\nper_host_s = 0.0\n\
         [conductor]\nrpc_response_timeout_s = 1e6\n{QUIET}"
    ));
    let mono = burst_makespan(&p, 20, 1, 60);
    assert!(within(mono, 30.0, 0.02), "monolith {mono}");
    for k in [2usize, 5] {
        let t = burst_makespan(&p, 20, k, 60);
        assert!(within(t, mono, 0.01), "K={k}: {t} vs {mono}");
    }
}

/// The super-conductor is global: builds (`build_s`, per scheduling
/// attempt) are no faster in cells.
#[test]
fn cells_do_not_relieve_the_super_conductor() {
    let p = devstack_with(&format!(
        "[conductor]\nworkers = 1\nbuild_s = 0.5\nrpc_response_timeout_s = 1e6\n{QUIET}"
    ));
    let mono = burst_makespan(&p, 20, 1, 60);
    let cells = burst_makespan(&p, 20, 4, 60);
    assert!(within(mono, 30.0, 0.02), "monolith {mono}");
    assert!(within(cells, mono, 0.01), "cells {cells} vs {mono}");
}

/// The API is global: a POST burst is served at workers / post_s whatever K.
#[test]
fn cells_do_not_relieve_the_api() {
    let p = devstack_with(&format!("[api]\nworkers = 2\npost_s = 0.1\n{QUIET}"));
    for k in [1usize, 4] {
        let mut e = cells_engine(p.clone(), 8, k);
        for req in 0..200 {
            e.submit(
                0.0,
                Input::ApiCall {
                    req,
                    kind: ApiKind::Post,
                },
            );
        }
        run_until(&mut e, 1e3);
        let api = &e.stats().stages["api"];
        assert_eq!(api.served, 200);
        // 200 × 0.1 s over 2 workers = 10 s of busy time per worker.
        assert!(within(api.utilization * e.now(), 10.0, 0.01), "K={k}");
    }
}

/// Idle computes' reports load their own cell's conductor and bus: with K
/// cells each gets 1/K of the monolith's background work; the top bus gets
/// only neutron's agent reports.
#[test]
fn background_load_splits_over_the_cells() {
    let p = devstack_with(
        "[background]\nreport_interval_s = 10\nreport_cost_s = 0.01\n\
         resource_tracker_cost_s = 0.0\nagent_report_cost_s = 0.0\n\
         [bus]\nmessages_per_s = 1000\nreport_msgs = 2\ntracker_msgs = 0\nagent_report_msgs = 0\n",
    );
    let horizon = 1000.0;
    let busy = |e: &Engine, stage: &str| {
        let st = e.stats();
        st.stages[stage].utilization * st.now * f64::from(st.stages[stage].workers)
    };
    let mut mono = cells_engine(p.clone(), 40, 1);
    run_until(&mut mono, horizon);
    // 40 nodes × 100 reports × 0.01 s = 40 s of conductor work; 8000 messages / 1000/s = 8 s of bus.
    assert!(within(busy(&mono, "conductor"), 40.0, 0.05));
    assert!(within(busy(&mono, "bus"), 8.0, 0.05));
    let mut cells = cells_engine(p, 40, 4);
    run_until(&mut cells, horizon);
    assert_eq!(cells.cells(), 4);
    for c in 1..=4 {
        assert!(within(
            busy(&cells, &format!("cell{c}/conductor")),
            10.0,
            0.05
        ));
        assert!(within(busy(&cells, &format!("cell{c}/bus")), 2.0, 0.05));
    }
    assert_eq!(busy(&cells, "super_conductor"), 0.0);
    assert_eq!(busy(&cells, "bus"), 0.0);
}

/// Each cell has its own broker: 10 computes of 23 connections need 230;
/// a broker limit of 150 refuses 4 of them in the monolith (150 - controller
/// 10 = 140 = 6 computes) but none in 2 cells (5 computes = 115 each).
#[test]
fn each_cell_broker_holds_only_its_computes_connections() {
    let p = devstack_with(
        "[bus]\nmessages_per_s = 1000\nmax_connections = 150\ncontroller_connections = 10\n\
         connections_per_compute = 23\n",
    );
    let mono = cells_engine(p.clone(), 10, 1);
    assert_eq!(mono.stats().bus.computes_refused, 4);
    let cells = cells_engine(p, 10, 2);
    assert_eq!(cells.stats().bus.computes_refused, 0);
    // controller connections on the top broker and both cell brokers.
    assert_eq!(cells.stats().bus.connections, 3 * 10 + 10 * 23);
}
