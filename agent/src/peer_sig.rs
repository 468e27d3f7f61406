//! Signatures of agent-to-agent requests (`/p2p/v1/...`): one typed module
//! used by the caller ([`sign`]) and by the callee ([`Verifier`]).
//!
//! A signed request carries `X-P2P-Auth: v2 ts=<unix s>,nonce=<32 hex>,sig=<64 hex>`
//! where `sig = HMAC-SHA256(peer key, canonical request)` and the canonical
//! request is (one item a line, in the spirit of AWS SigV4 / RFC 9421):
//!
//! ```text
//! p2p-request-v2
//! <ts>
//! <nonce>
//! <METHOD>
//! <path, exactly as sent>
//! <query: pairs decoded, sorted, re-encoded>
//! <hex SHA-256 of the body>
//! <hex SHA-256 of the X-Auth-Token value>
//! ```
//!
//! The peer key is derived from the cluster secret (never the secret
//! itself). The callee refuses a timestamp more than [`WINDOW_SECS`] away
//! from its clock in either direction, and remembers every nonce it
//! accepted for that window, so a captured request cannot be replayed nor
//! altered (method, path, query, body and user token are all covered).

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the signature.
pub const HEADER: &str = "x-p2p-auth";
/// Largest accepted clock difference (seconds), either direction.
pub const WINDOW_SECS: i64 = 60;
/// Nonces remembered at most (beyond that, requests are refused until
/// older ones leave the window: fail closed, never forget early).
pub const MAX_NONCES: usize = 200_000;

const SCHEME: &str = "v2";

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// The `X-Auth-Token` value sent with the request ("" if none).
    pub user_token: &'a str,
}

/// Why a peer request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing or malformed X-P2P-Auth")]
    Malformed,
    #[error("X-P2P-Auth timestamp outside the accepted window")]
    Stale,
    #[error("X-P2P-Auth signature does not match the request")]
    BadSignature,
    #[error("X-P2P-Auth nonce already used (replay)")]
    Replay,
    #[error("too many recent peer requests to remember")]
    Saturated,
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hex(bytes: &[u8]) -> String {
    // Called several times per signed request: no formatter per byte.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// [`hex`] of a SHA-256 digest, on the stack.
fn hex_bytes(digest: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().take(32).enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The key that signs peer requests, derived from the cluster secret;
/// kept as the HMAC state after the key (cloned per request, so the key
/// schedule is not computed again for every signature).
#[derive(Clone)]
pub struct PeerKey(HmacSha256);

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(<redacted>)")
    }
}

impl PeerKey {
    pub fn derive(secret: &[u8]) -> Self {
        let mut m = hmac(secret);
        m.update(b"p2pstack peer-request key v2");
        Self(hmac(&m.finalize().into_bytes()))
    }

    /// The MAC of [`canonical`]`(ts, nonce, p)`, fed piece by piece.
    fn mac(&self, ts: i64, nonce: &str, p: &Parts<'_>) -> HmacSha256 {
        let mut m = self.0.clone();
        m.update(b"p2p-request-v2\n");
        m.update(ts.to_string().as_bytes());
        for part in [nonce, p.method, p.path] {
            m.update(b"\n");
            m.update(part.as_bytes());
        }
        m.update(b"\n");
        m.update(canonical_query(p.query).as_bytes());
        m.update(b"\n");
        m.update(&hex_bytes(&Sha256::digest(p.body)));
        m.update(b"\n");
        m.update(&hex_bytes(&Sha256::digest(p.user_token.as_bytes())));
        m
    }
}

/// The query in canonical form: pairs decoded, sorted, re-encoded.
pub fn canonical_query(q: Option<&str>) -> String {
    if q.is_none_or(str::is_empty) {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The string that is signed.
pub fn canonical(ts: i64, nonce: &str, p: &Parts<'_>) -> String {
    format!(
        "p2p-request-v2\n{ts}\n{nonce}\n{}\n{}\n{}\n{}\n{}",
        p.method,
        p.path,
        canonical_query(p.query),
        hex(&Sha256::digest(p.body)),
        hex(&Sha256::digest(p.user_token.as_bytes())),
    )
}

/// The `X-P2P-Auth` value for a request (`now` in unix seconds; `nonce`
/// must not repeat within the window: 128 random bits).
pub fn sign(key: &PeerKey, now: i64, nonce: [u8; 16], p: &Parts<'_>) -> String {
    let nonce = hex(&nonce);
    let sig = key.mac(now, &nonce, p).finalize().into_bytes();
    format!("{SCHEME} ts={now},nonce={nonce},sig={}", hex(&sig))
}

struct Header<'a> {
    ts: i64,
    nonce: &'a str,
    /// `nonce`, decoded.
    nonce_bytes: [u8; 16],
    sig: Vec<u8>,
}

fn parse(header: &str) -> Option<Header<'_>> {
    let rest = header.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let (mut ts, mut nonce, mut sig) = (None, None, None);
    for kv in rest.split(',') {
        let (k, v) = kv.split_once('=')?;
        match k {
            "ts" if ts.is_none() => ts = Some(v.parse::<i64>().ok()?),
            "nonce" if nonce.is_none() => nonce = Some(v),
            "sig" if sig.is_none() => sig = Some(unhex(v)?),
            _ => return None,
        }
    }
    let nonce = nonce?;
    let nonce_bytes: [u8; 16] = unhex(nonce)?.try_into().ok()?;
    Some(Header {
        ts: ts?,
        nonce,
        nonce_bytes,
        sig: sig?,
    })
}

