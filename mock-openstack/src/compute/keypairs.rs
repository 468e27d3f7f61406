//! `os-keypairs` (microversion 2.1): create (generated or imported public
//! key), list, show, delete, per user as nova's policy says. Imported keys
//! are parsed as nova does (`nova/crypto.py` `generate_fingerprint`: an
//! OpenSSH public key, fingerprint = MD5 of its key blob); generated keys
//! are real key pairs (Ed25519 here, where nova 2.1 makes RSA-2048) drawn
//! from the deployment's seeded RNG.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, StatusCode};
use os_wire::time::rfc3339;
use os_wire::ApiError;
use serde_json::{json, Value};

use super::S;
use crate::error::ApiResult;
use crate::http::{json_body, ok};
use crate::state::{Keypair, State};

/// nova's default `key_pairs` quota per user.
pub const MAX_KEYPAIRS: usize = 100;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/compute/v2.1/os-keypairs", get(list).post(create))
        .route("/compute/v2.1/os-keypairs/{name}", get(show).delete(delete))
}

fn invalid(reason: &str) -> ApiError {
    ApiError::bad_request(S, format!("Keypair data is invalid: {reason}"))
}

/// nova's fingerprint of an OpenSSH public key: MD5 of the base64-decoded
/// key blob as colon-separated hex; `None` if it is no valid key.
pub fn fingerprint(public_key: &str) -> Option<String> {
    use md5::Digest;
    let key = ssh_key::PublicKey::from_openssh(public_key.trim()).ok()?;
    let blob = key.to_bytes().ok()?;
    let d = md5::Md5::digest(&blob);
    Some(
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// A new key pair: (OpenSSH private key, OpenSSH public key).
fn generate(rng: &mut rand_chacha::ChaCha8Rng, comment: &str) -> Option<(String, String)> {
    let mut key = ssh_key::PrivateKey::random(rng, ssh_key::Algorithm::Ed25519).ok()?;
    key.set_comment(comment);
    let private = key.to_openssh(ssh_key::LineEnding::LF).ok()?.to_string();
    let public = key.public_key().to_openssh().ok()?;
    Some((private, public))
}

/// nova's keypair name rule: 1-255 characters of letters, digits, space,
/// `_`, `-`, `.`, `@`.
fn valid_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.@".contains(c))
}

fn view(k: &Keypair, full: bool) -> Value {
    let mut v = json!({
        "name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint,
    });
    if full {
        v["user_id"] = json!(k.user_id);
        v["created_at"] = json!(rfc3339(k.created));
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["id"] = json!(k.id);
    }
    v
}

async fn list(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let g = st.lock();
    let list: Vec<Value> = g
        .keypairs
        .values()
        .filter(|k| k.user_id == ctx.user_id)
        .map(|k| json!({"keypair": view(k, false)}))
        .collect();
    Ok(ok(json!({ "keypairs": list })))
}

async fn create(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let v = json_body(S, &body)?;
    let kp = v
        .get("keypair")
        .filter(|k| k.is_object())
        .ok_or_else(|| ApiError::required(S, "keypair"))?;
    let name = kp
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::required(S, "name"))?;
    if !valid_name(name) {
        return Err(invalid("Keypair name contains unsafe characters"));
    }
    let imported = match kp.get("public_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                S,
                "Invalid input for field/attribute public_key.",
            ))
        }
    };
    let mut g = st.lock();
    let key = (ctx.user_id.to_string(), name.to_string());
    if g.keypairs.contains_key(&key) {
        return Err(ApiError::conflict(
            S,
            format!("Key pair '{name}' already exists."),
        ));
    }
    if g.keypairs.keys().filter(|(u, _)| u == ctx.user_id).count() >= MAX_KEYPAIRS {
        return Err(ApiError::forbidden(
            S,
            "Quota exceeded, too many key pairs.",
        ));
    }
    let (private_key, public_key) = match imported {
        Some(k) => (None, k),
        None => {
            let (private, public) = generate(&mut g.rng, &format!("{name}@{}", st.cfg.name))
                .ok_or_else(|| invalid("failed to generate a key pair"))?;
            (Some(private), public)
        }
    };
    let fingerprint =
        fingerprint(&public_key).ok_or_else(|| invalid("failed to generate fingerprint"))?;
    g.next_keypair += 1;
    let k = Keypair {
        id: g.next_keypair,
        name: name.to_string(),
        public_key,
        fingerprint,
        user_id: ctx.user_id,
        created: st.now(),
    };
    let mut out = view(&k, false);
    out["user_id"] = json!(ctx.user_id);
    if let Some(p) = private_key {
        out["private_key"] = json!(p);
    }
    g.keypairs.insert(key, k);
    // nova answers 200 up to microversion 2.1 (201 from 2.2).
    Ok(ok(json!({ "keypair": out })))
}

fn not_found(name: &str, user: &str) -> ApiError {
    ApiError::not_found(S, format!("Keypair {name} not found for user {user}"))
}

async fn show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let g = st.lock();
    g.keypairs
        .get(&(ctx.user_id.to_string(), name.clone()))
        .map(|k| ok(json!({"keypair": view(k, true)})))
        .ok_or_else(|| not_found(&name, ctx.user_id))
}

async fn delete(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let mut g = st.lock();
    match g.keypairs.remove(&(ctx.user_id.to_string(), name.clone())) {
        // nova answers 202 up to microversion 2.1 (204 from 2.2).
        Some(_) => Ok(StatusCode::ACCEPTED.into_response()),
        None => Err(not_found(&name, ctx.user_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fingerprint_is_novas_md5_of_the_key_blob() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";
        // What `ssh-keygen -l -E md5 -f` prints for this key.
        assert_eq!(
            fingerprint(key).as_deref(),
            Some("65:96:2d:fc:e8:d5:a9:11:64:0c:0f:ea:00:6e:5b:bd")
        );
        assert_eq!(
            fingerprint(key),
            fingerprint(&key.replace(" user@host", ""))
        );
        for bad in ["", "ssh-rsa", "ssh-ed25519 notbase64!", "hello world"] {
            assert_eq!(fingerprint(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_pairs_are_real_and_repeat_with_the_seed() {
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (private, public) = generate(&mut a, "k@x").expect("generated");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        assert!(fingerprint(&public).is_some());
        let parsed = ssh_key::PrivateKey::from_openssh(&private).expect("parses");
        assert_eq!(parsed.public_key().to_openssh().expect("encodes"), public);
        assert_eq!(generate(&mut b, "k@x").expect("again").1, public);
    }

    #[test]
    fn names_follow_novas_rule() {
        assert!(valid_name("my key-1.2@x_y"));
        for bad in ["", "  ", "a/b", "ключ", &"x".repeat(256)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
