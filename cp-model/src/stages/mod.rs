//! The stations of the control plane and the state they keep.
//!
//! `station` is a generic FIFO multi-server queue (API, conductor, scheduler,
//! neutron-server); `node` is one compute node (build slots, claims, image
//! cache, the DB record the scheduler reads); `scheduler` is the filter
//! scheduler's per-worker host-state cache and its host choice.

pub(crate) mod node;
pub(crate) mod scheduler;
pub(crate) mod station;
