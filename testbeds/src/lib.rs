//! Standard and P2P testbeds of equal compute capacity, and the `compare`
//! experiment that runs the same concurrent-boot sweep against both.
//!
//! - [`topology`]: sizing both testbeds to the same capacity (pure).
//! - [`capacity`]: the capacity deployed and as each system reports it.
//! - [`embedded`]: every mock and agent in this process on loopback ports.
//! - [`scenario`]: steady or cloudlet-loss, with seeded victim choice (pure).
//! - [`hostmon`]: timer lag and CPU use, to flag host-bound runs.
//! - [`clouds_yaml`]: clouds.yaml for a testbed's entry points.
//! - [`compare`]: the experiment itself.
//! - [`level_pool`]: a system's levels on several threads at once (virtual
//!   time), with the results of one level at a time.
//! - [`profile_set`]: `--set section.key=value` applied to the profile.
//! - [`sensitivity`]: the comparison under each assumed parameter's range.
//! - [`scale`]: the same load per compute at growing N (`testbed scale`).
//! - [`export`]: the testbed as a Swarm stack or Kubernetes manifests.
//! - [`swarm`]: the exported stack run on the local engine (Docker Swarm).

pub mod backend;
pub mod capacity;
pub mod chaos;
pub mod clouds_yaml;
pub mod compare;
pub mod docker;
pub mod embedded;
pub mod export;
pub mod hostmon;
pub mod level_pool;
pub mod levels;
pub mod profile_set;
pub mod scale;
pub mod scale_check;
pub mod scenario;
pub mod sensitivity;
pub mod sim;
pub mod swarm;
pub mod sweep;
pub mod topology;
