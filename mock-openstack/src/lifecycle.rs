//! The server lifecycle as a pure state machine, and the seam that says how
//! long each stage takes.
//!
//! BUILD (task_state scheduling → networking → spawning) → ACTIVE, or ERROR
//! with a fault; delete goes through task_state `deleting` and then the
//! server is gone. Server actions (reboot, stop/start, pause/unpause,
//! suspend/resume, rebuild) are two steps: [`Lifecycle::begin`] checks the
//! state as nova's `check_instance_state` does and sets the action's
//! task_state; [`Lifecycle::finish`] lands the target state once the
//! action's model time has passed. Nothing here sleeps or locks: the driver
//! (`driver.rs`, the cp-model engine) feeds [`Event`]s in and reads the
//! state out.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VmState {
    Building,
    Active,
    Stopped,
    Paused,
    Suspended,
    Error,
}

impl VmState {
    /// nova's `vm_states` value.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Paused => "paused",
            VmState::Suspended => "suspended",
            VmState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaskState {
    Scheduling,
    Networking,
    Spawning,
    Deleting,
    Rebooting,
    RebootingHard,
    PoweringOff,
    PoweringOn,
    Pausing,
    Unpausing,
    Suspending,
    Resuming,
    Rebuilding,
}

impl TaskState {
    /// nova's `task_states` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduling => "scheduling",
            TaskState::Networking => "networking",
            TaskState::Spawning => "spawning",
            TaskState::Deleting => "deleting",
            TaskState::Rebooting => "rebooting",
            TaskState::RebootingHard => "rebooting_hard",
            TaskState::PoweringOff => "powering-off",
            TaskState::PoweringOn => "powering-on",
            TaskState::Pausing => "pausing",
            TaskState::Unpausing => "unpausing",
            TaskState::Suspending => "suspending",
            TaskState::Resuming => "resuming",
            TaskState::Rebuilding => "rebuilding",
        }
    }
}

/// nova power states (`nova/compute/power_state.py`).
pub mod power {
    pub const NOSTATE: u8 = 0;
    pub const RUNNING: u8 = 1;
    pub const PAUSED: u8 = 3;
    /// Also what libvirt reports for a suspended (managed-saved) domain.
    pub const SHUTDOWN: u8 = 4;
}

/// A server action that goes to the compute node and takes model time.
/// (lock/unlock are API-only and live on the server record.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Reboot { hard: bool },
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Rebuild,
}

impl Action {
    /// The action's name in nova's 409 message (`'reboot'`, `'stop'` …).
    pub fn api_name(self) -> &'static str {
        match self {
            Action::Reboot { .. } => "reboot",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Rebuild => "rebuild",
        }
    }

    /// The task_state the API sets while the compute node works.
    pub fn task_state(self) -> TaskState {
        match self {
            Action::Reboot { hard: false } => TaskState::Rebooting,
            Action::Reboot { hard: true } => TaskState::RebootingHard,
            Action::Stop => TaskState::PoweringOff,
            Action::Start => TaskState::PoweringOn,
            Action::Pause => TaskState::Pausing,
            Action::Unpause => TaskState::Unpausing,
            Action::Suspend => TaskState::Suspending,
            Action::Resume => TaskState::Resuming,
            Action::Rebuild => TaskState::Rebuilding,
        }
    }

    /// `check_instance_state` of `nova/compute/api.py`: the vm_states and
    /// task_states the action is accepted in.
    fn allowed(self) -> (&'static [VmState], &'static [Option<TaskState>]) {
        use TaskState::*;
        use VmState::*;
        const IDLE: &[Option<TaskState>] = &[None];
        // task_states.ALLOW_REBOOT (the reboot-pending/started states are
        // not modelled).
        const ALLOW_REBOOT: &[Option<TaskState>] = &[
            None,
            Some(Rebooting),
            Some(Resuming),
            Some(RebootingHard),
            Some(Unpausing),
            Some(Pausing),
            Some(Suspending),
        ];
        match self {
            // vm_states.ALLOW_SOFT_REBOOT
            Action::Reboot { hard: false } => (&[Active], IDLE),
            // vm_states.ALLOW_HARD_REBOOT
            Action::Reboot { hard: true } => {
                (&[Active, Stopped, Paused, Suspended, Error], ALLOW_REBOOT)
            }
            Action::Stop => (&[Active, Error], IDLE),
            Action::Start => (&[Stopped], IDLE),
            Action::Pause | Action::Suspend => (&[Active], IDLE),
            Action::Unpause => (&[Paused], IDLE),
            Action::Resume => (&[Suspended], IDLE),
            Action::Rebuild => (&[Active, Stopped, Error], IDLE),
        }
    }

    /// vm_state and power_state once the action is done (`from` is the
    /// vm_state the action started in).
    fn target(self, from: VmState) -> (VmState, u8) {
        match self {
            Action::Reboot { .. } | Action::Start | Action::Unpause | Action::Resume => {
                (VmState::Active, power::RUNNING)
            }
            Action::Stop => (VmState::Stopped, power::SHUTDOWN),
            Action::Pause => (VmState::Paused, power::PAUSED),
            Action::Suspend => (VmState::Suspended, power::SHUTDOWN),
            // nova rebuilds a stopped server and leaves it stopped.
            Action::Rebuild if from == VmState::Stopped => (VmState::Stopped, power::SHUTDOWN),
            Action::Rebuild => (VmState::Active, power::RUNNING),
        }
    }
}

