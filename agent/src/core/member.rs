//! One call path to "a member": the own cloudlet, a peer agent's cloudlet
//! through `/p2p/v1/local`, or that cloudlet directly when its agent is gone.

use super::*;

/// A client of another member's cloudlet, and when a call through it last
/// failed to connect.
pub type DirectClient = (Arc<CloudletClient>, Option<Instant>);

/// A member as one read of the overlay sees it (the own agent included).
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    /// Its agent's URL, when gossip knows it.
    pub url: Option<String>,
    /// Alive by the failure detector.
    pub alive: bool,
}

impl Member {
    pub fn of(state: &CloudletState, alive: bool) -> Self {
        Self {
            name: state.name.clone(),
            url: Some(state.url.clone()),
            alive,
        }
    }
}

/// `path` with [`PROJECT_PLACEHOLDER`] replaced by a cloudlet's project ID.
async fn on_cloudlet(c: &CloudletClient, p: &ProjectRef, path: &str) -> Result<String, CallError> {
    if !path.contains(PROJECT_PLACEHOLDER) {
        return Ok(path.to_string());
    }
    let tok = c.token_for(p).await?;
    Ok(path.replace(PROJECT_PLACEHOLDER, &tok.project_id))
}

impl Core {
    /// `name` as the overlay sees it now.
    pub(crate) async fn member(&self, name: &str) -> Member {
        if name == self.name {
            return Member {
                name: name.to_string(),
                url: Some(self.self_url.clone()),
                alive: true,
            };
        }
        // With a partial view the member may be outside the view (a
        // cloudlet this agent placed a boot on): found over the overlay.
        let m = self.gossip.find_member(name).await;
        Member {
            name: name.to_string(),
            alive: m.as_ref().is_some_and(|(_, alive)| *alive),
            url: m.map(|(s, _)| s.url),
        }
    }

