//! Calibration tables for docs/performance-model.md.
//!
//!     cargo run --release -p cp-model --example calibrate [-- PROFILE [SEED]]
//!
//! Everything runs on virtual time; the output is deterministic for a given
//! profile and seed.

use std::collections::BTreeMap;
use std::error::Error;

use cp_model::{
    simulate_with, NodeSpec, Polling, Profile, Resources, SimOptions, SimReport, Workload,
};

/// m1.tiny (DevStack sizes), the flavor of the published Rally runs.
const TINY: Resources = Resources {
    vcpus: 1,
    ram_mb: 512,
    disk_gb: 1,
};

/// The profile's compute node (`[hardware]`).
fn nodes(profile: &Profile, k: usize) -> Vec<NodeSpec> {
    cp_model::calibration::nodes(profile, k)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats_line(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    format!(
        "{:>5.1} | {:>5.1} | {:>5.1} | {:>5.1} | {:>5.1} | {:>5.1}",
        xs.first().copied().unwrap_or(f64::NAN),
        mean,
        pct(xs, 50.0),
        pct(xs, 90.0),
        pct(xs, 95.0),
        xs.last().copied().unwrap_or(f64::NAN)
    )
}

fn busiest(r: &SimReport) -> String {
    r.stats
        .stages
        .iter()
        .max_by(|a, b| a.1.utilization.total_cmp(&b.1.utilization))
        .map(|(name, s)| {
            format!(
                "{name} {:.0}% (wait {:.1} s)",
                s.utilization * 100.0,
                s.mean_wait_s
            )
        })
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let profile_name = args.first().map(String::as_str).unwrap_or("openstack-2017");
    let seed: u64 = match args.get(1) {
        Some(s) => s.parse()?,
        None => 1,
    };
    let profile = Profile::load(profile_name)?;
    println!(
        "profile {} (hash {}), seed {seed}",
        profile.name,
        profile.hash()
    );
    let h = &profile.hardware;
    println!(
        "node: {} vCPU, {} GiB, {} GB, ratios {}/{}/{} ({}); flavor m1.tiny",
        h.compute_vcpus,
        h.compute_ram_mb / 1024,
        h.compute_disk_gb,
        h.cpu_allocation_ratio,
        h.ram_allocation_ratio,
        h.disk_allocation_ratio,
        h.source
    );
    println!();

    println!("## Calibration check: published points and their stated tolerances");
    println!();
    let rows = cp_model::calibration::check(&profile, seed)?;
    print!("{}", cp_model::calibration::markdown(&rows));
    println!();
    println!(
        "{} of {} points within tolerance.",
        rows.iter().filter(|r| r.holds()).count(),
        rows.len()
    );
    println!();

    let plain = SimOptions::default();
    let rally = SimOptions {
        polling: Some(Polling::rally()),
        ..SimOptions::default()
    };

    println!("## A. Concurrency 5 (Rally constant runner), m1.tiny, seconds from POST");
    println!();
    println!("\"ACTIVE\" = the model's ACTIVE instant; \"Rally poll\" = when a Rally-like client (GET 1 s after the POST answered, then every 2 s) first sees ACTIVE.");
    println!();
    println!(
        "| setup | boots | published | measured at | min | mean | p50 | p90 | p95 | max | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let cases = [
        (
            17,
            400,
            "Rally user story (3 ctl + 17 cmp): min 5.0, avg 8.0, p90 9.6, p95 9.7, max 14.1",
        ),
        (
            200,
            400,
            "perf-docs, 200 computes: mean 12.0, p90 12.9, max 14.3",
        ),
        (
            1000,
            400,
            "perf-docs, 1000 computes: mean 13.1, p90 14.1, max 17.7",
        ),
    ];
    for (k, total, published) in cases {
        let w = Workload::Closed {
            concurrency: 5,
            total,
            flavor: TINY,
            delete_after: false,
        };
        for (label, opts) in [("ACTIVE", &plain), ("Rally poll", &rally)] {
            let r = simulate_with(profile.clone(), nodes(&profile, k), seed, &w, opts)?;
            let mut ok: Vec<f64> = r
                .outcomes
                .iter()
                .filter(|o| o.succeeded())
                .filter_map(|o| o.duration())
                .collect();
            let errors = r.outcomes.len() - ok.len();
            println!(
                "| {k} computes | {total} | {published} | {label} | {} | {errors} |",
                stats_line(&mut ok)
            );
        }
    }
    println!();

    println!("## B. Boot + delete at concurrency 4, 17 computes, Rally polling (perf-docs reliability baseline: median 8.6, mean 8.8, p95 11; delete ≈ 2.5 s)");
    println!();
    let w = Workload::Closed {
        concurrency: 4,
        total: 400,
        flavor: TINY,
        delete_after: true,
    };
    let r = simulate_with(profile.clone(), nodes(&profile, 17), seed, &w, &rally)?;
    let mut both: Vec<f64> = r
        .outcomes
        .iter()
        .filter_map(|o| o.deleted_at.map(|d| d - o.posted_at))
        .collect();
    let mut del: Vec<f64> = r
        .outcomes
        .iter()
        .filter_map(|o| Some(o.deleted_at? - o.observed_at.or(o.ended_at)?))
        .collect();
    println!("| measure | n | min | mean | p50 | p90 | p95 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| boot+delete (POST → gone) | {} | {} |",
        both.len(),
        stats_line(&mut both)
    );
    println!(
        "| delete (DELETE sent → gone, incl. the API call) | {} | {} |",
        del.len(),
        stats_line(&mut del)
    );
    println!();

    for (title, opts) in [
        ("C1. Saturation, control plane only: C boots posted at t = 0 on one controller with K computes (no polling)", &plain),
        ("C2. Same with Rally-like polling (every user GETs its server every 2 s: API load grows with C)", &rally),
    ] {
        println!("## {title}");
        println!();
        println!("| K | C | active | error % | errors by reason | p50 s | p95 s | makespan s | boots/s | busiest stage (utilization over the run, mean wait) |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for k in [1usize, 16, 64, 256, 1000] {
            for c in [16u32, 64, 256, 1024, 4096] {
                let w = Workload::Burst { boots: c, flavor: TINY };
                let r = simulate_with(profile.clone(), nodes(&profile, k), seed, &w, opts)?;
                let s = r.summary();
                let reasons: BTreeMap<&String, &usize> = s.errors_by_reason.iter().collect();
                let reasons = if reasons.is_empty() {
                    "-".to_string()
                } else {
                    reasons
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "| {k} | {c} | {} | {:.1} | {reasons} | {:.1} | {:.1} | {:.0} | {:.2} | {} |",
                    s.active,
                    s.error_rate * 100.0,
                    s.p50_s,
                    s.p95_s,
                    s.makespan_s,
                    s.throughput_per_s,
                    busiest(&r)
                );
            }
        }
        println!();
    }

    println!(
        "## D. Idle background load offered by K computes (workers' worth of work, bus messages)"
    );
    println!();
    println!("| K | conductor workers busy | neutron-server workers busy | bus messages/s (of capacity) | broker connections (refused computes) |");
    println!("|---|---|---|---|---|");
    for k in [1usize, 16, 64, 256, 1000, 4000] {
        let e = cp_model::Engine::new(profile.clone(), nodes(&profile, k), seed)?;
        let st = e.stats();
        let b = st.background;
        println!(
            "| {k} | {:.3} of {} | {:.3} of {} | {:.0} of {:.0} | {} of {} ({}) |",
            b.offered_conductor_workers,
            profile.conductor.workers,
            b.offered_networking_workers,
            profile.networking.workers,
            st.bus.offered_background_messages_per_s,
            st.bus.messages_per_s,
            st.bus.connections,
            st.bus.max_connections,
            st.bus.computes_refused
        );
    }
    Ok(())
}
