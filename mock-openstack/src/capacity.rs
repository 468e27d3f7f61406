//! Capacity accounting per compute node and host selection. Pure: no I/O,
//! no clock, so a simulator or the cp-model engine can drive it.

use serde::Serialize;

/// What one server claims on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Resources {
    pub vcpus: u64,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// One hypervisor: physical size, allocation ratios and what is claimed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeNode {
    pub hostname: String,
    pub vcpus: u64,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub used: Resources,
    pub running_vms: u64,
    /// `false` once the node is lost (fault injection).
    pub up: bool,
}

impl ComputeNode {
    /// Schedulable totals after allocation ratios (placement's
    /// `(total - reserved) * allocation_ratio`, reserved = 0).
    pub fn limits(&self) -> Resources {
        Resources {
            vcpus: (self.vcpus as f64 * self.cpu_allocation_ratio) as u64,
            ram_mb: (self.ram_mb as f64 * self.ram_allocation_ratio) as u64,
            disk_gb: (self.disk_gb as f64 * self.disk_allocation_ratio) as u64,
        }
    }

    pub fn fits(&self, r: Resources) -> bool {
        let l = self.limits();
        self.used.vcpus.saturating_add(r.vcpus) <= l.vcpus
            && self.used.ram_mb.saturating_add(r.ram_mb) <= l.ram_mb
            && self.used.disk_gb.saturating_add(r.disk_gb) <= l.disk_gb
    }

    /// How many more servers of size `r` this node takes (0 when down).
    pub fn room_for(&self, r: Resources) -> u64 {
        if !self.up {
            return 0;
        }
        let l = self.limits();
        let per = |limit: u64, used: u64, each: u64| {
            limit
                .saturating_sub(used)
                .checked_div(each)
                .unwrap_or(u64::MAX)
        };
        per(l.vcpus, self.used.vcpus, r.vcpus)
            .min(per(l.ram_mb, self.used.ram_mb, r.ram_mb))
            .min(per(l.disk_gb, self.used.disk_gb, r.disk_gb))
    }

    pub fn free_ram_mb(&self) -> u64 {
        self.limits().ram_mb.saturating_sub(self.used.ram_mb)
    }
}

/// All compute nodes of one deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    pub nodes: Vec<ComputeNode>,
}

