//! Which station serves which job: the controller of a monolith, or the
//! global API layer and the K cells of a nova cells v2 deployment.
//!
//! A deployment with one cell is the monolith: one conductor and one message
//! bus serve everything (nova runs no super-conductor in a single-cell
//! layout). With K > 1 cells (nova `doc/source/admin/cells.rst`):
//!
//! - global: nova-api, the super-conductor (builds and the post-schedule
//!   cast), the scheduler (one scope for every node), neutron-server and the
//!   top message bus ("API MQ", also carrying neutron's agent RPCs);
//! - per cell: a cell conductor (the final `instance.save()`, delete records,
//!   every compute's periodic reports) and a cell message bus (casts to the
//!   cell's computes, their RPCs, their connections).
//!
//! Nodes are split into K contiguous, near-equal cells: node i is in cell
//! `i * K / N`.

/// What a station does; decides its profile parameters and injected latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Api,
    Conductor,
    Scheduler,
    Networking,
    /// A message broker: no threads or DB, one forwarding queue.
    Bus,
}

/// One station of the engine (an index into its stations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stage(pub usize);

impl Stage {
    pub const API: Stage = Stage(0);
    /// The monolith's conductor, or the super-conductor of a cells deployment.
    pub const CONDUCTOR: Stage = Stage(1);
    pub const SCHEDULER: Stage = Stage(2);
    pub const NETWORKING: Stage = Stage(3);
    /// The monolith's broker, or the top (API) broker of a cells deployment.
    pub const BUS: Stage = Stage(4);
}

const GLOBAL: usize = 5;
const MONOLITH_NAMES: [&str; GLOBAL] = ["api", "conductor", "scheduler", "networking", "bus"];
const CELLS_NAMES: [&str; GLOBAL] = ["api", "super_conductor", "scheduler", "networking", "bus"];

#[derive(Clone, Debug)]
pub(crate) struct Layout {
    cells: usize,
    nodes: usize,
}

impl Layout {
    /// `cells` is clamped to 1..=nodes (a cell has at least one node).
    pub fn new(nodes: usize, cells: usize) -> Layout {
        Layout {
            cells: cells.clamp(1, nodes.max(1)),
            nodes,
        }
    }

    pub fn cells(&self) -> usize {
        self.cells
    }

    fn split(&self) -> bool {
        self.cells > 1
    }

    pub fn stations(&self) -> usize {
        if self.split() {
            GLOBAL + 2 * self.cells
        } else {
            GLOBAL
        }
    }

    pub fn all(&self) -> impl Iterator<Item = Stage> {
        (0..self.stations()).map(Stage)
    }

    pub fn kind(&self, s: Stage) -> Kind {
        match s.0 {
            0 => Kind::Api,
            1 => Kind::Conductor,
            2 => Kind::Scheduler,
            3 => Kind::Networking,
            4 => Kind::Bus,
            i if (i - GLOBAL).is_multiple_of(2) => Kind::Conductor,
            _ => Kind::Bus,
        }
    }

    pub fn name(&self, s: Stage) -> String {
        let names = if self.split() {
            &CELLS_NAMES
        } else {
            &MONOLITH_NAMES
        };
        match names.get(s.0) {
            Some(n) => (*n).to_string(),
            None => {
                let cell = (s.0 - GLOBAL) / 2 + 1;
                match self.kind(s) {
                    Kind::Bus => format!("cell{cell}/bus"),
                    _ => format!("cell{cell}/conductor"),
                }
            }
        }
    }

    /// The cell of node `node` (0-based).
    pub fn cell_of(&self, node: usize) -> usize {
        if self.nodes == 0 {
            return 0;
        }
        (node * self.cells / self.nodes).min(self.cells - 1)
    }

    /// The conductor that serves `node`'s RPC calls and reports.
    pub fn cell_conductor(&self, node: usize) -> Stage {
        if self.split() {
            Stage(GLOBAL + 2 * self.cell_of(node))
        } else {
            Stage::CONDUCTOR
        }
    }

    /// The broker `node` is connected to.
    pub fn cell_bus(&self, node: usize) -> Stage {
        if self.split() {
            Stage(GLOBAL + 2 * self.cell_of(node) + 1)
        } else {
            Stage::BUS
        }
    }

    /// Every broker: the top one, then each cell's.
    pub fn buses(&self) -> Vec<Stage> {
        self.all().filter(|s| self.kind(*s) == Kind::Bus).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cell_is_the_monolith() {
        let l = Layout::new(10, 1);
        assert_eq!(l.stations(), 5);
        assert_eq!(l.cell_conductor(9), Stage::CONDUCTOR);
        assert_eq!(l.cell_bus(9), Stage::BUS);
        assert_eq!(l.name(Stage::CONDUCTOR), "conductor");
    }

    #[test]
    fn cells_split_nodes_evenly_and_name_their_stations() {
        let l = Layout::new(10, 3);
        let cells: Vec<usize> = (0..10).map(|n| l.cell_of(n)).collect();
        assert_eq!(cells, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
        assert_eq!(l.stations(), 11);
        assert_eq!(l.name(Stage::CONDUCTOR), "super_conductor");
        assert_eq!(l.name(l.cell_conductor(9)), "cell3/conductor");
        assert_eq!(l.name(l.cell_bus(0)), "cell1/bus");
        assert_eq!(l.kind(l.cell_bus(5)), Kind::Bus);
        assert_eq!(l.buses().len(), 4);
        // More cells than nodes: one node per cell.
        assert_eq!(Layout::new(2, 5).cells(), 2);
    }
}
