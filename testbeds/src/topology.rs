//! Sizing of the two testbeds so that they have the same compute capacity.
//!
//! The hardware is fixed, as in the seed experiment: every compute node of
//! both testbeds is the profile's node (`[hardware]`, a 2017-era server with
//! its source), and both testbeds have N of them. The sweep does not change
//! the deployment: running out of capacity is a legitimate limit (No valid
//! host after `max_attempts`), for P2P as for standard. Quotas are set so
//! that they never bind before capacity does.

use serde::{Deserialize, Serialize};

/// Which testbed (system). All four have the same N compute nodes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One controller with N compute nodes.
    Standard,
    /// Nova cells v2: one global API layer above K cells of N/K computes.
    Cells,
    /// N independent cloudlets (regions) without agents: the client spreads
    /// its boots over them round-robin; nobody places a boot elsewhere.
    Sharded,
    /// N cloudlets of one controller + one compute node, each with an agent.
    P2p,
}

/// Computes per cell that large operators run (CERN: ~100 to 200, see
/// docs/performance-model.md §2b).
pub const COMPUTES_PER_CELL: u32 = 100;

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Standard, Kind::Cells, Kind::Sharded, Kind::P2p];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Standard => "standard",
            Kind::Cells => "cells",
            Kind::Sharded => "sharded",
            Kind::P2p => "p2p",
        }
    }

    /// N deployments of one compute node each (sharded, P2P), rather than
    /// one deployment of N (standard, cells).
    pub fn is_federated(self) -> bool {
        matches!(self, Kind::Sharded | Kind::P2p)
    }

    /// (deployments, compute nodes per deployment) for N = `members`.
    pub fn deployments(self, members: u32) -> (u32, u32) {
        if self.is_federated() {
            (members, 1)
        } else {
            (1, members)
        }
    }

    /// Whether every cloudlet runs an agent.
    pub fn has_agents(self) -> bool {
        self == Kind::P2p
    }

    /// Parses `standard,cells,…` (no duplicates, at least one).
    pub fn parse_list(text: &str) -> Result<Vec<Kind>, String> {
        use clap::ValueEnum;
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let k = Kind::from_str(part, true).map_err(|_| {
                format!("unknown system {part:?} (expected standard, cells, sharded or p2p)")
            })?;
            if out.contains(&k) {
                return Err(format!("system {part:?} is listed twice"));
            }
            out.push(k);
        }
        if out.is_empty() {
            return Err("no system given".into());
        }
        Ok(out)
    }
}

/// Number of cells of a cells deployment of `computes` nodes: `explicit`,
/// or about [`COMPUTES_PER_CELL`] per cell and at least 2 (one cell is the
/// standard monolith); never more cells than computes.
pub fn cells_for(computes: u32, explicit: Option<u32>) -> u32 {
    let k = explicit.unwrap_or_else(|| computes.div_ceil(COMPUTES_PER_CELL).max(2));
    k.clamp(1, computes.max(1))
}

/// The flavor every boot uses (DevStack `m1.tiny`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlavorSize {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

pub const M1_TINY: FlavorSize = FlavorSize {
    vcpus: 1,
    ram_mb: 512,
    disk_gb: 1,
};

/// Size of one compute node, with its allocation ratios.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeSize {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
}

impl NodeSize {
    /// The profile's compute node (`[hardware]`).
    pub fn from_profile(p: &cp_model::Profile) -> Self {
        let h = &p.hardware;
        NodeSize {
            vcpus: h.compute_vcpus,
            ram_mb: h.compute_ram_mb,
            disk_gb: h.compute_disk_gb,
            cpu_allocation_ratio: h.cpu_allocation_ratio,
            ram_allocation_ratio: h.ram_allocation_ratio,
            disk_allocation_ratio: h.disk_allocation_ratio,
        }
    }

    /// How many `flavor` instances one node holds.
    pub fn holds(&self, flavor: FlavorSize) -> u64 {
        let by_cpu = (f64::from(self.vcpus) * self.cpu_allocation_ratio
            / f64::from(flavor.vcpus.max(1))) as u64;
        let by_ram =
            (self.ram_mb as f64 * self.ram_allocation_ratio / flavor.ram_mb.max(1) as f64) as u64;
        let by_disk = (self.disk_gb as f64 * self.disk_allocation_ratio
            / flavor.disk_gb.max(1) as f64) as u64;
        by_cpu.min(by_ram).min(by_disk)
    }
}

