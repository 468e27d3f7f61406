//! The overlay carrying each agent's [`CloudletState`], one of two kinds
//! (`--overlay`):
//!
//! - `full`: chitchat (scuttlebutt dissemination + phi-accrual failure
//!   detection); each agent is one chitchat node whose key `p2p.state`
//!   holds its cloudlet's state as JSON. The live view (what placement
//!   reads) is the set of nodes chitchat's failure detector believes
//!   alive, plus self: every agent knows every other.
//! - `cyclon`: a partial view ([`crate::cyclon_node`]): self, the CYCLON
//!   view and a bounded cache of good candidates. Nobody knows everyone;
//!   a member that no longer answers leaves the views (it is never
//!   reported dead, only forgotten).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::transport::Transport as GossipTransport;
use chitchat::{
    spawn_chitchat, Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    Version,
};

use crate::cyclon_node::{CyclonNode, CyclonParams, OverlayStats};
use crate::state::{CloudletState, STATE_KEY};
use crate::AgentError;

/// What a gossip node needs.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub node_id: String,
    /// Address peers should gossip to (advertised; must be concrete).
    pub addr: SocketAddr,
    /// Address to bind (e.g. `0.0.0.0:7946`); usually equal to `addr`.
    pub listen: SocketAddr,
    pub seeds: Vec<String>,
    pub cluster_id: String,
    pub interval: Duration,
    pub phi_threshold: f64,
    /// Seed of the peer-selection generator (random when `None`).
    pub rng_seed: Option<u64>,
    pub overlay: OverlayKind,
}

/// Which overlay an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayKind {
    /// Full membership (chitchat).
    Full,
    /// CYCLON partial view.
    Cyclon(CyclonParams),
}

impl GossipConfig {
    fn chitchat(&self) -> ChitchatConfig {
        let generation = cp_model::clock::unix_millis().max(0) as u64;
        ChitchatConfig {
            chitchat_id: ChitchatId::new(self.node_id.clone(), generation, self.addr),
            cluster_id: self.cluster_id.clone(),
            gossip_interval: self.interval,
            listen_addr: self.listen,
            seed_nodes: self.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: self.phi_threshold,
                // Each agent keeps one window per peer, allocated in full
                // (8 bytes a sample): at 1,000 peers chitchat's default of
                // 1,000 samples costs 8 MB per agent. 100 arrivals (10+ s
                // of history at the shortest interval) estimate the
                // arrival distribution well enough for phi.
                sampling_window_size: 100,
                // Arrival intervals longer than this are not learnt from.
                max_interval: self.interval * 20,
                // Prior mean interval before any heartbeat was seen.
                initial_interval: self.interval * 2,
                dead_node_grace_period: Duration::from_secs(3600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            rng_seed: self.rng_seed,
        }
    }
}

/// A running overlay member, of either kind.
pub struct Gossip {
    inner: Inner,
}

enum Inner {
    Full(FullMembership),
    Cyclon(CyclonNode),
}

/// A running chitchat node.
struct FullMembership {
    handle: ChitchatHandle,
    /// Alive members at the last look (see [`Gossip::members_alive`]).
    alive: AtomicUsize,
    views: Mutex<Views>,
}

/// Every node ever heard of, with its last state and whether it is alive
/// ([`Gossip::known`]). Iterating by reference costs nothing; iterating by
/// value clones one state at a time.
#[derive(Clone, Default)]
pub struct Known(Arc<Vec<(CloudletState, bool)>>);

impl std::ops::Deref for Known {
    type Target = [(CloudletState, bool)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Known {
    /// URL of the member called `name`, and whether it is alive (nothing
    /// else cloned).
    pub fn member(&self, name: &str) -> Option<(String, bool)> {
        self.0
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(s, alive)| (s.url.clone(), *alive))
    }
}

impl<'a> IntoIterator for &'a Known {
    type Item = &'a (CloudletState, bool);
    type IntoIter = std::slice::Iter<'a, (CloudletState, bool)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Known {
    type Item = (CloudletState, bool);
    type IntoIter = KnownIter;
    fn into_iter(self) -> KnownIter {
        KnownIter {
            known: self.0,
            next: 0,
        }
    }
}

/// By-value iterator of [`Known`].
pub struct KnownIter {
    known: Arc<Vec<(CloudletState, bool)>>,
    next: usize,
}

impl Iterator for KnownIter {
    type Item = (CloudletState, bool);
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.known.get(self.next)?.clone();
        self.next += 1;
        Some(item)
    }
}

/// The overlay as last read, brought up to date only when it changed. The
/// agent reads it on every request it routes, while a member's state
/// changes only every few gossip rounds: parsing every member's JSON on
/// each read was most of a routed request's cost, and rebuilding the whole
/// snapshot (a clone of every member's state) whenever any one member
/// changed was most of what was left.
#[derive(Default)]
struct Views {
    /// What the snapshot was taken from: the live nodes in chitchat's
    /// order, and every node with its max version (any change of a node's
    /// keys raises it).
    live: Vec<ChitchatId>,
    versions: Vec<(ChitchatId, Version)>,
    /// Per entry of `versions`: where its state sits in `known` and in
    /// `live_view` (`None`: its state does not decode, or it is not live).
    slots: Vec<(Option<usize>, Option<usize>)>,
    known: Known,
    live_view: Arc<Vec<CloudletState>>,
    valid: bool,
}

/// How the snapshot differs from chitchat's state.
enum Staleness {
    Current,
    /// Only these nodes' (indices in `versions`) max versions moved.
    Versions(Vec<usize>),
    /// Members joined, left or changed liveness.
    Membership,
}

impl Views {
    fn staleness(&self, c: &Chitchat) -> Staleness {
        if !self.valid {
            return Staleness::Membership;
        }
        let mut live = c.live_nodes();
        if !self.live.iter().all(|id| live.next() == Some(id)) || live.next().is_some() {
            return Staleness::Membership;
        }
        let states = c.node_states();
        if states.len() != self.versions.len() {
            return Staleness::Membership;
        }
        let mut changed = Vec::new();
        for (i, ((id, ns), (vid, v))) in states.iter().zip(&self.versions).enumerate() {
            if id != vid {
                return Staleness::Membership;
            }
            if ns.max_version() != *v {
                changed.push(i);
            }
        }
        if changed.is_empty() {
            Staleness::Current
        } else {
            Staleness::Versions(changed)
        }
    }

