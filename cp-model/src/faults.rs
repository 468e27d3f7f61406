//! Fault injection: what an admin API or a config file can switch on.
//!
//! A [`FaultSet`] is plain serde data; the engine compiles it once
//! ([`CompiledFaults`]) so matching a boot's name is cheap and an invalid
//! regex is reported when the set is installed, not when a boot arrives.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::types::ModelTime;

/// Boots whose name matches `name_regex` fail with probability `rate`
/// at the end of spawning, with `fault` as the instance fault message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootErrorRule {
    pub name_regex: String,
    pub rate: f64,
    #[serde(default = "default_injected_fault")]
    pub fault: String,
}

fn default_injected_fault() -> String {
    "Injected fault: build failed".to_string()
}

/// Extra service time added to every job of a stage (a slow service, so it
/// also takes capacity away, not only adds delay).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageLatency {
    pub api_s: f64,
    pub conductor_s: f64,
    pub scheduler_s: f64,
    pub networking_s: f64,
    /// Added to every spawn.
    pub compute_s: f64,
}

/// A half-open interval of model time `[start_s, end_s)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub start_s: ModelTime,
    pub end_s: ModelTime,
}

impl Window {
    pub fn contains(&self, t: ModelTime) -> bool {
        t >= self.start_s && t < self.end_s
    }
}

/// Every fault the model can inject. Times are absolute model seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSet {
    pub boot_errors: Vec<BootErrorRule>,
    pub extra_latency: StageLatency,
    /// The API answers 503 during these windows.
    pub api_unavailable: Vec<Window>,
    /// Every controller service is stopped during these windows.
    pub controller_frozen: Vec<Window>,
    /// Compute nodes lost (by name) — applied when the set is installed.
    pub lost_nodes: Vec<String>,
}

/// Why an instance went to ERROR, as a stable label for stats and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultReason {
    NoValidHost,
    MaxRetries,
    MessagingTimeout,
    VifPluggingTimeout,
    HostLost,
    /// A database connection checkout waited `db.pool_timeout_s`.
    DbPoolTimeout,
    Injected,
}

impl FaultReason {
    pub fn label(self) -> &'static str {
        match self {
            FaultReason::NoValidHost => "no_valid_host",
            FaultReason::MaxRetries => "max_retries",
            FaultReason::MessagingTimeout => "messaging_timeout",
            FaultReason::VifPluggingTimeout => "vif_plugging_timeout",
            FaultReason::HostLost => "host_lost",
            FaultReason::DbPoolTimeout => "db_pool_timeout",
            FaultReason::Injected => "injected",
        }
    }

    /// Classify a fault message produced by this model.
    pub fn classify(fault: &str) -> FaultReason {
        if fault.contains(DB_POOL_TIMEOUT) {
            FaultReason::DbPoolTimeout
        } else if fault.starts_with(NO_VALID_HOST_RETRIES) {
            FaultReason::MaxRetries
        } else if fault.starts_with("No valid host") {
            FaultReason::NoValidHost
        } else if fault.starts_with("MessagingTimeout") {
            FaultReason::MessagingTimeout
        } else if fault.contains(VIF_FAILED) {
            FaultReason::VifPluggingTimeout
        } else if fault.starts_with("Compute host") {
            FaultReason::HostLost
        } else {
            FaultReason::Injected
        }
    }
}

pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";
pub const NO_VALID_HOST_RETRIES: &str =
    "No valid host was found. Exceeded maximum number of retries.";
/// SQLAlchemy's `QueuePool` exhaustion error starts with this.
pub const DB_POOL_TIMEOUT: &str = "QueuePool limit";
pub const VIF_FAILED: &str = "Failed to allocate the network(s), not rescheduling.";

/// A [`FaultSet`] with its regexes compiled.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledFaults {
    pub set: FaultSet,
    pub rules: Vec<(Regex, f64, String)>,
}

impl CompiledFaults {
    pub fn compile(set: FaultSet) -> Result<CompiledFaults, ModelError> {
        let mut rules = Vec::with_capacity(set.boot_errors.len());
        for r in &set.boot_errors {
            if !(0.0..=1.0).contains(&r.rate) {
                return Err(ModelError::InvalidFaults(format!(
                    "rate {} of `{}` is not in [0, 1]",
                    r.rate, r.name_regex
                )));
            }
            let re = Regex::new(&r.name_regex).map_err(|e| {
                ModelError::InvalidFaults(format!("bad name_regex `{}`: {e}", r.name_regex))
            })?;
            rules.push((re, r.rate, r.fault.clone()));
        }
        let l = &set.extra_latency;
        for v in [
            l.api_s,
            l.conductor_s,
            l.scheduler_s,
            l.networking_s,
            l.compute_s,
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ModelError::InvalidFaults(format!(
                    "extra latency {v} must be finite and >= 0"
                )));
            }
        }
        for w in set
            .api_unavailable
            .iter()
            .chain(set.controller_frozen.iter())
        {
            if !(w.start_s.is_finite() && w.end_s.is_finite() && w.end_s >= w.start_s) {
                return Err(ModelError::InvalidFaults(format!("bad window {w:?}")));
            }
        }
        Ok(CompiledFaults { set, rules })
    }

    /// The first rule matching `name`, if any: (rate, fault message).
    pub fn boot_rule(&self, name: &str) -> Option<(f64, &str)> {
        self.rules
            .iter()
            .find(|(re, _, _)| re.is_match(name))
            .map(|(_, rate, fault)| (*rate, fault.as_str()))
    }

    pub fn api_unavailable(&self, t: ModelTime) -> bool {
        self.set.api_unavailable.iter().any(|w| w.contains(t))
    }

    /// If the controller is frozen at `t`, the window that freezes it.
    pub fn frozen_at(&self, t: ModelTime) -> Option<Window> {
        self.set
            .controller_frozen
            .iter()
            .find(|w| w.contains(t))
            .copied()
    }
}
