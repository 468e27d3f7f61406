//! Where to boot: a pure decision over the gossiped view.
//!
//! 1. The local cloudlet if it fits the flavor and has fewer than
//!    `local_max_builds` builds in flight (not overloaded).
//! 2. Otherwise *power of two choices*: two cloudlets drawn at random among
//!    those that fit (and were not already tried), keep the one with more
//!    headroom, where headroom discounts free capacity by the builds already
//!    in flight there. Random sampling keeps agents with the same stale view
//!    from all picking the same "best" cloudlet.
//! 3. If nothing fits by the view, any untried live cloudlet (the view may
//!    be stale; the cloudlet itself has the last word), local first.
//!
//! Two passes over the view, no allocation: a few µs at 1,000 members.

use std::collections::HashSet;

use rand::Rng;

use crate::state::CloudletState;

/// What a flavor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The local cloudlet counts as overloaded at this many builds in flight.
    pub local_max_builds: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            local_max_builds: 10,
        }
    }
}

/// True when `c` has room for `d` by its last report.
pub fn fits(c: &CloudletState, d: &Demand) -> bool {
    c.healthy
        && !c.saturated
        && c.free_vcpus >= d.vcpus
        && c.free_ram_mb >= d.ram_mb
        && c.free_disk_gb >= d.disk_gb
}

/// Headroom in "flavors that still fit", after discounting builds in flight
/// (each presumed to consume one more `d`, since the report may predate them).
pub fn headroom(c: &CloudletState, d: &Demand) -> f64 {
    let b = i64::from(c.builds_in_flight);
    let dim = |free: i64, need: i64| {
        if need <= 0 {
            f64::INFINITY
        } else {
            (free - b * need) as f64 / need as f64
        }
    };
    let h = dim(c.free_vcpus, d.vcpus)
        .min(dim(c.free_ram_mb, d.ram_mb))
        .min(dim(c.free_disk_gb, d.disk_gb));
    if h.is_finite() {
        h
    } else {
        // A zero-size flavor: prefer fewer builds in flight.
        -(b as f64)
    }
}

/// Picks a cloudlet name for one boot, or `None` when every live cloudlet
/// was already tried. Two passes over the view, two random draws.
pub fn choose<'a, R: Rng + ?Sized>(
    local: &str,
    view: &'a [CloudletState],
    demand: &Demand,
    tried: &HashSet<String>,
    policy: &Policy,
    rng: &mut R,
) -> Option<&'a str> {
    let untried = |c: &CloudletState| tried.is_empty() || !tried.contains(&c.name);
    let mut local_state = None;
    let mut n_fit = 0usize;
    let mut n_other = 0usize;
    for c in view {
        if !untried(c) {
            continue;
        }
        if c.name == local {
            // Judged on its own: an overloaded local cloudlet must not win
            // the remote draw either.
            local_state = Some(c);
            continue;
        }
        n_other += 1;
        if fits(c, demand) {
            n_fit += 1;
        }
    }
    if let Some(l) = local_state {
        if fits(l, demand) && l.builds_in_flight < policy.local_max_builds {
            return Some(l.name.as_str());
        }
    }
    let remote = |want_fit: bool| {
        view.iter()
            .filter(move |c| c.name != local && untried(c) && (!want_fit || fits(c, demand)))
    };
    match n_fit {
        0 => local_state
            .or_else(|| {
                if n_other == 0 {
                    None
                } else {
                    remote(false).nth(rng.gen_range(0..n_other))
                }
            })
            .map(|c| c.name.as_str()),
        1 => remote(true).next().map(|c| c.name.as_str()),
        n => {
            let i = rng.gen_range(0..n);
            let mut j = rng.gen_range(0..n - 1);
            if j >= i {
                j += 1;
            }
            let (lo, hi) = (i.min(j), i.max(j));
            let mut it = remote(true);
            let a = it.nth(lo)?;
            let b = it.nth(hi - lo - 1)?;
            let (ha, hb) = (headroom(a, demand), headroom(b, demand));
            Some(if hb > ha {
                b.name.as_str()
            } else {
                a.name.as_str()
            })
        }
    }
}

/// One placement this agent made: what it takes and when (unix ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recent {
    pub demand: Demand,
    pub at_ms: i64,
}

/// This agent's own placements per target cloudlet.
pub type RecentPlacements = std::collections::HashMap<String, Vec<Recent>>;

