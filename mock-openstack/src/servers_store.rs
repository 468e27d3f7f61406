//! The server records with the indexes the API needs, kept up to date on
//! every insert and removal so no request scans every server:
//!
//! - creation order (`seq`): the records live in a map keyed by `seq`, so
//!   a list (newest first, paged by marker) walks back from the marker and
//!   stops after `limit` matches without sorting, and without a hash lookup
//!   per record walked (the watchers of every agent list each cloudlet's
//!   servers every poll); the ID index maps an ID to its `seq`;
//! - per-project usage totals: the quota check of every POST (and
//!   `/limits`, quota details) reads three counters instead of summing
//!   every server, which made a large burst against one deployment
//!   quadratic;
//! - tombstones: the `seq` of deleted servers, so a deleted marker still
//!   paginates.
//!
//! - the last rendering of each record shown (`GET /servers/{id}`, the
//!   mock's hottest call: a client polls a server that seldom changes),
//!   dropped whenever the record may change.
//!
//! A record's `seq`, `project_id` and `flavor` are fixed once inserted
//! (the indexes are keyed on them); everything else may change through
//! [`Servers::get_mut`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Index;

use bytes::Bytes;

use crate::state::Server;

/// One project's consumption, as nova's quota counts it (servers not yet
/// deleted, including those being deleted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub instances: i64,
    pub cores: i64,
    pub ram_mb: i64,
}

impl Usage {
    fn add(&mut self, s: &Server, sign: i64) {
        self.instances += sign;
        self.cores += sign * s.flavor.vcpus as i64;
        self.ram_mb += sign * s.flavor.ram_mb as i64;
    }
}

#[derive(Debug, Default)]
pub struct Servers {
    /// The records by creation seq (creation order).
    by_seq: BTreeMap<u64, Server>,
    /// id → seq of the live records.
    seq_by_id: HashMap<String, u64>,
    tombstones: HashMap<String, u64>,
    usage: HashMap<&'static str, Usage>,
    /// seq → the last rendering of that record (see [`Rendered`]).
    rendered: HashMap<u64, Rendered>,
}

/// A record's JSON as last shown, and what it depended on besides the
/// record: the base URL of its links and whether admin-only fields are in.
#[derive(Debug)]
struct Rendered {
    base: String,
    admin: bool,
    body: Bytes,
}

/// Renderings kept at most; beyond, the cache starts afresh.
const RENDERED_MAX: usize = 4096;

impl Servers {
    /// Adds (or replaces) a record.
    pub fn insert(&mut self, s: Server) {
        self.remove_live(&s.id);
        self.rendered.remove(&s.seq);
        self.usage.entry(s.project_id).or_default().add(&s, 1);
        self.seq_by_id.insert(s.id.clone(), s.seq);
        self.by_seq.insert(s.seq, s);
    }

    fn remove_live(&mut self, id: &str) -> Option<Server> {
        let seq = self.seq_by_id.remove(id)?;
        let s = self.by_seq.remove(&seq)?;
        self.rendered.remove(&seq);
        if let Some(u) = self.usage.get_mut(s.project_id) {
            u.add(&s, -1);
        }
        Some(s)
    }

    /// Removes a record, leaving its tombstone for pagination.
    pub fn remove(&mut self, id: &str) -> Option<Server> {
        let s = self.remove_live(id)?;
        self.tombstones.insert(s.id.clone(), s.seq);
        Some(s)
    }

    pub fn get(&self, id: &str) -> Option<&Server> {
        self.by_seq.get(self.seq_by_id.get(id)?)
    }

