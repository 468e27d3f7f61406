//! The owner-side status feed (`POST /p2p/v1/statuses`, answered by
//! `api::peer::p2p_statuses` from [`Core::statuses_here`]): a coordinator
//! learns the state of the boots it placed on a cloudlet from that
//! cloudlet's agent, with work proportional to its own boots.
//!
//! Without it every coordinator listed every cloudlet's BUILD servers each
//! boot poll: N agents × N cloudlets lists, each carrying that cloudlet's
//! whole burst, so CPU per boot grew with N × burst (docs/benchmarks.md,
//! session 7). Here the owner lists its own cloudlet's BUILD servers of a
//! project at most once per `boot_poll_ms` and answers every caller from
//! that snapshot; only IDs missing from it (left BUILD, or created after
//! it) are read by ID, once each. N lists per poll instead of N², and
//! what crosses the federation is O(boots watched).
//!
//! Scope: a caller's question is answered for the project its signed
//! token is scoped to, and nothing else: the snapshot is the project's
//! own list, and an instance read by ID is answered only when it belongs
//! to that project (another project's instance is left out, as Nova's
//! 404 would). The own cloudlet's boots take the same path in-process.

use super::*;
use crate::protocol::LocalStatus;

/// The BUILD servers of one project on the own cloudlet, as listed at
/// `taken`.
#[derive(Debug)]
struct Building {
    taken: Instant,
    ids: HashSet<String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Building>>>>;

/// Per project, the last BUILD list of the own cloudlet. One refresh at a
/// time per project: callers arriving meanwhile wait for it and share it.
#[derive(Debug, Default)]
pub struct StatusFeed {
    projects: Mutex<HashMap<ProjectRef, Slot>>,
}

impl StatusFeed {
    fn slot(&self, p: &ProjectRef) -> Option<Slot> {
        let mut g = self.projects.lock().ok()?;
        Some(g.entry(p.clone()).or_default().clone())
    }
}

impl Core {
    /// The BUILD servers of `p` on the own cloudlet, listed at most once
    /// per `boot_poll_ms` (then shared by every caller).
    async fn building_here(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Arc<Building>, CallError> {
        let fresh_for = Duration::from_millis(self.cfg.boot_poll_ms.max(10));
        let Some(slot) = self.status_feed.slot(p) else {
            return Err(CallError::BadResponse("status feed lock poisoned".into()));
        };
        let mut g = slot.lock().await;
        if let Some(b) = g.as_ref() {
            if clock::now().saturating_duration_since(b.taken) < fresh_for {
                return Ok(b.clone());
            }
        }
        let taken = clock::now();
        let me = Member {
            name: self.name.clone(),
            url: Some(self.self_url.clone()),
            alive: true,
        };
        // The own cloudlet: called with the service account scoped to `p`
        // (`claims` only matter for calls to peers).
        let ids = self.building_on(&me, claims, p, rid).await?;
        let b = Arc::new(Building { taken, ids });
        *g = Some(b.clone());
        Ok(b)
    }

    /// The state of `ids` on the own cloudlet for project `p`: BUILD from
    /// the shared snapshot, the others read by ID. An ID that is gone or
    /// not `p`'s is left out.
    pub(crate) async fn statuses_here(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        ids: &[String],
        rid: &str,
    ) -> Result<Vec<LocalStatus>, CallError> {
        let building = self.building_here(claims, p, rid).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut to_read = Vec::new();
        for id in ids {
            if building.ids.contains(id) {
                out.push(LocalStatus {
                    id: id.clone(),
                    status: "BUILD".into(),
                    fault: None,
                    unreadable: None,
                });
            } else {
                to_read.push(id);
            }
        }
        if to_read.is_empty() {
            return Ok(out);
        }
        let own_pid = self.cloudlet.token_for(p).await?.project_id.clone();
        let reads = to_read
            .into_iter()
            .map(|id| self.read_status_here(p, &own_pid, id, rid));
        out.extend(futures::future::join_all(reads).await.into_iter().flatten());
        Ok(out)
    }

    /// One instance of the own cloudlet by ID; `None` when it is gone or
    /// belongs to another project than `own_pid`.
    async fn read_status_here(
        &self,
        p: &ProjectRef,
        own_pid: &str,
        id: &str,
        rid: &str,
    ) -> Option<LocalStatus> {
        #[derive(Deserialize)]
        struct Fault {
            message: Option<String>,
        }
        #[derive(Deserialize)]
        struct Server {
            #[serde(default)]
            status: String,
            tenant_id: Option<String>,
            fault: Option<Fault>,
        }
        #[derive(Deserialize)]
        struct Wrapped {
            server: Option<Server>,
        }
        let unreadable = |why: String| {
            Some(LocalStatus {
                id: id.to_string(),
                status: String::new(),
                fault: None,
                unreadable: Some(why),
            })
        };
        let path = format!("/servers/{id}");
        let r = match self
            .cloudlet
            .call(p, Svc::Compute, Method::GET, &path, None, rid)
            .await
        {
            Ok(r) => r,
            Err(e) => return unreadable(e.to_string()),
        };
        if r.status() == StatusCode::NOT_FOUND {
            return None;
        }
        if !r.status().is_success() {
            return unreadable(status_error(&r).to_string());
        }
        let s = match serde_json::from_slice::<Wrapped>(r.body()) {
            Ok(w) => w.server?,
            Err(e) => return unreadable(format!("server status: {e}")),
        };
        if s.tenant_id.as_deref() != Some(own_pid) {
            return None;
        }
        Some(LocalStatus {
            id: id.to_string(),
            status: s.status,
            fault: s.fault.and_then(|f| f.message),
            unreadable: None,
        })
    }
}
