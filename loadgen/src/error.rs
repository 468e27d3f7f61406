//! loadgen's typed errors: everything that stops a run before it starts.

use os_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// A bad configuration (flags, clouds.yaml, levels …).
    #[error("{0}")]
    Config(String),
    /// An entry point that cannot be used: unreachable, wrong credentials,
    /// no compute service, unknown flavor/image/network.
    #[error("entry {entry}: {what}")]
    Target { entry: String, what: String },
    #[error("cannot write {path}: {detail}")]
    Output { path: String, detail: String },
}

impl LoadgenError {
    /// Wraps a client error with a plain explanation of what it means for the user.
    pub fn target(entry: &str, step: &str, e: &ClientError) -> Self {
        use os_client::TransportError;
        let what = match e {
            ClientError::Transport(TransportError::Connect(_)) => {
                format!("{step}: cannot connect (is the URL right and the service up?)")
            }
            ClientError::Transport(TransportError::Timeout(d)) => {
                format!("{step}: no answer within {d:?}")
            }
            ClientError::Auth { message, .. } => {
                format!("{step}: wrong credentials (401: {message})")
            }
            ClientError::NoEndpoint { .. } => format!("{step}: {e}"),
            ClientError::NotFound { kind, name } => {
                format!("{step}: no {kind} named or with ID {name:?}")
            }
            other => format!("{step}: {other}"),
        };
        LoadgenError::Target {
            entry: entry.to_string(),
            what,
        }
    }
}