    /// A record to update (never its `seq`, `project_id` or `flavor`).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Server> {
        let seq = self.seq_by_id.get(id)?;
        // It may change: its rendering is no longer known good.
        self.rendered.remove(seq);
        self.by_seq.get_mut(seq)
    }

    /// The rendering of record `seq` kept by [`Servers::keep_rendered`]
    /// for this `base` and `admin`, if the record has not been handed out
    /// for change since.
    pub fn rendered(&self, seq: u64, base: &str, admin: bool) -> Option<Bytes> {
        self.rendered
            .get(&seq)
            .filter(|r| r.admin == admin && r.base == base)
            .map(|r| r.body.clone())
    }

    /// Keeps `body` as the rendering of live record `seq` (replacing any
    /// other of it).
    pub fn keep_rendered(&mut self, seq: u64, base: &str, admin: bool, body: Bytes) {
        if !self.by_seq.contains_key(&seq) {
            return;
        }
        if self.rendered.len() >= RENDERED_MAX {
            self.rendered.clear();
        }
        self.rendered.insert(
            seq,
            Rendered {
                base: base.to_string(),
                admin,
                body,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Every record, oldest first (a stable order, unlike a hash map's).
    pub fn values(&self) -> impl Iterator<Item = &Server> {
        self.by_seq.values()
    }

    /// Records created before `before` (a seq; all when `None`), newest
    /// first: nova's default list order.
    pub fn newest_first(&self, before: Option<u64>) -> impl Iterator<Item = &Server> {
        self.by_seq
            .range(..before.unwrap_or(u64::MAX))
            .rev()
            .map(|(_, s)| s)
    }

    /// The creation seq of a live or deleted server (for a list marker).
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.seq_by_id
            .get(id)
            .or_else(|| self.tombstones.get(id))
            .copied()
    }

    /// Whether `id` was deleted (and not re-created).
    pub fn is_tombstone(&self, id: &str) -> bool {
        self.tombstones.contains_key(id)
    }

    /// A project's usage, without a scan.
    pub fn usage(&self, project: &str) -> Usage {
        self.usage.get(project).copied().unwrap_or_default()
    }
}

impl Index<&str> for Servers {
    type Output = Server;

    /// Panics when absent (tests only; handlers use [`Servers::get`]).
    fn index(&self, id: &str) -> &Server {
        &self.by_seq[&self.seq_by_id[id]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::{self, FLAVORS};
    use chrono::Utc;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn server(seq: u64, project: &'static str, flavor: usize) -> Server {
        let now = Utc::now();
        Server::accepted(
            format!("id-{seq}"),
            seq,
            format!("s{seq}"),
            (project, defaults::DEMO_USER_ID),
            &FLAVORS[flavor],
            now,
        )
    }

    fn scanned(s: &Servers, project: &str) -> Usage {
        let mut u = Usage::default();
        for x in s.values().filter(|x| x.project_id == project) {
            u.add(x, 1);
        }
        u
    }

    #[test]
    fn running_totals_match_a_scan_through_random_inserts_and_removals() {
        let projects = [defaults::DEMO_PROJECT_ID, defaults::ADMIN_PROJECT_ID];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = Servers::default();
        let mut live: Vec<u64> = vec![];
        for seq in 1..=500u64 {
            if !live.is_empty() && rng.gen_bool(0.4) {
                let i = rng.gen_range(0..live.len());
                let gone = live.swap_remove(i);
                assert!(s.remove(&format!("id-{gone}")).is_some());
                assert!(s.is_tombstone(&format!("id-{gone}")));
                assert_eq!(s.seq_of(&format!("id-{gone}")), Some(gone));
            }
            let p = projects[rng.gen_range(0..2)];
            s.insert(server(seq, p, rng.gen_range(0..FLAVORS.len())));
            live.push(seq);
            for p in projects {
                assert_eq!(s.usage(p), scanned(&s, p), "after seq {seq}");
            }
        }
        assert_eq!(s.len(), live.len());
        assert!(s.remove("id-unknown").is_none());
        assert_eq!(s.usage("no-such-project"), Usage::default());
    }

    #[test]
    fn a_kept_rendering_is_dropped_whenever_its_record_may_change() {
        let mut s = Servers::default();
        for seq in 1..=3 {
            s.insert(server(seq, defaults::DEMO_PROJECT_ID, 0));
        }
        let keep = |s: &mut Servers, seq: u64| {
            s.keep_rendered(seq, "http://b", false, Bytes::from(format!("r{seq}")));
        };
        keep(&mut s, 1);
        assert_eq!(s.rendered(1, "http://b", false), Some(Bytes::from("r1")));
        // Kept for one base and one audience only.
        assert_eq!(s.rendered(1, "http://other", false), None);
        assert_eq!(s.rendered(1, "http://b", true), None);
        // Reading does not drop it; handing the record out for change does.
        assert!(s.get("id-1").is_some());
        assert!(s.rendered(1, "http://b", false).is_some());
        assert!(s.get_mut("id-1").is_some());
        assert_eq!(s.rendered(1, "http://b", false), None);
        // Replacing the record drops it.
        keep(&mut s, 2);
        s.insert(server(2, defaults::DEMO_PROJECT_ID, 1));
        assert_eq!(s.rendered(2, "http://b", false), None);
        // Removing it drops it, and a rendering of a record that is gone
        // (a show racing a delete) is not kept.
        keep(&mut s, 3);
        assert!(s.remove("id-3").is_some());
        assert_eq!(s.rendered(3, "http://b", false), None);
        keep(&mut s, 3);
        assert_eq!(s.rendered(3, "http://b", false), None);
        // Another record's change leaves a rendering alone.
        keep(&mut s, 1);
        assert!(s.get_mut("id-2").is_some());
        assert_eq!(s.rendered(1, "http://b", false), Some(Bytes::from("r1")));
    }

    #[test]
    fn newest_first_from_a_marker_and_replacing_a_record() {
        let mut s = Servers::default();
        for seq in 1..=5 {
            s.insert(server(seq, defaults::DEMO_PROJECT_ID, 0));
        }
        s.remove("id-3");
        let seqs = |it: &mut dyn Iterator<Item = &Server>| it.map(|x| x.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&mut s.newest_first(None)), vec![5, 4, 2, 1]);
        assert_eq!(seqs(&mut s.newest_first(s.seq_of("id-4"))), vec![2, 1]);
        assert_eq!(seqs(&mut s.newest_first(s.seq_of("id-3"))), vec![2, 1]);
        assert_eq!(seqs(&mut s.values()), vec![1, 2, 4, 5]);
        // Replacing a record keeps one entry and the totals right.
        s.insert(server(4, defaults::DEMO_PROJECT_ID, 2));
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.usage(defaults::DEMO_PROJECT_ID),
            scanned(&s, defaults::DEMO_PROJECT_ID)
        );
        assert_eq!(s["id-4"].flavor.id, FLAVORS[2].id);
    }
}
