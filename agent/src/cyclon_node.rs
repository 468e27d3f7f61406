//! CYCLON over the gossip transport: the timers and messages around the
//! sans-IO [`crate::cyclon`] state machine, plus what placement needs on
//! top of peer sampling (docs/agent.md, "Partial view"):
//!
//! - every descriptor carries its cloudlet's capacity report (a
//!   [`CloudletState`], versioned by its origin) with its age;
//! - a bounded cache of recent *good* candidates (healthy, not saturated,
//!   free vCPU and RAM) keeps what shuffles brought by after it left the
//!   view;
//! - when fewer than [`MIN_GOOD`] good candidates are known, a search
//!   walks a few hops over the overlay and the first agent that knows good
//!   candidates answers with them;
//! - a newcomer joins through a seed, which starts random walks whose ends
//!   admit it (reference/cyclon.md §3).
//!
//! Messages are JSON inside chitchat's `App` frame, so the transport's
//! authentication (cluster key) covers them as it covers chitchat's.
//! Memory per agent is bounded by the view and the cache, whatever N.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chitchat::transport::{Socket, Transport};
use chitchat::ChitchatMessage;
use cp_model::clock::{self, Instant};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cyclon::{Cyclon, CyclonConfig, Descriptor};
use crate::state::CloudletState;
use crate::AgentError;

/// A view entry: a member and its last capacity report.
pub type Desc = Descriptor<CloudletState>;

/// Hops of a join walk from the seed (the overlay's path length is about
/// log_c N: 3 at 10,000 members with c = 20; assumed).
const JOIN_HOPS: u8 = 4;
/// Hops of a search for candidates with free capacity (assumed).
const SEARCH_HOPS: u8 = 4;
/// Fewer good candidates than this (view and cache together) starts a
/// search, at most one per round (assumed).
pub const MIN_GOOD: usize = 3;
/// Descriptors a message may carry; more are cut (never trusted in bulk).
const MAX_ENTRIES: usize = 64;

/// What the overlay needs besides the CYCLON sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CyclonParams {
    pub sizes: CyclonConfig,
    /// Good candidates remembered beyond the view at most.
    pub cache_size: usize,
    /// Members the address book holds at most.
    pub book_size: usize,
}

impl CyclonParams {
    pub const DEFAULT: CyclonParams = CyclonParams {
        sizes: CyclonConfig::DEFAULT,
        // Assumed: a little more than a view, so a burst has spare targets.
        cache_size: 32,
        // Assumed: ~400 bytes each, 100 KB per agent whatever N.
        book_size: 256,
    };
}

/// The overlay's own messages.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// A shuffle request: the initiator's fresh descriptor first.
    Shuffle { entries: Vec<Desc> },
    /// The answer to a shuffle, from its target.
    Reply { from: String, entries: Vec<Desc> },
    /// A newcomer asking a seed (`walks` > 1) or a walk on its behalf.
    Join { joiner: Desc, hops: u8, walks: u8 },
    /// To a newcomer: the ends of its walks.
    Welcome { entries: Vec<Desc> },
    /// Looking for good candidates on behalf of `origin`.
    Search { origin: Desc, hops: u8 },
    /// Good candidates, to the origin of a search.
    Found { entries: Vec<Desc> },
    /// A census (global lists): flooded over every view edge once per
    /// agent; each agent answers `origin` with its own descriptor.
    Census { id: u64, origin: String },
    /// One agent's answer to a census.
    Present { id: u64, member: Desc },
    /// Who holds the routing tag `tag` (a global ID's coordinator)?
    /// Flooded like a census; only the holder answers.
    Lookup {
        id: u64,
        tag: [u8; 6],
        origin: String,
    },
}

/// Counters of one agent's overlay traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OverlayStats {
    pub rounds: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub shuffles_unanswered: u64,
    pub searches_started: u64,
}

/// Whether a report makes its cloudlet worth trying for a boot.
pub fn good_candidate(s: &CloudletState) -> bool {
    s.healthy && !s.saturated && s.free_vcpus > 0 && s.free_ram_mb > 0
}

struct Cached {
    desc: Desc,
    /// Last time a fresh copy (newer version, or straight from its origin)
    /// was seen.
    heard: Instant,
}

/// One agent's overlay state: the protocol state machine, the candidate
/// cache, the RNG and the counters. Pure: every input is an argument.
pub struct NodeState {
    cyclon: Cyclon<CloudletState>,
    params: CyclonParams,
    cache: BTreeMap<String, Cached>,
    cache_ttl: Duration,
    rng: StdRng,
    stats: OverlayStats,
    /// Addresses this agent exchanged shuffles or joins with lately, newest
    /// last (at most 2c): floods also go there, so that they travel both
    /// ways along view edges (a member nobody's view holds right now is
    /// still reached).
    contacts: std::collections::VecDeque<String>,
    /// Floods seen lately (census and lookup ids, with when): each is
    /// forwarded once. See [`FLOOD_MEMORY`].
    seen_floods: std::collections::VecDeque<(u64, Instant)>,
    /// The same ids, for lookups.
    seen_flood_ids: std::collections::BTreeSet<u64>,
    /// Answers to this agent's floods in progress, by id.
    collecting: BTreeMap<u64, Vec<Desc>>,
    /// Address book: the last report of members met lately (in any
    /// message, or found by a lookup), so that an agent can still call the
    /// cloudlet it placed a boot on after it left the view. Bounded.
    book: AddressBook,
    /// Rounds to wait before asking the seeds again while alone, and the
    /// current bound of that wait (see [`JOIN_BACKOFF_MAX`]).
    join_wait: u32,
    join_backoff: u32,
}

/// One member's entry in the [`AddressBook`].
struct BookEntry {
    state: CloudletState,
    version: u64,
    /// Last met (or used), and the entry's key in the book's order.
    met: Instant,
    order_key: Arc<str>,
    /// Used (a boot placed on it, a lookup's answer): in the book's
    /// protected part.
    used: bool,
}