/// Corrects a gossiped view with this agent's own placements made after
/// each cloudlet's last report: their capacity is taken and they count as
/// builds in flight. Without this, a burst of boots arriving between two
/// capacity polls would all go to the same "free" cloudlet. Placements a
/// report already includes are pruned, so the cost stays O(view + placements
/// since the last reports).
pub fn account_recent(view: &mut [CloudletState], recent: &mut RecentPlacements) {
    for c in view.iter_mut() {
        let Some(list) = recent.get_mut(&c.name) else {
            continue;
        };
        list.retain(|r| r.at_ms >= c.updated_ms);
        for r in list.iter() {
            c.free_vcpus -= r.demand.vcpus;
            c.free_ram_mb -= r.demand.ram_mb;
            c.free_disk_gb -= r.demand.disk_gb;
            c.builds_in_flight = c.builds_in_flight.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn c(name: &str, vcpus: i64, builds: u32) -> CloudletState {
        CloudletState {
            name: name.into(),
            url: format!("http://{name}"),
            free_vcpus: vcpus,
            free_ram_mb: vcpus * 2048,
            free_disk_gb: vcpus * 20,
            total_vcpus: 8,
            builds_in_flight: builds,
            healthy: true,
            updated_ms: 0,
            saturated: false,
            cloudlet_auth_url: None,
        }
    }
    const TINY: Demand = Demand {
        vcpus: 1,
        ram_mb: 512,
        disk_gb: 1,
    };

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(42)
    }

    #[test]
    fn local_first_when_it_fits_and_is_not_overloaded() {
        let view = vec![c("a", 4, 0), c("b", 100, 0)];
        let p = Policy::default();
        assert_eq!(
            choose("a", &view, &TINY, &HashSet::new(), &p, &mut rng()),
            Some("a")
        );
    }

    #[test]
    fn full_or_overloaded_local_goes_remote() {
        let p = Policy {
            local_max_builds: 2,
        };
        let full = vec![c("a", 0, 0), c("b", 4, 0)];
        assert_eq!(
            choose("a", &full, &TINY, &HashSet::new(), &p, &mut rng()),
            Some("b")
        );
        let busy = vec![c("a", 8, 2), c("b", 4, 0)];
        assert_eq!(
            choose("a", &busy, &TINY, &HashSet::new(), &p, &mut rng()),
            Some("b")
        );
    }

    #[test]
    fn two_choices_prefers_headroom_and_discounts_builds() {
        // Only b and c fit; c has more free vcpus but many builds in flight.
        let view = vec![c("a", 0, 0), c("b", 4, 0), c("c", 6, 5)];
        let mut r = rng();
        for _ in 0..20 {
            assert_eq!(
                choose(
                    "a",
                    &view,
                    &TINY,
                    &HashSet::new(),
                    &Policy::default(),
                    &mut r
                ),
                Some("b")
            );
        }
    }

    #[test]
    fn spreads_load_among_equals() {
        let view: Vec<_> = (0..10).map(|i| c(&format!("n{i}"), 8, 0)).collect();
        let mut r = rng();
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.insert(
                choose(
                    "x",
                    &view,
                    &TINY,
                    &HashSet::new(),
                    &Policy::default(),
                    &mut r,
                )
                .unwrap(),
            );
        }
        assert!(seen.len() >= 8, "{seen:?}");
    }

    #[test]
    fn retries_exclude_tried_and_end() {
        let view = vec![c("a", 0, 0), c("b", 4, 0), c("c", 4, 0)];
        let mut tried = HashSet::new();
        let mut order = vec![];
        let mut r = rng();
        while let Some(n) = choose("a", &view, &TINY, &tried, &Policy::default(), &mut r) {
            order.push(n.to_string());
            tried.insert(n.to_string());
        }
        assert_eq!(order.len(), 3);
        assert_eq!(order[2], "a", "the full local cloudlet is the last resort");
    }

    #[test]
    fn flavor_that_fits_nowhere_still_tries_local_first() {
        let big = Demand {
            vcpus: 64,
            ram_mb: 1,
            disk_gb: 1,
        };
        let view = vec![c("a", 4, 0), c("b", 4, 0)];
        assert_eq!(
            choose(
                "a",
                &view,
                &big,
                &HashSet::new(),
                &Policy::default(),
                &mut rng()
            ),
            Some("a")
        );
        assert_eq!(
            choose(
                "a",
                &[],
                &big,
                &HashSet::new(),
                &Policy::default(),
                &mut rng()
            ),
            None
        );
    }

    #[test]
    fn a_burst_between_reports_does_not_pile_onto_one_cloudlet() {
        let mut a = c("a", 2, 0);
        a.updated_ms = 1_000;
        let mut b = c("b", 8, 0);
        b.updated_ms = 1_000;
        let base = vec![a, b];
        let mut recent = RecentPlacements::new();
        let mut r = rng();
        let mut on_a = 0;
        for k in 0..6 {
            let mut view = base.clone();
            account_recent(&mut view, &mut recent);
            let t = choose(
                "a",
                &view,
                &TINY,
                &HashSet::new(),
                &Policy::default(),
                &mut r,
            )
            .unwrap()
            .to_string();
            if t == "a" {
                on_a += 1;
            }
            recent.entry(t).or_default().push(Recent {
                demand: TINY,
                at_ms: 1_000 + k,
            });
        }
        assert_eq!(on_a, 2, "local takes exactly its 2 free vCPUs");
        // Placements older than the report are already in it, and pruned.
        let mut view = base.clone();
        let mut old = RecentPlacements::new();
        old.insert(
            "a".into(),
            vec![Recent {
                demand: TINY,
                at_ms: 999,
            }],
        );
        account_recent(&mut view, &mut old);
        assert_eq!(view[0].free_vcpus, 2);
        assert!(old["a"].is_empty());
    }

    #[test]
    fn saturated_agents_get_no_boots() {
        let mut b = c("b", 8, 0);
        b.saturated = true;
        assert!(!fits(&b, &TINY));
        assert!(fits(&c("b", 8, 0), &TINY));
    }

    #[test]
    fn unhealthy_cloudlets_do_not_fit() {
        let mut b = c("b", 4, 0);
        b.healthy = false;
        let view = vec![c("a", 0, 0), b, c("c", 1, 0)];
        assert_eq!(
            choose(
                "a",
                &view,
                &TINY,
                &HashSet::new(),
                &Policy::default(),
                &mut rng()
            ),
            Some("c")
        );
    }
}
