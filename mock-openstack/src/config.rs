//! Configuration of one mock deployment: DevStack-like defaults, loadable
//! from TOML, every CLI flag maps to one field.

use serde::{Deserialize, Serialize};

use crate::error::MockError;

/// Everything that shapes one mock OpenStack deployment.
///
/// Times are **model seconds**; the wall-clock delay is
/// `model seconds × time_scale`. How long each stage takes comes from the
/// cp-model control-plane `profile`; faults from `[faults]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Deployment name; compute hostnames are `{name}-compute-{i}`.
    pub name: String,
    pub region: String,
    /// Address to bind (`port 0` picks a free port).
    pub listen: String,
    /// Base URL put in the catalog and self links instead of the request's
    /// Host (e.g. when behind a proxy or in a container).
    pub public_url: Option<String>,
    /// Number of compute nodes.
    pub computes: u32,
    /// Nova cells v2: the computes split evenly into this many cells, each
    /// with its own conductor and message bus under one global API layer
    /// (docs/performance-model.md §2b). 1 is a single-cell deployment (no
    /// super-conductor), the plain controller. In cells, hostnames are
    /// `{name}-cell{c}-compute-{i}`.
    pub cells: u32,
    pub compute_vcpus: u32,
    pub compute_ram_mb: u64,
    pub compute_disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// Seed of every random choice (ids, MACs, tie breaks).
    pub seed: u64,
    /// Default per-project quotas (like nova's defaults; DevStack keeps 10).
    pub quota_instances: i64,
    pub quota_cores: i64,
    pub quota_ram_mb: i64,
    /// Lifetime of an issued Keystone token, wall seconds.
    pub token_ttl_s: u64,
    /// Control-plane profile: a builtin name (`devstack`, `openstack-2017`)
    /// or the path of a TOML profile file (see docs/performance-model.md).
    pub profile: String,
    /// Wall seconds per model second (0.1 runs ten times faster); > 0.
    pub time_scale: f64,
    /// Shortcut for one profile edit: when > 0, replaces the profile's
    /// `compute.spawn_median_s` (the hypervisor spawn, the bulk of a boot).
    /// 0 (the default) keeps the profile's value.
    pub boot_delay_s: f64,
    /// Shortcut: when > 0, replaces the profile's `compute.destroy_s`.
    pub delete_delay_s: f64,
    /// Faults installed at start (`[faults]` in a config file; same JSON/TOML
    /// shape as `PUT /mock/v1/faults`).
    pub faults: cp_model::FaultSet,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            name: "devstack".into(),
            region: "RegionOne".into(),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            computes: 1,
            cells: 1,
            compute_vcpus: 8,
            compute_ram_mb: 16384,
            compute_disk_gb: 160,
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            seed: 0,
            quota_instances: 10,
            quota_cores: 20,
            quota_ram_mb: 51200,
            token_ttl_s: 3600,
            profile: "devstack".into(),
            time_scale: 1.0,
            boot_delay_s: 0.0,
            delete_delay_s: 0.0,
            faults: cp_model::FaultSet::default(),
        }
    }
}

impl MockConfig {
    /// Parses a TOML document; missing fields keep their defaults.
    pub fn from_toml(text: &str) -> Result<Self, MockError> {
        let cfg: Self = toml::from_str(text).map_err(|e| MockError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values that would make the deployment meaningless.
    pub fn validate(&self) -> Result<(), MockError> {
        let bad = |m: &str| Err(MockError::Config(m.to_string()));
        if self.name.is_empty() {
            return bad("name must not be empty");
        }
        if self.cells == 0 || self.cells > self.computes.max(1) {
            return Err(MockError::Config(format!(
                "cells must be between 1 and the number of computes ({}), got {}",
                self.computes, self.cells
            )));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(MockError::Config(format!(
                "time_scale must be a finite number > 0 (wall seconds per model second), got {}",
                self.time_scale
            )));
        }
        for (n, v) in [
            ("cpu_allocation_ratio", self.cpu_allocation_ratio),
            ("ram_allocation_ratio", self.ram_allocation_ratio),
            ("disk_allocation_ratio", self.disk_allocation_ratio),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(MockError::Config(format!("{n} must be > 0")));
            }
        }
        for (n, v) in [
            ("boot_delay_s", self.boot_delay_s),
            ("delete_delay_s", self.delete_delay_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MockError::Config(format!("{n} must be >= 0")));
            }
        }
        if let Some(u) = &self.public_url {
            if url::Url::parse(u).is_err() {
                return Err(MockError::Config(format!("public_url {u:?} is not a URL")));
            }
        }
        Ok(())
    }

