//! Sizing of the two testbeds so that they have the same compute capacity.
//!
//! The comparison is about control planes, as in the seed experiment: both
//! testbeds get N compute nodes of the same size, and each node is sized so
//! that compute capacity (vCPU × allocation ratio, RAM, disk) and quotas are
//! never what limits the largest burst level.

use serde::{Deserialize, Serialize};

/// Which testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One controller with N compute nodes.
    Standard,
    /// N cloudlets of one controller + one compute node, each with an agent.
    P2p,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Standard => "standard",
            Kind::P2p => "p2p",
        }
    }
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

/// Nova's default allocation ratios; the mock uses the same.
pub const CPU_ALLOCATION_RATIO: f64 = 16.0;
pub const RAM_ALLOCATION_RATIO: f64 = 1.5;

/// Size of one compute node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeSize {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// The sizing of one comparison: N nodes in both testbeds, each node big
/// enough that the whole burst fits even if placement is uneven.
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

/// Sizes nodes for `max_level` concurrent boots of `flavor` over `nodes`
/// nodes. `headroom` (≥ 1) multiplies the even share so that an uneven
/// spread (a stale scheduler view, a P2P placement that favours some
/// cloudlets) still never runs out of compute.
pub fn size_for(nodes: u32, max_level: u32, flavor: FlavorSize, headroom: f64) -> Sizing {
    let nodes = nodes.max(1);
    let headroom = if headroom.is_finite() {
        headroom.max(1.0)
    } else {
        1.0
    };
    // Instances a node must be able to hold.
    let per_node = ((f64::from(max_level) / f64::from(nodes)) * headroom)
        .ceil()
        .max(1.0);
    // Never smaller than a DevStack node (8 vCPU, 16 GiB, 160 GB).
    let vcpus = ((per_node * f64::from(flavor.vcpus)) / CPU_ALLOCATION_RATIO)
        .ceil()
        .max(8.0) as u32;
    let ram_mb = ((per_node * flavor.ram_mb as f64) / RAM_ALLOCATION_RATIO)
        .ceil()
        .max(16_384.0) as u64;
    let disk_gb = (per_node * flavor.disk_gb as f64).ceil().max(160.0) as u64;
    Sizing {
        nodes,
        node: NodeSize {
            vcpus,
            ram_mb,
            disk_gb,
        },
        // The whole burst may come from one project through one entry point.
        quota_instances: max_level.saturating_mul(2).max(10),
        quota_cores: u64::from(max_level.saturating_mul(2).max(10))
            * u64::from(flavor.vcpus.max(1)),
        quota_ram_mb: u64::from(max_level.saturating_mul(2).max(10)) * flavor.ram_mb.max(1),
    }
}

impl Sizing {
    /// How many `flavor` instances one node holds.
    pub fn node_holds(&self, flavor: FlavorSize) -> u64 {
        let by_cpu = (f64::from(self.node.vcpus) * CPU_ALLOCATION_RATIO
            / f64::from(flavor.vcpus.max(1))) as u64;
        let by_ram =
            (self.node.ram_mb as f64 * RAM_ALLOCATION_RATIO / flavor.ram_mb.max(1) as f64) as u64;
        let by_disk = self.node.disk_gb / flavor.disk_gb.max(1);
        by_cpu.min(by_ram).min(by_disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_burst_fits_with_headroom_on_any_node_count() {
        for nodes in [1, 4, 64, 1000] {
            for level in [16, 512, 4096] {
                let s = size_for(nodes, level, M1_TINY, 2.0);
                let total = s.node_holds(M1_TINY) * u64::from(nodes);
                assert!(
                    total >= 2 * u64::from(level),
                    "nodes {nodes} level {level}: {total}"
                );
                assert!(s.quota_instances >= level);
                assert!(s.quota_cores >= u64::from(level) * u64::from(M1_TINY.vcpus));
                assert!(s.quota_ram_mb >= u64::from(level) * M1_TINY.ram_mb);
            }
        }
    }

    #[test]
    fn nodes_are_never_smaller_than_devstack() {
        let s = size_for(64, 16, M1_TINY, 1.0);
        assert_eq!(s.node.vcpus, 8);
        assert_eq!(s.node.ram_mb, 16_384);
        assert_eq!(s.node.disk_gb, 160);
    }
}
