//! Typed errors of the agent library.

use os_client::TransportError;

/// Why the agent could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("gossip: {0}")]
    Gossip(String),
}

/// A failed call to a cloudlet or a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("unexpected response: {0}")]
    BadResponse(String),
}

impl CallError {
    /// True when the target could not be reached at all (dead or partitioned).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            CallError::Transport(TransportError::Connect(_) | TransportError::Timeout(_))
        )
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