    /// The effective control-plane profile: `profile` loaded (builtin or
    /// file) with the `boot_delay_s`/`delete_delay_s` shortcuts applied.
    pub fn load_profile(&self) -> Result<cp_model::Profile, MockError> {
        let mut p = cp_model::Profile::load(&self.profile)
            .map_err(|e| MockError::Config(format!("profile {:?}: {e}", self.profile)))?;
        let mut edits = vec![];
        if self.boot_delay_s > 0.0 {
            p.compute.spawn_median_s = self.boot_delay_s;
            edits.push(format!("spawn_median_s={}", self.boot_delay_s));
        }
        if self.delete_delay_s > 0.0 {
            p.compute.destroy_s = self.delete_delay_s;
            edits.push(format!("destroy_s={}", self.delete_delay_s));
        }
        if !edits.is_empty() {
            // A derived profile never passes for its base.
            p.name = format!("{}+{}", p.name, edits.join(","));
        }
        p.validate()
            .map_err(|e| MockError::Config(format!("profile {:?}: {e}", self.profile)))?;
        Ok(p)
    }

    /// Hostname of compute `i` (1-based); in cells it names its cell, split
    /// as the engine splits them (contiguous, near-equal).
    pub fn host_name(&self, i: u32) -> String {
        if self.cells <= 1 || self.computes == 0 {
            return format!("{}-compute-{i}", self.name);
        }
        let index = u64::from(i.saturating_sub(1));
        let cell = index * u64::from(self.cells) / u64::from(self.computes) + 1;
        format!("{}-cell{cell}-compute-{i}", self.name)
    }

    /// The engine's compute nodes, named like the mock's hypervisors.
    pub fn node_specs(&self) -> Vec<cp_model::NodeSpec> {
        (1..=self.computes)
            .map(|i| cp_model::NodeSpec {
                name: self.host_name(i),
                vcpus: self.compute_vcpus,
                ram_mb: self.compute_ram_mb,
                disk_gb: self.compute_disk_gb,
                cpu_allocation_ratio: self.cpu_allocation_ratio,
                ram_allocation_ratio: self.ram_allocation_ratio,
                disk_allocation_ratio: self.disk_allocation_ratio,
            })
            .collect()
    }

    /// Total schedulable capacity (after allocation ratios).
    pub fn capacity(&self) -> (u64, u64, u64) {
        let k = u64::from(self.computes);
        // Saturating: absurd configs must not overflow.
        (
            k.saturating_mul((f64::from(self.compute_vcpus) * self.cpu_allocation_ratio) as u64),
            k.saturating_mul((self.compute_ram_mb as f64 * self.ram_allocation_ratio) as u64),
            k.saturating_mul((self.compute_disk_gb as f64 * self.disk_allocation_ratio) as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_only_what_it_names() {
        let c = MockConfig::from_toml("computes = 4\nname = \"edge1\"\n").unwrap();
        assert_eq!(c.computes, 4);
        assert_eq!(c.name, "edge1");
        assert_eq!(c.region, "RegionOne");
        assert!(MockConfig::from_toml("nonsense = 1").is_err());
        assert!(MockConfig::from_toml("time_scale = -1.0").is_err());
        let e = MockConfig::from_toml("time_scale = 0.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("time_scale must be a finite number > 0"), "{e}");
        let c = MockConfig::from_toml(
            "[faults]\nlost_nodes = [\"devstack-compute-1\"]\n[[faults.boot_errors]]\nname_regex = \"^bad\"\nrate = 1.0\n",
        )
        .unwrap();
        assert_eq!(c.faults.boot_errors.len(), 1);
        assert_eq!(c.faults.lost_nodes, vec!["devstack-compute-1".to_string()]);
    }

    #[test]
    fn profile_shortcuts_derive_a_named_profile() {
        let c = MockConfig::default();
        assert_eq!(c.load_profile().unwrap().name, "devstack");
        let c = MockConfig {
            boot_delay_s: 3.0,
            ..MockConfig::default()
        };
        let p = c.load_profile().unwrap();
        assert_eq!(p.compute.spawn_median_s, 3.0);
        assert_eq!(p.name, "devstack+spawn_median_s=3");
        let c = MockConfig {
            profile: "nope".into(),
            ..MockConfig::default()
        };
        assert!(c.load_profile().is_err());
    }

    #[test]
    fn cells_name_their_hosts_and_are_bounded_by_the_computes() {
        let c = MockConfig::from_toml("computes = 5\ncells = 2\nname = \"c\"\n").unwrap();
        let names: Vec<String> = (1..=5).map(|i| c.host_name(i)).collect();
        assert_eq!(
            names,
            [
                "c-cell1-compute-1",
                "c-cell1-compute-2",
                "c-cell1-compute-3",
                "c-cell2-compute-4",
                "c-cell2-compute-5"
            ]
        );
        assert_eq!(MockConfig::default().host_name(1), "devstack-compute-1");
        assert!(MockConfig::from_toml("computes = 2\ncells = 3\n").is_err());
        assert!(MockConfig::from_toml("cells = 0\n").is_err());
    }

    #[test]
    fn capacity_applies_ratios() {
        let c = MockConfig {
            computes: 2,
            ..MockConfig::default()
        };
        assert_eq!(c.capacity(), (256, 49152, 320));
    }
}
