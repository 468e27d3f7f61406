//! A cloudlet's `{"server": {…}}` answer rewritten for the user without
//! building a JSON tree of it (issue 17).
//!
//! Every client poll (`GET /servers/{id}`) passes through here, once at the
//! coordinator and once more at the entry agent when they differ. The
//! server object is read as a map of its top-level fields, each kept as
//! the cloudlet's raw JSON text ([`RawValue`], borrowed from the answer);
//! only the few fields the agent rewrites are parsed and written anew:
//! `id`, `links`, `image` and `flavor` (by [`view::globalize`], the one
//! rule for that, applied to a small object of those fields),
//! `key_name`, and the admin-only attributes removed for non-admin callers
//! ([`policy::is_admin_server_field`]). The other fields (addresses,
//! metadata, faults …) are copied as they came.
//!
//! The output has the same top-level fields, in the same (sorted) order,
//! as the `serde_json::Value` path it replaces; nested objects keep the
//! cloudlet's own key order and number spelling. An answer this reading
//! does not take (not an object, escaped keys, duplicate keys) is
//! reported as `None`, and the caller falls back to the `Value` path.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use bytes::Bytes;

use crate::core::Outcome;
use crate::token::Claims;
use crate::{policy, view};

/// What a `GET` of a coordinated server answers (`Core::server_op`).
#[derive(Debug)]
pub enum Shown {
    /// The owner's server object shaped for the user: `{"server": …}`, 200.
    Server { body: Bytes, owner: String },
    /// Any other answer (synthetic, not found, unreachable …); not yet
    /// shaped for a caller.
    Other(Outcome),
}

/// An answer the raw reading does not take: the caller reads it as a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a plain server answer")]
pub struct NotTaken;

/// The top-level fields of one server object, as raw JSON text, sorted
/// by key (the order a tree writes them in).
pub struct ServerDoc<'a> {
    fields: Fields<'a>,
}

/// Top-level fields sorted by key, no key twice.
type Fields<'a> = Vec<(&'a str, &'a RawValue)>;

/// The raw value of `key` in sorted `fields`.
fn get<'a>(fields: &Fields<'a>, key: &str) -> Option<&'a RawValue> {
    fields
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| fields[i].1)
}

/// How a server object is shown: with its global ID and this agent's
/// links, and, when `caller` is given, as that caller may see it
/// (`key_name` as the user gave it; admin-only fields only for admins).
pub struct Shape<'a> {
    pub gid: &'a str,
    pub base: &'a str,
    pub caller: Option<&'a Claims>,
}

/// Reads the top-level fields of an object, refusing duplicates (a tree
/// would keep the last one; the raw reading makes no such guess).
fn fields_of(text: &[u8]) -> Option<Fields<'_>> {
    let mut pairs: Vec<(&str, &RawValue)> = {
        struct Pairs<'de>(Vec<(&'de str, &'de RawValue)>);
        impl<'de> Deserialize<'de> for Pairs<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Pairs<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut v = Vec::with_capacity(m.size_hint().unwrap_or(48));
                        while let Some(kv) = m.next_entry::<&'de str, &'de RawValue>()? {
                            v.push(kv);
                        }
                        Ok(Pairs(v))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_slice::<Pairs<'_>>(text).ok()?.0
    };
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    pairs.windows(2).all(|w| w[0].0 != w[1].0).then_some(pairs)
}

impl<'a> ServerDoc<'a> {
    /// The server of a `{"server": {…}}` answer: `Ok(None)` when it has no
    /// `server`, `Err(NotTaken)` when it has more than `server`, or when this reading does not take
    /// it (the caller then reads it as a tree).
    pub fn parse(body: &'a [u8]) -> Result<Option<Self>, NotTaken> {
        let top = fields_of(body).ok_or(NotTaken)?;
        match get(&top, "server") {
            None => Ok(None),
            // Whatever else came with it is for the tree to keep.
            Some(_) if top.len() > 1 => Err(NotTaken),
            Some(raw) => fields_of(raw.get().as_bytes())
                .map(|fields| Some(Self { fields }))
                .ok_or(NotTaken),
        }
    }

    /// A string field (`None` when absent or not a string); borrowed
    /// from the answer unless it has escapes.
    pub fn str_field(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = get(&self.fields, key)?.get();
        match serde_json::from_str::<&str>(raw) {
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        }
    }

