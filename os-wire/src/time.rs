//! Timestamp formats that real clients parse.
//!
//! Written digit by digit into a stack buffer: chrono's `strftime`-style
//! formatting was a visible share of the mock's CPU per server view (three
//! timestamps each). Years outside 0..=9999 and leap seconds, which chrono
//! writes in forms of its own, go through chrono unchanged.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// `YYYY-MM-DDTHH:MM:SS` into `buf[..19]`; `None` for what the fast path
/// does not cover (a year outside 0..=9999, a leap second).
fn date_time(t: &DateTime<Utc>, buf: &mut [u8]) -> Option<()> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    if t.nanosecond() >= 1_000_000_000 {
        return None;
    }
    fn two(out: &mut [u8], v: u32) {
        out[0] = b'0' + (v / 10 % 10) as u8;
        out[1] = b'0' + (v % 10) as u8;
    }
    two(&mut buf[0..2], year / 100);
    two(&mut buf[2..4], year % 100);
    buf[4] = b'-';
    two(&mut buf[5..7], t.month());
    buf[7] = b'-';
    two(&mut buf[8..10], t.day());
    buf[10] = b'T';
    two(&mut buf[11..13], t.hour());
    buf[13] = b':';
    two(&mut buf[14..16], t.minute());
    buf[16] = b':';
    two(&mut buf[17..19], t.second());
    Some(())
}

/// `.ffffff` (microseconds, truncated as chrono does) into `buf[..7]`.
fn micros(t: &DateTime<Utc>, buf: &mut [u8]) {
    let mut us = t.nanosecond() / 1000;
    buf[0] = b'.';
    for i in (1..7).rev() {
        buf[i] = b'0' + (us % 10) as u8;
        us /= 10;
    }
}

/// ASCII digits and punctuation only, so this never fails.
fn ascii(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

/// RFC 3339 with a `Z`, seconds precision: `created`, `updated`, `expires_at`,
/// glance `created_at`, `fault.created`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let mut buf = [0u8; 20];
    if date_time(&t, &mut buf).is_none() {
        return t.to_rfc3339_opts(SecondsFormat::Secs, true);
    }
    buf[19] = b'Z';
    ascii(&buf)
}

/// RFC 3339 with microseconds and `Z`: Keystone `expires_at` / `issued_at`.
pub fn rfc3339_micros(t: DateTime<Utc>) -> String {
    let mut buf = [0u8; 27];
    if date_time(&t, &mut buf).is_none() {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    micros(&t, &mut buf[19..26]);
    buf[26] = b'Z';
    ascii(&buf)
}

/// `OS-SRV-USG:launched_at` style: no `Z`, microseconds (gophercloud parses it
/// with the layout `2006-01-02T15:04:05.000000`).
pub fn usage_timestamp(t: DateTime<Utc>) -> String {
    let mut buf = [0u8; 26];
    if date_time(&t, &mut buf).is_none() {
        return t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    }
    micros(&t, &mut buf[19..26]);
    ascii(&buf)
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

    #[test]
    fn fast_formats_equal_chronos_everywhere() {
        // Every field boundary, sub-second values, the fallbacks (years
        // beyond 9999 and before 0, a leap second) and a seeded sweep.
        let mut ts: Vec<DateTime<Utc>> = vec![
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 30, 30).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 9, 8, 7).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 400_000_000_000) as i64 - 62_000_000_000;
            let nanos = ((x >> 20) % 1_000_000_000) as u32;
            ts.push(DateTime::from_timestamp(secs, nanos).unwrap());
        }
        for t in ts {
            assert_eq!(rfc3339(t), t.to_rfc3339_opts(SecondsFormat::Secs, true));
            assert_eq!(
                rfc3339_micros(t),
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
            assert_eq!(
                usage_timestamp(t),
                t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
            );
        }
    }
}