/// Why nova refuses an action (`InstanceInvalidState`): the attribute that
/// is wrong and its value, as in the 409 message
/// "Cannot 'stop' instance X while it is in vm_state stopped".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Cannot '{action}' instance while it is in {attr} {state}")]
pub struct ActionRefused {
    pub action: &'static str,
    pub attr: &'static str,
    pub state: &'static str,
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
    /// A server action's model time has passed (see [`Lifecycle::finish`]).
    ActionDone(Action),
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
    /// nova power state (see [`power`]).
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
    /// (`_STATE_MAP` in `nova/api/openstack/common.py`).
    pub fn status(&self) -> &'static str {
        use TaskState::*;
        match (self.vm_state, self.task_state) {
            (VmState::Building, _) => "BUILD",
            (VmState::Active, Some(Rebooting)) => "REBOOT",
            (VmState::Active, Some(RebootingHard)) => "HARD_REBOOT",
            (VmState::Active | VmState::Stopped | VmState::Error, Some(Rebuilding)) => "REBUILD",
            (VmState::Active, _) => "ACTIVE",
            (VmState::Stopped, _) => "SHUTOFF",
            (VmState::Paused, _) => "PAUSED",
            (VmState::Suspended, _) => "SUSPENDED",
            (VmState::Error, _) => "ERROR",
        }
    }

    pub fn vm_state_str(&self) -> &'static str {
        self.vm_state.as_str()
    }

    /// Accepts `action` if nova would in this state and sets its
    /// task_state; the state is unchanged on refusal.
    pub fn begin(&mut self, action: Action) -> Result<(), ActionRefused> {
        let (vm_ok, task_ok) = action.allowed();
        let refuse = |attr, state| ActionRefused {
            action: action.api_name(),
            attr,
            state,
        };
        if !vm_ok.contains(&self.vm_state) {
            return Err(refuse("vm_state", self.vm_state.as_str()));
        }
        if !task_ok.contains(&self.task_state) {
            return Err(refuse(
                "task_state",
                self.task_state.map_or("None", TaskState::as_str),
            ));
        }
        self.task_state = Some(action.task_state());
        Ok(())
    }

    /// Lands `action` (begun in vm_state `from`). Refused if something
    /// else took over the task_state meanwhile (a delete, a hard reboot
    /// over a soft one, a lost host): then that newer work decides.
    pub fn finish(&mut self, action: Action, from: VmState) -> Result<(), InvalidTransition> {
        if self.task_state != Some(action.task_state()) {
            return Err(InvalidTransition {
                event: Event::ActionDone(action),
                vm: self.vm_state,
                task: self.task_state,
            });
        }
        let (vm, power) = action.target(from);
        self.vm_state = vm;
        self.power_state = power;
        self.task_state = None;
        if vm != VmState::Error {
            self.fault = None;
        }
        Ok(())
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
            (Event::Failed { fault, host }, vm, t)
                if vm != VmState::Error && t != Some(Deleting) =>
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

    fn active() -> Lifecycle {
        let mut l = Lifecycle::new();
        l.apply(Event::Scheduled { host: "h".into() }).unwrap();
        l.apply(Event::Networked).unwrap();
        l.apply(Event::Spawned).unwrap();
        l
    }

    /// Begins and lands `a`, checking the status nova shows in between.
    fn run(l: &mut Lifecycle, a: Action, during: &str) {
        let from = l.vm_state;
        l.begin(a).unwrap();
        assert_eq!(l.status(), during, "{a:?}");
        assert_eq!(l.task_state, Some(a.task_state()));
        l.finish(a, from).unwrap();
        assert_eq!(l.task_state, None);
    }

    #[test]
    fn actions_walk_novas_states() {
        let mut l = active();
        run(&mut l, Action::Reboot { hard: false }, "REBOOT");
        assert_eq!((l.status(), l.power_state), ("ACTIVE", power::RUNNING));
        run(&mut l, Action::Reboot { hard: true }, "HARD_REBOOT");
        run(&mut l, Action::Stop, "ACTIVE");
        assert_eq!(
            (l.status(), l.vm_state_str(), l.power_state),
            ("SHUTOFF", "stopped", 4)
        );
        run(&mut l, Action::Rebuild, "REBUILD");
        assert_eq!(l.status(), "SHUTOFF", "a stopped server stays stopped");
        run(&mut l, Action::Start, "SHUTOFF");
        assert_eq!((l.status(), l.power_state), ("ACTIVE", 1));
        run(&mut l, Action::Pause, "ACTIVE");
        assert_eq!(
            (l.status(), l.vm_state_str(), l.power_state),
            ("PAUSED", "paused", 3)
        );
        run(&mut l, Action::Unpause, "PAUSED");
        run(&mut l, Action::Suspend, "ACTIVE");
        assert_eq!((l.status(), l.vm_state_str()), ("SUSPENDED", "suspended"));
        run(&mut l, Action::Resume, "SUSPENDED");
        assert_eq!(l.status(), "ACTIVE");
    }

    #[test]
    fn wrong_state_is_refused_with_novas_attr_and_state() {
        let mut l = active();
        let e = l.begin(Action::Start).unwrap_err();
        assert_eq!((e.action, e.attr, e.state), ("start", "vm_state", "active"));
        l.begin(Action::Stop).unwrap();
        // Busy: a second action sees the task_state.
        let e = l.begin(Action::Pause).unwrap_err();
        assert_eq!((e.attr, e.state), ("task_state", "powering-off"));
        assert_eq!(
            l.task_state,
            Some(TaskState::PoweringOff),
            "refusal changes nothing"
        );
        l.finish(Action::Stop, VmState::Active).unwrap();
        for a in [
            Action::Stop,
            Action::Pause,
            Action::Suspend,
            Action::Reboot { hard: false },
        ] {
            let e = l.begin(a).unwrap_err();
            assert_eq!((e.attr, e.state), ("vm_state", "stopped"), "{a:?}");
        }
        assert!(Lifecycle::new()
            .begin(Action::Reboot { hard: true })
            .is_err());
    }

    #[test]
    fn hard_reboot_overrides_a_soft_one_and_delete_overrides_both() {
        let mut l = active();
        l.begin(Action::Reboot { hard: false }).unwrap();
        l.begin(Action::Reboot { hard: true }).unwrap();
        assert_eq!(l.status(), "HARD_REBOOT");
        assert!(l
            .finish(Action::Reboot { hard: false }, VmState::Active)
            .is_err());
        l.apply(Event::DeleteRequested).unwrap();
        assert!(l
            .finish(Action::Reboot { hard: true }, VmState::Active)
            .is_err());
        assert!(l.is_deleting());
    }

    #[test]
    fn error_servers_can_be_stopped_hard_rebooted_or_rebuilt() {
        let mut l = active();
        l.apply(Event::Failed {
            fault: "f".into(),
            host: None,
        })
        .unwrap();
        for a in [Action::Stop, Action::Reboot { hard: true }, Action::Rebuild] {
            let mut x = l.clone();
            x.begin(a).unwrap();
        }
        let mut x = l.clone();
        run(&mut x, Action::Rebuild, "REBUILD");
        assert_eq!((x.status(), x.fault.as_deref()), ("ACTIVE", None));
        assert!(l.clone().begin(Action::Reboot { hard: false }).is_err());
    }
}
