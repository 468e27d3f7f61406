//! The server lifecycle as a pure state machine, and the seam that says how
//! long each stage takes.
//!
//! BUILD (task_state scheduling → networking → spawning) → ACTIVE, or ERROR
//! with a fault; delete goes through task_state `deleting` and then the
//! server is gone. Nothing here sleeps or locks: the driver (`driver.rs`,
//! the cp-model engine) feeds [`Event`]s in and reads the state out.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VmState {
    Building,
    Active,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaskState {
    Scheduling,
    Networking,
    Spawning,
    Deleting,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduling => "scheduling",
            TaskState::Networking => "networking",
            TaskState::Spawning => "spawning",
            TaskState::Deleting => "deleting",
        }
    }
}

/// What the driver reports about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The scheduler claimed resources on `host`.
    Scheduled {
        host: String,
    },
    /// No compute node fits the flavor.
    NoValidHost,
    Networked,
    Spawned,
    /// The build (or, for a lost host, the running server) failed.
    Failed {
        fault: String,
        host: Option<String>,
    },
    DeleteRequested,
}

/// The event does not apply in the current state (e.g. a build step after
/// the server was deleted): the driver stops driving that server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is invalid in state {vm:?}/{task:?}")]
pub struct InvalidTransition {
    pub event: Event,
    pub vm: VmState,
    pub task: Option<TaskState>,
}

/// Lifecycle state of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    /// nova power states: 0 NOSTATE, 1 RUNNING.
    pub power_state: u8,
    pub progress: u8,
    pub host: Option<String>,
    /// `Some(message)` once the server went to ERROR.
    pub fault: Option<String>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

impl Lifecycle {
    /// A server just accepted by the API: BUILD / scheduling.
    pub fn new() -> Self {
        Self {
            vm_state: VmState::Building,
            task_state: Some(TaskState::Scheduling),
            power_state: 0,
            progress: 0,
            host: None,
            fault: None,
        }
    }

    /// Nova's API status for the (vm_state, task_state) pair.
    pub fn status(&self) -> &'static str {
        match self.vm_state {
            VmState::Building => "BUILD",
            VmState::Active => "ACTIVE",
            VmState::Error => "ERROR",
        }
    }

    pub fn vm_state_str(&self) -> &'static str {
        match self.vm_state {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Error => "error",
        }
    }

    pub fn is_deleting(&self) -> bool {
        self.task_state == Some(TaskState::Deleting)
    }

    pub fn apply(&mut self, event: Event) -> Result<(), InvalidTransition> {
        use TaskState::*;
        let invalid = |s: &Self, event| InvalidTransition {
            event,
            vm: s.vm_state,
            task: s.task_state,
        };
        match (&event, self.vm_state, self.task_state) {
            (Event::Scheduled { host }, VmState::Building, Some(Scheduling)) => {
                self.host = Some(host.clone());
                self.task_state = Some(Networking);
                // nova (libvirt) reports no progress while building; the CLI
                // would print "Progress: N" otherwise.
                self.progress = 0;
            }
            (Event::NoValidHost, VmState::Building, Some(Scheduling)) => {
                self.vm_state = VmState::Error;
                self.task_state = None;
                self.fault = Some(NO_VALID_HOST.to_string());
            }
            (Event::Networked, VmState::Building, Some(Networking)) => {
                self.task_state = Some(Spawning);
                self.progress = 0;
            }
            (Event::Spawned, VmState::Building, Some(Spawning)) => {
                self.vm_state = VmState::Active;
                self.task_state = None;
                self.power_state = 1;
                self.progress = 100;
            }
            (Event::Failed { fault, host }, VmState::Building | VmState::Active, t)
                if t != Some(Deleting) =>
            {
                if self.host.is_none() {
                    self.host.clone_from(host);
                }
                self.vm_state = VmState::Error;
                self.task_state = None;
                self.power_state = 0;
                self.fault = Some(fault.clone());
            }
            (Event::DeleteRequested, _, t) if t != Some(Deleting) => {
                self.task_state = Some(Deleting);
            }
            _ => return Err(invalid(self, event)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_goes_through_every_task_state_to_active() {
        let mut l = Lifecycle::new();
        assert_eq!(
            (l.status(), l.task_state),
            ("BUILD", Some(TaskState::Scheduling))
        );
        l.apply(Event::Scheduled { host: "h".into() }).unwrap();
        assert_eq!(l.task_state, Some(TaskState::Networking));
        l.apply(Event::Networked).unwrap();
        assert_eq!(l.task_state, Some(TaskState::Spawning));
        l.apply(Event::Spawned).unwrap();
        assert_eq!(
            (l.status(), l.task_state, l.power_state),
            ("ACTIVE", None, 1)
        );
        assert_eq!(l.host.as_deref(), Some("h"));
    }

    #[test]
    fn no_valid_host_is_error_with_fault() {
        let mut l = Lifecycle::new();
        l.apply(Event::NoValidHost).unwrap();
        assert_eq!(l.status(), "ERROR");
        assert!(l
            .fault
            .as_deref()
            .unwrap()
            .starts_with("No valid host was found."));
        assert!(l.apply(Event::Networked).is_err());
    }

    #[test]
    fn delete_stops_a_build_and_is_idempotent_once() {
        let mut l = Lifecycle::new();
        l.apply(Event::Scheduled { host: "h".into() }).unwrap();
        l.apply(Event::DeleteRequested).unwrap();
        assert!(l.is_deleting());
        assert_eq!(l.status(), "BUILD");
        assert!(l.apply(Event::Networked).is_err());
        assert!(l.apply(Event::DeleteRequested).is_err());
    }

    #[test]
    fn out_of_order_events_are_rejected() {
        let mut l = Lifecycle::new();
        assert!(l.apply(Event::Spawned).is_err());
        assert!(l.apply(Event::Networked).is_err());
        assert_eq!(l, Lifecycle::new());
    }

    #[test]
    fn failure_from_build_or_active_keeps_the_host() {
        let mut l = Lifecycle::new();
        l.apply(Event::Scheduled { host: "h".into() }).unwrap();
        l.apply(Event::Networked).unwrap();
        l.apply(Event::Spawned).unwrap();
        l.apply(Event::Failed {
            fault: "Compute host h lost".into(),
            host: Some("h".into()),
        })
        .unwrap();
        assert_eq!((l.status(), l.power_state), ("ERROR", 0));
        assert_eq!(l.host.as_deref(), Some("h"));
        assert!(l
            .apply(Event::Failed {
                fault: "x".into(),
                host: None
            })
            .is_err());
    }
}