impl Capacity {
    /// How many servers of size `r` fit on the free capacity, after
    /// `pending` servers of that size not placed yet.
    pub fn room_for(&self, r: Resources, pending: u64) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.room_for(r))
            .fold(0u64, u64::saturating_add)
            .saturating_sub(pending)
    }

    /// `count` identical nodes named `{name}-compute-{i}` (i from 1).
    pub fn uniform(name: &str, count: u32, each: Resources, ratios: (f64, f64, f64)) -> Self {
        let nodes = (1..=count)
            .map(|i| ComputeNode {
                hostname: format!("{name}-compute-{i}"),
                vcpus: each.vcpus,
                ram_mb: each.ram_mb,
                disk_gb: each.disk_gb,
                cpu_allocation_ratio: ratios.0,
                ram_allocation_ratio: ratios.1,
                disk_allocation_ratio: ratios.2,
                used: Resources::default(),
                running_vms: 0,
                up: true,
            })
            .collect();
        Self { nodes }
    }

    /// Picks a host like nova's default weighers (most free RAM first; ties
    /// broken by node order) and claims `r` on it. `None` = no valid host.
    pub fn claim(&mut self, r: Resources) -> Option<String> {
        let best = self.nodes.iter_mut().filter(|n| n.fits(r)).reduce(|a, b| {
            if b.free_ram_mb() > a.free_ram_mb() {
                b
            } else {
                a
            }
        })?;
        best.used.vcpus += r.vcpus;
        best.used.ram_mb += r.ram_mb;
        best.used.disk_gb += r.disk_gb;
        best.running_vms += 1;
        Some(best.hostname.clone())
    }

    /// Records a claim on a host chosen elsewhere (e.g. by the cp-model
    /// engine), without a fit check: the books follow that decision.
    /// `false` if the host is unknown.
    pub fn claim_on(&mut self, host: &str, r: Resources) -> bool {
        match self.nodes.iter_mut().find(|n| n.hostname == host) {
            Some(n) => {
                n.used.vcpus = n.used.vcpus.saturating_add(r.vcpus);
                n.used.ram_mb = n.used.ram_mb.saturating_add(r.ram_mb);
                n.used.disk_gb = n.used.disk_gb.saturating_add(r.disk_gb);
                n.running_vms += 1;
                true
            }
            None => false,
        }
    }

    /// Returns a claim; unknown hosts and double releases are ignored
    /// (saturating), so a buggy caller can never underflow the books.
    pub fn release(&mut self, host: &str, r: Resources) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.hostname == host) {
            n.used.vcpus = n.used.vcpus.saturating_sub(r.vcpus);
            n.used.ram_mb = n.used.ram_mb.saturating_sub(r.ram_mb);
            n.used.disk_gb = n.used.disk_gb.saturating_sub(r.disk_gb);
            n.running_vms = n.running_vms.saturating_sub(1);
        }
    }

    pub fn used(&self) -> Resources {
        self.nodes
            .iter()
            .fold(Resources::default(), |a, n| Resources {
                vcpus: a.vcpus + n.used.vcpus,
                ram_mb: a.ram_mb + n.used.ram_mb,
                disk_gb: a.disk_gb + n.used.disk_gb,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> Capacity {
        Capacity::uniform(
            "t",
            2,
            Resources {
                vcpus: 1,
                ram_mb: 1024,
                disk_gb: 10,
            },
            (2.0, 1.0, 1.0),
        )
    }

    const TINY: Resources = Resources {
        vcpus: 1,
        ram_mb: 512,
        disk_gb: 1,
    };

    #[test]
    fn spreads_by_free_ram_then_fills_up() {
        let mut c = two_nodes();
        assert_eq!(c.claim(TINY).as_deref(), Some("t-compute-1"));
        assert_eq!(c.claim(TINY).as_deref(), Some("t-compute-2"));
        assert_eq!(c.claim(TINY).as_deref(), Some("t-compute-1"));
        assert_eq!(c.claim(TINY).as_deref(), Some("t-compute-2"));
        // RAM (ratio 1.0) is exhausted although vCPUs (ratio 2.0) are not.
        assert_eq!(c.claim(TINY), None);
        assert_eq!(c.used().ram_mb, 2048);
    }

    #[test]
    fn cpu_ratio_limits_vcpus() {
        let mut c = two_nodes();
        let big_cpu = Resources {
            vcpus: 2,
            ram_mb: 1,
            disk_gb: 1,
        };
        assert!(c.claim(big_cpu).is_some());
        assert!(c.claim(big_cpu).is_some());
        assert_eq!(c.claim(big_cpu), None);
        let too_big = Resources {
            vcpus: 3,
            ram_mb: 1,
            disk_gb: 1,
        };
        assert_eq!(two_nodes().claim(too_big), None);
    }

    #[test]
    fn claim_on_follows_an_outside_decision() {
        let mut c = two_nodes();
        assert!(c.claim_on("t-compute-2", TINY));
        assert!(!c.claim_on("nowhere", TINY));
        assert_eq!(c.nodes[1].used, TINY);
        assert_eq!(c.claim(TINY).as_deref(), Some("t-compute-1"));
    }

    #[test]
    fn release_frees_and_never_underflows() {
        let mut c = two_nodes();
        let h = c.claim(TINY).unwrap();
        c.release(&h, TINY);
        c.release(&h, TINY);
        c.release("nowhere", TINY);
        assert_eq!(c.used(), Resources::default());
        assert_eq!(c.nodes[0].running_vms, 0);
    }
}
