//! Compute hosts across the federation, for admins: hypervisors and host
//! aggregates. Their IDs are per cloudlet (integers at microversion 2.1),
//! so the federation numbers them 1..N over the live members in name order,
//! each member's in its own order (the numbering `GET /os-hypervisors`
//! shows); `show` maps a federated ID back to its member and local ID.
//! A membership change renumbers them (as a list page would shift).

use super::*;

/// Where a federated host object lives.
#[derive(Debug, Clone)]
pub struct Located {
    pub member: Member,
    /// The object as its cloudlet lists it (its local `id`).
    pub object: Value,
}

impl Core {
    /// Every live member's list at `path` (objects under `key`), members in
    /// name order; members that do not answer are left out. Fails only
    /// when none answers. Every member, not only the known ones: with a
    /// partial view the list and `show` must number the same hosts.
    pub async fn per_member(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        key: &str,
        rid: &str,
    ) -> Result<Vec<(Member, Vec<Value>)>, CallError> {
        let mut view = self.gossip.everyone_alive().await;
        view.sort_by(|a, b| a.name.cmp(&b.name));
        let futs = view.iter().map(|st| async move {
            let m = Member::of(st, true);
            let r = self.nova_json(&m, path, claims, p, rid).await;
            (m, r)
        });
        let mut out = vec![];
        let mut first_err = None;
        for (m, r) in futures::future::join_all(futs).await {
            match r {
                Ok(v) => {
                    let list = v
                        .get(key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    out.push((m, list));
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if out.is_empty() {
            return Err(first_err.unwrap_or(CallError::BadResponse("no cloudlet answered".into())));
        }
        Ok(out)
    }

    /// The federated list at `path` (`key`), renumbered 1..N.
    pub async fn federated_numbered(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        key: &str,
        rid: &str,
    ) -> Result<Vec<Value>, CallError> {
        let lists = self.per_member(claims, p, path, key, rid).await?;
        Ok(lists
            .into_iter()
            .flat_map(|(_, l)| l)
            .enumerate()
            .map(|(i, mut o)| {
                if let Some(obj) = o.as_object_mut() {
                    obj.insert("id".into(), json!(i + 1));
                }
                o
            })
            .collect())
    }

    /// The object numbered `id` in the federated list at `path` (`key`).
    pub async fn federated_find(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        key: &str,
        id: u64,
        rid: &str,
    ) -> Result<Option<Located>, CallError> {
        let Some(mut left) = id.checked_sub(1) else {
            return Ok(None);
        };
        for (member, list) in self.per_member(claims, p, path, key, rid).await? {
            let n = list.len() as u64;
            if left < n {
                let object = usize::try_from(left)
                    .ok()
                    .and_then(|i| list.into_iter().nth(i))
                    .unwrap_or(Value::Null);
                return Ok(Some(Located { member, object }));
            }
            left -= n;
        }
        Ok(None)
    }

    /// `GET {collection}/{local id}{suffix}` of a located object on its
    /// member, the answer's `inner` object renumbered `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn show_located(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        at: &Located,
        collection: &str,
        suffix: &str,
        inner: &str,
        id: u64,
        rid: &str,
    ) -> Result<Value, CallError> {
        let local = match at.object.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => return Err(CallError::BadResponse("listed object without id".into())),
        };
        let path = format!("{collection}/{local}{suffix}");
        let mut v = self.nova_json(&at.member, &path, claims, p, rid).await?;
        if let Some(o) = v.get_mut(inner).and_then(Value::as_object_mut) {
            o.insert("id".into(), json!(id));
        }
        Ok(v)
    }
}