    /// Brings the snapshot up to date with `c` (a no-op when unchanged).
    fn refresh(&mut self, c: &Chitchat) {
        match self.staleness(c) {
            Staleness::Current => {}
            Staleness::Versions(changed) => {
                if !self.update(c, &changed) {
                    self.rebuild(c);
                }
            }
            Staleness::Membership => self.rebuild(c),
        }
    }

    /// Replaces the states of the `changed` nodes in place; `false` when
    /// a state started or stopped decoding (the layout moves: rebuild).
    fn update(&mut self, c: &Chitchat, changed: &[usize]) -> bool {
        let mut decoded = Vec::with_capacity(changed.len());
        for &i in changed {
            let id = &self.versions[i].0;
            let Some(ns) = c.node_state(id) else {
                return false;
            };
            let state = ns.get(STATE_KEY).and_then(CloudletState::decode);
            if state.is_some() != self.slots[i].0.is_some() {
                return false;
            }
            decoded.push((i, ns.max_version(), state));
        }
        for (i, version, state) in decoded {
            self.versions[i].1 = version;
            let Some(state) = state else { continue };
            let (known_at, live_at) = self.slots[i];
            if let Some(l) = live_at {
                if let Some(slot) = Arc::make_mut(&mut self.live_view).get_mut(l) {
                    *slot = state.clone();
                }
            }
            if let Some(k) = known_at {
                if let Some(slot) = Arc::make_mut(&mut self.known.0).get_mut(k) {
                    slot.0 = state;
                }
            }
        }
        true
    }

    /// Takes the whole snapshot again (states of unchanged nodes are
    /// reused, not parsed again).
    fn rebuild(&mut self, c: &Chitchat) {
        let mut previous: HashMap<ChitchatId, (Version, CloudletState)> = HashMap::new();
        for ((id, v), (known_at, _)) in self.versions.iter().zip(&self.slots) {
            if let Some(s) = known_at.and_then(|k| self.known.get(k)) {
                previous.insert(id.clone(), (*v, s.0.clone()));
            }
        }
        self.live = c.live_nodes().cloned().collect();
        self.versions = c
            .node_states()
            .iter()
            .map(|(id, ns)| (id.clone(), ns.max_version()))
            .collect();
        let state_of = |id: &ChitchatId, v: Version| -> Option<CloudletState> {
            match previous.get(id) {
                Some((pv, s)) if *pv == v => Some(s.clone()),
                _ => c
                    .node_state(id)?
                    .get(STATE_KEY)
                    .and_then(CloudletState::decode),
            }
        };
        let live_at: HashMap<&ChitchatId, usize> = self
            .live
            .iter()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        let mut known: Vec<(CloudletState, bool)> = Vec::with_capacity(self.versions.len());
        let mut slots = Vec::with_capacity(self.versions.len());
        let mut decoded: HashMap<&ChitchatId, usize> = HashMap::new();
        for (id, v) in &self.versions {
            match state_of(id, *v) {
                Some(s) => {
                    decoded.insert(id, known.len());
                    slots.push((Some(known.len()), None));
                    known.push((s, live_at.contains_key(id)));
                }
                None => slots.push((None, None)),
            }
        }
        // The live view in chitchat's live order (self first), with each
        // live node's place recorded for in-place updates.
        let mut live_view = Vec::with_capacity(self.live.len());
        let index_of: HashMap<&ChitchatId, usize> = self
            .versions
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id, i))
            .collect();
        for id in &self.live {
            if let (Some(&k), Some(&i)) = (decoded.get(id), index_of.get(id)) {
                slots[i].1 = Some(live_view.len());
                live_view.push(known[k].0.clone());
            }
        }
        self.slots = slots;
        self.known = Known(Arc::new(known));
        self.live_view = Arc::new(live_view);
        self.valid = true;
    }
}

