//! Agent configuration: serde + `Default`, loadable from TOML.

use serde::{Deserialize, Serialize};

/// Everything one agent needs. Every field has a default, so a TOML file
/// only lists what differs.
///
/// Durations (`*_ms`, `*_secs`, `service_time_us`) are **model time**: the
/// agent converts them once at start with `time_scale` (wall seconds per
/// model second, 1.0 by default, i.e. real time). A testbed that runs its
/// mocks at a time scale gives the agents the same one, so every agent
/// timer follows the model clock in every backend. `token_ttl_secs` is a
/// validity period against the date, not a timer, and is not scaled.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Cloudlet (and agent) name, unique in the federation.
    pub name: String,
    /// HTTP listen address of the agent's OpenStack face.
    pub listen: String,
    /// URL users and peers reach this agent at; defaults to `http://<bound addr>`.
    pub public_url: Option<String>,
    /// URL peers reach this agent at, when it differs from what users see
    /// (e.g. a container name on a private network behind a port published
    /// on the host); defaults to `public_url`. When set and `public_url` is
    /// not, the catalog follows each request's Host.
    pub peer_url: Option<String>,
    /// Keystone URL of this agent's own cloudlet (e.g. `http://host/identity`).
    pub cloudlet_auth_url: String,
    pub region: String,
    /// Service account on the cloudlet. It needs the `admin` role in every
    /// project the federation serves (see docs/agent.md).
    pub service_username: String,
    pub service_password: String,
    pub service_project: String,
    pub service_domain: String,
    /// UDP gossip listen address.
    pub gossip_listen: String,
    /// Gossip address peers should use; defaults to the bound address.
    pub gossip_advertise: Option<String>,
    /// Gossip addresses (`host:port`) of some peers.
    pub seed_peers: Vec<String>,
    /// Agents only gossip within one cluster id.
    pub cluster_id: String,
    /// Shared secret: authenticates gossip, signs federation tokens and
    /// agent-to-agent calls. No default: the agent refuses to start without
    /// one (at least 16 bytes), given here, in `P2P_CLUSTER_SECRET`, or in
    /// `cluster_secret_file`.
    pub cluster_secret: String,
    /// File holding the cluster secret (used when `cluster_secret` is empty).
    pub cluster_secret_file: Option<std::path::PathBuf>,
    /// Extra placement attempts after a refusal or an ERROR before ACTIVE
    /// (0 turns retries off).
    pub retries: u32,
    /// The local cloudlet is "overloaded" at this many builds in flight.
    pub local_max_builds: u32,
    pub gossip_interval_ms: u64,
    /// Phi-accrual threshold of chitchat's failure detector.
    pub phi_threshold: f64,
    /// How often the agent polls its cloudlet's capacity.
    pub capacity_interval_ms: u64,
    /// A peer that refused a connection is kept out of placement this long
    /// (unless gossip says it is alive again with a newer report).
    pub suspect_ms: u64,
    /// Bound on each call to the cloudlet or to a peer.
    pub request_timeout_ms: u64,
    /// Federation token lifetime (capped by the cloudlet token's expiry).
    pub token_ttl_secs: i64,
    /// How often a coordinator polls a boot until ACTIVE or ERROR.
    pub boot_poll_ms: u64,
    /// Give up watching a boot after this long.
    pub boot_watch_secs: u64,
    /// A boot whose cloudlet stops answering while gossip still counts it
    /// alive is re-placed after this long (a dead one at once).
    pub owner_unreachable_ms: u64,
    /// Seed of the placement RNG (random when absent).
    pub seed: Option<u64>,
    /// Open connections of the HTTP face beyond which new ones get a 503
    /// (0: half the process's open-file limit).
    pub max_connections: usize,
    /// Wall seconds per model second of the durations above.
    pub time_scale: f64,
    /// Model time each request costs the agent before it is handled
    /// (queued over `service_workers`); 0 = none. Set on virtual time,
    /// where work is otherwise free (see `service_time`).
    pub service_time_us: u64,
    /// Requests the agent serves at once when `service_time_us` is set.
    pub service_workers: u32,
    /// The membership overlay: `full` (every agent knows every other,
    /// chitchat) or `cyclon` (a partial view of `cyclon_view_size`
    /// members; docs/agent.md, "Partial view").
    pub overlay: Overlay,
    /// CYCLON view size `c`.
    pub cyclon_view_size: usize,
    /// CYCLON shuffle length `l` (at most `c`).
    pub cyclon_shuffle_len: usize,
    /// Good placement candidates a CYCLON agent remembers beyond its view.
    pub cyclon_cache_size: usize,
    /// Members a CYCLON agent's address book holds (cloudlets it placed
    /// boots on, coordinators it routed to) beyond its view.
    pub cyclon_book_size: usize,
}

