//! Model parameters, loaded from TOML.
//!
//! Built-in profiles live in `cp-model/profiles/*.toml`. A user file may start
//! with `base = "openstack-2017"` and override only the keys it names, so one
//! parameter can be changed without copying the whole profile.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

const DEVSTACK: &str = include_str!("../profiles/devstack.toml");
const OPENSTACK_2017: &str = include_str!("../profiles/openstack-2017.toml");

/// Names of the built-in profiles.
pub const BUILTIN: [&str; 2] = ["devstack", "openstack-2017"];

/// nova-api (with keystonemiddleware token validation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiParams {
    pub workers: u32,
    pub get_s: f64,
    pub post_s: f64,
    pub delete_s: f64,
    /// Calls waiting for a worker beyond this many are refused with 503.
    pub backlog: u32,
    /// A call still unanswered after this long gets 504 (load balancer timeout).
    pub timeout_s: f64,
}

/// nova-conductor and the message bus in front of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConductorParams {
    pub workers: u32,
    /// `build_instances` / `schedule_and_build_instances` work per attempt.
    pub build_s: f64,
    /// Work after the scheduler answers (instance records, cast to the compute).
    pub after_schedule_s: f64,
    /// Compute's final `instance.save()` through the conductor (an RPC call).
    pub complete_s: f64,
    /// `instance.destroy()` on delete.
    pub delete_s: f64,
    /// oslo.messaging `rpc_response_timeout`: an RPC call unanswered this long fails.
    pub rpc_response_timeout_s: f64,
}

/// nova-scheduler (filter scheduler).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerParams {
    pub workers: u32,
    /// s0: fixed cost of one `select_destinations`.
    pub base_s: f64,
    /// s1: cost per compute node considered (host state load + filters).
    pub per_host_s: f64,
    /// Cap on hosts considered (`max_placement_results`).
    pub max_hosts_considered: u32,
    /// `[scheduler] max_attempts`.
    pub max_attempts: u32,
    /// Delay before a compute node record written to the DB is visible to the scheduler.
    pub host_state_lag_s: f64,
}

/// neutron-server plus the L2 agent on each compute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkingParams {
    pub workers: u32,
    /// Port create + binding requested by nova-compute.
    pub port_create_s: f64,
    pub port_delete_s: f64,
    /// neutron-server handling `update_device_up` and notifying nova.
    pub device_up_s: f64,
    /// L2 agent loop latency before it reports the tap device (log-normal).
    pub agent_delay_median_s: f64,
    pub agent_delay_sigma: f64,
    /// nova `vif_plugging_timeout`.
    pub vif_plugging_timeout_s: f64,
    /// nova `vif_plugging_is_fatal`.
    pub vif_plugging_is_fatal: bool,
}

/// nova-compute and the hypervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeParams {
    /// `[compute] max_concurrent_builds` per node.
    pub max_concurrent_builds: u32,
    /// Spawn time (image prep + domain start), log-normal.
    pub spawn_median_s: f64,
    pub spawn_sigma: f64,
    /// First boot on a node fetches the image from glance (later boots hit the cache).
    pub first_boot_image_s: f64,
    /// Domain destroy + cleanup on delete.
    pub destroy_s: f64,
}

/// Model time of the server actions (`POST /servers/{id}/action`) on the
/// compute node, from the API's cast to the state nova reports at the end.
/// The API call itself goes through the API stage like any POST; the
/// compute-side work does not queue on controller stations (it is a cast to
/// one compute, whose hypervisor the model does not share between servers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    /// Soft reboot: ACPI shutdown of the guest, then boot (libvirt falls
    /// back to a hard reboot after `[libvirt] wait_soft_reboot_seconds`).
    pub reboot_soft_s: f64,
    /// Hard reboot: domain destroy and start.
    pub reboot_hard_s: f64,
    /// `os-stop`: clean shutdown (bounded by `[compute] shutdown_timeout`).
    pub stop_s: f64,
    /// `os-start`: domain start.
    pub start_s: f64,
    pub pause_s: f64,
    pub unpause_s: f64,
    /// Suspend: libvirt managed save (guest memory to local disk).
    pub suspend_s: f64,
    pub resume_s: f64,
    /// Rebuild: destroy, image preparation, spawn.
    pub rebuild_s: f64,
}