type Order = std::collections::BTreeSet<(Instant, Arc<str>)>;

/// The address book: the last report of up to `book_size` members met
/// lately, in two parts. Members used (found for a call: a boot placed on
/// them, a lookup's answer) sit in a protected part of up to half the
/// book; the others leave first, the least recently met first (ties by
/// name); a used member leaves the protected part (back to the others)
/// when more recently used ones need its room. Without that, at N well
/// above the book's size every shuffle's new descriptors pushed out the
/// owners of this agent's boots within seconds, and each poll of such a
/// boot flooded a lookup over the whole overlay (N·c messages).
/// The order is kept in an index, so that noting a new member in a full
/// book does not scan it (at 1,024 cloudlets the scan was ~11 % of a sim
/// run's CPU: nearly every descriptor a shuffle brings is new to a book
/// of 256). While N − 1 ≤ `book_size` nobody ever leaves.
#[derive(Default)]
struct AddressBook {
    entries: BTreeMap<String, BookEntry>,
    /// (last met, name) of every entry not used: the first is the next to go.
    order: Order,
    /// (last used or met, name) of the used entries.
    used: Order,
}

impl AddressBook {
    /// Moves `e` to `now` in its part's order.
    fn met(&mut self, name: &str, now: Instant) -> Option<&mut BookEntry> {
        let e = self.entries.get_mut(name)?;
        if e.met != now {
            let order = if e.used {
                &mut self.used
            } else {
                &mut self.order
            };
            order.remove(&(e.met, e.order_key.clone()));
            e.met = now;
            order.insert((now, e.order_key.clone()));
        }
        Some(e)
    }

    /// Notes `d`'s report (a newer version, or another report of the same
    /// version, replaces the held one) as met at `now`.
    fn note(&mut self, d: &Desc, now: Instant, book_size: usize) {
        if let Some(e) = self.met(&d.id, now) {
            if d.version > e.version || (d.version == e.version && e.state != d.payload) {
                e.state = d.payload.clone();
                e.version = d.version;
            }
            return;
        }
        if book_size == 0 {
            return;
        }
        if self.entries.len() >= book_size {
            let oldest = match self.order.pop_first() {
                Some(o) => Some(o),
                None => self.used.pop_first(),
            };
            if let Some((_, oldest)) = oldest {
                self.entries.remove(&*oldest);
            }
        }
        let key: Arc<str> = Arc::from(d.id.as_str());
        self.order.insert((now, key.clone()));
        self.entries.insert(
            d.id.clone(),
            BookEntry {
                state: d.payload.clone(),
                version: d.version,
                met: now,
                order_key: key,
                used: false,
            },
        );
    }

    /// `name`'s report, marked as used at `now`: it moves to the protected
    /// part (of at most `book_size / 2`; the least recently used there goes
    /// back to the others when it is full).
    fn touch(&mut self, name: &str, now: Instant, book_size: usize) -> Option<CloudletState> {
        let e = self.entries.get_mut(name)?;
        if !e.used {
            self.order.remove(&(e.met, e.order_key.clone()));
            e.used = true;
            e.met = now;
            self.used.insert((now, e.order_key.clone()));
            let state = e.state.clone();
            while self.used.len() > book_size / 2 {
                let Some((met, key)) = self.used.pop_first() else {
                    break;
                };
                if let Some(d) = self.entries.get_mut(&*key) {
                    d.used = false;
                }
                self.order.insert((met, key));
            }
            return Some(state);
        }
        self.met(name, now).map(|e| e.state.clone())
    }
}

/// A member alone asks the seeds again after a random wait of up to this
/// many rounds, the bound doubling from 1 on every unanswered try. When
/// hundreds of members start at once, every one of them asking the same
/// seed every round buried the seed in joins (each starting c walks): on
/// loopback its datagrams were dropped, more members stayed alone and asked
/// again (1,000 real-time members did not settle within 36 s). Assumed.
const JOIN_BACKOFF_MAX: u32 = 32;

/// Flood ids remembered: at least the last this many, and every id seen
/// within [`FLOOD_MEMORY`]. A count alone did not suffice: when more than
/// 256 floods were under way at once (1,090 lookups in the first seconds of
/// a burst of 8,192 boots at 512 cloudlets on sim), members forgot ids
/// of floods still crossing the overlay and forwarded them again, and the
/// floods never ended (the process grew past 10 GiB).
const SEEN_FLOODS: usize = 256;

/// A flood crosses the overlay in a few hops; an id seen this long ago is
/// no longer under way (assumed, with a wide margin for loaded hosts).
const FLOOD_MEMORY: Duration = Duration::from_secs(60);

type Outbox = Vec<(String, Wire)>;

impl NodeState {
    pub fn new(
        params: CyclonParams,
        me: &CloudletState,
        addr: SocketAddr,
        interval: Duration,
        seed: u64,
    ) -> Self {
        NodeState {
            cyclon: Cyclon::new(params.sizes, me.name.clone(), addr.to_string(), me.clone()),
            params,
            cache: BTreeMap::new(),
            // A dead member's descriptors leave every view within about c
            // rounds (oldest first); a cached one lasts twice that unless
            // a fresh copy comes by.
            cache_ttl: interval * (2 * params.sizes.view_size as u32).max(4),
            rng: StdRng::seed_from_u64(seed),
            stats: OverlayStats::default(),
            seen_floods: std::collections::VecDeque::new(),
            seen_flood_ids: std::collections::BTreeSet::new(),
            contacts: std::collections::VecDeque::new(),
            collecting: BTreeMap::new(),
            book: AddressBook::default(),
            join_wait: 0,
            join_backoff: 0,
        }
    }

    /// Remembers a recent exchange partner (see `contacts`).
    fn contact(&mut self, addr: String) {
        self.contacts.retain(|a| *a != addr);
        if self.contacts.len() >= 2 * self.params.sizes.view_size {
            self.contacts.pop_front();
        }
        self.contacts.push_back(addr);
    }

