//! The state each agent gossips about its cloudlet.

use serde::{Deserialize, Serialize};

/// The chitchat key under which [`CloudletState`] is published (JSON).
pub const STATE_KEY: &str = "p2p.state";

/// One cloudlet as its agent describes it to the overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CloudletState {
    /// Cloudlet (and agent) name, unique in the federation.
    pub name: String,
    /// Base URL of the agent (`http://host:port`), for `/p2p/v1` and users.
    pub url: String,
    pub free_vcpus: i64,
    pub free_ram_mb: i64,
    pub free_disk_gb: i64,
    pub total_vcpus: i64,
    /// Servers in BUILD on the cloudlet at the last capacity poll.
    pub builds_in_flight: u32,
    /// False until the first successful capacity poll, or after a failed one.
    pub healthy: bool,
    /// Unix milliseconds of the capacity poll.
    pub updated_ms: i64,
    /// The agent's own HTTP face is saturated (connections refused or
    /// `accept()` failing): peers do not place boots here meanwhile.
    #[serde(default)]
    pub saturated: bool,
    /// Keystone URL of the cloudlet, for peers to reach it directly when
    /// this agent is gone (durable boot records: instance metadata names
    /// every server's global ID).
    #[serde(default)]
    pub cloudlet_auth_url: Option<String>,
}

impl CloudletState {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a peer's value; `None` on garbage (never a panic).
    pub fn decode(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        let s = CloudletState {
            name: "c1".into(),
            free_vcpus: 3,
            ..Default::default()
        };
        assert_eq!(CloudletState::decode(&s.encode()), Some(s));
        assert_eq!(CloudletState::decode("{nope"), None);
    }
}