/// Periodic load that every compute node puts on the controller, booting or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundParams {
    /// nova `report_interval`: service heartbeat through the conductor.
    pub report_interval_s: f64,
    pub report_cost_s: f64,
    /// Resource tracker `update_available_resource` period and conductor cost.
    pub resource_tracker_interval_s: f64,
    pub resource_tracker_cost_s: f64,
    pub resource_tracker_per_instance_s: f64,
    /// neutron L2 agent `report_interval` and neutron-server cost.
    pub agent_report_interval_s: f64,
    pub agent_report_cost_s: f64,
    /// nova `service_down_time`: a node without a report this long is filtered out.
    pub service_down_time_s: f64,
}

/// Concurrency and database connections of one controller service (nova-api,
/// nova-conductor, nova-scheduler, neutron-server), per worker process.
///
/// A request first takes one of the worker's threads (eventlet greenthreads
/// or RPC executor threads; beyond them it waits in the socket backlog or the
/// message queue), then checks out a database connection from the worker's
/// oslo.db pool (waiting at most `db.pool_timeout_s`, else it fails with
/// `QueuePool limit … reached`), then waits for the worker's CPU. The
/// connection is held until the request's service ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadParams {
    pub api: u32,
    pub conductor: u32,
    pub scheduler: u32,
    pub networking: u32,
}

/// The oslo.db connection pool of every controller service's worker process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbParams {
    /// oslo.db `max_pool_size`.
    pub pool_size: u32,
    /// oslo.db `max_overflow`.
    pub max_overflow: u32,
    /// SQLAlchemy `pool_timeout`: a checkout waiting this long fails.
    pub pool_timeout_s: f64,
}

impl DbParams {
    /// Connections one worker process can hold at once.
    pub fn per_worker(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow)
    }
}

/// The message bus (one RabbitMQ broker on the controller).
///
/// Every RPC message is a job of one broker station that forwards
/// `messages_per_s`; a hop carrying `n` messages takes `n / messages_per_s`
/// of it. Calls keep their `rpc_response_timeout_s` while they wait there.
/// Every compute node holds `connections_per_compute` connections; nodes
/// whose connections would pass `max_connections` are refused, never report
/// and are never chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusParams {
    /// Messages the broker forwards per second (0 = no bus station).
    pub messages_per_s: f64,
    /// Connections the broker accepts (file descriptors).
    pub max_connections: u32,
    /// Connections held by the controller's own services.
    pub controller_connections: u32,
    /// Connections held by each compute node (nova-compute, L2 agent, …).
    pub connections_per_compute: u32,
    /// `build_instances` cast (API → conductor).
    pub build_msgs: u32,
    /// `select_destinations` call + reply.
    pub schedule_msgs: u32,
    /// `build_and_run_instance` cast (conductor → compute).
    pub compute_cast_msgs: u32,
    /// L2 agent ↔ neutron-server for one port (details, device up, port update).
    pub vif_msgs: u32,
    /// The final `instance.save()` call + reply, and the boot's notifications.
    pub complete_msgs: u32,
    /// Delete: conductor call + reply and notifications.
    pub delete_msgs: u32,
    /// Service report (call + reply).
    pub report_msgs: u32,
    /// Resource-tracker update (conductor calls + replies).
    pub tracker_msgs: u32,
    /// Neutron agent state report (call + reply).
    pub agent_report_msgs: u32,
}

/// The compute node every deployment is built from. Both systems of a
/// comparison use the same node; only the number of nodes per deployment
/// differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareParams {
    /// Logical CPUs as nova reports them.
    pub compute_vcpus: u32,
    pub compute_ram_mb: u64,
    pub compute_disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// Where the figures come from (shown in results and reports).
    pub source: String,
}

impl HardwareParams {
    /// One compute node of this size.
    pub fn node(&self, name: impl Into<String>) -> crate::types::NodeSpec {
        crate::types::NodeSpec {
            name: name.into(),
            vcpus: self.compute_vcpus,
            ram_mb: self.compute_ram_mb,
            disk_gb: self.compute_disk_gb,
            cpu_allocation_ratio: self.cpu_allocation_ratio,
            ram_allocation_ratio: self.ram_allocation_ratio,
            disk_allocation_ratio: self.disk_allocation_ratio,
        }
    }
}

/// A complete, self-describing set of model parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Coefficient of variation of every station's service time (log-normal, mean kept).
    pub service_time_cv: f64,
    pub api: ApiParams,
    pub conductor: ConductorParams,
    pub scheduler: SchedulerParams,
    pub networking: NetworkingParams,
    pub compute: ComputeParams,
    pub actions: ActionParams,
    pub background: BackgroundParams,
    pub threads: ThreadParams,
    pub db: DbParams,
    pub bus: BusParams,
    pub hardware: HardwareParams,
}

