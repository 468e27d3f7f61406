//! limit/marker pagination shared by nova, glance and neutron lists. Pure.

/// One page of a list already filtered and sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Set when the page is full: the marker for the next page.
    pub next_marker: Option<String>,
}

/// Why a page could not be cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("marker [{0}] not found")]
    MarkerNotFound(String),
    #[error("limit param must be an integer")]
    LimitNotInteger,
    #[error("limit param must be positive")]
    LimitNegative,
}

/// Parses `limit`: absent or 0 → `max`; capped at `max`.
pub fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, PageError> {
    match raw {
        None => Ok(default.min(max)),
        Some(s) => {
            let n: i64 = s.trim().parse().map_err(|_| PageError::LimitNotInteger)?;
            if n < 0 {
                Err(PageError::LimitNegative)
            } else if n == 0 {
                Ok(max)
            } else {
                Ok((n as u64).min(max as u64) as usize)
            }
        }
    }
}

/// Cuts the page after `marker` (exclusive). A full page carries the last
/// id as `next_marker`, so a client that loops until an empty page ends.
pub fn paginate<T>(
    items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
    marker: Option<&str>,
    limit: usize,
) -> Result<Page<T>, PageError> {
    let start = match marker {
        None => 0,
        Some(m) => {
            items
                .iter()
                .position(|i| id_of(i) == m)
                .ok_or_else(|| PageError::MarkerNotFound(m.to_string()))?
                + 1
        }
    };
    let items: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next_marker = if limit > 0 && items.len() == limit {
        items.last().map(|i| id_of(i).to_string())
    } else {
        None
    };
    Ok(Page { items, next_marker })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i}")).collect()
    }

    #[test]
    fn walks_all_pages_until_empty() {
        let all = ids(5);
        let mut seen = vec![];
        let mut marker: Option<String> = None;
        loop {
            let p = paginate(all.clone(), |s| s, marker.as_deref(), 2).unwrap();
            if p.items.is_empty() {
                break;
            }
            seen.extend(p.items.clone());
            match p.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn full_last_page_links_to_an_empty_page() {
        let p = paginate(ids(4), |s| s, Some("id1"), 2).unwrap();
        assert_eq!(p.items, vec!["id2", "id3"]);
        assert_eq!(p.next_marker.as_deref(), Some("id3"));
        let p = paginate(ids(4), |s| s, Some("id3"), 2).unwrap();
        assert!(p.items.is_empty() && p.next_marker.is_none());
    }

    #[test]
    fn unknown_marker_and_bad_limits() {
        assert_eq!(
            paginate(ids(2), |s| s, Some("nope"), 2),
            Err(PageError::MarkerNotFound("nope".into()))
        );
        assert_eq!(
            parse_limit(Some("x"), 25, 1000),
            Err(PageError::LimitNotInteger)
        );
        assert_eq!(
            parse_limit(Some("-1"), 25, 1000),
            Err(PageError::LimitNegative)
        );
        assert_eq!(parse_limit(Some("0"), 25, 1000), Ok(1000));
        assert_eq!(parse_limit(Some("5000"), 25, 1000), Ok(1000));
        assert_eq!(parse_limit(None, 25, 1000), Ok(25));
    }
}