/// Which membership overlay the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlay {
    /// Full membership (chitchat scuttlebutt + phi-accrual).
    #[default]
    Full,
    /// CYCLON partial view with capacity in the descriptors.
    Cyclon,
}

impl std::str::FromStr for Overlay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Overlay::Full),
            "cyclon" => Ok(Overlay::Cyclon),
            other => Err(format!("unknown overlay {other:?} (full or cyclon)")),
        }
    }
}

impl std::fmt::Display for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Overlay::Full => "full",
            Overlay::Cyclon => "cyclon",
        })
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            name: "cloudlet-1".into(),
            listen: "127.0.0.1:0".into(),
            public_url: None,
            peer_url: None,
            cloudlet_auth_url: "http://127.0.0.1/identity".into(),
            region: "RegionOne".into(),
            service_username: "admin".into(),
            service_password: "secret".into(),
            service_project: "admin".into(),
            service_domain: "Default".into(),
            gossip_listen: "127.0.0.1:0".into(),
            gossip_advertise: None,
            seed_peers: Vec::new(),
            cluster_id: "p2pstack".into(),
            cluster_secret: String::new(),
            cluster_secret_file: None,
            retries: 2,
            local_max_builds: 10,
            gossip_interval_ms: 500,
            phi_threshold: 8.0,
            capacity_interval_ms: 1000,
            suspect_ms: 15_000,
            request_timeout_ms: 10_000,
            token_ttl_secs: 3600,
            boot_poll_ms: 1000,
            boot_watch_secs: 900,
            owner_unreachable_ms: 30_000,
            seed: None,
            max_connections: 0,
            time_scale: 1.0,
            service_time_us: 0,
            service_workers: 1,
            overlay: Overlay::Full,
            cyclon_view_size: crate::cyclon::CyclonConfig::DEFAULT.view_size,
            cyclon_shuffle_len: crate::cyclon::CyclonConfig::DEFAULT.shuffle_len,
            cyclon_cache_size: crate::cyclon_node::CyclonParams::DEFAULT.cache_size,
            cyclon_book_size: crate::cyclon_node::CyclonParams::DEFAULT.book_size,
        }
    }
}