    /// Where a flood goes from here: the view and the recent contacts,
    /// each address once, never `except`.
    fn flood_targets(&self, except: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self
            .cyclon
            .view()
            .iter()
            .map(|d| &d.addr)
            .chain(self.contacts.iter())
        {
            if a != except && !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Notes a member's report in the address book (a newer version
    /// replaces an older one; the least recently met goes when full).
    fn note(&mut self, d: &Desc, now: Instant) {
        if d.id == self.cyclon.id() || d.id != d.payload.name {
            return;
        }
        self.book.note(d, now, self.params.book_size);
    }

    /// The first member of [`NodeState::live_view`] that `pred` accepts,
    /// found without copying the view (per-request lookups call this).
    fn live_find(
        &self,
        now: Instant,
        pred: impl Fn(&CloudletState) -> bool,
    ) -> Option<&CloudletState> {
        self.live(now).find(|s| pred(s))
    }

    /// The first member of [`NodeState::known`] that `pred` accepts, found
    /// without copying the view and the book.
    fn known_find(
        &self,
        now: Instant,
        pred: impl Fn(&CloudletState) -> bool,
    ) -> Option<&CloudletState> {
        // A member in the live view is found there first, so the book's
        // copies of live members (which `known` leaves out) never win.
        self.live_find(now, &pred).or_else(|| {
            self.book
                .entries
                .values()
                .map(|e| &e.state)
                .find(|s| pred(s))
        })
    }

    /// The live view, then the address book's other members.
    pub fn known(&self, now: Instant) -> Vec<CloudletState> {
        let mut out = self.live_view(now);
        let others: Vec<CloudletState> = {
            let mut names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            self.book
                .entries
                .iter()
                .filter(|(name, _)| names.binary_search(&name.as_str()).is_err())
                .map(|(_, e)| e.state.clone())
                .collect()
        };
        out.extend(others);
        out
    }

    /// Starts a flood from this agent: a census (`tag` = `None`) or a
    /// lookup. Answers gather under the returned id.
    fn start_flood(&mut self, tag: Option<[u8; 6]>, now: Instant) -> (u64, Outbox) {
        let id: u64 = self.rng.gen();
        self.remember_flood(id, now);
        self.collecting.insert(id, Vec::new());
        let origin = self.cyclon.own().addr.clone();
        let msg = |origin: String| match tag {
            None => Wire::Census { id, origin },
            Some(tag) => Wire::Lookup { id, tag, origin },
        };
        let out = self
            .flood_targets(&origin)
            .into_iter()
            .map(|a| (a, msg(origin.clone())))
            .collect();
        (id, out)
    }

    /// `true` the first time `id` is seen.
    fn remember_flood(&mut self, id: u64, now: Instant) -> bool {
        if self.seen_flood_ids.contains(&id) {
            return false;
        }
        while self.seen_floods.len() >= SEEN_FLOODS {
            match self.seen_floods.front() {
                Some(&(old, at)) if now.saturating_duration_since(at) >= FLOOD_MEMORY => {
                    self.seen_floods.pop_front();
                    self.seen_flood_ids.remove(&old);
                }
                _ => break,
            }
        }
        self.seen_floods.push_back((id, now));
        self.seen_flood_ids.insert(id);
        true
    }

    /// Answers gathered so far for flood `id`.
    fn answers(&self, id: u64) -> usize {
        self.collecting.get(&id).map_or(0, Vec::len)
    }

    fn finish_flood(&mut self, id: u64) -> Vec<Desc> {
        self.collecting.remove(&id).unwrap_or_default()
    }

    /// Forwards a flood to the view and recent contacts but the sender.
    fn forward_flood(&self, from: SocketAddr, msg: impl Fn() -> Wire) -> Outbox {
        self.flood_targets(&from.to_string())
            .into_iter()
            .map(|a| (a, msg()))
            .collect()
    }

    pub fn stats(&self) -> OverlayStats {
        self.stats
    }

    pub fn view_len(&self) -> usize {
        self.cyclon.view().len()
    }

    pub fn publish(&mut self, s: &CloudletState) {
        self.cyclon.set_payload(s.clone());
    }

    /// Self first, then the view, then cached candidates not in the view
    /// (and not expired at `now`), borrowed: what every reading of the live
    /// view walks.
    fn live(&self, now: Instant) -> impl Iterator<Item = &CloudletState> {
        let cached = self
            .cache
            .iter()
            .filter(move |(name, c)| {
                !self.cyclon.holds(name) && now.saturating_duration_since(c.heard) < self.cache_ttl
            })
            .map(|(_, c)| &c.desc.payload);
        std::iter::once(&self.cyclon.own().payload)
            .chain(self.cyclon.view().iter().map(|d| &d.payload))
            .chain(cached)
    }

    /// [`NodeState::live`], copied.
    pub fn live_view(&self, now: Instant) -> Vec<CloudletState> {
        self.live(now).cloned().collect()
    }

    /// Good candidates in [`NodeState::live_view`] (self aside), counted
    /// without copying the view.
    fn good_known(&self, now: Instant) -> usize {
        self.live(now).skip(1).filter(|s| good_candidate(s)).count()
    }

    /// Notes a descriptor seen in any message: the candidate cache keeps
    /// good ones and drops those whose newer report is not good.
    fn observe(&mut self, d: &Desc, now: Instant) {
        if d.id == self.cyclon.id() || d.id != d.payload.name {
            return;
        }
        self.note(d, now);
        let fresher = match self.cache.get(&d.id) {
            Some(c) => d.version > c.desc.version || d.age == 0,
            None => true,
        };
        if !fresher {
            return;
        }
        if !good_candidate(&d.payload) || self.params.cache_size == 0 {
            self.cache.remove(&d.id);
            return;
        }
        if !self.cache.contains_key(&d.id) && self.cache.len() >= self.params.cache_size {
            // Room for the newest: the one heard of longest ago goes.
            if let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, c)| c.heard)
                .map(|(n, _)| n.clone())
            {
                self.cache.remove(&oldest);
            }
        }
        self.cache.insert(
            d.id.clone(),
            Cached {
                desc: d.clone(),
                heard: now,
            },
        );
    }

