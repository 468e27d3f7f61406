//! The filter scheduler's view of the hosts and its choice.
//!
//! Each scheduler worker keeps its own host-state cache, like nova's
//! `HostManager`: a DB record replaces the cached state only if it is newer
//! than the worker's last local update (`HostState.updated`), and every choice
//! consumes the request from the cache. A record written after a choice but
//! computed before the chosen build claimed (a periodic resource-tracker
//! update) therefore erases that choice: the race that over-commits a host and
//! makes its claim fail on the compute, which reschedules.

use crate::stages::node::Node;
use crate::types::{ModelTime, Resources};

#[derive(Clone, Copy, Debug)]
pub(crate) struct HostView {
    pub usage: Resources,
    pub updated_at: ModelTime,
}

impl Default for HostView {
    fn default() -> Self {
        HostView {
            usage: Resources::default(),
            updated_at: f64::NEG_INFINITY,
        }
    }
}

/// Filters (Retry, Compute, RAM/Core/Disk with allocation ratios) and the
/// RAM weigher (spread; `host_subset_size` 1, ties to the first host).
/// `considered` nodes are examined starting at `offset` (cyclically), like a
/// capped placement candidate list that is not always the same first hosts.
#[allow(clippy::too_many_arguments)]
pub(crate) fn choose(
    views: &mut [HostView],
    nodes: &mut [Node],
    offset: usize,
    considered: usize,
    req: &Resources,
    tried: &[usize],
    now: ModelTime,
    service_down_time: f64,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    let len = nodes.len().min(views.len());
    for j in 0..considered.min(len) {
        let i = (offset + j) % len;
        let (Some(view), Some(node)) = (views.get_mut(i), nodes.get_mut(i)) else {
            continue;
        };
        node.promote_records(now);
        if node.record.updated_at > view.updated_at {
            view.usage = node.record.usage;
            view.updated_at = node.record.updated_at;
        }
        if tried.contains(&i) || now - node.last_report > service_down_time {
            continue;
        }
        if !node.spec.fits(&view.usage, req) {
            continue;
        }
        let w = node.spec.free_ram(&view.usage);
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i, w));
        }
    }
    let (chosen, _) = best?;
    if let Some(v) = views.get_mut(chosen) {
        v.usage.add(req);
        v.updated_at = now;
    }
    Some(chosen)
}