impl Gossip {
    /// Starts a node over `transport` (chitchat's `UdpTransport`, the
    /// authenticated [`crate::gossip_auth`] one, or an in-memory one).
    pub async fn spawn(
        cfg: &GossipConfig,
        initial: &CloudletState,
        transport: &dyn GossipTransport,
    ) -> Result<Self, AgentError> {
        let inner = match cfg.overlay {
            OverlayKind::Full => Inner::Full(FullMembership::spawn(cfg, initial, transport).await?),
            OverlayKind::Cyclon(params) => {
                Inner::Cyclon(CyclonNode::spawn(params, initial, cfg, transport).await?)
            }
        };
        Ok(Self { inner })
    }

    /// Publishes this cloudlet's new state.
    pub async fn publish(&self, s: &CloudletState) {
        match &self.inner {
            Inner::Full(f) => f.publish(s).await,
            Inner::Cyclon(c) => c.publish(s),
        }
    }

    /// States of the members believed alive (self first, included).
    pub async fn live_view(&self) -> Vec<CloudletState> {
        match &self.inner {
            Inner::Full(f) => f.live_view().await,
            Inner::Cyclon(c) => c.live_view(),
        }
    }

    /// Whether `name` is among the members believed alive (as in
    /// [`Gossip::live_view`], without copying the view).
    pub async fn is_live(&self, name: &str) -> bool {
        match &self.inner {
            Inner::Full(f) => f.is_live(name).await,
            Inner::Cyclon(c) => c.is_live(name),
        }
    }

    /// URL of a member heard of, by name, alive or not (what
    /// [`Gossip::known`] holds for it, without copying the rest).
    pub async fn url_of(&self, name: &str) -> Option<String> {
        match &self.inner {
            Inner::Full(f) => f.known().await.member(name).map(|(url, _)| url),
            Inner::Cyclon(c) => c.url_of(name),
        }
    }

    /// Every member heard of, with its last state and whether it is alive.
    /// With a partial view: the view, the candidate cache and the bounded
    /// address book, all alive (a member is forgotten, never reported dead).
    pub async fn known(&self) -> Known {
        match &self.inner {
            Inner::Full(f) => f.known().await,
            Inner::Cyclon(c) => Known(Arc::new(c.known().into_iter().map(|s| (s, true)).collect())),
        }
    }

    /// A member by name, with whether it is alive: from what is known,
    /// and with a partial view looked up over the overlay (by its routing
    /// tag) when this agent does not know it.
    pub async fn find_member(&self, name: &str) -> Option<(CloudletState, bool)> {
        match &self.inner {
            Inner::Full(f) => f
                .known()
                .await
                .iter()
                .find(|(s, _)| s.name == name)
                .cloned(),
            Inner::Cyclon(c) => {
                if let Some(s) = c.find(name) {
                    return Some((s, true));
                }
                c.lookup(crate::idroute::tag_of(name))
                    .await
                    .filter(|s| s.name == name)
                    .map(|s| (s, true))
            }
        }
    }

    /// The members global reads (lists, sums) must reach, with whether
    /// each is alive: with full membership every member ever heard of;
    /// with a partial view, a census of the overlay (every member that
    /// answered; see [`CyclonNode::census`] for its cost).
    pub async fn everyone(&self) -> Known {
        match &self.inner {
            Inner::Full(f) => f.known().await,
            Inner::Cyclon(c) => Known(Arc::new(
                c.census().await.into_iter().map(|s| (s, true)).collect(),
            )),
        }
    }