    /// One gossip round: gives up an unanswered shuffle (its target was
    /// already dropped from the view, and now from the cache), asks the
    /// seeds again while alone, starts a shuffle with the oldest entry,
    /// expires the cache, and searches when good candidates run short.
    fn on_tick(&mut self, seeds: &[SocketAddr], now: Instant) -> Outbox {
        let mut out = Outbox::new();
        self.stats.rounds += 1;
        if let Some(gone) = self.cyclon.abandon_pending() {
            self.stats.shuffles_unanswered += 1;
            self.cache.remove(&gone);
        }
        let me = self.cyclon.own_descriptor();
        if !self.cyclon.view().is_empty() {
            self.join_backoff = 0;
            self.join_wait = 0;
        } else if self.join_wait > 0 {
            self.join_wait -= 1;
        } else {
            self.join_backoff = (self.join_backoff * 2).clamp(1, JOIN_BACKOFF_MAX);
            self.join_wait = self.rng.gen_range(0..=self.join_backoff);
            let walks = u8::try_from(self.params.sizes.view_size).unwrap_or(u8::MAX);
            for s in seeds {
                out.push((
                    s.to_string(),
                    Wire::Join {
                        joiner: me.clone(),
                        hops: JOIN_HOPS,
                        walks,
                    },
                ));
            }
        }
        if let Some(s) = self.cyclon.start_shuffle(&mut self.rng) {
            out.push((s.target.addr, Wire::Shuffle { entries: s.entries }));
        }
        let ttl = self.cache_ttl;
        self.cache
            .retain(|_, c| now.saturating_duration_since(c.heard) < ttl);
        if self.good_known(now) < MIN_GOOD {
            if let Some(p) = self.cyclon.random_peer("", &mut self.rng) {
                self.stats.searches_started += 1;
                out.push((
                    p.addr.clone(),
                    Wire::Search {
                        origin: me,
                        hops: SEARCH_HOPS,
                    },
                ));
            }
        }
        out
    }

    /// Handles one message from `from` (its transport address).
    fn on_message(&mut self, from: SocketAddr, msg: Wire, now: Instant) -> Outbox {
        self.stats.messages_received += 1;
        let mut out = Outbox::new();
        let me = self.cyclon.own_descriptor();
        match msg {
            Wire::Shuffle { mut entries } => {
                self.contact(from.to_string());
                entries.truncate(MAX_ENTRIES);
                for d in &entries {
                    self.observe(d, now);
                }
                let reply = self.cyclon.on_request(entries, &mut self.rng);
                out.push((
                    from.to_string(),
                    Wire::Reply {
                        from: me.id,
                        entries: reply,
                    },
                ));
            }
            Wire::Reply {
                from: id,
                mut entries,
            } => {
                self.contact(from.to_string());
                entries.truncate(MAX_ENTRIES);
                for d in &entries {
                    self.observe(d, now);
                }
                self.cyclon.on_reply(&id, entries);
            }
            Wire::Join {
                joiner,
                hops,
                walks,
            } => {
                if joiner.id == me.id || joiner.id != joiner.payload.name {
                    return out;
                }
                self.observe(&joiner, now);
                if walks > 1 && !self.cyclon.view().is_empty() {
                    // The seed: one walk per view slot the newcomer needs.
                    for _ in 0..walks.min(self.params.sizes.view_size as u8) {
                        if let Some(p) = self.cyclon.random_peer(&joiner.id, &mut self.rng) {
                            out.push((
                                p.addr.clone(),
                                Wire::Join {
                                    joiner: joiner.clone(),
                                    hops: hops.saturating_sub(1),
                                    walks: 1,
                                },
                            ));
                        }
                    }
                    return out;
                }
                let next = (hops > 0)
                    .then(|| self.cyclon.random_peer(&joiner.id, &mut self.rng))
                    .flatten()
                    .map(|p| p.addr.clone());
                match next {
                    Some(addr) => out.push((
                        addr,
                        Wire::Join {
                            joiner,
                            hops: hops - 1,
                            walks: 1,
                        },
                    )),
                    None => {
                        let addr = joiner.addr.clone();
                        let mut entries = vec![me];
                        entries.extend(self.cyclon.admit(joiner, &mut self.rng));
                        out.push((addr, Wire::Welcome { entries }));
                    }
                }
            }
            Wire::Welcome { mut entries } | Wire::Found { mut entries } => {
                self.contact(from.to_string());
                entries.truncate(self.params.sizes.shuffle_len.max(2));
                for d in entries {
                    self.observe(&d, now);
                    if d.id == d.payload.name {
                        self.cyclon.add_contact(d);
                    }
                }
            }
            Wire::Search { origin, hops } => {
                if origin.id == me.id {
                    return out;
                }
                self.observe(&origin, now);
                let mut found: Vec<Desc> = std::iter::once(me)
                    .chain(self.cyclon.view().iter().cloned())
                    .chain(self.cache.values().map(|c| c.desc.clone()))
                    .filter(|d| d.id != origin.id && good_candidate(&d.payload))
                    .collect();
                if found.is_empty() {
                    if hops > 0 {
                        if let Some(p) = self.cyclon.random_peer(&origin.id, &mut self.rng) {
                            out.push((
                                p.addr.clone(),
                                Wire::Search {
                                    origin,
                                    hops: hops - 1,
                                },
                            ));
                        }
                    }
                    return out;
                }
                // The roomiest first; ties by name, so runs repeat.
                found.sort_by(|a, b| {
                    b.payload
                        .free_vcpus
                        .cmp(&a.payload.free_vcpus)
                        .then(a.id.cmp(&b.id))
                });
                found.dedup_by(|a, b| a.id == b.id);
                found.truncate(self.params.sizes.shuffle_len);
                out.push((origin.addr, Wire::Found { entries: found }));
            }
            Wire::Census { id, origin } => {
                if !self.remember_flood(id, now) {
                    return out;
                }
                out = self.forward_flood(from, || Wire::Census {
                    id,
                    origin: origin.clone(),
                });
                out.push((origin, Wire::Present { id, member: me }));
            }
            Wire::Lookup { id, tag, origin } => {
                if !self.remember_flood(id, now) {
                    return out;
                }
                if crate::idroute::tag_of(&me.id) == tag {
                    out.push((origin, Wire::Present { id, member: me }));
                } else {
                    out = self.forward_flood(from, || Wire::Lookup {
                        id,
                        tag,
                        origin: origin.clone(),
                    });
                }
            }
            Wire::Present { id, member } => {
                if member.id != member.payload.name {
                    return out;
                }
                if let Some(list) = self.collecting.get_mut(&id) {
                    if list.iter().all(|d| d.id != member.id) {
                        list.push(member);
                    }
                }
            }
        }
        out
    }
}

