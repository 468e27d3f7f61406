//! The agent-to-agent protocol (`/p2p/v1`), typed once for both sides: the
//! router mounts the [`routes`], a caller builds a [`PeerRequest`] and reads
//! the typed answers below. Every request is signed ([`crate::peer_sig`],
//! header [`P2P_AUTH`]) and carries the user's federation token.

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Header carrying the agent-to-agent signature.
pub const P2P_AUTH: &str = "x-p2p-auth";

/// Route patterns, as mounted by the router (axum syntax).
pub mod routes {
    pub const BOOT: &str = "/p2p/v1/boot";
    pub const SERVER: &str = "/p2p/v1/servers/{id}";
    pub const LOCAL: &str = "/p2p/v1/local/{*rest}";
    pub const READ: &str = "/p2p/v1/read/{*rest}";
    pub const AUTH: &str = "/p2p/v1/auth";
    pub const KNOWN: &str = "/p2p/v1/known/{member}";
    pub const VIEW: &str = "/p2p/v1/view";
    pub const SUPERSEDED: &str = "/p2p/v1/superseded";
    pub const REPLICA: &str = "/p2p/v1/replica";
    pub const GONE: &str = "/p2p/v1/gone";
    pub const SERVER_ACTION: &str = "/p2p/v1/servers/{id}/action";
    pub const KEYPAIR: &str = "/p2p/v1/keypair";
    pub const STATUSES: &str = "/p2p/v1/statuses";
    pub const LOST: &str = "/p2p/v1/lost";
}

const LOCAL_PREFIX: &str = "/p2p/v1/local";
const READ_PREFIX: &str = "/p2p/v1/read";

/// A boot, described portably (names, not cloudlet-local IDs): the body of
/// `POST /p2p/v1/boot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootPlan {
    pub gid: String,
    pub coordinator: String,
    /// The user's `server` object without imageRef/flavorRef/networks.
    pub server: Value,
    pub flavor_name: String,
    pub image_name: Option<String>,
    /// Network names, or the string `"auto"`/`"none"`, or null (omitted).
    pub networks: Value,
    pub scheduler_hints: Option<Value>,
    /// Which placement attempt this is (1 = the first); recorded in the
    /// instance so that an adopter knows the retry budget left.
    #[serde(default)]
    pub attempt: u32,
    /// The user's keypair (its stored name is the server's `key_name`):
    /// the cloudlet the boot lands on gets it first if it lacks it.
    #[serde(default)]
    pub key: Option<PlanKey>,
}

/// A keypair a boot needs, portably.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanKey {
    /// The stored name (see `core::keypairs`).
    pub name: String,
    pub public_key: String,
}

/// The body of `POST /p2p/v1/keypair`: a user's keypair to copy onto the
/// callee's cloudlet (204), or to remove from it (`public_key` absent:
/// 204, or 404 when it had none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeypairCopy {
    /// The stored name (see `core::keypairs`).
    pub name: String,
    #[serde(default)]
    pub public_key: Option<String>,
    /// For a removal: remove only a keypair with this public key (a
    /// removal retried late must not remove one made again since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_public_key: Option<String>,
}

/// The answer to `POST /p2p/v1/boot` (202): the instance's ID on the
/// callee's cloudlet and that cloudlet's create answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootAccepted {
    pub local_id: String,
    #[serde(default)]
    pub create: Value,
}

/// The answer to `GET /p2p/v1/known/{member}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KnownServers {
    #[serde(default)]
    pub servers: Vec<Value>,
    /// Local IDs among `servers` whose boots a backup took over as lost
    /// with their cloudlet, with the fault: the asker shows them ERROR as
    /// the backup does (an agent that joined after the announcement, or
    /// missed it, would otherwise show them UNKNOWN).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lost: std::collections::BTreeMap<String, String>,
}

/// The body of `POST /p2p/v1/superseded`: instances on the callee's
/// cloudlet that a coordinator replaced (or whose server was deleted) and
/// that must go. The callee hides them from every list it serves and
/// deletes them itself until its cloudlet answers (204).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Superseded {
    pub local_ids: Vec<String>,
}

