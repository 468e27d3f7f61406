//! The "lost" check of the chaos scenarios: once a level's boots are final
//! and before anything is deleted, is every boot the client was told was
//! accepted still shown by the system, by ID and in lists, at some live
//! entry? (docs/results-schema.md, `Durability.lost`.)

use std::collections::{BTreeMap, BTreeSet};

use os_client::{compute, ClientError};

use crate::prepare::Entry;
use crate::stats::Finished;

/// What one entry answered to `GET /servers/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Found,
    NotFound,
    /// Any other answer (an error status, a malformed body).
    Undecided,
}

/// Lost and undecided IDs from what the live entries answered.
///
/// `gets[id]` holds the answers of the live entries asked (asking stops at
/// the first `Found`); `listed` is the union of the live entries' lists.
/// An accepted ID is lost when every live entry answered 404, or when no
/// live entry lists it; it is undecided when no entry found it but some
/// answered neither 200 nor 404.
pub fn classify(
    accepted: &BTreeSet<String>,
    gets: &BTreeMap<String, Vec<Seen>>,
    listed: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let mut undecided = Vec::new();
    for id in accepted {
        let answers = gets.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let found = answers.contains(&Seen::Found);
        let all_404 = !answers.is_empty() && answers.iter().all(|a| *a == Seen::NotFound);
        if all_404 || (found && !listed.contains(id)) {
            lost.push(id.clone());
        } else if !found {
            undecided.push(id.clone());
        }
    }
    (lost, undecided)
}

fn seen(r: &Result<compute::ServerView, ClientError>) -> Option<Seen> {
    match r {
        Ok(_) => Some(Seen::Found),
        Err(e) if e.is_not_found() => Some(Seen::NotFound),
        // No HTTP answer: the entry is not live (e.g. a killed agent).
        Err(ClientError::Transport(_)) => None,
        Err(_) => Some(Seen::Undecided),
    }
}

/// Asks the live entries about every accepted boot of `finished`. Returns
/// the lost IDs and notes on what could not be checked.
pub async fn find_lost(
    entries: &[std::sync::Arc<Entry>],
    finished: &[Finished],
    page_size: u32,
) -> (Vec<String>, Vec<String>) {
    let accepted: BTreeSet<String> = finished
        .iter()
        .filter_map(|f| f.record.server_id.clone())
        .collect();
    if accepted.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut notes = Vec::new();
    let mut listed = BTreeSet::new();
    let mut live = Vec::new();
    for e in entries {
        match compute::list_servers(&e.session, page_size, false).await {
            Ok(list) => {
                listed.extend(list.into_iter().map(|s| s.id));
                live.push(e.clone());
            }
            Err(ClientError::Transport(_)) => {}
            Err(err) => {
                notes.push(format!("lost check: list at {}: {err}", e.url));
                live.push(e.clone());
            }
        }
    }
    if live.is_empty() {
        notes.push("lost check: no entry answered".into());
        return (Vec::new(), notes);
    }
    let mut set = tokio::task::JoinSet::new();
    for id in accepted.iter().cloned() {
        let live = live.clone();
        set.spawn(async move {
            let mut answers = Vec::new();
            for e in &live {
                if let Some(s) = seen(&compute::get_server(&e.session, &id).await) {
                    answers.push(s);
                    if s == Seen::Found {
                        break;
                    }
                }
            }
            (id, answers)
        });
    }
    let mut gets = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((id, answers)) => {
                gets.insert(id, answers);
            }
            Err(e) => notes.push(format!("lost check: task failed: {e}")),
        }
    }
    let (lost, undecided) = classify(&accepted, &gets, &listed);
    notes.extend(
        undecided
            .into_iter()
            .map(|id| format!("lost check: {id}: no live entry answered 200 or 404")),
    );
    (lost, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lost_means_404_everywhere_or_listed_nowhere() {
        let accepted = set(&["a", "b", "c", "d", "e"]);
        let gets: BTreeMap<String, Vec<Seen>> = [
            ("a", vec![Seen::Found]),
            ("b", vec![Seen::NotFound, Seen::NotFound]),
            ("c", vec![Seen::Found]),
            ("d", vec![Seen::NotFound, Seen::Found]),
            ("e", vec![Seen::NotFound, Seen::Undecided]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // c answers GET but is in no list; d is found at the second entry.
        let listed = set(&["a", "d", "e"]);
        let (lost, undecided) = classify(&accepted, &gets, &listed);
        assert_eq!(lost, vec!["b".to_string(), "c".to_string()]);
        assert_eq!(undecided, vec!["e".to_string()]);
    }
}
