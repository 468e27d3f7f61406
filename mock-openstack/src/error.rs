//! Library errors and the mapping of API errors to HTTP responses.

use os_wire::{ApiError, Service};

/// Why the mock could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Handlers answer with os-wire's [`ApiError`] directly: it renders itself
/// in the service's envelope (os-wire's `axum` feature).
pub type ApiResult<T> = Result<T, ApiError>;

/// Which service's envelope an error on `path` must use.
pub fn service_for_path(path: &str) -> Service {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "compute" => Service::Compute,
        "image" => Service::Image,
        "network" => Service::Network,
        "placement" => Service::Placement,
        "identity" => Service::Identity,
        _ => Service::Control,
    }
}
