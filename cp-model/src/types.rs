//! The public vocabulary shared by the engine and its drivers.

use serde::{Deserialize, Serialize};

use crate::faults::FaultSet;

/// Model seconds since the engine started.
pub type ModelTime = f64;
/// API call handle chosen by the caller.
pub type RequestId = u64;
/// Instance handle chosen by the caller.
pub type InstanceId = u64;

/// What one instance asks of a compute node (a flavor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

impl Resources {
    pub(crate) fn add(&mut self, other: &Resources) {
        self.vcpus = self.vcpus.saturating_add(other.vcpus);
        self.ram_mb = self.ram_mb.saturating_add(other.ram_mb);
        self.disk_gb = self.disk_gb.saturating_add(other.disk_gb);
    }

    pub(crate) fn sub(&mut self, other: &Resources) {
        self.vcpus = self.vcpus.saturating_sub(other.vcpus);
        self.ram_mb = self.ram_mb.saturating_sub(other.ram_mb);
        self.disk_gb = self.disk_gb.saturating_sub(other.disk_gb);
    }
}

/// One compute node: raw capacity plus nova's allocation ratios.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
}

impl NodeSpec {
    /// A node with nova's historical default allocation ratios (16, 1.5, 1.0).
    pub fn with_default_ratios(
        name: impl Into<String>,
        vcpus: u32,
        ram_mb: u64,
        disk_gb: u64,
    ) -> Self {
        NodeSpec {
            name: name.into(),
            vcpus,
            ram_mb,
            disk_gb,
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
        }
    }

    /// Would `used + req` stay within the over-committed capacity?
    pub(crate) fn fits(&self, used: &Resources, req: &Resources) -> bool {
        let cpu_cap = f64::from(self.vcpus) * self.cpu_allocation_ratio;
        let ram_cap = self.ram_mb as f64 * self.ram_allocation_ratio;
        let disk_cap = self.disk_gb as f64 * self.disk_allocation_ratio;
        f64::from(used.vcpus) + f64::from(req.vcpus) <= cpu_cap + 1e-9
            && (used.ram_mb + req.ram_mb) as f64 <= ram_cap + 1e-9
            && (used.disk_gb + req.disk_gb) as f64 <= disk_cap + 1e-9
    }

    /// Free RAM after over-commit, as nova's RAMWeigher sees it.
    pub(crate) fn free_ram(&self, used: &Resources) -> f64 {
        self.ram_mb as f64 * self.ram_allocation_ratio - used.ram_mb as f64
    }
}

/// HTTP method class of an API call; POST and GET cost differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKind {
    Get,
    Post,
    Delete,
}

/// Something that happens to the control plane at a model instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// An HTTP call reaches the API workers; answered by `ApiDone` or `ApiRejected`.
    ApiCall { req: RequestId, kind: ApiKind },
    /// An accepted boot: conductor → scheduler → compute (claim, networking, spawn).
    /// `name` lets name-matched fault rules apply (like mimic's behaviours).
    Boot {
        instance: InstanceId,
        resources: Resources,
        name: Option<String>,
    },
    /// Delete an instance (API already answered); frees its capacity when done.
    Delete { instance: InstanceId },
    /// Replace the whole fault set (same as [`crate::Engine::set_faults`]; an
    /// invalid set is ignored and counted in `Stats::invalid_inputs`).
    SetFaults(FaultSet),
    /// A compute node is lost from now on: its instances go to ERROR, its
    /// reports stop, builds already cast to it never progress.
    LoseNode { name: String },
    /// Every controller service stops for `duration_s` (SIGSTOP-like).
    FreezeController { duration_s: f64 },
    /// The API answers 503 to every call for `duration_s`.
    ApiUnavailable { duration_s: f64 },
}

/// Nova's `OS-EXT-STS:task_state` while an instance builds or is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Scheduling,
    Networking,
    Spawning,
    Deleting,
}

/// Something the model decided; the driver turns it into API-visible state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    ApiDone {
        req: RequestId,
    },
    ApiRejected {
        req: RequestId,
        status: u16,
        message: String,
    },
    TaskState {
        instance: InstanceId,
        task_state: TaskState,
    },
    /// The compute node claimed the build (nova sets `instance.host` here);
    /// emitted just before `TaskState::Networking`.
    Scheduled {
        instance: InstanceId,
        host: String,
    },
    Active {
        instance: InstanceId,
        host: String,
    },
    Error {
        instance: InstanceId,
        fault: String,
        host: Option<String>,
    },
    Deleted {
        instance: InstanceId,
    },
}

/// One compute node's capacity and usage, for hypervisor APIs and placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeUsage {
    pub name: String,
    pub capacity: NodeSpec,
    pub vcpus_used: u32,
    pub ram_mb_used: u64,
    pub disk_gb_used: u64,
    /// Instances holding resources on the node (building or active).
    pub running_vms: u32,
    /// Builds holding one of the node's `max_concurrent_builds` slots.
    pub builds_in_flight: u32,
    /// Builds cast to the node and waiting for a slot.
    pub builds_queued: u32,
    pub up: bool,
}

/// What a node holds, without its spec: cheap to copy for every node on
/// every change (a driver mirroring usage into its API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub vcpus_used: u32,
    pub ram_mb_used: u64,
    pub disk_gb_used: u64,
    pub running_vms: u32,
    pub builds_in_flight: u32,
    pub builds_queued: u32,
    pub up: bool,
}