    /// The live members global sums reach (self first): the live view
    /// with full membership, a census with a partial view.
    pub async fn everyone_alive(&self) -> Vec<CloudletState> {
        match &self.inner {
            Inner::Full(f) => f.live_view().await,
            Inner::Cyclon(c) => c.census().await,
        }
    }

    /// The member coordinating global IDs with routing tag `tag`: looked
    /// up among the known members, and with a partial view over the
    /// overlay when no known member holds it.
    pub async fn member_with_tag(&self, tag: crate::idroute::Tag) -> Option<CloudletState> {
        match &self.inner {
            Inner::Full(f) => f
                .known()
                .await
                .iter()
                .find(|(s, _)| crate::idroute::tag_of(&s.name) == tag)
                .map(|(s, _)| s.clone()),
            Inner::Cyclon(c) => c.lookup(tag).await,
        }
    }

    /// Alive members known (self included).
    pub fn members_alive(&self) -> usize {
        match &self.inner {
            Inner::Full(f) => f.members_alive(),
            Inner::Cyclon(c) => c.live_view().len(),
        }
    }

    /// Entries of the partial view and its size `c` (`None` with full
    /// membership).
    pub fn partial_view(&self) -> Option<(usize, usize)> {
        match &self.inner {
            Inner::Full(_) => None,
            Inner::Cyclon(c) => Some((c.view_len(), c.view_size())),
        }
    }

    /// The partial view's traffic counters (`None` with full membership).
    pub fn overlay_stats(&self) -> Option<OverlayStats> {
        match &self.inner {
            Inner::Full(_) => None,
            Inner::Cyclon(c) => Some(c.stats()),
        }
    }

    /// Own heartbeat (full), or rounds run (cyclon).
    pub async fn heartbeat(&self) -> u64 {
        match &self.inner {
            Inner::Full(f) => f.heartbeat().await,
            Inner::Cyclon(c) => c.stats().rounds,
        }
    }

    /// One exchange with `addr` (to reach seeds given by name).
    pub fn gossip_with(&self, addr: SocketAddr) {
        match &self.inner {
            Inner::Full(f) => f.gossip_with(addr),
            Inner::Cyclon(c) => c.join_via(addr),
        }
    }

    pub fn abort(&self) {
        match &self.inner {
            Inner::Full(f) => f.abort(),
            Inner::Cyclon(c) => c.abort(),
        }
    }

    pub async fn shutdown(self) {
        match self.inner {
            Inner::Full(f) => f.shutdown().await,
            Inner::Cyclon(c) => c.abort(),
        }
    }
}

impl FullMembership {
    async fn spawn(
        cfg: &GossipConfig,
        initial: &CloudletState,
        transport: &dyn GossipTransport,
    ) -> Result<Self, AgentError> {
        let handle = spawn_chitchat(
            cfg.chitchat(),
            vec![(STATE_KEY.to_string(), initial.encode())],
            transport,
        )
        .await
        .map_err(|e| AgentError::Gossip(e.to_string()))?;
        let alive = AtomicUsize::new(1);
        Ok(Self {
            handle,
            alive,
            views: Mutex::new(Views::default()),
        })
    }

    /// Publishes this cloudlet's new state.
    pub async fn publish(&self, s: &CloudletState) {
        let v = s.encode();
        self.handle
            .with_chitchat(|c| c.self_node_state().set(STATE_KEY, &v))
            .await;
    }

    /// States of the nodes believed alive (self included).
    pub async fn live_view(&self) -> Vec<CloudletState> {
        self.with_views(|v| v.live_view.as_ref().clone()).await
    }

    pub async fn is_live(&self, name: &str) -> bool {
        self.with_views(|v| v.live_view.iter().any(|s| s.name == name))
            .await
    }

    /// Every node ever heard of, with its last state and whether it is alive.
    pub async fn known(&self) -> Known {
        self.with_views(|v| v.known.clone()).await
    }

    /// Reads the snapshot of the overlay, refreshed first if chitchat's
    /// state changed.
    async fn with_views<T>(&self, read: impl Fn(&Views) -> T) -> T {
        let views = &self.views;
        self.handle
            .with_chitchat(|c| {
                let mut v = match views.lock() {
                    Ok(v) => v,
                    Err(p) => p.into_inner(),
                };
                v.refresh(c);
                read(&v)
            })
            .await
    }

    /// Alive members (self included): counted now when the overlay is not
    /// busy (a watcher of chitchat's live set would get a clone of every
    /// live member's state on each change of any of them), else the last
    /// count.
    pub fn members_alive(&self) -> usize {
        let chitchat = self.handle.chitchat();
        if let Ok(c) = chitchat.try_lock() {
            let n = c
                .live_nodes()
                .filter(|id| c.node_state(id).is_some())
                .count()
                .max(1);
            self.alive.store(n, Ordering::Relaxed);
        }
        self.alive.load(Ordering::Relaxed)
    }

