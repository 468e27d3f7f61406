//! Federated keypairs. Nova keeps keypairs per user, and every server on a
//! cloudlet is created by the agents' service account; so a user's keypair
//! is stored on *every* cloudlet as a keypair of that account, under a name
//! that names the user: `p2p.<user tag>.<name>` (the tag: 12 hex digits of
//! SHA-256 of the user's domain and name). Create and delete go to the own
//! cloudlet, then to every live peer's (`POST /p2p/v1/keypair`); reads are
//! answered from the own cloudlet; a boot carries the public key in its
//! plan, so the cloudlet it lands on gets the keypair first if it missed it
//! (down at the time, or joined later). Users see their own names only.

use super::*;
use crate::protocol::KeypairCopy;

const PREFIX: &str = "p2p.";
/// Hex digits of the user tag.
const TAG_LEN: usize = 12;

/// The tag naming a user in stored keypair names.
pub fn user_tag(c: &Claims) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(c.user_domain.as_bytes())
        .chain_update([0u8])
        .chain_update(c.user_name.as_bytes())
        .finalize();
    d.iter()
        .take(TAG_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name under which `c`'s keypair `name` is stored on the cloudlets.
pub fn stored_name(c: &Claims, name: &str) -> String {
    format!("{PREFIX}{}.{name}", user_tag(c))
}

/// The user's own name of a stored keypair name (any user's), if it is one.
pub fn user_name_of(stored: &str) -> Option<&str> {
    let (tag, name) = stored.strip_prefix(PREFIX)?.split_once('.')?;
    (tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// Nova's keypair name rule: 1-255 characters of letters, digits, space,
/// `_`, `-`, `.`, `@` (here 255 less the stored prefix).
pub fn valid_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() < 255 - PREFIX.len() - TAG_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.@".contains(c))
}

/// A keypair object as the user sees it: its own name (and user ID).
pub fn user_view(mut kp: Value, claims: &Claims) -> Value {
    if let Some(o) = kp.as_object_mut() {
        if let Some(n) = o.get("name").and_then(Value::as_str).and_then(user_name_of) {
            let n = n.to_string();
            o.insert("name".into(), json!(n));
        }
        if o.contains_key("user_id") {
            o.insert("user_id".into(), json!(claims.user_id));
        }
    }
    kp
}

fn path_of(stored: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(stored.as_bytes()).collect();
    format!("/os-keypairs/{}", enc.replace('+', "%20"))
}

impl Core {
    /// The own cloudlet's answer about stored keypair `stored`: `Ok(None)`
    /// when it has none of that name.
    pub async fn keypair_here(
        &self,
        p: &ProjectRef,
        stored: &str,
        rid: &str,
    ) -> Result<Option<Value>, CallError> {
        let r = self
            .cloudlet
            .call(p, Svc::Compute, Method::GET, &path_of(stored), None, rid)
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(json_of(&r)?.get("keypair").cloned())
    }

    /// Creates stored keypair `stored` on the own cloudlet (a generated one
    /// when `public_key` is `None`); returns the cloudlet's `keypair`.
    pub async fn create_keypair_here(
        &self,
        p: &ProjectRef,
        stored: &str,
        public_key: Option<&str>,
        rid: &str,
    ) -> Result<Value, CallError> {
        let mut kp = json!({ "name": stored });
        if let Some(k) = public_key {
            kp["public_key"] = json!(k);
        }
        let body = Bytes::from(json!({ "keypair": kp }).to_string());
        let r = self
            .cloudlet
            .call(
                p,
                Svc::Compute,
                Method::POST,
                "/os-keypairs",
                Some(body),
                rid,
            )
            .await?;
        Ok(json_of(&r)?.get("keypair").cloned().unwrap_or(Value::Null))
    }

    /// Makes the own cloudlet hold stored keypair `stored` with
    /// `public_key` (a copy from a peer, or before a boot): created if
    /// missing, replaced if its key differs.
    pub async fn ensure_keypair_here(
        &self,
        p: &ProjectRef,
        stored: &str,
        public_key: &str,
        rid: &str,
    ) -> Result<(), CallError> {
        if let Some(kp) = self.keypair_here(p, stored, rid).await? {
            if kp.get("public_key").and_then(Value::as_str).map(str::trim)
                == Some(public_key.trim())
            {
                return Ok(());
            }
            self.delete_keypair_here(p, stored, rid).await?;
        }
        match self
            .create_keypair_here(p, stored, Some(public_key), rid)
            .await
        {
            // Created meanwhile by a concurrent copy: fine.
            Err(e) if e.status() == Some(409) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Deletes stored keypair `stored` on the own cloudlet; true when it
    /// was there.
    pub async fn delete_keypair_here(
        &self,
        p: &ProjectRef,
        stored: &str,
        rid: &str,
    ) -> Result<bool, CallError> {
        let r = self
            .cloudlet
            .call(p, Svc::Compute, Method::DELETE, &path_of(stored), None, rid)
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&r)),
        }
    }

    /// The user's keypairs, from the own cloudlet.
    pub async fn keypairs_of(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Vec<Value>, CallError> {
        let v = self
            .cloudlet
            .get_json(p, Svc::Compute, "/os-keypairs", rid)
            .await?;
        let prefix = format!("{PREFIX}{}.", user_tag(claims));
        Ok(v.get("keypairs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|k| {
                k.pointer("/keypair/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .map(|k| json!({"keypair": user_view(k["keypair"].clone(), claims)}))
            .collect())
    }

    /// Sends a keypair copy (or removal) to every live peer, in parallel;
    /// returns the names of the peers that said they removed one (for a
    /// removal) or acknowledged (for a copy). A removal that a member could
    /// not carry out (its cloudlet or its agent did not answer, or it was
    /// down) is retried in the background until it answers
    /// ([`Core::remove_keypair_later`]): a cloudlet that was down does not
    /// keep the keypair.
    pub async fn broadcast_keypair(
        self: &Arc<Self>,
        claims: &Claims,
        op: &KeypairCopy,
        rid: &str,
    ) -> Vec<String> {
        let known = self.gossip.known().await;
        let removal = op.public_key.is_none();
        let tok = self.token_for_claims(claims);
        let calls = known
            .iter()
            .filter(|(st, _)| st.name != self.name)
            .map(|(st, alive)| {
                let tok = &tok;
                async move {
                    if !*alive {
                        return (st.name.clone(), Err("member down".to_string()));
                    }
                    let r = self
                        .peer(&st.url, &PeerRequest::Keypair(op), tok, rid)
                        .await;
                    let outcome = match r {
                        Ok(r) if r.status().is_success() => Ok(true),
                        Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(false),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    };
                    (st.name.clone(), outcome)
                }
            });
        let mut acknowledged = vec![];
        for (peer, outcome) in futures::future::join_all(calls).await {
            match outcome {
                Ok(true) => acknowledged.push(peer),
                Ok(false) => {}
                Err(e) if removal => {
                    info!(peer = %peer, error = %e, keypair = %op.name, "keypair removal deferred until the member answers");
                    self.remove_keypair_later(peer, claims.clone(), op.clone());
                }
                // A copy that missed a cloudlet is made by the first boot
                // landing there (the plan carries the key).
                Err(e) => {
                    warn!(peer = %peer, error = %e, keypair = %op.name, "peer could not copy a keypair")
                }
            }
        }
        acknowledged
    }

    /// Retries keypair removal `op` at member `peer` until it answers that
    /// the keypair is gone (204, or 404: it had none), with a growing pause
    /// (up to [`KEYPAIR_RETRY_MAX`]) and for at most
    /// [`KEYPAIR_RETRY_FOR`]. The removal names the public key it removes,
    /// so a keypair made again under the same name meanwhile is kept.
    fn remove_keypair_later(self: &Arc<Self>, peer: String, claims: Claims, op: KeypairCopy) {
        let me = self.clone();
        self.spawn_bg(async move {
            let deadline = clock::now() + KEYPAIR_RETRY_FOR;
            let mut pause = Duration::from_millis(me.cfg.capacity_interval_ms.max(10));
            while clock::now() < deadline {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(KEYPAIR_RETRY_MAX);
                let Some((url, true)) = me.gossip.known().await.member(&peer) else {
                    continue;
                };
                let tok = me.token_for_claims(&claims);
                let r = me
                    .peer(
                        &url,
                        &PeerRequest::Keypair(&op),
                        &tok,
                        "req-keypair-removal",
                    )
                    .await;
                if let Ok(r) = r {
                    if r.status().is_success() || r.status() == StatusCode::NOT_FOUND {
                        info!(peer = %peer, keypair = %op.name, "deferred keypair removal done");
                        return;
                    }
                }
            }
            warn!(peer = %peer, keypair = %op.name, "deferred keypair removal given up");
        });
    }
}

/// Longest pause between two tries of a deferred keypair removal.
const KEYPAIR_RETRY_MAX: Duration = Duration::from_secs(60);
/// How long a deferred keypair removal is tried (a member down longer
/// keeps the keypair; docs/agent.md, "Keypairs").
const KEYPAIR_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: &str) -> Claims {
        Claims {
            user_id: "u".into(),
            user_name: user.into(),
            user_domain: "Default".into(),
            project_id: None,
            project_name: None,
            project_domain: None,
            roles: vec![],
            issued_at: 0,
            expires_at: 0,
            issuer: String::new(),
            audit_id: String::new(),
        }
    }

    #[test]
    fn stored_names_name_the_user_and_come_back() {
        let (a, b) = (claims("alice"), claims("bob"));
        let sa = stored_name(&a, "k1");
        assert_ne!(sa, stored_name(&b, "k1"), "one name per user");
        assert_eq!(user_name_of(&sa), Some("k1"));
        assert_eq!(user_name_of(&stored_name(&a, "my.key")), Some("my.key"));
        assert_eq!(user_name_of("k1"), None);
        assert_eq!(user_name_of("p2p.nothex00000.k1"), None);
        let v = user_view(json!({"name": sa, "user_id": "svc"}), &a);
        assert_eq!(
            (v["name"].as_str(), v["user_id"].as_str()),
            (Some("k1"), Some("u"))
        );
    }

    #[test]
    fn names_follow_nova_rule() {
        assert!(valid_name("k1") && valid_name("my key@x.y"));
        assert!(!valid_name("") && !valid_name("  ") && !valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(250)));
    }
}