    /// `{"server": {…}}` shaped for the user.
    ///
    /// The fields are written in key order, each as it came except the
    /// rewritten ones: `id` and `links` (the global ID and this agent's
    /// links, as [`view::globalize`] writes them), `image` and `flavor`
    /// (through [`view::globalize`] on a small object of the two: their
    /// bookmark links), and, for a caller, `key_name` as the user gave it.
    pub fn render(&self, shape: &Shape<'_>) -> Vec<u8> {
        // Rewritten fields, sorted by key like the fields themselves.
        let mut new: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(5);
        let mut small = Map::new();
        for k in ["image", "flavor"] {
            if let Some(raw) = get(&self.fields, k) {
                // `""` (booted from a volume) has nothing to rewrite.
                if raw.get() == "\"\"" {
                    continue;
                }
                if let Ok(v) = serde_json::from_str::<Value>(raw.get()) {
                    small.insert(k.to_string(), v);
                }
            }
        }
        if !small.is_empty() {
            let mut small = Value::Object(small);
            view::globalize(&mut small, shape.gid, shape.base);
            if let Value::Object(small) = small {
                for k in ["flavor", "image"] {
                    if let Some(v) = small.get(k) {
                        new.push((k, Cow::Owned(v.to_string())));
                    }
                }
            }
        }
        let id = view::json_str(shape.gid);
        let links = view::links_json(shape.base, "servers", shape.gid);
        new.push(("id", Cow::Owned(id)));
        if shape.caller.is_some() {
            let user_key = self
                .str_field("key_name")
                .and_then(|s| crate::core::keypairs::user_name_of(&s).map(view::json_str));
            if let Some(k) = user_key {
                new.push(("key_name", Cow::Owned(k)));
            }
        }
        new.push(("links", Cow::Owned(links)));
        new.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let admin = shape.caller.is_none_or(Claims::is_admin);
        let len: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .chain(new.iter().map(|(k, v)| k.len() + v.len() + 4))
            .sum();
        let mut buf = Vec::with_capacity(len + 16);
        buf.extend_from_slice(b"{\"server\":{");
        let mut first = true;
        let mut put = |buf: &mut Vec<u8>, k: &str, v: &str| {
            if !first {
                buf.push(b',');
            }
            first = false;
            // Keys were read unescaped (borrowed) or are the rewrite's
            // own: written as they are.
            buf.push(b'"');
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(b"\":");
            buf.extend_from_slice(v.as_bytes());
        };
        // Merge the two sorted lists; a rewritten field replaces the
        // cloudlet's.
        let mut rewritten = new.iter().peekable();
        for (k, v) in &self.fields {
            while let Some((nk, nv)) = rewritten.next_if(|(nk, _)| nk < k) {
                put(&mut buf, nk, nv);
            }
            if let Some((_, nv)) = rewritten.next_if(|(nk, _)| nk == k) {
                put(&mut buf, k, nv);
                continue;
            }
            if !admin && policy::is_admin_server_field(k) {
                continue;
            }
            put(&mut buf, k, v.get());
        }
        for (nk, nv) in rewritten {
            put(&mut buf, nk, nv);
        }
        buf.extend_from_slice(b"}}");
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(roles: &[&str]) -> Claims {
        Claims {
            user_id: "u".into(),
            user_name: "demo".into(),
            user_domain: "Default".into(),
            project_id: Some("p".into()),
            project_name: Some("demo".into()),
            project_domain: Some("Default".into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            issued_at: 0,
            expires_at: 10,
            issuer: "c1".into(),
            audit_id: String::new(),
        }
    }

    fn server() -> Value {
        json!({"server": {
            "id": "local-1", "name": "vm", "status": "ACTIVE",
            "links": [{"rel": "self", "href": "http://cloudlet/compute/v2.1/servers/local-1"}],
            "image": {"id": "img-1", "links": [{"rel": "bookmark", "href": "http://cloudlet/compute/images/img-1"}]},
            "flavor": {"id": "1", "links": []},
            "addresses": {"private": [{"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"}]},
            "metadata": {"p2p_global_id": "g", "z": "1", "a": "2"},
            "key_name": "p2p.0123456789ab.mykey",
            "OS-EXT-SRV-ATTR:host": "compute-1", "host_status": "UP",
            "progress": 100, "weight": 1.5, "fault": null,
            "OS-EXT-STS:vm_state": "active"
        }})
    }

    /// The tree path this module replaces: globalize, then scrub.
    fn by_tree(body: &Value, shape: &Shape<'_>) -> Value {
        let mut v = body.clone();
        if let Some(s) = v.get_mut("server") {
            view::globalize(s, shape.gid, shape.base);
            if let Some(c) = shape.caller {
                let user_key = s
                    .get("key_name")
                    .and_then(Value::as_str)
                    .and_then(crate::core::keypairs::user_name_of)
                    .map(str::to_string);
                if let Some(k) = user_key {
                    s["key_name"] = json!(k);
                }
                if !c.is_admin() {
                    policy::strip_admin_server_fields(s);
                }
            }
        }
        v
    }

    #[test]
    fn same_answer_as_the_tree_for_every_caller() {
        let body = server().to_string();
        let member = claims(&["member"]);
        let admin = claims(&["admin"]);
        for caller in [None, Some(&member), Some(&admin)] {
            let shape = Shape {
                gid: "gid-1",
                base: "http://agent:8080",
                caller,
            };
            let doc = ServerDoc::parse(body.as_bytes()).unwrap().unwrap();
            let raw = doc.render(&shape);
            let got: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(got, by_tree(&server(), &shape), "caller {caller:?}");
            // Top-level fields in the order the tree writes them.
            assert_eq!(
                String::from_utf8(raw).unwrap(),
                by_tree(&server(), &shape).to_string()
            );
        }
        let shape = Shape {
            gid: "gid-1",
            base: "http://agent:8080",
            caller: Some(&member),
        };
        let got: Value = serde_json::from_slice(
            &ServerDoc::parse(body.as_bytes())
                .unwrap()
                .unwrap()
                .render(&shape),
        )
        .unwrap();
        assert_eq!(got["server"]["key_name"], "mykey");
        assert!(got["server"].get("OS-EXT-SRV-ATTR:host").is_none());
        assert!(got["server"].get("host_status").is_none());
        assert_eq!(got["server"]["id"], "gid-1");
        assert_eq!(
            got["server"]["image"]["links"][0]["href"],
            "http://agent:8080/compute/images/img-1"
        );
    }

    #[test]
    fn same_answer_as_the_tree_for_other_shapes() {
        // Booted from a volume (image ""), no links, no key, escaped text,
        // fields sorting before and after the rewritten ones.
        let bodies = [
            json!({"server": {"id": "l", "image": "", "flavor": {"id": "2", "x": [1, {"b": 2, "a": 1}]},
                "AAA": 1, "zzz": "\u{e9}\"", "status": "ACTIVE", "key_name": null}}),
            json!({"server": {"name": "n", "OS-EXT-SRV-ATTR:host": "h"}}),
            json!({"server": {"image": {"links": []}, "flavor": "odd", "key_name": "plain",
                "links": "x", "id": 5}}),
        ];
        let member = claims(&["member"]);
        let admin = claims(&["admin"]);
        for body in &bodies {
            for caller in [None, Some(&member), Some(&admin)] {
                let shape = Shape {
                    gid: "gid-\"1",
                    base: "http://agent:8080",
                    caller,
                };
                let text = body.to_string();
                let doc = ServerDoc::parse(text.as_bytes()).unwrap().unwrap();
                assert_eq!(
                    String::from_utf8(doc.render(&shape)).unwrap(),
                    by_tree(body, &shape).to_string(),
                    "{body} for {caller:?}"
                );
            }
        }
        let doc = ServerDoc::parse(br#"{"server":{"status":"\u0045RROR"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(doc.str_field("status").as_deref(), Some("ERROR"));
    }

    #[test]
    fn what_the_raw_reading_does_not_take_is_left_to_the_tree() {
        assert!(ServerDoc::parse(b"{\"itemNotFound\":{\"code\":404}}")
            .unwrap()
            .is_none());
        assert!(ServerDoc::parse(b"{\"server\":null}").is_err());
        assert!(ServerDoc::parse(b"{\"server\":[1]}").is_err());
        assert!(ServerDoc::parse(b"{\"server\":{\"a\":1,\"a\":2}}").is_err());
        assert!(ServerDoc::parse(b"{\"server\":{\"a\\u0041\":1}}").is_err());
        assert!(ServerDoc::parse(b"not json").is_err());
        assert!(ServerDoc::parse(b"[]").is_err());
        assert!(ServerDoc::parse(b"{\"server\":{},\"x\":1}").is_err());
        let doc = ServerDoc::parse(b"{\"server\":{\"status\":\"ERROR\",\"n\":1}}")
            .unwrap()
            .unwrap();
        assert_eq!(doc.str_field("status").as_deref(), Some("ERROR"));
        assert_eq!(doc.str_field("n"), None);
        assert_eq!(doc.str_field("missing"), None);
    }
}