    /// The one call path to a member's Nova, for `p` on behalf of
    /// `claims`: the own cloudlet; else the member's agent
    /// (`/p2p/v1/local`); else, when that agent is gone (dead by gossip,
    /// suspected, or unreachable), the member's cloudlet itself (see
    /// [`Core::direct`]). [`PROJECT_PLACEHOLDER`] in `nova_path` stands
    /// for the called cloudlet's ID of `p`; `body` is a server action's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn nova_call(
        &self,
        m: &Member,
        method: Method,
        nova_path: &str,
        body: Option<Bytes>,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<HttpResponse, CallError> {
        if m.name == self.name {
            let path = on_cloudlet(&self.cloudlet, p, nova_path).await?;
            return self
                .cloudlet
                .call(p, Svc::Compute, method, &path, body, rid)
                .await;
        }
        // A member known lost with its cloudlet ([`Core::silent`]) is not
        // waited for on every call; the background probe
        // ([`Core::probe_silent`]) clears the mark when its cloudlet answers.
        if self.silent(m) {
            return Err(CallError::BadResponse(format!(
                "member {} and its cloudlet are unreachable",
                m.name
            )));
        }
        if !m.alive || self.suspected(&m.name) {
            match self.direct(&m.name).await {
                Some(c) => {
                    return self
                        .direct_call(&m.name, &c, p, method, nova_path, body, rid)
                        .await
                }
                // A dead agent is not called (it may swallow the call).
                None if !m.alive => {
                    return Err(CallError::BadResponse(format!(
                        "member {} not alive",
                        m.name
                    )))
                }
                None => {}
            }
        }
        let url = m
            .url
            .as_deref()
            .ok_or_else(|| CallError::BadResponse(format!("unknown cloudlet {}", m.name)))?;
        let tok = self.token_for_claims(claims);
        let req = PeerRequest::Local {
            method: method.clone(),
            nova_path,
            body: body.clone(),
        };
        match self.peer(url, &req, &tok, rid).await {
            // A timeout means a host that swallows calls (gone, partitioned):
            // its cloudlet would most likely hang too, and chaining both
            // would make one call cost twice the timeout. Suspected, the
            // member is tried directly first next time.
            Err(e @ CallError::Transport(os_client::TransportError::Timeout(_))) => {
                self.suspect(&m.name);
                Err(e)
            }
            Err(e) if e.is_unreachable() => {
                self.suspect(&m.name);
                match self.direct(&m.name).await {
                    Some(c) => {
                        self.direct_call(&m.name, &c, p, method, nova_path, body, rid)
                            .await
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// [`Core::nova_call`] for a JSON read.
    pub(crate) async fn nova_json(
        &self,
        m: &Member,
        nova_path: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Value, CallError> {
        let r = self
            .nova_call(m, Method::GET, nova_path, None, claims, p, rid)
            .await?;
        json_of(&r)
    }

    /// A Nova call about a server on `owner`'s cloudlet ([`Core::nova_call`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn owner_call(
        &self,
        owner: &str,
        method: Method,
        nova_path: &str,
        body: Option<Bytes>,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<HttpResponse, CallError> {
        let m = self.member(owner).await;
        self.nova_call(&m, method, nova_path, body, claims, p, rid)
            .await
    }

    pub(crate) async fn direct_list(
        &self,
        member: &str,
        c: &CloudletClient,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Value, CallError> {
        let r = self
            .direct_call(member, c, p, Method::GET, SERVER_LIST, None, rid)
            .await?;
        json_of(&r)
    }

    /// A client of `member`'s cloudlet itself, for when its agent is gone:
    /// the cloudlet's Keystone URL comes from the member's (authenticated)
    /// gossip state and this agent's service account is used (the same
    /// account must exist on every cloudlet). `None` when unknown, or when
    /// a direct call failed to connect within the last `suspect_ms`.
    pub async fn direct(&self, member: &str) -> Option<Arc<CloudletClient>> {
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        if let Ok(d) = self.direct_clients.lock() {
            if let Some((c, failed)) = d.get(member) {
                return match failed {
                    Some(at) if clock::now().saturating_duration_since(*at) < ttl => None,
                    _ => Some(c.clone()),
                };
            }
        }
        let st = self.gossip.find_member(member).await?.0;
        let url = st.cloudlet_auth_url.filter(|u| !u.is_empty())?;
        let mut cfg = self.cfg.clone();
        cfg.cloudlet_auth_url = url;
        let c = Arc::new(CloudletClient::new(&cfg, self.cloudlet.transport()));
        if let Ok(mut d) = self.direct_clients.lock() {
            d.insert(member.to_string(), (c.clone(), None));
        }
        Some(c)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn direct_call(
        &self,
        member: &str,
        c: &CloudletClient,
        p: &ProjectRef,
        method: Method,
        nova_path: &str,
        body: Option<Bytes>,
        rid: &str,
    ) -> Result<HttpResponse, CallError> {
        let r = match on_cloudlet(c, p, nova_path).await {
            Ok(path) => c.call(p, Svc::Compute, method, &path, body, rid).await,
            Err(e) => Err(e),
        };
        if let Ok(mut d) = self.direct_clients.lock() {
            if let Some(entry) = d.get_mut(member) {
                entry.1 = match &r {
                    Err(e) if e.is_unreachable() => Some(clock::now()),
                    _ => None,
                };
            }
        }
        if r.is_ok() {
            Metrics::inc(&self.metrics.direct_calls);
        }
        r
    }

    /// Fetches the cloudlet-local server `local_id` from `owner`:
    /// `Ok(None)` when the cloudlet says 404.
    pub async fn fetch_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<Value>, CallError> {
        let Some(resp) = self.get_local(owner, local_id, claims, p, rid).await? else {
            return Ok(None);
        };
        let mut v = json_of(&resp)?;
        // Taken out of the answer, not deep-copied.
        Ok(v.get_mut("server").map(Value::take))
    }

    /// `GET /servers/{local_id}` on `owner`: `Ok(None)` when the cloudlet
    /// says 404, the answer otherwise (the callers read what they need).
    pub(crate) async fn get_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<HttpResponse>, CallError> {
        let path = format!("/servers/{local_id}");
        let resp = self
            .owner_call(owner, Method::GET, &path, None, claims, p, rid)
            .await?;
        Ok((resp.status() != StatusCode::NOT_FOUND).then_some(resp))
    }

    pub async fn delete_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<StatusCode, CallError> {
        let resp = self
            .owner_call(
                owner,
                Method::DELETE,
                &format!("/servers/{local_id}"),
                None,
                claims,
                p,
                rid,
            )
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(resp.status())
        } else {
            Err(status_error(&resp))
        }
    }
}
