//! OpenStack wire types shared by every crate that speaks OpenStack.
//!
//! This crate does no I/O. It holds what the mock, the agent and loadgen must
//! agree on byte for byte: each service's error envelope and the timestamp
//! formats that real clients parse, and the clouds.yaml they are pointed
//! at.

pub mod clouds_yaml;
pub mod error;
pub mod time;

pub use error::{ApiError, Service};