// Never print the password or the cluster secret.
impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("peer_url", &self.peer_url)
            .field("cloudlet_auth_url", &self.cloudlet_auth_url)
            .field("region", &self.region)
            .field("service_username", &self.service_username)
            .field("service_password", &"<redacted>")
            .field("service_project", &self.service_project)
            .field("gossip_listen", &self.gossip_listen)
            .field("seed_peers", &self.seed_peers)
            .field("cluster_id", &self.cluster_id)
            .field("cluster_secret", &"<redacted>")
            .field("cluster_secret_file", &self.cluster_secret_file)
            .field("retries", &self.retries)
            .field("local_max_builds", &self.local_max_builds)
            .field("gossip_interval_ms", &self.gossip_interval_ms)
            .field("time_scale", &self.time_scale)
            .field("service_time_us", &self.service_time_us)
            .field("overlay", &self.overlay)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// Reads `cluster_secret_file` into `cluster_secret` when no secret was
    /// given directly (surrounding whitespace trimmed).
    pub fn load_secret_file(&mut self) -> Result<(), crate::AgentError> {
        if !self.cluster_secret.is_empty() {
            return Ok(());
        }
        if let Some(p) = &self.cluster_secret_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                crate::AgentError::Config(format!("cluster secret file {}: {e}", p.display()))
            })?;
            self.cluster_secret = text.trim().to_string();
        }
        Ok(())
    }

    /// Parses a TOML document (missing keys take their defaults).
    pub fn from_toml(text: &str) -> Result<Self, crate::AgentError> {
        toml::from_str(text).map_err(|e| crate::AgentError::Config(e.to_string()))
    }

    /// The overlay to run, its sizes checked.
    pub fn overlay_kind(&self) -> Result<crate::gossip::OverlayKind, crate::AgentError> {
        Ok(match self.overlay {
            Overlay::Full => crate::gossip::OverlayKind::Full,
            Overlay::Cyclon => {
                let sizes = crate::cyclon::CyclonConfig {
                    view_size: self.cyclon_view_size,
                    shuffle_len: self.cyclon_shuffle_len,
                }
                .validate()
                .map_err(crate::AgentError::Config)?;
                crate::gossip::OverlayKind::Cyclon(crate::cyclon_node::CyclonParams {
                    sizes,
                    cache_size: self.cyclon_cache_size,
                    book_size: self.cyclon_book_size,
                })
            }
        })
    }

    /// The same configuration with every duration converted from model to
    /// wall time (`time_scale` then 1.0). Timers keep a floor of 10 ms so a
    /// tiny scale cannot turn them into busy loops.
    pub fn to_wall(&self) -> Result<Self, crate::AgentError> {
        let scale = cp_model::TimeScale::new(self.time_scale)
            .map_err(|e| crate::AgentError::Config(format!("time_scale: {e}")))?;
        let ms = |model_ms: u64, floor: u64| scale.wall_ms(model_ms as f64 / 1000.0, floor);
        let mut w = self.clone();
        w.gossip_interval_ms = ms(self.gossip_interval_ms, 10);
        w.capacity_interval_ms = ms(self.capacity_interval_ms, 10);
        w.suspect_ms = ms(self.suspect_ms, 1);
        w.request_timeout_ms = ms(self.request_timeout_ms, 1);
        w.boot_poll_ms = ms(self.boot_poll_ms, 10);
        w.owner_unreachable_ms = ms(self.owner_unreachable_ms, 1);
        w.boot_watch_secs = scale.wall(self.boot_watch_secs as f64).as_secs_f64().ceil() as u64;
        w.service_time_us = scale
            .wall(self.service_time_us as f64 / 1e6)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        w.time_scale = 1.0;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_debug_redacts() {
        let c = AgentConfig::from_toml(
            "name = \"c7\"\nretries = 0\ncluster_secret = \"hunter2\"\nseed_peers = [\"10.0.0.1:7000\"]\n",
        )
        .unwrap();
        assert_eq!(c.name, "c7");
        assert_eq!(c.retries, 0);
        assert_eq!(c.service_username, "admin");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("secret\""),
            "{dbg}"
        );
        assert!(AgentConfig::from_toml("retries = \"many\"").is_err());
        let cy = AgentConfig::from_toml("overlay = \"cyclon\"\ncyclon_view_size = 8\n").unwrap();
        assert_eq!(cy.overlay, Overlay::Cyclon);
        assert!(cy.overlay_kind().is_ok());
        assert!(AgentConfig::from_toml("overlay = \"mesh\"").is_err());
        let bad = AgentConfig {
            overlay: Overlay::Cyclon,
            cyclon_shuffle_len: 30,
            ..Default::default()
        };
        assert!(bad.overlay_kind().is_err(), "l above c");
    }

    #[test]
    fn durations_are_model_time_converted_once() {
        let c = AgentConfig {
            time_scale: 0.25,
            boot_poll_ms: 2_000,
            boot_watch_secs: 900,
            gossip_interval_ms: 400,
            service_time_us: 120,
            ..Default::default()
        };
        let w = c.to_wall().unwrap();
        assert_eq!(w.boot_poll_ms, 500);
        assert_eq!(w.gossip_interval_ms, 100);
        assert_eq!(w.boot_watch_secs, 225);
        assert_eq!(w.service_time_us, 30);
        assert_eq!(w.time_scale, 1.0);
        // A tiny scale keeps timers at 10 ms at least.
        let tiny = AgentConfig {
            time_scale: 1e-6,
            ..Default::default()
        };
        assert_eq!(tiny.to_wall().unwrap().boot_poll_ms, 10);
        let bad = AgentConfig {
            time_scale: 0.0,
            ..Default::default()
        };
        assert!(bad.to_wall().is_err());
        // Real time leaves everything as it is.
        assert_eq!(AgentConfig::default().to_wall().unwrap().boot_poll_ms, 1000);
    }
}
