//! The client's typed errors.

use std::time::Duration;

use crate::transport::TransportError;

/// Why an OpenStack call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ClientError {
    /// No HTTP response at all.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An HTTP error status; `message` comes from the body's error envelope
    /// (or is the raw body, truncated, when it has none).
    #[error("HTTP {status}: {message}")]
    Api {
        status: u16,
        message: String,
        /// From `Retry-After` (or Nova's `retryAfter`), when given.
        retry_after: Option<Duration>,
    },
    /// A response that is not what the API documents (bad JSON, missing field).
    #[error("malformed response from {what}: {detail}")]
    Malformed { what: String, detail: String },
    /// Keystone refused the credentials.
    #[error("authentication failed at {auth_url}: {message}")]
    Auth { auth_url: String, message: String },
    /// The catalog has no endpoint for a service.
    #[error("the service catalog has no {interface} endpoint of type {service_type}{}", region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: Option<String>,
    },
    /// A lookup by name or ID found nothing.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    /// A lookup by name found several resources.
    #[error("{count} {kind}s are named {name:?}; use an ID")]
    Ambiguous {
        kind: String,
        name: String,
        count: usize,
    },
    /// A configuration problem (clouds.yaml, environment, flags).
    #[error("configuration: {0}")]
    Config(String),
    /// A URL that cannot be used.
    #[error("invalid URL {0:?}")]
    Url(String),
}

impl ClientError {
    /// The HTTP status, when the error has one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub(crate) fn malformed(what: impl Into<String>, detail: impl ToString) -> Self {
        ClientError::Malformed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