impl Profile {
    /// One of the profiles shipped with the crate.
    pub fn builtin(name: &str) -> Result<Profile, ModelError> {
        let text =
            builtin_text(name).ok_or_else(|| ModelError::UnknownProfile(name.to_string()))?;
        Profile::from_toml(name, text)
    }

    /// A built-in name, or a path to a TOML file (which may name a `base`).
    pub fn load(name_or_path: &str) -> Result<Profile, ModelError> {
        if builtin_text(name_or_path).is_some() {
            return Profile::builtin(name_or_path);
        }
        let path = std::path::Path::new(name_or_path);
        if !path.exists() {
            return Err(ModelError::UnknownProfile(name_or_path.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: name_or_path.to_string(),
            source,
        })?;
        Profile::from_toml(name_or_path, &text)
    }

    /// Parse TOML text; a top-level `base = "<builtin>"` is merged underneath.
    pub fn from_toml(origin: &str, text: &str) -> Result<Profile, ModelError> {
        let parse_err = |message: String| ModelError::ProfileParse {
            name: origin.to_string(),
            message,
        };
        let mut value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        if let Some(base) = value.remove("base") {
            let base_name = base
                .as_str()
                .ok_or_else(|| parse_err("`base` must be a string".into()))?
                .to_string();
            let base_text = builtin_text(&base_name)
                .ok_or_else(|| ModelError::UnknownProfile(base_name.clone()))?;
            // A derived profile must not pass for its base in reports.
            if !value.contains_key("name") {
                value.insert(
                    "name".into(),
                    toml::Value::String(format!("{base_name}+{origin}")),
                );
            }
            let mut merged: toml::Table = base_text
                .parse()
                .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
            merge(&mut merged, value);
            value = merged;
        }
        let profile: Profile = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// The effective parameters as TOML (what a report should cite).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize profile: {e}\n"))
    }

    /// Stable 64-bit FNV-1a hash of [`Profile::to_toml`], as 16 hex digits.
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_toml().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// Reject values the engine cannot run with (zero workers, negative or NaN times).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, message: &str| ModelError::InvalidParameter {
            field: field.to_string(),
            message: message.to_string(),
        };
        let times = [
            ("service_time_cv", self.service_time_cv),
            ("api.get_s", self.api.get_s),
            ("api.post_s", self.api.post_s),
            ("api.delete_s", self.api.delete_s),
            ("api.timeout_s", self.api.timeout_s),
            ("conductor.build_s", self.conductor.build_s),
            (
                "conductor.after_schedule_s",
                self.conductor.after_schedule_s,
            ),
            ("conductor.complete_s", self.conductor.complete_s),
            ("conductor.delete_s", self.conductor.delete_s),
            (
                "conductor.rpc_response_timeout_s",
                self.conductor.rpc_response_timeout_s,
            ),
            ("scheduler.base_s", self.scheduler.base_s),
            ("scheduler.per_host_s", self.scheduler.per_host_s),
            (
                "scheduler.host_state_lag_s",
                self.scheduler.host_state_lag_s,
            ),
            ("networking.port_create_s", self.networking.port_create_s),
            ("networking.port_delete_s", self.networking.port_delete_s),
            ("networking.device_up_s", self.networking.device_up_s),
            (
                "networking.agent_delay_median_s",
                self.networking.agent_delay_median_s,
            ),
            (
                "networking.agent_delay_sigma",
                self.networking.agent_delay_sigma,
            ),
            (
                "networking.vif_plugging_timeout_s",
                self.networking.vif_plugging_timeout_s,
            ),
            ("compute.spawn_median_s", self.compute.spawn_median_s),
            ("compute.spawn_sigma", self.compute.spawn_sigma),
            (
                "compute.first_boot_image_s",
                self.compute.first_boot_image_s,
            ),
            ("compute.destroy_s", self.compute.destroy_s),
            ("actions.reboot_soft_s", self.actions.reboot_soft_s),
            ("actions.reboot_hard_s", self.actions.reboot_hard_s),
            ("actions.stop_s", self.actions.stop_s),
            ("actions.start_s", self.actions.start_s),
            ("actions.pause_s", self.actions.pause_s),
            ("actions.unpause_s", self.actions.unpause_s),
            ("actions.suspend_s", self.actions.suspend_s),
            ("actions.resume_s", self.actions.resume_s),
            ("actions.rebuild_s", self.actions.rebuild_s),
            ("background.report_cost_s", self.background.report_cost_s),
            (
                "background.resource_tracker_cost_s",
                self.background.resource_tracker_cost_s,
            ),
            (
                "background.resource_tracker_per_instance_s",
                self.background.resource_tracker_per_instance_s,
            ),
            (
                "background.agent_report_cost_s",
                self.background.agent_report_cost_s,
            ),
            (
                "background.service_down_time_s",
                self.background.service_down_time_s,
            ),
            ("db.pool_timeout_s", self.db.pool_timeout_s),
            ("bus.messages_per_s", self.bus.messages_per_s),
        ];
        for (field, v) in times {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(field, "must be a finite number >= 0"));
            }
        }
        // Periods of 0 would schedule infinitely many events at one instant.
        let periods = [
            (
                "background.report_interval_s",
                self.background.report_interval_s,
            ),
            (
                "background.resource_tracker_interval_s",
                self.background.resource_tracker_interval_s,
            ),
            (
                "background.agent_report_interval_s",
                self.background.agent_report_interval_s,
            ),
        ];
        for (field, v) in periods {
            if !v.is_finite() || v <= 0.0 {
                return Err(bad(field, "must be a finite number > 0"));
            }
        }
        let counts = [
            ("api.workers", self.api.workers),
            ("conductor.workers", self.conductor.workers),
            ("scheduler.workers", self.scheduler.workers),
            ("scheduler.max_attempts", self.scheduler.max_attempts),
            ("networking.workers", self.networking.workers),
            (
                "compute.max_concurrent_builds",
                self.compute.max_concurrent_builds,
            ),
            ("threads.api", self.threads.api),
            ("threads.conductor", self.threads.conductor),
            ("threads.scheduler", self.threads.scheduler),
            ("threads.networking", self.threads.networking),
            ("db.pool_size + db.max_overflow", self.db.per_worker()),
            ("hardware.compute_vcpus", self.hardware.compute_vcpus),
        ];
        for (field, v) in counts {
            if v == 0 {
                return Err(bad(field, "must be >= 1"));
            }
        }
        let h = &self.hardware;
        for (field, r) in [
            ("hardware.cpu_allocation_ratio", h.cpu_allocation_ratio),
            ("hardware.ram_allocation_ratio", h.ram_allocation_ratio),
            ("hardware.disk_allocation_ratio", h.disk_allocation_ratio),
        ] {
            if !(r.is_finite() && r > 0.0) {
                return Err(bad(field, "must be a finite number > 0"));
            }
        }
        if h.compute_ram_mb == 0 || h.compute_disk_gb == 0 {
            return Err(bad("hardware", "a compute node needs RAM and disk"));
        }
        Ok(())
    }
}