/// The sizing of one comparison: N nodes of the profile's size in both
/// testbeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    pub nodes: u32,
    pub node: NodeSize,
    /// Instance quota per project in each deployment.
    pub quota_instances: u32,
    /// Core and RAM quotas per project, sized with the instance quota so
    /// that no quota (DevStack's default is 20 cores) limits a level.
    pub quota_cores: u64,
    pub quota_ram_mb: u64,
}

/// `nodes` nodes of size `node`, with quotas that never bind before
/// capacity: one project may hold every `flavor` instance the whole testbed
/// fits (through any one deployment).
pub fn fixed(nodes: u32, node: NodeSize, flavor: FlavorSize) -> Sizing {
    let nodes = nodes.max(1);
    let total = node.holds(flavor).saturating_mul(u64::from(nodes)).max(10);
    let instances = u32::try_from(total).unwrap_or(u32::MAX);
    Sizing {
        nodes,
        node,
        quota_instances: instances,
        quota_cores: total.saturating_mul(u64::from(flavor.vcpus.max(1))),
        quota_ram_mb: total.saturating_mul(flavor.ram_mb.max(1)),
    }
}

/// [`fixed`] with the node of profile `profile` (a name or a TOML path).
pub fn for_profile(nodes: u32, profile: &str, flavor: FlavorSize) -> anyhow::Result<Sizing> {
    let p = cp_model::Profile::load(profile)
        .map_err(|e| anyhow::anyhow!("profile {profile:?}: {e}"))?;
    Ok(fixed(nodes, NodeSize::from_profile(&p), flavor))
}

impl Sizing {
    /// How many `flavor` instances one node holds.
    pub fn node_holds(&self, flavor: FlavorSize) -> u64 {
        self.node.holds(flavor)
    }

    /// How many `flavor` instances the whole testbed holds.
    pub fn total_holds(&self, flavor: FlavorSize) -> u64 {
        self.node_holds(flavor)
            .saturating_mul(u64::from(self.nodes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_node() -> NodeSize {
        NodeSize::from_profile(&cp_model::Profile::builtin("openstack-2017").expect("builtin"))
    }

    #[test]
    fn the_node_comes_from_the_profile_not_the_sweep() {
        let n = profile_node();
        // 2 x E5-2680 v3: 48 threads; 256 GiB; 960 GB; 16 / 1.5 / 1.0.
        assert_eq!((n.vcpus, n.ram_mb, n.disk_gb), (48, 262_144, 960));
        // m1.tiny: 768 by CPU (48 x 16), 768 by RAM (256 GiB x 1.5 / 512 MB), 960 by disk.
        assert_eq!(n.holds(M1_TINY), 768);
        let s = fixed(64, n, M1_TINY);
        assert_eq!(s.node, n);
        assert_eq!(s.total_holds(M1_TINY), 64 * 768);
    }

    #[test]
    fn quotas_never_bind_before_capacity() {
        for nodes in [1, 4, 64, 1000] {
            let s = fixed(nodes, profile_node(), M1_TINY);
            let total = s.total_holds(M1_TINY);
            assert!(u64::from(s.quota_instances) >= total);
            assert!(s.quota_cores >= total * u64::from(M1_TINY.vcpus));
            assert!(s.quota_ram_mb >= total * M1_TINY.ram_mb);
        }
    }

    #[test]
    fn cells_default_to_about_a_hundred_computes_and_at_least_two() {
        assert_eq!(cells_for(64, None), 2);
        assert_eq!(cells_for(1000, None), 10);
        assert_eq!(cells_for(1001, None), 11);
        assert_eq!(cells_for(1, None), 1);
        assert_eq!(cells_for(64, Some(8)), 8);
        assert_eq!(cells_for(4, Some(8)), 4);
    }

    #[test]
    fn system_lists_parse_in_the_given_order() {
        assert_eq!(
            Kind::parse_list("standard,cells,sharded,p2p").unwrap(),
            Kind::ALL.to_vec()
        );
        assert_eq!(
            Kind::parse_list("p2p, sharded").unwrap(),
            [Kind::P2p, Kind::Sharded]
        );
        assert!(Kind::parse_list("p2p,p2p").is_err());
        assert!(Kind::parse_list("regions").is_err());
        assert!(Kind::parse_list("").is_err());
    }

    #[test]
    fn same_total_capacity_whatever_the_split() {
        // 64 deployments of 1 node and 1 deployment of 64 nodes: the same nodes.
        let one = fixed(1, profile_node(), M1_TINY);
        let many = fixed(64, profile_node(), M1_TINY);
        assert_eq!(one.node, many.node);
        assert_eq!(64 * one.total_holds(M1_TINY), many.total_holds(M1_TINY));
    }
}