/// What a coordinator last told its backup about a boot it replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Accepted, not yet seen ACTIVE.
    Building,
    Active,
    /// Deleted by the client: the backup forgets the record.
    Deleted,
    /// Not a boot's state: instance `local_id` on cloudlet `owner` is being
    /// deleted for certain by the sender (superseded by a re-placement, or
    /// abandoned) and its cloudlet has not confirmed yet. The backup keeps
    /// it apart from boot records (keyed by cloudlet and local ID) and
    /// carries the delete on should the sender die first.
    Doomed,
    /// The delete of a [`ReplicaState::Doomed`] instance landed (or the
    /// record moved to another backup): forget it.
    Purged,
}

/// The body of `POST /p2p/v1/replica`: a boot record a coordinator keeps
/// on a second agent (its backup) while the instance lives on the
/// coordinator's own cloudlet, so that losing both (agent and cloudlet)
/// does not lose the fact that the server exists (docs/agent.md,
/// durability contract). The user's token of the call names the project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootReplica {
    pub gid: String,
    /// The sender.
    pub coordinator: String,
    /// The cloudlet holding the instance, and its ID there.
    pub owner: String,
    pub local_id: String,
    pub name: String,
    pub tenant: String,
    /// What re-placing the boot needs; sent while it builds, absent in a
    /// later state change (the backup keeps the one it holds).
    #[serde(default)]
    pub plan: Option<BootPlan>,
    /// The flavor's demand: vCPUs, RAM MB, disk GB.
    #[serde(default)]
    pub demand: [i64; 3],
    /// Cloudlets tried so far (the retry budget left).
    pub tried: Vec<String>,
    pub state: ReplicaState,
}

/// The body of `POST /p2p/v1/gone`: instances of a lost cloudlet whose
/// servers the client deleted (through the agent that took them over).
/// The callee never shows them again from what it remembers of that
/// cloudlet (204).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gone {
    pub cloudlet: String,
    pub local_ids: Vec<String>,
}

/// The body of `POST /p2p/v1/statuses`: the instances on the callee's
/// cloudlet whose state a coordinator watches (at most
/// [`StatusQuery::MAX_IDS`]; a caller with more sends several).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusQuery {
    pub local_ids: Vec<String>,
}

impl StatusQuery {
    pub const MAX_IDS: usize = 2_000;
}

/// The answer to `POST /p2p/v1/statuses` (200): one entry per asked ID
/// that exists on the callee's cloudlet in the caller's project. An ID
/// left out is gone (or never was the caller's: the same to the caller).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReport {
    #[serde(default)]
    pub servers: Vec<LocalStatus>,
}

/// What the owner's agent knows of one instance on its cloudlet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStatus {
    pub id: String,
    /// Nova's status (`BUILD`, `ACTIVE`, `ERROR`, ...); empty when unread.
    #[serde(default)]
    pub status: String,
    /// The fault message of an instance in ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Why the instance could not be read this time (its status unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// The body of `POST /p2p/v1/lost`: servers of a lost pair (agent and
/// cloudlet both gone) that the sender, their backup, took over and shows
/// ERROR with `fault` (they were ACTIVE: their disks are on that cloudlet).
/// The callee shows them so from what it remembers of that cloudlet,
/// instead of UNKNOWN (204).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lost {
    pub cloudlet: String,
    pub local_ids: Vec<String>,
    pub fault: String,
}

/// Which service a `/p2p/v1/read` call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Compute,
    Image,
    Network,
}

impl ReadKind {
    fn segment(self) -> &'static str {
        match self {
            ReadKind::Compute => "compute",
            ReadKind::Image => "image",
            ReadKind::Network => "network",
        }
    }
}

