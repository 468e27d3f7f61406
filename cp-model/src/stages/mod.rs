//! The stations of the control plane and the state they keep.
//!
//! `station` is a generic FIFO multi-server queue (API, conductor, scheduler,
//! neutron-server); `node` is one compute node (build slots, claims, image
//! cache, the DB record the scheduler reads); `admission` is a service's
//! threads and database connection pool; `scheduler` is the filter
//! scheduler's per-worker host-state cache and its host choice.

pub(crate) mod admission;
pub(crate) mod node;
pub(crate) mod scheduler;
pub(crate) mod station;
