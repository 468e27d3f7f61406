//! CYCLON peer sampling (Voulgaris, Gavidia, van Steen, 2005) as a sans-IO
//! state machine: a partial view of at most `c` descriptors per agent,
//! refreshed by shuffles of at most `l` descriptors with the oldest peer.
//!
//! The caller owns time, transport and randomness: it calls
//! [`Cyclon::start_shuffle`] every gossip interval, sends the returned
//! [`Shuffle`] to its target, answers a received shuffle with
//! [`Cyclon::on_request`] and feeds the answer back with
//! [`Cyclon::on_reply`]. Every call takes the RNG, so a seeded generator
//! makes a run repeatable.
//!
//! Each descriptor carries an opaque payload (for the agent: its
//! cloudlet's capacity report) with the version its origin gave it.
//! Plain CYCLON keeps the copy it already holds when a duplicate arrives;
//! here a copy with a higher version replaces the payload (a deliberate
//! deviation, shared/reference/cyclon.md §5), so capacity news spreads.
//! Membership is never a proof of anything: authenticating messages is
//! the transport's job.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Sizes of the view and of a shuffle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CyclonConfig {
    /// `c`: descriptors kept at most.
    pub view_size: usize,
    /// `l`: descriptors exchanged per shuffle at most (including the
    /// initiator's own).
    pub shuffle_len: usize,
}

impl CyclonConfig {
    /// Defaults used by common implementations (Splay: c = 20, l = 5;
    /// poldercast: 20 / 10); here c = 20, l = 8 (the paper's simulations
    /// used c = 20-50, l = 5-8, reference/cyclon.md §4).
    pub const DEFAULT: CyclonConfig = CyclonConfig {
        view_size: 20,
        shuffle_len: 8,
    };

    /// Refuses sizes the protocol cannot work with.
    pub fn validate(self) -> Result<Self, String> {
        if self.view_size == 0 {
            return Err("cyclon view size must be at least 1".into());
        }
        if self.shuffle_len == 0 || self.shuffle_len > self.view_size {
            return Err(format!(
                "cyclon shuffle length must be within 1..={} (the view size)",
                self.view_size
            ));
        }
        Ok(self)
    }
}

/// One entry of a view: who, where, how old, and what it reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor<P> {
    pub id: String,
    pub addr: String,
    /// Shuffle rounds since the origin created this copy.
    pub age: u32,
    /// The origin's version of `payload` (higher is newer).
    pub version: u64,
    pub payload: P,
}

/// A shuffle to send: `entries` go to `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shuffle<P> {
    pub target: Descriptor<P>,
    pub entries: Vec<Descriptor<P>>,
}

/// The shuffle this node started and has not had an answer to.
#[derive(Debug, Clone)]
struct Pending {
    target: String,
    sent: Vec<String>,
}

/// One node's partial view.
#[derive(Debug, Clone)]
pub struct Cyclon<P> {
    config: CyclonConfig,
    me: Descriptor<P>,
    view: Vec<Descriptor<P>>,
    pending: Option<Pending>,
    /// The target of the last shuffle given up unanswered: its answer may
    /// still come (a loaded host answers after the next round started).
    abandoned: Option<String>,
}

