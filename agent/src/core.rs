//! The agent's shared state and the I/O-bound operations built on the pure
//! modules: placing and forwarding boots, watching them, routing server
//! IDs to their owner, and fanning lists out to every cloudlet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cp_model::clock::{self, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use os_client::HttpResponse;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};
use uuid::Uuid;

use crate::cloudlet::{build_request, json_of, status_error, CloudletClient, ProjectRef, Svc};
use crate::error::CallError;
use crate::gossip::Gossip;
use crate::idroute::{self, COORDINATOR_KEY, METADATA_KEY};
use crate::metrics::Metrics;
use crate::peer_sig;
use crate::placement::{self, Demand, Policy};
use crate::protocol::{BootAccepted, BootReplica, KnownServers, PeerRequest, ReadKind, Superseded};
use crate::state::CloudletState;
use crate::token::{self, Claims};
use crate::{view, AgentConfig};

/// Stands for "this cloudlet's ID of the caller's project" in paths sent
/// to every cloudlet (project IDs differ between cloudlets).
pub const PROJECT_PLACEHOLDER: &str = "@project";

mod actions;
mod adopt;
mod boot;
mod directory;
mod fanout;
mod hosts;
pub mod keypairs;
mod member;
mod multi;
mod replica;
pub mod status_feed;
mod watch;

pub use crate::protocol::{BootPlan, P2P_AUTH};
pub use boot::{PlanRecord, PLAN_KEY};
pub use directory::{DirEntry, DirState};
pub use member::{DirectClient, Member};
pub use multi::NotPlaced;
pub use replica::{Pending, Replica, TakeOver};
pub use watch::Watches;

/// One page of a project's servers on one cloudlet, as every fan-out reads it.
const SERVER_LIST: &str = "/servers/detail?limit=1000";
/// The same for every project (admins only).
const ALL_TENANTS_LIST: &str = "/servers/detail?all_tenants=1&limit=1000";

pub struct Core {
    pub cfg: AgentConfig,
    pub name: String,
    pub self_url: String,
    pub secret: Vec<u8>,
    /// Federation tokens already verified or minted.
    pub tokens: token::Cache,
    /// Signs this agent's `/p2p/v1` requests.
    pub peer_key: peer_sig::PeerKey,
    /// Checks peers' `/p2p/v1` requests and remembers their nonces.
    pub peer_verifier: Mutex<peer_sig::Verifier>,
    pub cloudlet: CloudletClient,
    pub gossip: Gossip,
    pub metrics: Metrics,
    /// Ordered, so that listings come out the same in every run.
    pub directory: Mutex<BTreeMap<Uuid, DirEntry>>,
    /// Peers that refused a connection: name → since.
    pub suspects: Mutex<HashMap<String, Instant>>,
    /// Last servers seen per (cloudlet, project), shown as UNKNOWN when the
    /// cloudlet cannot be reached.
    pub last_seen: Mutex<HashMap<(String, ProjectRef), Vec<Value>>>,
    /// name → id per (kind, name) on the own cloudlet.
    pub names: Mutex<HashMap<(&'static str, String), String>>,
    pub rng: Mutex<StdRng>,
    /// Draws request IDs (seeded like `rng`, kept apart from placement).
    pub request_ids: Mutex<StdRng>,
    /// Own recent placements, to correct the view between reports.
    pub recent: Mutex<placement::RecentPlacements>,
    /// Instances (cloudlet, local ID) this agent deleted or is deleting for
    /// certain: never listed again.
    pub doomed: Mutex<HashSet<(String, String)>>,
    /// Clients of other members' cloudlets, used when their agent is gone;
    /// with the time of the last direct call that could not connect.
    pub direct_clients: Mutex<HashMap<String, DirectClient>>,
    /// Set when the agent stops or is killed: background work (boot
    /// watchers, pending deletes, adoption) ends with it.
    pub halt: tokio::sync::watch::Sender<bool>,
    /// Accepted boots followed until they end ([`Core::accept`]).
    pub watches: Mutex<Watches>,
    /// Boot records held for peers as their backup ([`Core::hold_replica`]).
    pub replicas: Mutex<BTreeMap<Uuid, Replica>>,
    /// The BUILD snapshots this agent answers status feeds from.
    pub status_feed: status_feed::StatusFeed,
    /// The last record sent to this agent's backup for each boot on the
    /// own cloudlet: sent again when the backup changes
    /// ([`Core::rereplicate`]).
    pub sent_records: Mutex<BTreeMap<Uuid, BootReplica>>,
    /// Instances (cloudlet, local ID) of lost pairs that their backup took
    /// over and shows ERROR, with the fault ([`Core::remember_lost`]).
    pub lost: Mutex<HashMap<(String, String), String>>,
    /// Deletes for certain kept on a second agent (sent and held,
    /// [`Core::replicate_delete`]) and members whose cloudlet is to be
    /// probed at once ([`Core::peer_timed_out`]).
    pub pending: Mutex<Pending>,
}

/// A peer's typed answer: its error status as an error, else the body.
fn answer<T: serde::de::DeserializeOwned>(r: &HttpResponse) -> Result<T, CallError> {
    if !r.status().is_success() {
        return Err(status_error(r));
    }
    serde_json::from_slice(r.body()).map_err(|e| CallError::BadResponse(e.to_string()))
}

/// Unix seconds on the project clock (virtual under the `sim` backend).
pub fn now() -> i64 {
    clock::unix_secs()
}

pub fn project_of(c: &Claims) -> Option<ProjectRef> {
    Some(ProjectRef {
        name: c.project_name.clone()?,
        domain: c.project_domain.clone().unwrap_or_else(|| "Default".into()),
    })
}

/// The user-facing outcome of an operation: a status and a JSON body, plus
/// the cloudlet that owns the server (for `X-P2P-Cloudlet`).
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub owner: Option<String>,
}

