//! Federation tokens and agent-to-agent request signatures.
//!
//! A federation token is `p2p1.<claims>.<mac>`: base64url (no padding) of
//! the JSON [`Claims`], and of HMAC-SHA256(cluster secret, `p2p1.<claims>`).
//! Any agent that knows the cluster secret can verify a token minted by any
//! other agent, with no central identity service. Tokens carry their own
//! expiry; there is no revocation list (a documented limitation).
//!
//! Agent-to-agent requests are signed by [`crate::peer_sig`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "p2p1";

/// What a federation token asserts about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user_id: String,
    pub user_name: String,
    pub user_domain: String,
    /// Project scope (by name: project IDs differ between cloudlets).
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain: Option<String>,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The agent (cloudlet name) that issued the token.
    pub issuer: String,
    /// Keystone audit id, reused as-is.
    #[serde(default)]
    pub audit_id: String,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Signs `claims` with the cluster secret.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(json));
    let mut m = mac(secret);
    m.update(body.as_bytes());
    let tag = m.finalize().into_bytes();
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks signature and expiry (`now` in unix seconds) and returns the claims.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    let (body, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (prefix, payload) = body.split_once('.').ok_or(TokenError::Malformed)?;
    if prefix != PREFIX {
        return Err(TokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(body.as_bytes());
    m.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.expires_at <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Tokens this agent already checked or minted, so that the HMAC, the
/// base64 and the JSON of a token are done once per token rather than on
/// every request carrying it (a boot's polls all carry the same one).
/// Expiry is still checked on every use; the secret never changes while
/// the agent runs, so a token that verified once verifies again.
#[derive(Default)]
pub struct Cache {
    verified: std::sync::Mutex<std::collections::HashMap<String, Arc<Claims>>>,
    /// Per caller (claims as given), the token minted for it and its expiry.
    minted: std::sync::Mutex<Vec<(Claims, String, i64)>>,
}

/// Bounds of the caches: beyond them, a cache starts afresh.
const CACHE_MAX: usize = 4096;
const MINTED_MAX: usize = 64;

impl Cache {
    /// [`verify`], remembering tokens that passed. The claims are shared
    /// with the cache (no copy of them per request).
    pub fn verify(&self, token: &str, secret: &[u8], now: i64) -> Result<Arc<Claims>, TokenError> {
        if let Ok(v) = self.verified.lock() {
            if let Some(c) = v.get(token) {
                if c.expires_at <= now {
                    return Err(TokenError::Expired);
                }
                return Ok(c.clone());
            }
        }
        let claims = Arc::new(verify(token, secret, now)?);
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= CACHE_MAX {
                v.clear();
            }
            v.insert(token.to_string(), claims.clone());
        }
        Ok(claims)
    }

    /// A token for `claims` valid for at least `min_left` seconds after
    /// `now`: the one minted before while it qualifies, else a new one
    /// that expires `ttl` after `now` (or when `claims` do, if later).
    pub fn mint(
        &self,
        claims: &Claims,
        secret: &[u8],
        now: i64,
        min_left: i64,
        ttl: i64,
    ) -> String {
        if let Ok(m) = self.minted.lock() {
            if let Some((_, tok, _)) = m
                .iter()
                .find(|(c, _, exp)| *exp >= now + min_left && c == claims)
            {
                return tok.clone();
            }
        }
        let mut c = claims.clone();
        c.expires_at = c.expires_at.max(now + ttl);
        let tok = sign(&c, secret);
        if let Ok(mut m) = self.minted.lock() {
            m.retain(|(old, _, exp)| *exp >= now + min_left && old != claims);
            if m.len() >= MINTED_MAX {
                m.clear();
            }
            m.push((claims.clone(), tok.clone(), c.expires_at));
        }
        tok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            user_id: "u1".into(),
            user_name: "demo".into(),
            user_domain: "Default".into(),
            project_id: Some("p1".into()),
            project_name: Some("demo".into()),
            project_domain: Some("Default".into()),
            roles: vec!["member".into()],
            issued_at: 100,
            expires_at: exp,
            issuer: "c1".into(),
            audit_id: "a".into(),
        }
    }

    #[test]
    fn token_from_one_agent_is_valid_at_another() {
        let t = sign(&claims(1_000), b"s3cret");
        // A second agent only shares the secret.
        assert_eq!(verify(&t, b"s3cret", 500).unwrap(), claims(1_000));
    }

    #[test]
    fn expiry_is_enforced() {
        let t = sign(&claims(1_000), b"k");
        assert_eq!(verify(&t, b"k", 1_000), Err(TokenError::Expired));
        assert_eq!(verify(&t, b"k", 5_000), Err(TokenError::Expired));
    }

    #[test]
    fn wrong_secret_or_tampering_is_rejected() {
        let t = sign(&claims(1_000), b"k");
        assert_eq!(verify(&t, b"other", 1), Err(TokenError::BadSignature));
        // Swap in claims with admin role but keep the old tag.
        let mut evil = claims(1_000);
        evil.roles = vec!["admin".into()];
        let forged = sign(&evil, b"attacker");
        let (forged_body, _) = forged.rsplit_once('.').unwrap();
        let (_, tag) = t.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{forged_body}.{tag}"), b"k", 1),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for junk in [
            "",
            ".",
            "a.b",
            "p2p1..",
            "p2p1.!!.??",
            "gAAAAAB-keystone-fernet",
        ] {
            assert!(verify(junk, b"k", 0).is_err(), "{junk}");
        }
    }

    #[test]
    fn cache_verifies_once_but_checks_expiry_and_mints_reusable_tokens() {
        let cache = Cache::default();
        let tok = sign(&claims(1000), b"k");
        assert_eq!(*cache.verify(&tok, b"k", 10).unwrap(), claims(1000));
        // Cached: still checked for expiry.
        assert_eq!(cache.verify(&tok, b"k", 1000), Err(TokenError::Expired));
        // A token that failed is not remembered as good.
        let forged = sign(&claims(1000), b"other");
        for _ in 0..2 {
            assert_eq!(
                cache.verify(&forged, b"k", 10),
                Err(TokenError::BadSignature)
            );
        }
        let c = claims(100);
        let a = cache.mint(&c, b"k", 50, 300, 600);
        assert_eq!(verify(&a, b"k", 50).unwrap().expires_at, 650);
        assert_eq!(cache.mint(&c, b"k", 300, 300, 600), a);
        // Less than min_left left: a fresh one.
        let b = cache.mint(&c, b"k", 400, 300, 600);
        assert_ne!(a, b);
        assert_eq!(verify(&b, b"k", 400).unwrap().expires_at, 1000);
    }
}