impl<P: Clone> Cyclon<P> {
    /// A node with an empty view. `payload` is its own first report.
    pub fn new(config: CyclonConfig, id: String, addr: String, payload: P) -> Self {
        Cyclon {
            config,
            me: Descriptor {
                id,
                addr,
                age: 0,
                version: 0,
                payload,
            },
            view: Vec::with_capacity(config.view_size),
            pending: None,
            abandoned: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.me.id
    }

    /// The descriptors held now (never this node's own).
    pub fn view(&self) -> &[Descriptor<P>] {
        &self.view
    }

    /// Publishes a new own payload; the next shuffles carry it.
    pub fn set_payload(&mut self, payload: P) {
        self.me.version += 1;
        self.me.payload = payload;
    }

    /// This node's own descriptor as it would be sent now (age 0).
    pub fn own_descriptor(&self) -> Descriptor<P> {
        self.me.clone()
    }

    /// This node's own descriptor, borrowed.
    pub fn own(&self) -> &Descriptor<P> {
        &self.me
    }

    /// Adds a contact (a seed, or the introducer's view on joining) when
    /// there is room; a known node's payload is refreshed if newer.
    pub fn add_contact(&mut self, contact: Descriptor<P>) {
        if contact.id == self.me.id || self.refresh_known(&contact) {
            return;
        }
        if self.view.len() < self.config.view_size {
            self.view.push(contact);
        }
    }

    /// Drops a node that the caller found dead (e.g. no answer to a call).
    pub fn remove(&mut self, id: &str) {
        self.view.retain(|d| d.id != id);
    }

    /// Whether `id` is in the view.
    pub fn holds(&self, id: &str) -> bool {
        self.view.iter().any(|d| d.id == id)
    }

    /// One entry at random (for forwarding a walk), never `except`.
    pub fn random_peer(&self, except: &str, rng: &mut impl Rng) -> Option<&Descriptor<P>> {
        let others: Vec<&Descriptor<P>> = self.view.iter().filter(|d| d.id != except).collect();
        others.choose(rng).copied()
    }

    /// The end of a join walk (reference/cyclon.md §3): `joiner` takes a
    /// free slot, or the place of a random entry, which is returned so the
    /// joiner can hold it (no in-degree changes but the joiner's).
    /// `None` when the joiner took a free slot or was already here.
    pub fn admit(&mut self, joiner: Descriptor<P>, rng: &mut impl Rng) -> Option<Descriptor<P>> {
        if joiner.id == self.me.id || self.refresh_known(&joiner) {
            return None;
        }
        if self.view.len() < self.config.view_size {
            self.view.push(joiner);
            return None;
        }
        let slot = rng.gen_range(0..self.view.len());
        Some(std::mem::replace(&mut self.view[slot], joiner))
    }

    /// Forgets the shuffle in flight; its target when it was not answered
    /// (the target already left the view at [`Cyclon::start_shuffle`]).
    pub fn abandon_pending(&mut self) -> Option<String> {
        let target = self.pending.take().map(|p| p.target)?;
        self.abandoned = Some(target.clone());
        Some(target)
    }

    /// Step 1-4 of the enhanced shuffle: ages every entry, takes the
    /// oldest out as the target and picks `l - 1` others to send along
    /// with this node's own fresh descriptor. `None` when the view is
    /// empty. An unanswered earlier shuffle is abandoned: its target was
    /// already taken out, which is how CYCLON forgets dead peers.
    pub fn start_shuffle(&mut self, rng: &mut impl Rng) -> Option<Shuffle<P>> {
        self.pending = None;
        for d in &mut self.view {
            d.age = d.age.saturating_add(1);
        }
        let oldest = self
            .view
            .iter()
            .enumerate()
            // Ties go to the earliest entry, so the choice is deterministic.
            .max_by(|(ia, a), (ib, b)| a.age.cmp(&b.age).then(ib.cmp(ia)))
            .map(|(i, _)| i)?;
        let target = self.view.swap_remove(oldest);
        let mut entries = self.sample(self.config.shuffle_len - 1, rng);
        self.pending = Some(Pending {
            target: target.id.clone(),
            sent: entries.iter().map(|d| d.id.clone()).collect(),
        });
        let mut me = self.me.clone();
        me.age = 0;
        entries.insert(0, me);
        Some(Shuffle { target, entries })
    }

    /// The responder's side: answers with at most `l` of its own entries
    /// chosen at random, then merges what it received in their place.
    pub fn on_request(
        &mut self,
        received: Vec<Descriptor<P>>,
        rng: &mut impl Rng,
    ) -> Vec<Descriptor<P>> {
        let reply = self.sample(self.config.shuffle_len, rng);
        let sent: Vec<String> = reply.iter().map(|d| d.id.clone()).collect();
        self.merge(received, &sent);
        reply
    }

    /// The initiator's side of the answer. An answer from anyone but the
    /// pending target (duplicated or unasked) changes nothing and returns
    /// `false`; so does a late one, from the target of the shuffle given
    /// up last, except that its entries fill free slots (nothing sent is
    /// replaced, since it was not sent in exchange). Without that, a host
    /// too loaded to answer within a round drained every view: each round
    /// took a target out and no answer ever put anything back (1,000
    /// real-time members on two cores ended with empty views).
    pub fn on_reply(&mut self, from: &str, received: Vec<Descriptor<P>>) -> bool {
        match self.pending.take() {
            Some(p) if p.target == from => {
                self.merge(received, &p.sent);
                true
            }
            other => {
                self.pending = other;
                if self.abandoned.as_deref() == Some(from) {
                    self.abandoned = None;
                    self.merge(received, &[]);
                }
                false
            }
        }
    }

    /// `n` distinct entries at random (fewer when the view is smaller).
    fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<Descriptor<P>> {
        self.view.choose_multiple(rng, n).cloned().collect()
    }

    /// Refreshes the payload of a known node if `d` is newer; `true` when
    /// the node was known.
    fn refresh_known(&mut self, d: &Descriptor<P>) -> bool {
        let Some(held) = self.view.iter_mut().find(|h| h.id == d.id) else {
            return false;
        };
        if d.version > held.version {
            held.version = d.version;
            held.payload = d.payload.clone();
            held.addr = d.addr.clone();
            held.age = held.age.min(d.age);
        }
        true
    }

    /// Steps 6-7: drop entries about this node or already held (keeping a
    /// newer payload), fill free slots first, then replace entries that
    /// were sent away and are still here. At most `l` entries are taken
    /// from a message, whatever its length.
    fn merge(&mut self, received: Vec<Descriptor<P>>, sent: &[String]) {
        let mut replaceable: Vec<&String> = sent.iter().collect();
        for d in received.into_iter().take(self.config.shuffle_len) {
            if d.id == self.me.id || self.refresh_known(&d) {
                continue;
            }
            if self.view.len() < self.config.view_size {
                self.view.push(d);
                continue;
            }
            while let Some(old) = replaceable.pop() {
                if let Some(slot) = self.view.iter().position(|h| &h.id == old) {
                    self.view[slot] = d;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::{HashMap, HashSet};

    fn desc(id: &str, age: u32) -> Descriptor<u32> {
        Descriptor {
            id: id.into(),
            addr: format!("{id}:7946"),
            age,
            version: 0,
            payload: 0,
        }
    }

    fn node(id: &str, c: usize, l: usize) -> Cyclon<u32> {
        let cfg = CyclonConfig {
            view_size: c,
            shuffle_len: l,
        };
        Cyclon::new(cfg, id.into(), format!("{id}:7946"), 0)
    }

    #[test]
    fn shuffle_targets_the_oldest_and_sends_own_fresh_descriptor() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut a = node("a", 4, 3);
        a.add_contact(desc("b", 1));
        a.add_contact(desc("c", 7));
        a.add_contact(desc("d", 3));
        let s = a.start_shuffle(&mut rng).expect("view not empty");
        assert_eq!(s.target.id, "c");
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries[0].id, "a");
        assert_eq!(s.entries[0].age, 0);
        assert!(s.entries.iter().all(|d| d.id != "c"));
        // The target left the view: if it never answers it is forgotten.
        assert!(a.view().iter().all(|d| d.id != "c"));
        assert!(a.view().iter().all(|d| d.age >= 2), "every entry aged");
    }

    #[test]
    fn merge_fills_free_slots_then_replaces_only_what_was_sent() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut a = node("a", 4, 2);
        for id in ["b", "c", "d", "e"] {
            a.add_contact(desc(id, 0));
        }
        let s = a.start_shuffle(&mut rng).expect("shuffle");
        let sent_other = s.entries[1].id.clone();
        let kept: Vec<String> = a
            .view()
            .iter()
            .map(|d| d.id.clone())
            .filter(|id| *id != sent_other)
            .collect();
        // The target left: one free slot. `x` fills it, `y` takes the
        // place of the entry sent away; entries not sent stay.
        assert!(a.on_reply(&s.target.id, vec![desc("x", 0), desc("y", 0)]));
        let ids: HashSet<_> = a.view().iter().map(|d| d.id.clone()).collect();
        assert!(ids.contains("x") && ids.contains("y"));
        assert!(!ids.contains(&sent_other), "the sent entry made room");
        assert!(kept.iter().all(|k| ids.contains(k)));
        assert_eq!(a.view().len(), 4);
    }

    #[test]
    fn own_descriptor_in_a_reply_is_dropped() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut a = node("a", 4, 3);
        a.add_contact(desc("b", 0));
        let s = a.start_shuffle(&mut rng).expect("shuffle");
        assert!(a.on_reply(&s.target.id, vec![desc("a", 0), desc("x", 0)]));
        let ids: Vec<_> = a.view().iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["x"]);
    }

