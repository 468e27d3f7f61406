//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cp_model::{Effect, Engine, Input, ModelTime, NodeSpec, Profile, Resources};

pub const TINY: Resources = Resources {
    vcpus: 1,
    ram_mb: 512,
    disk_gb: 1,
};

/// `n` big nodes (capacity is never the limit).
pub fn big_nodes(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec::with_default_ratios(format!("compute-{i}"), 1000, 1 << 30, 1 << 20))
        .collect()
}

/// `n` nodes that hold exactly one TINY instance each.
pub fn one_slot_nodes(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec {
            name: format!("compute-{i}"),
            vcpus: 1,
            ram_mb: 512,
            disk_gb: 1,
            cpu_allocation_ratio: 1.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
        })
        .collect()
}

/// devstack with overrides given as TOML (on top of `base = "devstack"`).
pub fn devstack_with(overrides: &str) -> Profile {
    let text = format!("base = \"devstack\"\n{overrides}");
    match Profile::from_toml("test", &text) {
        Ok(p) => p,
        Err(e) => panic!("test profile does not parse: {e}"),
    }
}

pub fn engine(profile: Profile, nodes: Vec<NodeSpec>, seed: u64) -> Engine {
    match Engine::new(profile, nodes, seed) {
        Ok(e) => e,
        Err(e) => panic!("engine: {e}"),
    }
}

/// Submit `n` boots at `t` directly (no API stage); ids start at `first`.
pub fn boot_burst(e: &mut Engine, t: ModelTime, first: u64, n: u64) {
    for id in first..first + n {
        e.submit(
            t,
            Input::Boot {
                instance: id,
                resources: TINY,
                name: Some(format!("vm-{id}")),
            },
        );
    }
}

/// Advance event by event until `until`, collecting effects.
pub fn run_until(e: &mut Engine, until: ModelTime) -> Vec<(ModelTime, Effect)> {
    let mut out = Vec::new();
    while let Some(d) = e.next_deadline() {
        if d > until {
            break;
        }
        out.extend(e.advance(d));
    }
    out.extend(e.advance(until));
    out
}

pub fn actives(effects: &[(ModelTime, Effect)]) -> Vec<(ModelTime, u64, String)> {
    effects
        .iter()
        .filter_map(|(t, e)| match e {
            Effect::Active { instance, host } => Some((*t, *instance, host.clone())),
            _ => None,
        })
        .collect()
}

pub fn errors(effects: &[(ModelTime, Effect)]) -> Vec<(ModelTime, u64, String)> {
    effects
        .iter()
        .filter_map(|(t, e)| match e {
            Effect::Error {
                instance, fault, ..
            } => Some((*t, *instance, fault.clone())),
            _ => None,
        })
        .collect()
}

pub fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs()
}