enum Command {
    /// Knock at an address (a seed given by name, resolved by the agent).
    Join(SocketAddr),
    /// Send these messages (a flood started outside the loop).
    Send(Outbox),
}

/// How long a flood's origin waits for answers: until none came for
/// `FLOOD_QUIET`, at most `FLOOD_LIMIT` (assumed: a flood crosses the
/// overlay in about log_c N hops of one network delay each).
const FLOOD_QUIET: Duration = Duration::from_millis(200);
const FLOOD_LIMIT: Duration = Duration::from_secs(5);

/// A running CYCLON overlay member.
pub struct CyclonNode {
    state: Arc<Mutex<NodeState>>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl CyclonNode {
    /// Opens `cfg.listen` on `transport` and starts the rounds. Seeds
    /// given as `ip:port` are joined through; names are resolved by the
    /// agent and knocked at with [`CyclonNode::join_via`].
    pub async fn spawn(
        params: CyclonParams,
        me: &CloudletState,
        cfg: &crate::gossip::GossipConfig,
        transport: &dyn Transport,
    ) -> Result<Self, AgentError> {
        let seeds: Vec<SocketAddr> = cfg
            .seeds
            .iter()
            .filter_map(|s| s.parse::<SocketAddr>().ok())
            .filter(|a| *a != cfg.addr)
            .collect();
        let (addr, listen, interval) = (cfg.addr, cfg.listen, cfg.interval);
        let seed = cfg.rng_seed.unwrap_or_else(rand::random);
        let params = CyclonParams {
            sizes: params.sizes.validate().map_err(AgentError::Config)?,
            ..params
        };
        let socket = transport
            .open(listen)
            .await
            .map_err(|e| AgentError::Gossip(e.to_string()))?;
        let mut node = NodeState::new(params, me, addr, interval, seed);
        // Jittered first round, so members started together do not shuffle
        // in lockstep (reference/cyclon.md §8).
        let jitter = interval.mul_f64(node.rng.gen::<f64>());
        let state = Arc::new(Mutex::new(node));
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(state.clone(), socket, seeds, interval, jitter, rx));
        Ok(CyclonNode {
            state,
            commands,
            task,
        })
    }