impl Outcome {
    pub fn json(status: StatusCode, body: Value, owner: Option<String>) -> Self {
        Self {
            status,
            body: Some(body),
            owner,
        }
    }
}

impl Core {
    /// Spawns background work that ends when the agent stops or is killed
    /// (a dead agent must not keep re-placing boots).
    pub fn spawn_bg(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut halted = self.halt.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = halted.wait_for(|h| *h) => {}
            }
        });
    }

    /// Ends every background task (see [`Core::spawn_bg`]).
    pub fn halt(&self) {
        self.halt.send_replace(true);
    }

    fn policy(&self) -> Policy {
        Policy {
            local_max_builds: self.cfg.local_max_builds,
        }
    }

    pub fn suspect(&self, name: &str) {
        if name == self.name {
            return;
        }
        if let Ok(mut s) = self.suspects.lock() {
            s.insert(name.to_string(), clock::now());
        }
    }

    /// Whether `m` is known lost with its cloudlet: its agent is dead by
    /// gossip (or suspected here) and the last direct call to its cloudlet
    /// could not connect or timed out. Searches, lookups and lists skip
    /// such a member instead of waiting out the request timeout on every
    /// client request (a show must not hang on a member already known
    /// lost); [`Core::probe_silent`] calls its cloudlet again in the
    /// background, which clears the mark once it answers.
    pub(crate) fn silent(&self, m: &Member) -> bool {
        if m.name == self.name || (m.alive && !self.suspected(&m.name)) {
            return false;
        }
        self.direct_clients
            .lock()
            .is_ok_and(|d| d.get(&m.name).is_some_and(|(_, failed)| failed.is_some()))
    }

    /// Lists, in the background, the cloudlet of each member marked
    /// [`Core::silent`] whose last failed call is `suspect_ms` old (or
    /// presumed silent after its agent timed out, [`Core::peer_timed_out`]): at most
    /// one probe per member and period (the mark is renewed before the
    /// call); the call clears the mark when the cloudlet answers. Run by
    /// the background loop, never on a client's request.
    pub(crate) fn probe_silent(self: &Arc<Self>) {
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        let now = clock::now();
        // Presumed silent after a timeout: probed now, not after `suspect_ms`.
        let soon = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut p.probe_soon))
            .unwrap_or_default();
        let mut due: Vec<(String, Arc<CloudletClient>)> = match self.direct_clients.lock() {
            Ok(mut d) => d
                .iter_mut()
                .filter_map(|(name, (c, failed))| {
                    let at = (*failed)?;
                    if now.saturating_duration_since(at) < ttl && !soon.contains(name) {
                        return None;
                    }
                    *failed = Some(now);
                    Some((name.clone(), c.clone()))
                })
                .collect(),
            Err(_) => return,
        };
        // The same order in every run (the sim backend replays it).
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, c) in due {
            let me = self.clone();
            self.spawn_bg(async move {
                let sp = me.cloudlet.service_project().clone();
                let r = me.direct_list(&name, &c, &sp, "req-probe").await;
                if r.is_ok() {
                    info!(member = %name, "the cloudlet of a lost member answers again");
                }
            });
        }
    }

    /// Whether any member may be suspected (expired suspicions count
    /// until [`Core::suspected`] drops them).
    pub(crate) fn suspects_any(&self) -> bool {
        self.suspects.lock().map(|s| !s.is_empty()).unwrap_or(true)
    }

    /// Whether this agent suspects `name` (a call to it timed out less
    /// than `suspect_ms` ago); an expired suspicion is dropped.
    fn suspected(&self, name: &str) -> bool {
        let Ok(mut s) = self.suspects.lock() else {
            return false;
        };
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        match s.get(name) {
            Some(since) if clock::now().saturating_duration_since(*since) < ttl => true,
            Some(_) => {
                s.remove(name);
                false
            }
            None => false,
        }
    }

    /// The placement view: alive by gossip, not suspected locally, and
    /// corrected with this agent's own placements since each report.
    pub async fn view(&self) -> Vec<CloudletState> {
        let v = self.gossip.live_view().await;
        let mut v: Vec<CloudletState> =
            v.into_iter().filter(|s| !self.suspected(&s.name)).collect();
        if let Ok(mut recent) = self.recent.lock() {
            placement::account_recent(&mut v, &mut recent);
        }
        v
    }

    /// Whether `name` is in the placement view ([`Core::view`]): alive by
    /// gossip and not suspected locally. Copies no state (a boot watcher
    /// asks this on every poll).
    pub async fn in_view(&self, name: &str) -> bool {
        self.gossip.is_live(name).await && !self.suspected(name)
    }

    fn note_placement(&self, target: &str, demand: &Demand) {
        let now_ms = clock::unix_millis();
        if let Ok(mut r) = self.recent.lock() {
            let list = r.entry(target.to_string()).or_default();
            // Bound memory if a target stops reporting.
            if list.len() >= 10_000 {
                list.remove(0);
            }
            list.push(placement::Recent {
                demand: *demand,
                at_ms: now_ms,
            });
        }
    }

    /// URL of a member by name (alive or not).
    pub async fn url_of(&self, name: &str) -> Option<String> {
        if name == self.name {
            return Some(self.self_url.clone());
        }
        self.gossip.url_of(name).await
    }

    /// A signed `/p2p/v1` call to the peer agent at `url`.
    pub async fn peer(
        &self,
        url: &str,
        req: &PeerRequest<'_>,
        user_token: &str,
        request_id: &str,
    ) -> Result<HttpResponse, CallError> {
        let (method, path, body) = (req.method(), req.path(), req.body());
        let path = path.as_str();
        let (pure_path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut nonce = [0u8; 16];
        if let Ok(mut rng) = self.request_ids.lock() {
            rand::RngCore::fill_bytes(&mut *rng, &mut nonce);
        }
        let sig = peer_sig::sign(
            &self.peer_key,
            now(),
            nonce,
            &peer_sig::Parts {
                method: method.as_str(),
                path: pure_path,
                query,
                body: body.as_deref().unwrap_or_default(),
                user_token,
            },
        );
        let mut req = build_request(
            method,
            &format!("{url}{path}"),
            Some(user_token),
            body,
            request_id,
        )?;
        if let Ok(v) = http::HeaderValue::from_str(&sig) {
            req.headers_mut().insert(P2P_AUTH, v);
        }
        let t0 = clock::now();
        let r = self.cloudlet.send(req).await;
        self.metrics
            .observe_forward(clock::now().saturating_duration_since(t0));
        if let Err(CallError::Transport(os_client::TransportError::Timeout(_))) = &r {
            self.peer_timed_out(url).await;
        }
        r
    }

    /// The peer agent at `url` did not answer within the request timeout:
    /// a host that swallows calls (killed, partitioned), whose cloudlet
    /// most likely hangs too. Whatever the call was, its member is
    /// suspected and its cloudlet presumed silent ([`Core::silent`]) until
    /// a direct list on the next background round
    /// ([`Core::probe_silent`]) says otherwise. So the first call that
    /// waited out the timeout is the only one: the next client request
    /// neither waits for the agent again nor for its cloudlet directly
    /// (before, it waited a second timeout on the cloudlet). A cloudlet
    /// that answers (only its agent died) is used directly again after
    /// one `capacity_interval_ms` at most.
    async fn peer_timed_out(&self, url: &str) {
        let known = self.gossip.known().await;
        let Some(name) = known
            .iter()
            .find(|(s, _)| s.url == url && s.name != self.name)
            .map(|(s, _)| s.name.clone())
        else {
            return;
        };
        self.suspect(&name);
        // Unknown cloudlet URL, or a direct call failed lately (already
        // silent): nothing to presume.
        if self.direct(&name).await.is_none() {
            return;
        }
        if let Ok(mut d) = self.direct_clients.lock() {
            if let Some((_, failed)) = d.get_mut(&name) {
                failed.get_or_insert(clock::now());
            }
        }
        if let Ok(mut p) = self.pending.lock() {
            p.probe_soon.insert(name);
        }
    }

    /// A federation token for background work on behalf of `claims`.
    pub fn token_for_claims(&self, claims: &Claims) -> String {
        // Valid for at least 5 minutes (any call is bounded far below);
        // a new one lasts 10.
        self.tokens.mint(claims, &self.secret, now(), 300, 600)
    }

    // ---- name resolution on the own cloudlet ----

    /// A read on the own cloudlet; when it cannot be reached, the same read
    /// on a healthy peer's cloudlet (names and IDs are portable), so an
    /// agent whose cloudlet is down can still plan boots.
    pub async fn read_json(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        svc: Svc,
        path: &str,
        rid: &str,
    ) -> Result<Value, CallError> {
        let err = match self.cloudlet.get_json(p, svc, path, rid).await {
            Ok(v) => return Ok(v),
            Err(e) if e.status().is_some() => return Err(e),
            Err(e) => e,
        };
        let kind = match svc {
            Svc::Compute => ReadKind::Compute,
            Svc::Image => ReadKind::Image,
            Svc::Network => ReadKind::Network,
            _ => return Err(err),
        };
        let tok = self.token_for_claims(claims);
        let peers: Vec<CloudletState> = self
            .view()
            .await
            .into_iter()
            .filter(|s| s.name != self.name && s.healthy)
            .take(3)
            .collect();
        for st in peers {
            match self
                .peer(&st.url, &PeerRequest::Read { kind, path }, &tok, rid)
                .await
            {
                Ok(r) => return json_of(&r),
                Err(e) if e.is_unreachable() => self.suspect(&st.name),
                Err(_) => {}
            }
        }
        Err(err)
    }

    /// Authenticates a user on the own cloudlet, or through a healthy peer
    /// when the own cloudlet cannot be reached.
    pub async fn user_auth(&self, body: Bytes, rid: &str) -> Result<HttpResponse, CallError> {
        let err = match self.cloudlet.user_auth(body.clone(), rid).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let peers: Vec<CloudletState> = self
            .view()
            .await
            .into_iter()
            .filter(|s| s.name != self.name && s.healthy)
            .take(3)
            .collect();
        for st in peers {
            match self
                .peer(&st.url, &PeerRequest::Auth(body.clone()), "", rid)
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if e.is_unreachable() => self.suspect(&st.name),
                Err(_) => {}
            }
        }
        Err(err)
    }
}
