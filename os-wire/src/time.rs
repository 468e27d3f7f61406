//! Timestamp formats that real clients parse.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 with a `Z`, seconds precision: `created`, `updated`, `expires_at`,
/// glance `created_at`, `fault.created`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with microseconds and `Z`: Keystone `expires_at` / `issued_at`.
pub fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `OS-SRV-USG:launched_at` style: no `Z`, microseconds (gophercloud parses it
/// with the layout `2006-01-02T15:04:05.000000`).
pub fn usage_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_match_what_clients_parse() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(rfc3339(t), "2026-01-02T03:04:05Z");
        assert_eq!(rfc3339_micros(t), "2026-01-02T03:04:05.000000Z");
        assert_eq!(usage_timestamp(t), "2026-01-02T03:04:05.000000");
    }
}
