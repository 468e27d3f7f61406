//! The chaos scenarios (`agent-loss`, `partition`): the partition fault,
//! and the checks after each level that count orphaned and resurrected
//! servers (loadgen counts the lost ones before its cleanup). Definitions:
//! docs/results-schema.md, `Durability`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use os_client::{compute, ClientError, Credentials, OpenStackSession, SharedTransport};

/// An admin session on one cloudlet's own Keystone (DevStack's admin).
async fn admin_session(transport: SharedTransport, auth_url: &str) -> Result<OpenStackSession> {
    let creds = Credentials::password(auth_url.to_string(), "admin", "secret", "admin");
    OpenStackSession::connect(transport, creds)
        .await
        .with_context(|| format!("cannot authenticate as admin at {auth_url}"))
}

/// The base URL of a mock from its auth URL (`…/identity`).
fn base_of(auth_url: &str) -> &str {
    auth_url.trim_end_matches("/identity")
}

/// Cuts a cloudlet off from everyone for `duration_s` model seconds: its
/// API answers 503 to every call (its agent's and its peers'), through the
/// mock's admin fault API; its compute nodes keep running.
pub async fn partition(transport: SharedTransport, auth_url: &str, duration_s: f64) -> Result<()> {
    let session = admin_session(transport, auth_url).await?;
    let url = format!("{}/mock/v1/faults/api-unavailable", base_of(auth_url));
    let resp = session
        .send(
            "compute",
            http::Method::POST,
            &url,
            Some(&serde_json::json!({ "duration_s": duration_s })),
        )
        .await
        .with_context(|| format!("cannot partition {auth_url}"))?;
    if resp.status >= 300 {
        anyhow::bail!(
            "partitioning {auth_url}: HTTP {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
    }
    Ok(())
}

/// Instances of this run still on any cloudlet, asked directly with each
/// cloudlet's admin credentials (all projects): `name_prefix` matches the
/// run's server names. Returns `cloudlet/local id (name)` entries and notes
/// on cloudlets that could not be asked.
pub async fn orphans(
    transport: SharedTransport,
    cloudlets: &[Option<String>],
    name_prefix: &str,
) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for (i, url) in cloudlets.iter().enumerate() {
        let Some(url) = url else { continue };
        let listed = match admin_session(transport.clone(), url).await {
            Ok(s) => compute::list_servers(&s, 1000, true)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match listed {
            Ok(list) => found.extend(
                list.into_iter()
                    .filter(|s| {
                        s.name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(name_prefix))
                    })
                    .map(|s| {
                        format!(
                            "cloudlet-{}/{} ({})",
                            i + 1,
                            s.id,
                            s.name.unwrap_or_default()
                        )
                    }),
            ),
            Err(e) => notes.push(format!("orphan check: cloudlet {}: {e:#}", i + 1)),
        }
    }
    (found, notes)
}

/// Deleted IDs that a live entry lists again or answers GET 200 for.
/// `entries` are the live entries' auth URLs; the client's own credentials
/// (demo) are used, as the client would.
pub async fn resurrected(
    transport: SharedTransport,
    entries: &[String],
    deleted: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut back = BTreeSet::new();
    let mut notes = Vec::new();
    if deleted.is_empty() {
        return (Vec::new(), notes);
    }
    let mut asked = 0;
    for url in entries {
        let creds = Credentials::password(url.clone(), "demo", "secret", "demo");
        let session = match OpenStackSession::connect(transport.clone(), creds).await {
            Ok(s) => s,
            Err(e) => {
                notes.push(format!("resurrection check: cannot log in at {url}: {e}"));
                continue;
            }
        };
        match compute::list_servers(&session, 1000, false).await {
            Ok(list) => back.extend(
                list.into_iter()
                    .map(|s| s.id)
                    .filter(|id| deleted.contains(id)),
            ),
            Err(e) => notes.push(format!("resurrection check: list at {url}: {e}")),
        }
        let unseen: Vec<&String> = deleted.iter().filter(|id| !back.contains(*id)).collect();
        for id in unseen {
            match compute::get_server(&session, id).await {
                Ok(_) => {
                    back.insert(id.clone());
                }
                Err(e) if e.is_not_found() => {}
                Err(ClientError::Transport(e)) => {
                    notes.push(format!("resurrection check: GET at {url}: {e}"));
                    break;
                }
                Err(e) => notes.push(format!("resurrection check: GET {id} at {url}: {e}")),
            }
        }
        asked += 1;
    }
    if asked == 0 {
        notes.push("resurrection check: no live entry answered".into());
    }
    (back.into_iter().collect(), notes)
}

/// After a chaos level: waits until `reconcile` after the disturbance
/// ended, then fills `level.durability`'s orphaned and resurrected sets.
pub async fn check_level(
    tb: &crate::backend::Testbed,
    level: &mut results::LevelResult,
    name_prefix: &str,
    disturbance_end: Option<tokio::time::Instant>,
    reconcile: Duration,
    reconcile_s: f64,
) -> Result<()> {
    let transport = tb
        .client_transport(Duration::from_secs(60))
        .context("cannot create the HTTP client")?;
    let deleted: BTreeSet<String> = level
        .requests
        .iter()
        .filter(|r| r.delete_time_s.is_some())
        .filter_map(|r| r.server_id.clone())
        .collect();
    // Once the disturbance is over and the cleanup done: what a client
    // sees at once, before the agents had any time to reconcile.
    let now = cp_model::clock::now();
    let back_at = disturbance_end.map_or(now, |e| e.max(now));
    tokio::time::sleep_until(back_at).await;
    let (early, _) = resurrected(transport.clone(), &tb.entries(), &deleted).await;
    // The cleanup's deletes need the reconcile time too, not only the cut's end.
    tokio::time::sleep_until(back_at + reconcile).await;
    let d = level.durability.get_or_insert_with(Default::default);
    d.reconcile_s = reconcile_s;
    d.resurrected_at_return = early;
    if level.requests.is_empty() && level.requested > 0 {
        d.unchecked
            .push("resurrection check: the level kept no request records".into());
    }
    let (back, notes) = resurrected(transport.clone(), &tb.entries(), &deleted).await;
    d.resurrected = back;
    d.unchecked.extend(notes);
    let (left, notes) = orphans(transport, &tb.cloudlet_auth_urls()?, name_prefix).await;
    d.orphaned = left;
    d.unchecked.extend(notes);
    Ok(())
}
