//! Aggregated server lists: filters, ordering and `limit`/`marker` paging
//! over the servers of every cloudlet, as pure functions.
//!
//! Order is Nova's default: `created` descending, then `id` descending, so
//! a marker names a stable position in the merged list.

use regex::Regex;
use serde_json::Value;

/// Nova's `osapi_max_limit`.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub name: Option<Regex>,
    pub status: Option<String>,
    pub image: Option<String>,
    pub flavor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("marker [{0}] not found")]
    MarkerNotFound(String),
    #[error("Invalid input: {0}")]
    BadQuery(String),
}

impl ListQuery {
    /// Parses Nova list query parameters. Unknown parameters are ignored.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ListError> {
        let mut q = ListQuery::default();
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ListError::BadQuery(format!("limit {v:?} is not an integer"))
                    })?;
                    if n < 0 {
                        return Err(ListError::BadQuery("limit must be >= 0".into()));
                    }
                    q.limit = Some(usize::try_from(n).unwrap_or(MAX_LIMIT));
                }
                "marker" => q.marker = Some(v.clone()),
                "name" => {
                    q.name =
                        Some(Regex::new(v).map_err(|_| {
                            ListError::BadQuery(format!("name {v:?} is not a regex"))
                        })?)
                }
                "status" => q.status = Some(v.to_ascii_uppercase()),
                "image" => q.image = Some(v.clone()),
                "flavor" => q.flavor = Some(v.clone()),
                _ => {}
            }
        }
        Ok(q)
    }

    fn keeps(&self, s: &Value) -> bool {
        let str_of =
            |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(re) = &self.name {
            if !re.is_match(&str_of(s, "name")) {
                return false;
            }
        }
        if let Some(st) = &self.status {
            if !str_of(s, "status").eq_ignore_ascii_case(st) {
                return false;
            }
        }
        if let Some(img) = &self.image {
            let id = s.get("image").map(|i| str_of(i, "id")).unwrap_or_default();
            if &id != img {
                return false;
            }
        }
        if let Some(fl) = &self.flavor {
            let id = s.get("flavor").map(|f| str_of(f, "id")).unwrap_or_default();
            if &id != fl {
                return false;
            }
        }
        true
    }
}

/// One page of a merged list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub servers: Vec<Value>,
    /// Set when the page is full: the marker for the next page.
    pub next_marker: Option<String>,
}

fn sort_key(s: &Value) -> (String, String) {
    let created = s
        .get("created")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let id = s
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (created, id)
}

/// Merges the servers of all cloudlets (already carrying global IDs),
/// filters, orders and cuts one page.
pub fn paginate(mut servers: Vec<Value>, q: &ListQuery) -> Result<Page, ListError> {
    servers.retain(|s| q.keeps(s));
    servers.sort_by_cached_key(|s| std::cmp::Reverse(sort_key(s)));
    servers.dedup_by(|a, b| a.get("id") == b.get("id"));
    let start = match &q.marker {
        None => 0,
        Some(m) => {
            servers
                .iter()
                .position(|s| s.get("id").and_then(Value::as_str) == Some(m.as_str()))
                .ok_or_else(|| ListError::MarkerNotFound(m.clone()))?
                + 1
        }
    };
    let limit = q.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let page: Vec<Value> = servers.into_iter().skip(start).take(limit).collect();
    let next_marker = if limit > 0 && page.len() == limit {
        page.last()
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    Ok(Page {
        servers: page,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn srv(id: &str, name: &str, created: &str, status: &str) -> Value {
        json!({"id": id, "name": name, "created": created, "status": status,
               "image": {"id": "img"}, "flavor": {"id": "1"}})
    }

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        ListQuery::parse(&v).unwrap()
    }

    fn all() -> Vec<Value> {
        (0..7)
            .map(|i| {
                srv(
                    &format!("id{i}"),
                    &format!("vm{i}"),
                    &format!("2026-01-01T00:00:0{i}Z"),
                    if i % 2 == 0 { "ACTIVE" } else { "BUILD" },
                )
            })
            .collect()
    }

    #[test]
    fn marker_walk_visits_every_server_once() {
        let mut seen = vec![];
        let mut marker: Option<String> = None;
        loop {
            let mut pairs = vec![("limit", "3")];
            if let Some(m) = &marker {
                pairs.push(("marker", m.as_str()));
            }
            let page = paginate(all(), &q(&pairs)).unwrap();
            if page.servers.is_empty() {
                break;
            }
            seen.extend(
                page.servers
                    .iter()
                    .map(|s| s["id"].as_str().unwrap().to_string()),
            );
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, vec!["id6", "id5", "id4", "id3", "id2", "id1", "id0"]);
    }

    #[test]
    fn unknown_marker_is_an_error() {
        assert_eq!(
            paginate(all(), &q(&[("marker", "nope")])),
            Err(ListError::MarkerNotFound("nope".into()))
        );
    }

    #[test]
    fn filters_name_regex_and_status() {
        let p = paginate(all(), &q(&[("name", "vm[12]"), ("status", "build")])).unwrap();
        let ids: Vec<_> = p
            .servers
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["id1"]);
        assert!(p.next_marker.is_none());
        assert!(ListQuery::parse(&[("limit".into(), "x".into())]).is_err());
        assert!(ListQuery::parse(&[("name".into(), "(".into())]).is_err());
        assert!(ListQuery::parse(&[("whatever".into(), "1".into())]).is_ok());
    }

    #[test]
    fn duplicates_from_two_views_are_merged() {
        let mut v = all();
        v.push(srv("id3", "vm3", "2026-01-01T00:00:03Z", "BUILD"));
        assert_eq!(paginate(v, &ListQuery::default()).unwrap().servers.len(), 7);
    }
}
