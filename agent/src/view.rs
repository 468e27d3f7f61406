//! Shaping what users see: cloudlet-local server objects turned into
//! federation-wide ones, synthetic servers for states no cloudlet can
//! report, and sums of per-cloudlet statistics. Pure functions.

use serde_json::{json, Map, Value};

use crate::idroute::METADATA_KEY;

/// The global ID of a cloudlet-local server object: its `p2p_global_id`
/// metadata, else its own ID (a server not booted through an agent).
pub fn global_id_of(server: &Value) -> Option<String> {
    server
        .pointer(&format!("/metadata/{METADATA_KEY}"))
        .and_then(Value::as_str)
        .or_else(|| server.get("id").and_then(Value::as_str))
        .map(str::to_string)
}

fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/compute/v2.1/{kind}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/compute/{kind}/{id}")}
    ])
}

/// [`links`] as JSON text, written without a tree (the same bytes:
/// `href` before `rel`, as a tree orders keys).
pub fn links_json(base: &str, kind: &str, id: &str) -> String {
    format!(
        "[{{\"href\":{},\"rel\":\"self\"}},{{\"href\":{},\"rel\":\"bookmark\"}}]",
        json_str(&format!("{base}/compute/v2.1/{kind}/{id}")),
        json_str(&format!("{base}/compute/{kind}/{id}")),
    )
}

/// `s` as JSON string text (quoted and escaped).
pub fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// Rewrites a cloudlet's server object for the user: global `id`, links
/// pointing at the agent the user talks to (`base`).
pub fn globalize(server: &mut Value, gid: &str, base: &str) {
    let Some(obj) = server.as_object_mut() else {
        return;
    };
    obj.insert("id".into(), json!(gid));
    obj.insert("links".into(), links(base, "servers", gid));
    for (field, kind) in [("image", "images"), ("flavor", "flavors")] {
        if let Some(inner) = obj.get_mut(field).and_then(Value::as_object_mut) {
            if let Some(id) = inner.get("id").and_then(Value::as_str).map(str::to_string) {
                inner.insert(
                    "links".into(),
                    json!([{"rel": "bookmark", "href": format!("{base}/compute/{kind}/{id}")}]),
                );
            }
        }
    }
}

/// The brief form (`GET /servers`).
pub fn brief(server: &Value) -> Value {
    json!({
        "id": server.get("id").cloned().unwrap_or(Value::Null),
        "name": server.get("name").cloned().unwrap_or(Value::Null),
        "links": server.get("links").cloned().unwrap_or(json!([])),
    })
}

/// A server no cloudlet can describe right now (being re-placed, on an
/// unreachable cloudlet, or failed everywhere).
pub fn synthetic(
    gid: &str,
    name: &str,
    status: &str,
    tenant: &str,
    fault: Option<&str>,
    base: &str,
) -> Value {
    let now = os_wire::time::rfc3339(cp_model::clock::utc_now());
    let (vm_state, task_state) = match status {
        "BUILD" => ("building", json!("scheduling")),
        "ERROR" => ("error", Value::Null),
        _ => ("unknown", Value::Null),
    };
    let mut s = json!({
        "id": gid, "name": name, "status": status, "tenant_id": tenant, "user_id": "",
        "created": now, "updated": now, "progress": 0, "hostId": "",
        "image": "", "flavor": {}, "addresses": {}, "metadata": {METADATA_KEY: gid},
        "key_name": null, "config_drive": "", "security_groups": [],
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:power_state": 0, "OS-EXT-AZ:availability_zone": "nova",
        "OS-SRV-USG:launched_at": null, "OS-SRV-USG:terminated_at": null,
        "os-extended-volumes:volumes_attached": [],
        "links": links(base, "servers", gid),
    });
    if let Some(f) = fault {
        s["fault"] = json!({"code": 500, "message": f, "details": "", "created": now});
    }
    s
}

/// Marks a last-known server object as unreachable.
pub fn mark_unknown(server: &mut Value) {
    if let Some(obj) = server.as_object_mut() {
        obj.insert("status".into(), json!("UNKNOWN"));
        obj.insert("OS-EXT-STS:vm_state".into(), json!("unknown"));
    }
}