/// The callee's side: checks signatures and remembers nonces.
pub struct Verifier {
    key: PeerKey,
    /// nonce → timestamp it came with.
    seen: HashMap<[u8; 16], i64>,
    /// (timestamp, nonce) in arrival order, to forget old ones.
    order: VecDeque<(i64, [u8; 16])>,
    capacity: usize,
}

impl Verifier {
    pub fn new(key: PeerKey) -> Self {
        Self::with_capacity(key, MAX_NONCES)
    }

    pub fn with_capacity(key: PeerKey, capacity: usize) -> Self {
        Self {
            key,
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Nonces currently remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    fn forget_older_than(&mut self, limit: i64) {
        // Timestamps arrive roughly in order; entries are dropped from the
        // front while they are out of the window (a late-stamped entry
        // behind an early one waits a little longer: never forgotten early).
        while let Some((ts, _)) = self.order.front() {
            if *ts >= limit {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
    }

    /// Checks `header` against the request at `now` (unix seconds) and
    /// remembers its nonce.
    pub fn verify(&mut self, now: i64, header: &str, p: &Parts<'_>) -> Result<(), Refusal> {
        let h = parse(header).ok_or(Refusal::Malformed)?;
        if now.abs_diff(h.ts) > WINDOW_SECS.unsigned_abs() {
            return Err(Refusal::Stale);
        }
        // Constant-time comparison (hmac's verify).
        self.key
            .mac(h.ts, h.nonce, p)
            .verify_slice(&h.sig)
            .map_err(|_| Refusal::BadSignature)?;
        // A nonce stays refused for as long as its timestamp is acceptable:
        // until ts + WINDOW; anything older than now - 2 × WINDOW can go.
        self.forget_older_than(now - 2 * WINDOW_SECS);
        if self.seen.contains_key(&h.nonce_bytes) {
            return Err(Refusal::Replay);
        }
        if self.seen.len() >= self.capacity {
            return Err(Refusal::Saturated);
        }
        self.seen.insert(h.nonce_bytes, h.ts);
        self.order.push_back((h.ts, h.nonce_bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        body: &'a [u8],
    ) -> Parts<'a> {
        Parts {
            method,
            path,
            query,
            body,
            user_token: "p2p1.tok",
        }
    }

    fn key() -> PeerKey {
        PeerKey::derive(b"0123456789abcdef-cluster")
    }

    #[test]
    fn hex_is_lowercase_and_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        let h = hex(&bytes);
        assert_eq!(&h[..8], "00010203");
        assert_eq!(&h[h.len() - 4..], "feff");
        assert_eq!(unhex(&h), Some(bytes));
    }

    #[test]
    fn the_mac_covers_exactly_the_canonical_string() {
        for p in [
            parts("POST", "/p2p/v1/boot", Some("b=2&a=1"), b"{\"gid\":1}"),
            parts("GET", "/p2p/v1/view", None, b""),
            parts("GET", "/p2p/v1/local/servers/detail", Some(""), b""),
        ] {
            let nonce = hex(&[5; 16]);
            let mut whole = hmac(&{
                let mut m = hmac(b"0123456789abcdef-cluster");
                m.update(b"p2pstack peer-request key v2");
                m.finalize().into_bytes()
            });
            whole.update(canonical(-7, &nonce, &p).as_bytes());
            assert_eq!(
                key().mac(-7, &nonce, &p).finalize().into_bytes(),
                whole.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let p = parts("POST", "/p2p/v1/boot", None, b"{\"gid\":1}");
        let h = sign(&key(), 1_000, [7; 16], &p);
        let mut v = Verifier::new(key());
        assert_eq!(v.verify(1_010, &h, &p), Ok(()));
        // The very same request again: a replay.
        assert_eq!(v.verify(1_011, &h, &p), Err(Refusal::Replay));
        // A fresh nonce is fine.
        let h2 = sign(&key(), 1_011, [8; 16], &p);
        assert_eq!(v.verify(1_012, &h2, &p), Ok(()));
    }

    #[test]
    fn every_covered_part_is_bound() {
        let body = b"{\"gid\":1}";
        let p = parts("POST", "/p2p/v1/boot", Some("a=1"), body);
        let h = sign(&key(), 1_000, [1; 16], &p);
        let altered = [
            parts("GET", "/p2p/v1/boot", Some("a=1"), body),
            parts("POST", "/p2p/v1/bootx", Some("a=1"), body),
            parts("POST", "/p2p/v1/boot", Some("a=1&all_tenants=1"), body),
            parts("POST", "/p2p/v1/boot", None, body),
            parts("POST", "/p2p/v1/boot", Some("a=1"), b"{\"gid\":2}"),
            Parts {
                user_token: "p2p1.admin",
                ..p
            },
        ];
        for a in altered {
            let mut v = Verifier::new(key());
            assert_eq!(v.verify(1_000, &h, &a), Err(Refusal::BadSignature), "{a:?}");
        }
        let mut v = Verifier::new(PeerKey::derive(b"another-cluster-secret"));
        assert_eq!(v.verify(1_000, &h, &p), Err(Refusal::BadSignature));
        // The query's order and encoding do not matter, its content does.
        let same = parts("POST", "/p2p/v1/boot", Some("a=%31"), body);
        assert_eq!(Verifier::new(key()).verify(1_000, &h, &same), Ok(()));
    }

    #[test]
    fn the_window_is_bounded_in_both_directions() {
        let p = parts("GET", "/p2p/v1/view", None, b"");
        for (ts, now, ok) in [
            (1_000, 1_000 + WINDOW_SECS, true),
            (1_000, 1_000 + WINDOW_SECS + 1, false),
            (1_000, 1_000 - WINDOW_SECS, true),
            (1_000, 1_000 - WINDOW_SECS - 1, false),
            (1_000 + 600, 1_000, false),
        ] {
            let h = sign(&key(), ts, [3; 16], &p);
            let r = Verifier::new(key()).verify(now, &h, &p);
            assert_eq!(r.is_ok(), ok, "ts {ts} now {now}: {r:?}");
            if !ok {
                assert_eq!(r, Err(Refusal::Stale));
            }
        }
    }

    #[test]
    fn nonces_are_forgotten_only_after_the_window() {
        let p = parts("GET", "/p2p/v1/view", None, b"");
        let mut v = Verifier::new(key());
        let h = sign(&key(), 1_000, [9; 16], &p);
        v.verify(1_000, &h, &p).unwrap();
        // Still refused at the edge of its own window.
        assert_eq!(v.verify(1_000 + WINDOW_SECS, &h, &p), Err(Refusal::Replay));
        // Much later it is stale anyway, and the memory is freed.
        let other = sign(&key(), 1_000 + 3 * WINDOW_SECS, [10; 16], &p);
        v.verify(1_000 + 3 * WINDOW_SECS, &other, &p).unwrap();
        assert_eq!(v.remembered(), 1);
        assert_eq!(
            v.verify(1_000 + 3 * WINDOW_SECS, &h, &p),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn memory_is_bounded_and_fails_closed() {
        let p = parts("GET", "/p2p/v1/view", None, b"");
        let mut v = Verifier::with_capacity(key(), 3);
        for i in 0..3u8 {
            v.verify(1_000, &sign(&key(), 1_000, [i; 16], &p), &p)
                .unwrap();
        }
        assert_eq!(
            v.verify(1_000, &sign(&key(), 1_000, [99; 16], &p), &p),
            Err(Refusal::Saturated)
        );
        // Once the old ones leave the window, there is room again.
        let later = 1_000 + 2 * WINDOW_SECS + 1;
        assert!(v
            .verify(later, &sign(&key(), later, [99; 16], &p), &p)
            .is_ok());
    }

    #[test]
    fn junk_headers_are_malformed_not_a_panic() {
        let p = parts("GET", "/p2p/v1/view", None, b"");
        let mut v = Verifier::new(key());
        for junk in [
            "",
            "v2",
            "v2 ",
            "v1 ts=1,nonce=00000000000000000000000000000000,sig=00",
            "v2 ts=x,nonce=00000000000000000000000000000000,sig=00",
            "v2 ts=1,nonce=zz,sig=00",
            "v2 ts=1,nonce=00000000000000000000000000000000,sig=0",
            "v2 ts=1,ts=2,nonce=00000000000000000000000000000000,sig=00",
            "1000.deadbeef",
            "v2 ts=9999999999999999999999,nonce=00000000000000000000000000000000,sig=00",
        ] {
            assert_eq!(v.verify(1, junk, &p), Err(Refusal::Malformed), "{junk}");
        }
    }
}