    #[test]
    fn a_reply_from_anyone_but_the_target_changes_nothing() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut a = node("a", 3, 2);
        a.add_contact(desc("b", 5));
        a.add_contact(desc("c", 0));
        let s = a.start_shuffle(&mut rng).expect("shuffle");
        assert_eq!(s.target.id, "b");
        let before: Vec<_> = a.view().to_vec();
        assert!(!a.on_reply("c", vec![desc("evil", 0)]));
        assert_eq!(a.view(), &before[..]);
        // The real answer is still accepted afterwards, once.
        assert!(a.on_reply("b", vec![desc("e", 0)]));
        assert!(!a.on_reply("b", vec![desc("f", 0)]));
        assert!(a.view().iter().any(|d| d.id == "e"));
        assert!(a.view().iter().all(|d| d.id != "f"));
    }

    #[test]
    fn oversized_messages_are_cut_to_the_shuffle_length() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut a = node("a", 10, 3);
        let flood: Vec<_> = (0..100).map(|i| desc(&format!("n{i}"), 0)).collect();
        a.on_request(flood, &mut rng);
        assert_eq!(a.view().len(), 3);
    }

    #[test]
    fn newer_payload_replaces_an_older_copy_but_not_the_reverse() {
        let mut a = node("a", 4, 2);
        a.add_contact(Descriptor {
            version: 5,
            payload: 50,
            ..desc("b", 3)
        });
        a.merge(
            vec![Descriptor {
                version: 4,
                payload: 40,
                ..desc("b", 0)
            }],
            &[],
        );
        assert_eq!(a.view()[0].payload, 50);
        a.merge(
            vec![Descriptor {
                version: 6,
                payload: 60,
                ..desc("b", 1)
            }],
            &[],
        );
        assert_eq!((a.view()[0].payload, a.view()[0].version), (60, 6));
        assert_eq!(a.view().len(), 1, "no duplicate entry");
    }

    #[test]
    fn a_joiner_takes_a_free_slot_or_displaces_one_entry_it_then_holds() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut a = node("a", 2, 1);
        assert_eq!(a.admit(desc("j1", 0), &mut rng), None);
        assert_eq!(a.admit(desc("a", 0), &mut rng), None, "never itself");
        assert_eq!(a.admit(desc("j1", 0), &mut rng), None, "already held");
        assert_eq!(a.view().len(), 1);
        assert_eq!(a.admit(desc("j2", 0), &mut rng), None);
        let displaced = a.admit(desc("j3", 0), &mut rng).expect("view full");
        assert!(["j1", "j2"].contains(&displaced.id.as_str()));
        assert!(a.holds("j3") && !a.holds(&displaced.id));
        assert_eq!(a.view().len(), 2);
    }

    #[test]
    fn an_unanswered_shuffle_names_its_target_once() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut a = node("a", 3, 2);
        a.add_contact(desc("b", 4));
        a.add_contact(desc("c", 0));
        let s = a.start_shuffle(&mut rng).expect("shuffle");
        assert_eq!(a.abandon_pending(), Some(s.target.id.clone()));
        assert_eq!(a.abandon_pending(), None);
        // A late answer completes nothing, but its entries fill free
        // slots, once; an answer from anyone else still changes nothing.
        assert!(!a.on_reply("c", vec![desc("evil", 0)]));
        assert!(!a.on_reply(&s.target.id, vec![desc("late", 0)]), "too late");
        assert!(a.holds("late") && a.holds("c") && !a.holds("evil"));
        assert!(!a.on_reply(&s.target.id, vec![desc("again", 0)]));
        assert!(!a.holds("again"));
    }

    #[test]
    fn a_late_answer_fills_free_slots_but_replaces_nothing() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut a = node("a", 3, 3);
        for id in ["b", "c", "d"] {
            a.add_contact(desc(id, 0));
        }
        let s = a.start_shuffle(&mut rng).expect("shuffle");
        a.abandon_pending();
        let held: Vec<String> = a.view().iter().map(|d| d.id.clone()).collect();
        assert_eq!(held.len(), 2);
        a.on_reply(&s.target.id, vec![desc("x", 0), desc("y", 0), desc("z", 0)]);
        // One free slot (the target's): one newcomer, the rest kept.
        assert_eq!(a.view().len(), 3);
        assert!(held.iter().all(|id| a.holds(id)));
    }

    #[test]
    fn config_rejects_impossible_sizes() {
        let bad = |c, l| {
            CyclonConfig {
                view_size: c,
                shuffle_len: l,
            }
            .validate()
            .is_err()
        };
        assert!(bad(0, 0));
        assert!(bad(5, 0));
        assert!(bad(5, 6));
        assert!(!bad(5, 5));
    }

    /// `n` nodes named `n000`…, each bootstrapped with only its next
    /// `successors` on a ring.
    fn ring_overlay(
        n: usize,
        c: usize,
        l: usize,
        successors: usize,
    ) -> (Vec<String>, HashMap<String, Cyclon<u32>>) {
        let ids: Vec<String> = (0..n).map(|i| format!("n{i:03}")).collect();
        let mut nodes: HashMap<String, Cyclon<u32>> =
            ids.iter().map(|id| (id.clone(), node(id, c, l))).collect();
        for (i, id) in ids.iter().enumerate() {
            for k in 1..=successors {
                if let Some(me) = nodes.get_mut(id) {
                    me.add_contact(desc(&ids[(i + k) % n], 0));
                }
            }
        }
        (ids, nodes)
    }

    /// Runs `rounds` synchronous rounds over the live nodes: each starts a
    /// shuffle; a shuffle to a dead node gets no answer.
    fn run_rounds(
        nodes: &mut HashMap<String, Cyclon<u32>>,
        dead: &HashSet<String>,
        rounds: usize,
        rng: &mut StdRng,
    ) {
        let mut order: Vec<String> = nodes.keys().cloned().collect();
        order.sort();
        for _ in 0..rounds {
            order.shuffle(rng);
            for id in &order {
                if dead.contains(id) {
                    continue;
                }
                let Some(s) = nodes.get_mut(id).and_then(|n| n.start_shuffle(rng)) else {
                    continue;
                };
                if dead.contains(&s.target.id) {
                    continue;
                }
                let Some(q) = nodes.get_mut(&s.target.id) else {
                    continue;
                };
                let reply = q.on_request(s.entries, rng);
                if let Some(p) = nodes.get_mut(id) {
                    p.on_reply(&s.target.id, reply);
                }
            }
        }
    }

    /// A ring-bootstrapped overlay of 500 nodes becomes a well-mixed
    /// random graph: full views, no self or duplicate entries, in-degrees
    /// close to c, and every node reachable from every other.
    #[test]
    fn overlay_of_500_mixes_into_a_connected_balanced_graph() {
        let (n, c, l) = (500, 20, 8);
        let mut rng = StdRng::seed_from_u64(42);
        let (ids, mut nodes) = ring_overlay(n, c, l, 1);
        run_rounds(&mut nodes, &HashSet::new(), 60, &mut rng);

        let mut indegree: HashMap<&str, usize> = HashMap::new();
        for (id, node) in &nodes {
            let view_ids: HashSet<_> = node.view().iter().map(|d| d.id.as_str()).collect();
            assert_eq!(
                view_ids.len(),
                node.view().len(),
                "duplicate in {id}'s view"
            );
            assert!(!view_ids.contains(id.as_str()), "{id} holds itself");
            assert!(
                node.view().len() >= c - 2,
                "{id} view {}",
                node.view().len()
            );
            for v in view_ids {
                *indegree.entry(v).or_default() += 1;
            }
        }
        let max_in = indegree.values().copied().max().unwrap_or(0);
        let min_in = ids
            .iter()
            .map(|id| indegree.get(id.as_str()).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        assert!(
            min_in >= 5 && max_in <= 3 * c,
            "in-degree {min_in}..{max_in}"
        );

        // Connectivity: a breadth-first walk over views reaches everyone.
        let mut seen: HashSet<&str> = HashSet::from([ids[0].as_str()]);
        let mut frontier = vec![ids[0].as_str()];
        while let Some(at) = frontier.pop() {
            for d in nodes[at].view() {
                if seen.insert(d.id.as_str()) {
                    frontier.push(d.id.as_str());
                }
            }
        }
        assert_eq!(seen.len(), n);
    }

    /// After half the nodes die, the survivors' views shed the dead
    /// entries within a few tens of rounds, as the paper reports.
    #[test]
    fn dead_nodes_vanish_from_views() {
        let (n, c, l) = (300, 20, 8);
        let mut rng = StdRng::seed_from_u64(7);
        let (ids, mut nodes) = ring_overlay(n, c, l, 3);
        run_rounds(&mut nodes, &HashSet::new(), 40, &mut rng);
        let dead: HashSet<String> = ids.iter().step_by(2).cloned().collect();
        run_rounds(&mut nodes, &dead, 40, &mut rng);
        let (mut held, mut stale) = (0usize, 0usize);
        for (id, node) in &nodes {
            if dead.contains(id) {
                continue;
            }
            held += node.view().len();
            stale += node.view().iter().filter(|d| dead.contains(&d.id)).count();
        }
        assert!(held > 0);
        assert!(
            stale * 100 <= held,
            "{stale} of {held} entries still point at dead nodes"
        );
    }

    /// A payload published by one node reaches most of a 200-node overlay
    /// within a few tens of rounds, although nobody holds everyone.
    #[test]
    fn payload_updates_spread_through_shuffles() {
        let (n, c, l) = (200, 16, 6);
        let mut rng = StdRng::seed_from_u64(9);
        let (ids, mut nodes) = ring_overlay(n, c, l, 1);
        run_rounds(&mut nodes, &HashSet::new(), 30, &mut rng);
        if let Some(src) = nodes.get_mut(&ids[0]) {
            src.set_payload(99);
        }
        run_rounds(&mut nodes, &HashSet::new(), 30, &mut rng);
        let (mut holders, mut fresh) = (0, 0);
        for node in nodes.values() {
            if let Some(d) = node.view().iter().find(|d| d.id == ids[0]) {
                holders += 1;
                fresh += usize::from(d.payload == 99);
            }
        }
        assert!(holders > 0);
        assert_eq!(fresh, holders, "every holder sees the new payload");
    }
}