    /// Own heartbeat: grows with every gossip round sent or received.
    pub async fn heartbeat(&self) -> u64 {
        self.handle
            .with_chitchat(|c| u64::from(c.self_node_state().heartbeat()))
            .await
    }

    /// One gossip exchange with `addr` (to reach seeds given by name).
    pub fn gossip_with(&self, addr: SocketAddr) {
        let _ = self.handle.gossip(addr);
    }

    pub fn abort(&self) {
        let _ = self.handle.initiate_shutdown();
    }

    pub async fn shutdown(self) {
        let _ = self.handle.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::transport::ChannelTransport;
    use std::time::Instant;

    fn cfg(i: u16, seeds: Vec<String>) -> GossipConfig {
        GossipConfig {
            node_id: format!("c{i}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + i)),
            listen: SocketAddr::from(([127, 0, 0, 1], 20_000 + i)),
            seeds,
            cluster_id: "t".into(),
            interval: Duration::from_millis(50),
            phi_threshold: 8.0,
            rng_seed: Some(u64::from(i)),
            overlay: OverlayKind::Full,
        }
    }

    #[tokio::test]
    async fn members_join_learn_state_and_detect_death() {
        let t = ChannelTransport::default();
        let seed = vec!["127.0.0.1:20000".to_string()];
        let mut nodes = vec![];
        for i in 0..4u16 {
            let st = CloudletState {
                name: format!("c{i}"),
                free_vcpus: i64::from(i),
                healthy: true,
                ..Default::default()
            };
            nodes.push(Gossip::spawn(&cfg(i, seed.clone()), &st, &t).await.unwrap());
        }
        let t0 = Instant::now();
        while nodes.iter().any(|n| n.members_alive() < 4) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "join did not converge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // State updates propagate.
        nodes[1]
            .publish(&CloudletState {
                name: "c1".into(),
                free_vcpus: 99,
                healthy: true,
                ..Default::default()
            })
            .await;
        let t0 = Instant::now();
        loop {
            let v = nodes[3].live_view().await;
            if v.iter().any(|s| s.name == "c1" && s.free_vcpus == 99) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Kill one: the others notice.
        let dead = nodes.pop().unwrap();
        dead.shutdown().await;
        let t0 = Instant::now();
        while nodes.iter().any(|n| n.members_alive() != 3) {
            assert!(t0.elapsed() < Duration::from_secs(20), "death not detected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let known = nodes[0].known().await;
        assert!(known.iter().any(|(s, alive)| s.name == "c3" && !alive));
    }

    /// The partial view over a real (in-memory) transport: 12 agents with
    /// views of 4 join through one seed, learn a capacity change through
    /// shuffles, and forget a member that stopped.
    #[tokio::test]
    async fn cyclon_members_join_hold_partial_views_and_forget_the_dead() {
        let t = ChannelTransport::default();
        let seed = vec!["127.0.0.1:20100".to_string()];
        let params = CyclonParams {
            sizes: crate::cyclon::CyclonConfig {
                view_size: 4,
                shuffle_len: 2,
            },
            cache_size: 4,
            book_size: 0,
        };
        let mut nodes = vec![];
        for i in 0..12u16 {
            let st = CloudletState {
                name: format!("c{}", 100 + i),
                free_vcpus: 4,
                free_ram_mb: 4096,
                healthy: true,
                ..Default::default()
            };
            let mut c = cfg(100 + i, seed.clone());
            c.overlay = OverlayKind::Cyclon(params);
            nodes.push(Gossip::spawn(&c, &st, &t).await.unwrap());
        }
        let t0 = Instant::now();
        while nodes.iter().any(|n| n.partial_view() != Some((4, 4))) {
            assert!(t0.elapsed() < Duration::from_secs(10), "views did not fill");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for n in &nodes {
            assert!(n.members_alive() <= 1 + 4 + 4, "a partial view");
        }
        // The last member stops: within a few tens of rounds nobody holds it.
        let dead = nodes.pop().unwrap();
        dead.shutdown().await;
        let t0 = Instant::now();
        loop {
            let mut holders = 0;
            for n in &nodes {
                holders += usize::from(n.live_view().await.iter().any(|s| s.name == "c111"));
            }
            if holders == 0 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{holders} still hold it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Nobody is ever reported dead by a partial view: only forgotten.
        for n in &nodes {
            assert!(n.known().await.iter().all(|(_, alive)| *alive));
        }
    }
}
