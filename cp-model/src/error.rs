//! Typed errors of the model crate.

use thiserror::Error;

/// Everything that can go wrong when building or configuring an [`crate::Engine`].
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("unknown profile `{0}` (built-in profiles: devstack, openstack-2017; or give a path to a .toml file)")]
    UnknownProfile(String),
    #[error("cannot read profile file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {name} is not valid TOML for this model: {message}")]
    ProfileParse { name: String, message: String },
    #[error("invalid profile parameter {field}: {message}")]
    InvalidParameter { field: String, message: String },
    #[error("invalid profile override `{spec}`: {message}")]
    InvalidOverride { spec: String, message: String },
    #[error("invalid node spec `{name}`: {message}")]
    InvalidNode { name: String, message: String },
    #[error("invalid fault set: {0}")]
    InvalidFaults(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("time scale must be a finite number > 0, got {0}")]
    InvalidTimeScale(f64),
}
