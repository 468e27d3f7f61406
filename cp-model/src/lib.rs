//! Sans-IO performance model of one OpenStack control plane.
//!
//! The model is a discrete-event simulation on *model time* (seconds). It
//! knows nothing about HTTP, sockets or wall clocks: a driver feeds it
//! [`Input`]s with [`Engine::submit`], sleeps until [`Engine::next_deadline`]
//! (mapped to wall time with a [`Clock`]) and collects [`Effect`]s from
//! [`Engine::advance`]. The same seed and the same inputs always give the same
//! effects, so the model can run inside the mock at any time scale, or on pure
//! virtual time in tests ([`simulate`]).
//!
//! [`clock`] is also the project's one reader of the time ([`clock::now`],
//! [`clock::utc_now`]) and its one time-scale type ([`TimeScale`]); the
//! engine never calls them, its drivers do.
//!
//! Stages (see `docs/performance-model.md` for every parameter and its source):
//! API workers → conductor → scheduler (RPC call) → compute build slot + claim
//! → networking (port create) → spawn ∥ VIF plugging → conductor (RPC call) →
//! ACTIVE. Periodic service reports and resource-tracker updates of every
//! compute node load the conductor and neutron-server in the background.

pub mod calibration;
pub mod clock;
pub mod engine;
pub mod error;
pub mod faults;
mod layout;
pub mod profile;
pub mod simulate;
mod stages;
pub mod stats;
mod types;

pub use clock::{Clock, TimeScale};
pub use engine::Engine;
pub use error::ModelError;
pub use faults::{BootErrorRule, FaultReason, FaultSet, StageLatency, Window};
pub use profile::{Override, Profile};
pub use simulate::{
    run, simulate, simulate_with, BootOutcome, BootResult, Polling, SimOptions, SimReport, Summary,
    Workload,
};
pub use stats::{BootStats, StageStats, Stats};
pub use types::{
    ApiKind, Effect, Input, InstanceId, ModelTime, NodeLoad, NodeSpec, NodeUsage, RequestId,
    Resources, TaskState,
};