/// A remembered server of a lost cloudlet whose boot was taken over and
/// failed with `fault` (its disk was on that cloudlet): ERROR, as its
/// backup shows it.
pub fn mark_lost(server: &mut Value, fault: &str) {
    if let Some(obj) = server.as_object_mut() {
        let now = os_wire::time::rfc3339(cp_model::clock::utc_now());
        obj.insert("status".into(), json!("ERROR"));
        obj.insert("OS-EXT-STS:vm_state".into(), json!("error"));
        obj.insert("OS-EXT-STS:task_state".into(), Value::Null);
        obj.insert(
            "fault".into(),
            json!({"code": 500, "message": fault, "details": "", "created": now}),
        );
    }
}

/// Which fields add up across cloudlets, per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumKind {
    /// Hypervisor statistics: every integer adds up.
    All,
    /// Nova absolute limits: instance/core/RAM totals and usage only.
    Limits,
    /// Nova quota set: instances, cores, ram only.
    Quota,
}

impl SumKind {
    fn adds(self, key: &str) -> bool {
        match self {
            SumKind::All => true,
            SumKind::Limits => matches!(
                key,
                "maxTotalInstances"
                    | "maxTotalCores"
                    | "maxTotalRAMSize"
                    | "totalInstancesUsed"
                    | "totalCoresUsed"
                    | "totalRAMUsed"
            ),
            SumKind::Quota => matches!(key, "instances" | "cores" | "ram"),
        }
    }
}

/// Sums objects field by field: integer fields that `kind` says add up are
/// summed (`-1`, unlimited, wins); every other value is the first object's.
pub fn sum_objects<'a>(objs: impl IntoIterator<Item = &'a Value>, kind: SumKind) -> Value {
    let mut out = Map::new();
    for o in objs {
        let Some(o) = o.as_object() else { continue };
        for (k, v) in o {
            match (out.get(k), v.as_i64()) {
                (None, _) => {
                    out.insert(k.clone(), v.clone());
                }
                (Some(prev), Some(n)) if kind.adds(k) => {
                    if let Some(p) = prev.as_i64() {
                        let s = if p == -1 || n == -1 {
                            -1
                        } else {
                            p.saturating_add(n)
                        };
                        out.insert(k.clone(), json!(s));
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_as_text_are_the_tree_s_bytes() {
        for (base, id) in [("http://agent:8080", "g-1"), ("http://a\"b\\c", "x\u{1}y")] {
            assert_eq!(
                links_json(base, "servers", id),
                links(base, "servers", id).to_string()
            );
        }
    }

    #[test]
    fn globalize_rewrites_id_and_links() {
        let mut s = json!({"id": "local", "metadata": {"p2p_global_id": "g"},
            "links": [{"rel": "self", "href": "http://cloudlet/compute/v2.1/servers/local"}],
            "image": {"id": "img", "links": []}, "flavor": {"id": "1"}});
        let gid = global_id_of(&s).unwrap();
        assert_eq!(gid, "g");
        globalize(&mut s, &gid, "http://agent");
        assert_eq!(s["id"], "g");
        assert_eq!(s["links"][0]["href"], "http://agent/compute/v2.1/servers/g");
        assert_eq!(
            s["flavor"]["links"][0]["href"],
            "http://agent/compute/flavors/1"
        );
        assert!(!s.to_string().contains("http://cloudlet"));
        assert_eq!(global_id_of(&json!({"id": "raw"})).as_deref(), Some("raw"));
        let mut junk = json!(3);
        globalize(&mut junk, "g", "b");
    }

    #[test]
    fn sums_respect_unlimited() {
        let a = json!({"instances": 10, "cores": -1, "id": "p", "key_pairs": 100});
        let b = json!({"instances": 5, "cores": 20, "id": "q", "key_pairs": 100});
        assert_eq!(
            sum_objects([&a, &b], SumKind::Quota),
            json!({"instances": 15, "cores": -1, "id": "p", "key_pairs": 100})
        );
        assert_eq!(sum_objects([&a, &b], SumKind::All)["key_pairs"], 200);
    }

    #[test]
    fn synthetic_servers_carry_fault() {
        let s = synthetic("g", "vm", "ERROR", "t", Some("boom"), "http://a");
        assert_eq!(s["fault"]["message"], "boom");
        assert_eq!(s["OS-EXT-STS:power_state"], 0);
    }
}