/// One `/p2p/v1` request, as the caller builds it.
#[derive(Debug, Clone)]
pub enum PeerRequest<'a> {
    /// Create a planned boot on the callee's cloudlet.
    Boot(&'a BootPlan),
    /// `GET`/`DELETE` of a global ID at its coordinator (or adopter).
    Server { method: Method, gid: Uuid },
    /// A raw call on the callee's Nova (`nova_path` with query): a read,
    /// a delete, or a server action (`POST /servers/{id}/action`, `body`).
    Local {
        method: Method,
        nova_path: &'a str,
        body: Option<Bytes>,
    },
    /// A read for a peer whose own cloudlet is down.
    Read { kind: ReadKind, path: &'a str },
    /// Keystone password auth for a peer whose own cloudlet is down.
    Auth(Bytes),
    /// What the callee remembers of `member`'s servers.
    Known { member: &'a str },
    /// Instances on the callee's cloudlet that must go.
    Superseded(&'a Superseded),
    /// Keep (or forget) a boot record as the sender's backup.
    Replica(&'a BootReplica),
    /// Deleted servers of a lost cloudlet, never to be shown again.
    Gone(&'a Gone),
    /// Taken-over servers of a lost cloudlet, shown ERROR from now on.
    Lost(&'a Lost),
    /// A server action at the global ID's coordinator (or adopter).
    ServerAction { gid: Uuid, body: Bytes },
    /// Copy or remove a user's keypair on the callee's cloudlet.
    Keypair(&'a KeypairCopy),
    /// The state of instances on the callee's cloudlet (boot watching).
    Statuses(&'a StatusQuery),
}

impl PeerRequest<'_> {
    pub fn method(&self) -> Method {
        match self {
            PeerRequest::Boot(_)
            | PeerRequest::Auth(_)
            | PeerRequest::Superseded(_)
            | PeerRequest::Replica(_)
            | PeerRequest::Gone(_)
            | PeerRequest::Lost(_)
            | PeerRequest::ServerAction { .. }
            | PeerRequest::Keypair(_)
            | PeerRequest::Statuses(_) => Method::POST,
            PeerRequest::Server { method, .. } | PeerRequest::Local { method, .. } => {
                method.clone()
            }
            PeerRequest::Read { .. } | PeerRequest::Known { .. } => Method::GET,
        }
    }

    /// The path (with query) as sent.
    pub fn path(&self) -> String {
        match self {
            PeerRequest::Boot(_) => routes::BOOT.to_string(),
            PeerRequest::Server { gid, .. } => format!("/p2p/v1/servers/{gid}"),
            PeerRequest::Local { nova_path, .. } => format!("{LOCAL_PREFIX}{nova_path}"),
            PeerRequest::Read { kind, path } => format!("{READ_PREFIX}/{}{path}", kind.segment()),
            PeerRequest::Auth(_) => routes::AUTH.to_string(),
            PeerRequest::Known { member } => format!("/p2p/v1/known/{member}"),
            PeerRequest::Superseded(_) => routes::SUPERSEDED.to_string(),
            PeerRequest::Replica(_) => routes::REPLICA.to_string(),
            PeerRequest::Gone(_) => routes::GONE.to_string(),
            PeerRequest::Lost(_) => routes::LOST.to_string(),
            PeerRequest::ServerAction { gid, .. } => format!("/p2p/v1/servers/{gid}/action"),
            PeerRequest::Keypair(_) => routes::KEYPAIR.to_string(),
            PeerRequest::Statuses(_) => routes::STATUSES.to_string(),
        }
    }

    pub fn body(&self) -> Option<Bytes> {
        match self {
            PeerRequest::Boot(plan) => serde_json::to_vec(plan).ok().map(Bytes::from),
            PeerRequest::Superseded(s) => serde_json::to_vec(s).ok().map(Bytes::from),
            PeerRequest::Replica(r) => serde_json::to_vec(r).ok().map(Bytes::from),
            PeerRequest::Gone(g) => serde_json::to_vec(g).ok().map(Bytes::from),
            PeerRequest::Lost(l) => serde_json::to_vec(l).ok().map(Bytes::from),
            PeerRequest::Keypair(k) => serde_json::to_vec(k).ok().map(Bytes::from),
            PeerRequest::Statuses(q) => serde_json::to_vec(q).ok().map(Bytes::from),
            PeerRequest::ServerAction { body, .. } => Some(body.clone()),
            PeerRequest::Local { body, .. } => body.clone(),
            PeerRequest::Auth(b) => Some(b.clone()),
            _ => None,
        }
    }
}

/// The Nova path of a `/p2p/v1/local` request (callee side).
pub fn local_nova_path(path: &str) -> &str {
    path.strip_prefix(LOCAL_PREFIX).unwrap_or("")
}

/// The service and service path of a `/p2p/v1/read` request (callee side).
pub fn read_target(path: &str) -> Option<(ReadKind, &str)> {
    let rest = path.strip_prefix(READ_PREFIX)?;
    [ReadKind::Compute, ReadKind::Image, ReadKind::Network]
        .into_iter()
        .find_map(|k| {
            rest.strip_prefix('/')
                .and_then(|r| r.strip_prefix(k.segment()))
                .filter(|r| r.is_empty() || r.starts_with('/'))
                .map(|r| (k, r))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_paths() {
        let nova = "/servers/detail?status=BUILD&limit=1000";
        let local = PeerRequest::Local {
            method: Method::GET,
            nova_path: nova,
            body: None,
        };
        assert_eq!(local_nova_path(&local.path()), nova);
        let read = PeerRequest::Read {
            kind: ReadKind::Image,
            path: "/v2/images/x",
        };
        assert_eq!(read.method(), Method::GET);
        assert_eq!(
            read_target(&read.path()),
            Some((ReadKind::Image, "/v2/images/x"))
        );
        assert_eq!(read_target("/p2p/v1/read/imagex/y"), None);
        assert_eq!(read_target("/p2p/v1/read/placement/y"), None);
    }

    #[test]
    fn bodies_round_trip() {
        let s = Superseded {
            local_ids: vec!["a".into()],
        };
        let req = PeerRequest::Superseded(&s);
        assert_eq!(req.method(), Method::POST);
        let back: Superseded =
            serde_json::from_slice(&req.body().unwrap_or_default()).expect("superseded body");
        assert_eq!(back.local_ids, vec!["a".to_string()]);
        let rec: BootReplica = serde_json::from_value(serde_json::json!({
            "gid": "g", "coordinator": "c", "owner": "c", "local_id": "l", "name": "n",
            "tenant": "t", "tried": ["c"], "state": "active"}))
        .expect("a state change carries no plan");
        assert_eq!(
            (rec.state, rec.plan.is_none()),
            (ReplicaState::Active, true)
        );
        let req = PeerRequest::Replica(&rec);
        assert_eq!(
            (req.method(), req.path()),
            (Method::POST, routes::REPLICA.to_string())
        );
        let back: BootReplica =
            serde_json::from_slice(&req.body().unwrap_or_default()).expect("replica body");
        assert_eq!(back.gid, "g");
        let q = StatusQuery {
            local_ids: vec!["l".into()],
        };
        let req = PeerRequest::Statuses(&q);
        assert_eq!(
            (req.method(), req.path()),
            (Method::POST, routes::STATUSES.to_string())
        );
        let back: StatusQuery =
            serde_json::from_slice(&req.body().unwrap_or_default()).expect("status query");
        assert_eq!(back.local_ids, q.local_ids);
        let report: StatusReport =
            serde_json::from_str(r#"{"servers":[{"id":"l","status":"ERROR","fault":"boom"}]}"#)
                .expect("status report");
        assert_eq!(report.servers[0].fault.as_deref(), Some("boom"));
        assert_eq!(report.servers[0].unreadable, None);
        let accepted: BootAccepted =
            serde_json::from_str(r#"{"local_id":"l"}"#).expect("boot answer");
        assert_eq!(accepted.local_id, "l");
    }
}