/// One `section.key=value` change to a profile (`--set` on the command
/// line). The key must already exist in the profile (typos are errors, not
/// new keys); the value is a TOML value (`4`, `0.2`, `true`, `"text"`; bare
/// text is taken as a string). An integer given for a float key is widened.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// Dotted path, e.g. `api.workers`.
    pub key: String,
    pub value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |message: &str| ModelError::InvalidOverride {
            spec: s.to_string(),
            message: message.to_string(),
        };
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
            return Err(bad("the key must be section.key (e.g. api.workers)"));
        }
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(bad("the value is empty"));
        }
        let value = match format!("v = {raw}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").ok_or_else(|| bad("cannot parse the value"))?,
            Err(_) => toml::Value::String(raw.to_string()),
        };
        Ok(Override {
            key: key.to_string(),
            value,
        })
    }
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            toml::Value::String(s) => write!(f, "{}={s}", self.key),
            v => write!(f, "{}={v}", self.key),
        }
    }
}

impl Profile {
    /// This profile with `overrides` applied in order, validated, and named
    /// `<name>+<key=value,…>` so that it never passes for the original.
    /// Unknown keys, keys naming a whole section, values of the wrong type
    /// and values [`Profile::validate`] rejects are errors.
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<Profile, ModelError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let encode_err = |message: String| ModelError::ProfileParse {
            name: self.name.clone(),
            message,
        };
        let mut table = match toml::Value::try_from(self).map_err(|e| encode_err(e.to_string()))? {
            toml::Value::Table(t) => t,
            _ => return Err(encode_err("a profile encodes as a table".into())),
        };
        for o in overrides {
            let bad = |message: String| ModelError::InvalidOverride {
                spec: o.to_string(),
                message,
            };
            let parts: Vec<&str> = o.key.split('.').map(str::trim).collect();
            let Some((last, sections)) = parts.split_last() else {
                return Err(bad("empty key".into()));
            };
            let mut at = &mut table;
            for (i, part) in sections.iter().enumerate() {
                at = match at.get_mut(*part) {
                    Some(toml::Value::Table(t)) => t,
                    _ => return Err(bad(format!("unknown section `{}`", parts[..=i].join(".")))),
                };
            }
            let slot = at
                .get_mut(*last)
                .ok_or_else(|| bad(format!("unknown key `{}`", o.key)))?;
            *slot = match (&*slot, &o.value) {
                (toml::Value::Table(_), _) => {
                    return Err(bad(format!("`{}` is a section, not a key", o.key)))
                }
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(*i as f64),
                (old, new) if old.type_str() != new.type_str() => {
                    return Err(bad(format!(
                        "`{}` takes a {}, not a {}",
                        o.key,
                        old.type_str(),
                        new.type_str()
                    )))
                }
                (_, new) => new.clone(),
            };
        }
        if !overrides.iter().any(|o| o.key == "name") {
            let list: Vec<String> = overrides.iter().map(Override::to_string).collect();
            table.insert(
                "name".into(),
                toml::Value::String(format!("{}+{}", self.name, list.join(","))),
            );
        }
        let profile: Profile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ModelError::ProfileParse {
                    name: self.name.clone(),
                    message: e.to_string(),
                })?;
        profile.validate()?;
        Ok(profile)
    }
}

