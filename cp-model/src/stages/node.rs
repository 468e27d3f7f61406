//! One compute node: capacity, claims, build slots, image cache, and the
//! compute-node record that the scheduler reads from the database.

use std::collections::VecDeque;

use crate::types::{InstanceId, ModelTime, NodeSpec, NodeUsage, Resources};

/// What the DB says about a node: usage as the compute saw it, and when written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub usage: Resources,
    pub updated_at: ModelTime,
}

#[derive(Debug)]
pub(crate) enum ImageCache {
    Absent,
    /// Download in progress; these instances wait for it.
    Downloading(Vec<InstanceId>),
    Cached,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub spec: NodeSpec,
    pub up: bool,
    /// Claimed by builds and active instances (the resource tracker's truth).
    pub used: Resources,
    pub instances: u32,
    /// Builds holding a `max_concurrent_builds` slot.
    pub building: u32,
    pub max_building_seen: u32,
    /// Builds cast to this node and waiting for a slot (FIFO, like the semaphore).
    pub build_queue: VecDeque<InstanceId>,
    pub image: ImageCache,
    /// Latest record visible to the scheduler, and writes still in flight.
    pub record: Record,
    pub pending_records: VecDeque<(ModelTime, Record)>,
    /// When the service heartbeat last reached the DB (nova's service.updated_at).
    pub last_report: ModelTime,
    pub report_outstanding: bool,
    pub tracker_outstanding: bool,
    pub agent_outstanding: bool,
}

impl Node {
    pub fn new(spec: NodeSpec) -> Node {
        Node {
            spec,
            up: true,
            used: Resources::default(),
            instances: 0,
            building: 0,
            max_building_seen: 0,
            build_queue: VecDeque::new(),
            image: ImageCache::Absent,
            record: Record {
                usage: Resources::default(),
                updated_at: 0.0,
            },
            pending_records: VecDeque::new(),
            last_report: 0.0,
            report_outstanding: false,
            tracker_outstanding: false,
            agent_outstanding: false,
        }
    }

    /// Write a compute-node record with `usage`, visible after `lag`.
    pub fn write_record(&mut self, now: ModelTime, usage: Resources, lag: f64) {
        let rec = Record {
            usage,
            updated_at: now,
        };
        if lag <= 0.0 {
            self.record = rec;
        } else {
            self.pending_records.push_back((now + lag, rec));
        }
    }

    /// Make records whose DB write has landed visible.
    pub fn promote_records(&mut self, now: ModelTime) {
        while let Some((visible_at, rec)) = self.pending_records.front().copied() {
            if visible_at > now {
                break;
            }
            self.pending_records.pop_front();
            self.record = rec;
        }
    }

    pub fn claim(&mut self, req: &Resources) -> bool {
        if self.spec.fits(&self.used, req) {
            self.used.add(req);
            self.instances += 1;
            true
        } else {
            false
        }
    }

    pub fn release(&mut self, req: &Resources) {
        self.used.sub(req);
        self.instances = self.instances.saturating_sub(1);
    }

    pub fn load(&self) -> crate::types::NodeLoad {
        crate::types::NodeLoad {
            vcpus_used: self.used.vcpus,
            ram_mb_used: self.used.ram_mb,
            disk_gb_used: self.used.disk_gb,
            running_vms: self.instances,
            builds_in_flight: self.building,
            builds_queued: self.build_queue.len() as u32,
            up: self.up,
        }
    }

    pub fn usage(&self) -> NodeUsage {
        NodeUsage {
            name: self.spec.name.clone(),
            capacity: self.spec.clone(),
            vcpus_used: self.used.vcpus,
            ram_mb_used: self.used.ram_mb,
            disk_gb_used: self.used.disk_gb,
            running_vms: self.instances,
            builds_in_flight: self.building,
            builds_queued: self.build_queue.len() as u32,
            up: self.up,
        }
    }
}