    fn lock(&self) -> MutexGuard<'_, NodeState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn publish(&self, s: &CloudletState) {
        self.lock().publish(s);
    }

    pub fn live_view(&self) -> Vec<CloudletState> {
        self.lock().live_view(clock::now())
    }

    pub fn view_len(&self) -> usize {
        self.lock().view_len()
    }

    /// The view size `c`.
    pub fn view_size(&self) -> usize {
        self.lock().params.sizes.view_size
    }

    pub fn stats(&self) -> OverlayStats {
        self.lock().stats()
    }

    pub fn join_via(&self, addr: SocketAddr) {
        let _ = self.commands.send(Command::Join(addr));
    }

    /// Every member reachable over the overlay, by a census flooded over
    /// every view edge (N·c small messages, N answers to this agent):
    /// what global lists and sums fan out to when nobody knows everyone.
    /// Self first.
    pub async fn census(&self) -> Vec<CloudletState> {
        let mut members = self.flood(None, usize::MAX).await;
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = vec![self.lock().cyclon.own_descriptor().payload];
        out.extend(members.into_iter().map(|d| d.payload));
        out
    }

    /// The member whose routing tag is `tag` (a global ID's coordinator),
    /// found by a flood that only it answers.
    pub async fn lookup(&self, tag: [u8; 6]) -> Option<CloudletState> {
        {
            // Self included: the live view starts with this agent.
            let s = self.lock();
            if let Some(hit) =
                s.known_find(clock::now(), |m| crate::idroute::tag_of(&m.name) == tag)
            {
                return Some(hit.clone());
            }
        }
        let found = self.flood(Some(tag), 1).await.into_iter().next()?;
        {
            let now = clock::now();
            let mut s = self.lock();
            s.note(&found, now);
            let size = s.params.book_size;
            s.book.touch(&found.id, now, size);
        }
        Some(found.payload)
    }

    /// Members met lately: the live view, then the address book.
    pub fn known(&self) -> Vec<CloudletState> {
        self.lock().known(clock::now())
    }

    /// The URL of `name` if it is among [`CyclonNode::known`] (no lookup,
    /// nothing else copied).
    pub fn url_of(&self, name: &str) -> Option<String> {
        self.lock()
            .known_find(clock::now(), |m| m.name == name)
            .map(|m| m.url.clone())
    }

    /// Whether `name` is in [`CyclonNode::live_view`].
    pub fn is_live(&self, name: &str) -> bool {
        self.lock()
            .live_find(clock::now(), |m| m.name == name)
            .is_some()
    }

    /// The member `name` if known; an address-book entry in use is kept
    /// (least recently *used* members leave the book first).
    pub fn find(&self, name: &str) -> Option<CloudletState> {
        let now = clock::now();
        let mut s = self.lock();
        let size = s.params.book_size;
        if let Some(state) = s.book.touch(name, now, size) {
            return Some(state);
        }
        s.live_find(now, |m| m.name == name).cloned()
    }

    async fn flood(&self, tag: Option<[u8; 6]>, enough: usize) -> Vec<Desc> {
        let (id, out) = self.lock().start_flood(tag, clock::now());
        tracing::debug!(
            kind = if tag.is_some() { "lookup" } else { "census" },
            targets = out.len(),
            "overlay flood started"
        );
        let _ = self.commands.send(Command::Send(out));
        let start = clock::now();
        let mut last_change = start;
        let mut seen = 0;
        loop {
            tokio::time::sleep(FLOOD_QUIET / 10).await;
            let now = clock::now();
            let n = self.lock().answers(id);
            if n != seen {
                seen = n;
                last_change = now;
            }
            if seen >= enough
                || now.saturating_duration_since(last_change) >= FLOOD_QUIET
                || now.saturating_duration_since(start) >= FLOOD_LIMIT
            {
                break;
            }
        }
        self.lock().finish_flood(id)
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for CyclonNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Event {
    Tick,
    Message(anyhow::Result<(SocketAddr, ChitchatMessage)>),
    Command(Option<Command>),
}

async fn run(
    state: Arc<Mutex<NodeState>>,
    mut socket: Box<dyn Socket>,
    seeds: Vec<SocketAddr>,
    interval: Duration,
    jitter: Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut tick = tokio::time::interval_at(clock::now() + jitter, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lock = || match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    loop {
        let event = tokio::select! {
            // Fixed order: the same seed repeats the same run on virtual time.
            biased;
            _ = tick.tick() => Event::Tick,
            m = socket.recv() => Event::Message(m),
            c = commands.recv() => Event::Command(c),
        };
        let out = match event {
            Event::Tick => lock().on_tick(&seeds, clock::now()),
            Event::Message(Ok((from, ChitchatMessage::App(bytes)))) => {
                match serde_json::from_slice::<Wire>(&bytes) {
                    Ok(msg) => lock().on_message(from, msg, clock::now()),
                    Err(e) => {
                        tracing::debug!(%from, error = %e, "undecodable overlay message");
                        continue;
                    }
                }
            }
            Event::Message(Ok(_)) => continue,
            Event::Message(Err(e)) => {
                tracing::debug!(error = %e, "overlay socket closed");
                return;
            }
            Event::Command(Some(Command::Join(addr))) => {
                let s = lock();
                let joiner = s.cyclon.own_descriptor();
                let walks = u8::try_from(s.params.sizes.view_size).unwrap_or(u8::MAX);
                vec![(
                    addr.to_string(),
                    Wire::Join {
                        joiner,
                        hops: JOIN_HOPS,
                        walks,
                    },
                )]
            }
            Event::Command(Some(Command::Send(out))) => out,
            Event::Command(None) => return,
        };
        for (to, msg) in out {
            let Ok(to) = to.parse::<SocketAddr>() else {
                continue;
            };
            let Ok(bytes) = serde_json::to_vec(&msg) else {
                continue;
            };
            {
                let mut s = lock();
                s.stats.messages_sent += 1;
                s.stats.bytes_sent += bytes.len() as u64;
            }
            let _ = socket.send(to, ChitchatMessage::App(bytes)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn state(i: usize, free: i64) -> CloudletState {
        CloudletState {
            name: format!("c{i:04}"),
            url: format!("http://agent-{i}"),
            free_vcpus: free,
            free_ram_mb: free * 512,
            free_disk_gb: free * 10,
            total_vcpus: 8,
            healthy: true,
            ..Default::default()
        }
    }

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 7946))
    }

    /// `n` nodes exchanging messages synchronously (no sockets, no time but
    /// the one given): each message is delivered at once, in order.
    struct Net {
        nodes: Vec<NodeState>,
        by_addr: HashMap<String, usize>,
        dead: HashSet<usize>,
        now: Instant,
        interval: Duration,
    }

    impl Net {
        fn new(n: usize, params: CyclonParams, free: impl Fn(usize) -> i64) -> Net {
            let interval = Duration::from_millis(100);
            let nodes = (0..n)
                .map(|i| NodeState::new(params, &state(i, free(i)), addr(i), interval, i as u64))
                .collect();
            let by_addr = (0..n).map(|i| (addr(i).to_string(), i)).collect();
            Net {
                nodes,
                by_addr,
                dead: HashSet::new(),
                now: clock::now(),
                interval,
            }
        }

        fn deliver(&mut self, from: usize, out: Outbox) {
            let mut queue: Vec<(usize, String, Wire)> =
                out.into_iter().map(|(to, w)| (from, to, w)).collect();
            while !queue.is_empty() {
                let (src, to, w) = queue.remove(0);
                let Some(&dst) = self.by_addr.get(&to) else {
                    continue;
                };
                if self.dead.contains(&dst) {
                    continue;
                }
                let more = self.nodes[dst].on_message(addr(src), w, self.now);
                queue.extend(more.into_iter().map(|(t, w)| (dst, t, w)));
            }
        }

        /// Every live node joins through node 0, one after the other.
        fn join_all(&mut self) {
            for i in 1..self.nodes.len() {
                let out = self.nodes[i].on_tick(&[addr(0)], self.now);
                self.deliver(i, out);
            }
        }

        fn rounds(&mut self, k: usize) {
            for _ in 0..k {
                self.now += self.interval;
                for i in 0..self.nodes.len() {
                    if self.dead.contains(&i) {
                        continue;
                    }
                    let out = self.nodes[i].on_tick(&[addr(0)], self.now);
                    self.deliver(i, out);
                }
            }
        }
    }

    #[test]
    fn members_join_through_one_seed_and_fill_their_views() {
        let params = CyclonParams::DEFAULT;
        let mut net = Net::new(300, params, |_| 4);
        net.join_all();
        net.rounds(20);
        let c = params.sizes.view_size;
        for (i, n) in net.nodes.iter().enumerate() {
            assert!(n.view_len() >= c - 2, "node {i} holds {}", n.view_len());
            // Memory is bounded by the view and the cache, whatever N.
            assert!(n.live_view(net.now).len() <= 1 + c + params.cache_size);
        }
    }

    /// A member whose seed does not answer asks again ever more rarely
    /// (with jitter), not every round: hundreds of lonely members asking
    /// one seed every round kept it too busy to admit them.
    #[test]
    fn a_lonely_member_backs_off_its_joins_and_stops_once_it_has_a_view() {
        let params = CyclonParams::DEFAULT;
        let n = 30;
        let late = n - 1; // joins last, while its seed cannot be reached
        let mut net = Net::new(n, params, |_| 4);
        for i in 1..late {
            let out = net.nodes[i].on_tick(&[addr(0)], net.now);
            net.deliver(i, out);
        }
        let joins = |out: &Outbox| {
            out.iter()
                .filter(|(_, w)| matches!(w, Wire::Join { .. }))
                .count()
        };
        let mut sent = 0;
        for _ in 0..200 {
            net.now += net.interval;
            // Its datagrams are lost: nothing is delivered.
            sent += joins(&net.nodes[late].on_tick(&[addr(0)], net.now));
        }
        // Waits up to 1, 2, 4, ... 32 rounds: about 12 tries in 200 rounds
        // on average, never the 200 of a fixed retry.
        assert!((5..=40).contains(&sent), "{sent} joins in 200 rounds");
        // The seed answers again: admitted within the longest wait, and
        // then it never asks again.
        let mut asked_after = 0;
        for round in 0..80 {
            net.now += net.interval;
            for i in 0..n {
                let out = net.nodes[i].on_tick(&[addr(0)], net.now);
                if i == late && round >= 40 {
                    asked_after += joins(&out);
                }
                net.deliver(i, out);
            }
        }
        assert!(net.nodes[late].view_len() >= params.sizes.view_size / 2);
        assert_eq!(asked_after, 0, "joins after it was admitted");
    }

    /// Placement with a partial view: most cloudlets are full; every agent
    /// still knows a few with room (cache and search), and placement over
    /// what it knows picks one of them.
    #[test]
    fn placement_finds_room_with_a_partial_view_when_most_cloudlets_are_full() {
        let params = CyclonParams::DEFAULT;
        // 400 cloudlets, 1 in 50 with room.
        let mut net = Net::new(400, params, |i| if i % 50 == 7 { 8 } else { 0 });
        net.join_all();
        net.rounds(30);
        let mut rng = StdRng::seed_from_u64(3);
        let demand = crate::placement::Demand {
            vcpus: 1,
            ram_mb: 512,
            disk_gb: 1,
        };
        let policy = crate::placement::Policy {
            local_max_builds: 10,
        };
        let mut placed_with_room = 0;
        for (i, n) in net.nodes.iter().enumerate() {
            let view = n.live_view(net.now);
            assert!(view.len() < 100, "node {i} is not a full view");
            let tried = HashSet::new();
            let choice =
                crate::placement::choose(&view[0].name, &view, &demand, &tried, &policy, &mut rng);
            if let Some(c) = choice {
                let st = view.iter().find(|s| s.name == c).expect("chosen from view");
                if st.free_vcpus >= 1 {
                    placed_with_room += 1;
                }
            }
        }
        // The overlay holds 8 roomy cloudlets among 400: without the cache
        // and the search a view of 20 would hold one by chance for ~1/3
        // of the agents.
        assert!(
            placed_with_room * 100 >= net.nodes.len() * 95,
            "{placed_with_room} of {} agents found room",
            net.nodes.len()
        );
    }

    #[test]
    fn a_dead_member_leaves_every_view_and_cache() {
        let params = CyclonParams::DEFAULT;
        let mut net = Net::new(200, params, |_| 4);
        net.join_all();
        net.rounds(20);
        net.dead.insert(17);
        let dead = state(17, 4).name;
        let mut rounds = 0;
        loop {
            net.rounds(1);
            rounds += 1;
            let holders = net
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !net.dead.contains(i))
                .filter(|(_, n)| n.live_view(net.now).iter().any(|s| s.name == dead))
                .count();
            if holders == 0 {
                break;
            }
            assert!(rounds < 200, "{holders} agents still hold the dead member");
        }
        // Bounded by the cache's expiry (2c rounds) plus the view's turnover.
        assert!(rounds <= 2 * params.sizes.view_size + 10, "{rounds} rounds");
    }

    #[test]
    fn capacity_news_replaces_older_reports_and_full_ones_leave_the_cache() {
        let params = CyclonParams::DEFAULT;
        let mut net = Net::new(60, params, |_| 4);
        net.join_all();
        net.rounds(10);
        let mut full = state(5, 0);
        full.free_ram_mb = 0;
        net.nodes[5].publish(&full);
        // Longer than a cached copy lives (2c rounds) unless a fresh one
        // comes by: a stale "room" report must not survive anywhere.
        net.rounds(2 * params.sizes.view_size + 5);
        for (i, n) in net.nodes.iter().enumerate() {
            if let Some(s) = n.live_view(net.now).iter().find(|s| s.name == full.name) {
                assert!(i == 5 || s.free_vcpus == 0, "node {i} holds a stale report");
            }
        }
    }

    /// The per-request searches (`live_find`, `known_find`) answer what
    /// searching the copies (`live_view`, `known`) answers, for members in
    /// the view, in the cache, only in the address book, and unknown.
    #[test]
    fn searches_without_copies_agree_with_the_copies() {
        let params = CyclonParams::DEFAULT;
        let mut net = Net::new(300, params, |i| if i % 3 == 0 { 0 } else { 4 });
        net.join_all();
        net.rounds(30);
        let mut in_book_only = 0;
        for n in net.nodes.iter().take(20) {
            let live = n.live_view(net.now);
            let known = n.known(net.now);
            for i in 0..300 {
                let name = state(i, 0).name;
                let by_name = |m: &CloudletState| m.name == name;
                assert_eq!(
                    n.live_find(net.now, by_name).map(|m| &m.url),
                    live.iter().find(|m| by_name(m)).map(|m| &m.url)
                );
                let want = known.iter().find(|m| by_name(m));
                assert_eq!(n.known_find(net.now, by_name), want);
                if want.is_some() && !live.iter().any(by_name) {
                    in_book_only += 1;
                }
            }
        }
        assert!(in_book_only > 0, "no member was known from the book alone");
    }

    #[test]
    fn garbage_and_impostor_descriptors_change_nothing() {
        let params = CyclonParams::DEFAULT;
        let mut n = NodeState::new(params, &state(0, 4), addr(0), Duration::from_millis(100), 1);
        let now = clock::now();
        // A descriptor whose id does not name its report is ignored.
        let mut liar = Descriptor {
            id: "c0009".into(),
            addr: addr(9).to_string(),
            age: 0,
            version: 1,
            payload: state(8, 4),
        };
        let _ = n.on_message(
            addr(9),
            Wire::Welcome {
                entries: vec![liar.clone()],
            },
            now,
        );
        assert_eq!(n.live_view(now).len(), 1);
        liar.payload = state(9, 4);
        let flood: Vec<Desc> = (0..1000)
            .map(|i| Descriptor {
                id: state(i + 10, 4).name,
                addr: addr(i + 10).to_string(),
                age: 0,
                version: 1,
                payload: state(i + 10, 4),
            })
            .collect();
        let _ = n.on_message(addr(9), Wire::Shuffle { entries: flood }, now);
        assert!(n.view_len() <= params.sizes.shuffle_len);
        assert!(n.live_view(now).len() <= 1 + params.sizes.view_size + params.cache_size);
    }

    /// A flood id is forwarded once while its flood can still be under
    /// way, however many other floods pass meanwhile; ids older than
    /// FLOOD_MEMORY go once more than SEEN_FLOODS are held.
    #[test]
    fn a_flood_is_forwarded_once_even_among_hundreds_of_others() {
        let params = CyclonParams::DEFAULT;
        let mut n = NodeState::new(params, &state(0, 4), addr(0), Duration::from_millis(100), 1);
        let t0 = clock::now();
        let ids = 1000..(1000 + 3 * SEEN_FLOODS as u64);
        for id in ids.clone() {
            assert!(n.remember_flood(id, t0));
        }
        // Three times SEEN_FLOODS under way: the first is still known.
        assert!(!n.remember_flood(1000, t0 + Duration::from_secs(1)));
        // Past FLOOD_MEMORY, new floods push the old ones out, down to
        // SEEN_FLOODS.
        let later = t0 + FLOOD_MEMORY;
        assert!(n.remember_flood(1, later));
        assert_eq!(n.seen_floods.len(), SEEN_FLOODS);
        assert_eq!(n.seen_flood_ids.len(), SEEN_FLOODS);
        assert!(n.remember_flood(1000, later));
        assert!(!n.remember_flood(1, later));
    }

    /// The address book keeps the members used (up to half of it) and
    /// those met most recently: when full, the least recently met of the
    /// members not in use goes first, ties by name; a newer report
    /// replaces a held one, an older one does not; the least recently used
    /// member goes back to the others when more recent ones need its room.
    #[test]
    fn a_full_address_book_drops_the_least_recently_met_member_not_in_use() {
        let desc = |i: usize, version: u64, free: i64| Descriptor {
            id: state(i, free).name,
            addr: addr(i).to_string(),
            age: 0,
            version,
            payload: state(i, free),
        };
        let t0 = clock::now();
        let t = |s: u64| t0 + Duration::from_secs(s);
        let mut book = AddressBook::default();
        // c0003, c0001 and c0002 met at the same instant, c0000 later.
        for i in [3, 1, 2] {
            book.note(&desc(i, 1, 4), t(0), 4);
        }
        book.note(&desc(0, 1, 4), t(1), 4);
        // c0001 is used (a boot placed on it), c0003 met again with an
        // older report: it is kept, the report is not.
        assert!(book.touch("c0001", t(2), 4).is_some());
        book.note(&desc(3, 0, 1), t(3), 4);
        assert_eq!(book.entries["c0003"].state.free_vcpus, 4);
        // Full: the next newcomer pushes out c0002 (met at t0, alone now).
        book.note(&desc(7, 1, 4), t(4), 4);
        let names = |b: &AddressBook| b.entries.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&book), ["c0000", "c0001", "c0003", "c0007"]);
        // Then c0000 (t1) and c0003 (t3), not c0001 (used at t2).
        book.note(&desc(8, 1, 4), t(5), 4);
        book.note(&desc(9, 1, 4), t(5), 4);
        assert_eq!(names(&book), ["c0001", "c0007", "c0008", "c0009"]);
        // A newer report replaces.
        book.note(&desc(7, 2, 0), t(6), 4);
        assert_eq!(book.entries["c0007"].state.free_vcpus, 0);
        // Of two met at the same instant (t5), the first by name goes.
        book.note(&desc(10, 1, 4), t(7), 4);
        assert_eq!(names(&book), ["c0001", "c0007", "c0009", "c0010"]);
        // Two more in use: the protected half (2) is full, so c0001, the
        // least recently used, goes back to the others, and is the oldest.
        assert!(book.touch("c0009", t(8), 4).is_some());
        assert!(book.touch("c0010", t(9), 4).is_some());
        book.note(&desc(11, 1, 4), t(10), 4);
        assert_eq!(names(&book), ["c0007", "c0009", "c0010", "c0011"]);
        assert_eq!(book.order.len() + book.used.len(), book.entries.len());
        assert_eq!(book.used.len(), 2);
        assert!(book.touch("c0003", t(11), 4).is_none());
        // A book of size 0 holds nobody.
        let mut none = AddressBook::default();
        none.note(&desc(1, 1, 4), t(0), 0);
        assert!(none.entries.is_empty());
    }
}