fn builtin_text(name: &str) -> Option<&'static str> {
    match name {
        "devstack" => Some(DEVSTACK),
        "openstack-2017" => Some(OPENSTACK_2017),
        _ => None,
    }
}

/// Deep-merge `over` into `base` (tables recursively, everything else replaced).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        for name in BUILTIN {
            let p = Profile::builtin(name).expect("builtin parses");
            assert_eq!(p.name, name);
            assert_eq!(p.hash().len(), 16);
        }
    }

    #[test]
    fn override_one_key_on_a_base() {
        let p = Profile::from_toml("t", "base = \"openstack-2017\"\n[scheduler]\nworkers = 4\n")
            .expect("parses");
        let base = Profile::builtin("openstack-2017").expect("builtin");
        assert_eq!(p.scheduler.workers, 4);
        assert_eq!(p.name, "openstack-2017+t");
        assert_eq!(p.scheduler.base_s, base.scheduler.base_s);
        assert_ne!(p.hash(), base.hash());
    }

    #[test]
    fn overrides_change_named_keys_only() {
        let base = Profile::builtin("openstack-2017").expect("builtin");
        let sets: Vec<Override> = ["api.workers=2", "api.post_s=1", "hardware.source=lab"]
            .iter()
            .map(|s| s.parse().expect("parses"))
            .collect();
        let p = base.with_overrides(&sets).expect("applies");
        assert_eq!(p.api.workers, 2);
        assert_eq!(p.api.post_s, 1.0);
        assert_eq!(p.hardware.source, "lab");
        assert_eq!(p.api.timeout_s, base.api.timeout_s);
        assert_eq!(
            p.name,
            "openstack-2017+api.workers=2,api.post_s=1,hardware.source=lab"
        );
        assert_ne!(p.hash(), base.hash());
        // The effective profile round-trips through its TOML (how the
        // testbeds hand it to every mock).
        let again = Profile::from_toml("x", &p.to_toml()).expect("round trip");
        assert_eq!(again, p);
        assert_eq!(base.with_overrides(&[]).expect("none"), base);
    }

    #[test]
    fn bad_overrides_are_rejected() {
        let base = Profile::builtin("openstack-2017").expect("builtin");
        for bad in [
            "api.workerz=2",
            "apx.workers=2",
            "api=2",
            "api.workers=0",
            "api.workers=1.5",
            "api.workers=many",
            "api.post_s=-1",
            "api.workers.x=1",
        ] {
            let o: Override = bad.parse().expect("syntax is fine");
            assert!(base.with_overrides(&[o]).is_err(), "{bad} accepted");
        }
        for bad in [
            "api.workers",
            "=2",
            "api..workers=2",
            "api.workers=",
            ".x=1",
        ] {
            assert!(bad.parse::<Override>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(
            Profile::from_toml("t", "base = \"devstack\"\n[scheduler]\nworkerz = 4\n").is_err()
        );
        assert!(Profile::from_toml("t", "base = \"devstack\"\n[api]\nworkers = 0\n").is_err());
        assert!(Profile::from_toml("t", "base = \"nope\"\n").is_err());
        assert!(Profile::load("/nonexistent/profile.toml").is_err());
    }
}
