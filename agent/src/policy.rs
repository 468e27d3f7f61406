//! What a caller may read through the agent, as the real services' default
//! policies would decide (pure functions; see docs/agent.md, threat model).
//!
//! The agent reaches its cloudlet with a service account that holds the
//! `admin` role in the caller's project. That account must never widen
//! what a caller sees, so every proxied request goes through three gates:
//!
//! 1. [`check_path`]: the path is taken literally. Dot segments, empty
//!    segments (`//`), percent-encoded dots, slashes or backslashes, and
//!    trailing slashes (except on version documents) are refused before any
//!    routing, so no spelling reaches another route or the cloudlet's
//!    internals (`/mock/v1`, placement).
//! 2. [`compute_access`], [`image_access`], [`network_access`]: each
//!    proxied route is classified as Nova/Glance/Neutron's defaults do:
//!    open to any project member, the caller's own project only, or admin
//!    only. What the agent does not know is not forwarded at all.
//! 3. Answers are trimmed to what the caller's project may see
//!    ([`filter_owned`], [`strip_admin_server_fields`]): Neutron and Glance
//!    hide other projects' objects (404, not 403: no existence leak), Nova
//!    omits admin-only server attributes.

use serde_json::Value;

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `..`, `.`, `//`, encoded dots/slashes, backslashes, control bytes.
    #[error("The request path is not in normal form.")]
    NotNormal,
    /// A trailing slash that would change what the path names.
    #[error("The resource could not be found.")]
    TrailingSlash,
}

impl PathError {
    pub fn status(&self) -> u16 {
        match self {
            PathError::NotNormal => 400,
            PathError::TrailingSlash => 404,
        }
    }
}

/// Version documents that clients fetch with or without a trailing slash.
const SLASH_OK: [&str; 9] = [
    "/identity",
    "/identity/v3",
    "/compute",
    "/compute/v2.1",
    "/image",
    "/image/v2",
    "/network",
    "/network/v2.0",
    "/placement",
];

/// Checks a request path exactly as it arrived (no decoding).
pub fn check_path(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotNormal);
    }
    if path.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f) {
        return Err(PathError::NotNormal);
    }
    let lower = path.to_ascii_lowercase();
    // Encoded '.', '/', '\\' and '%' itself (double encoding).
    for enc in ["%2e", "%2f", "%5c", "%25", "%00"] {
        if lower.contains(enc) {
            return Err(PathError::NotNormal);
        }
    }
    if path == "/" {
        return Ok(());
    }
    let trimmed = match path.strip_suffix('/') {
        Some(t) => {
            if !SLASH_OK.contains(&t) {
                // `//` at the end is not normal either.
                if t.ends_with('/') || t.is_empty() {
                    return Err(PathError::NotNormal);
                }
                check_segments(t)?;
                return Err(PathError::TrailingSlash);
            }
            t
        }
        None => path,
    };
    check_segments(trimmed)
}

fn check_segments(path: &str) -> Result<(), PathError> {
    for seg in path.split('/').skip(1) {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(PathError::NotNormal);
        }
    }
    Ok(())
}

/// Who may read a proxied route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any token scoped to a project (reader and up).
    Member,
    /// Admin only; the name is the policy rule Nova/Neutron would report.
    Admin(&'static str),
    /// Only for the caller's own project: the path names a project ID at
    /// this position (segment index after the service prefix).
    OwnProject { rule: &'static str, segment: usize },
    /// Not served through the agent (the agent does not federate it, or it
    /// is a cloudlet internal): 404.
    Unknown,
}

/// Nova's answer when a policy check fails (403 `forbidden`).
pub fn policy_message(rule: &str) -> String {
    format!("Policy doesn't allow {rule} to be performed.")
}

fn segs(rest: &str) -> Vec<&str> {
    rest.split('/').filter(|s| !s.is_empty()).collect()
}

/// Reads under `/compute/v2.1` (the part after it) that the agent
/// forwards to its cloudlet, or answers itself with the same policy.
pub fn compute_access(rest: &str) -> Access {
    let s = segs(rest);
    match s.as_slice() {
        [] => Access::Member,
        ["flavors"] | ["flavors", "detail"] | ["flavors", _] => Access::Member,
        ["flavors", _, "os-extra_specs"] | ["flavors", _, "os-extra_specs", _] => Access::Member,
        ["os-availability-zone"] | ["extensions"] | ["extensions", _] | ["limits"] => {
            Access::Member
        }
        ["os-availability-zone", "detail"] => {
            Access::Admin("os_compute_api:os-availability-zone:detail")
        }
        ["os-services", ..] => Access::Admin("os_compute_api:os-services:list"),
        ["os-hypervisors", ..] => Access::Admin("os_compute_api:os-hypervisors:list"),
        ["os-aggregates", ..] => Access::Admin("os_compute_api:os-aggregates:index"),
        ["os-migrations", ..] => Access::Admin("os_compute_api:os-migrations:index"),
        ["os-instance-usage-audit-log", ..] => {
            Access::Admin("os_compute_api:os-instance-usage-audit-log")
        }
        ["os-quota-class-sets", ..] => Access::Admin("os_compute_api:os-quota-class-sets:show"),
        ["os-simple-tenant-usage"] => Access::Admin("os_compute_api:os-simple-tenant-usage:list"),
        ["os-simple-tenant-usage", _] => Access::OwnProject {
            rule: "os_compute_api:os-simple-tenant-usage:show",
            segment: 1,
        },
        ["os-quota-sets", _, "defaults"] => Access::Member,
        ["os-quota-sets", _] | ["os-quota-sets", _, "detail"] => Access::OwnProject {
            rule: "os_compute_api:os-quota-sets:show",
            segment: 1,
        },
        // Server sub-resources carry cloudlet-local IDs: not federated.
        _ => Access::Unknown,
    }
}

/// Reads under `/image`.
pub fn image_access(rest: &str) -> Access {
    match segs(rest).as_slice() {
        [] | ["versions"] | ["v2"] => Access::Member,
        ["v2", "images"] | ["v2", "images", _] => Access::Member,
        ["v2", "schemas", _] => Access::Member,
        _ => Access::Unknown,
    }
}

/// Reads under `/network`.
pub fn network_access(rest: &str) -> Access {
    match segs(rest).as_slice() {
        [] | ["v2.0"] | ["v2.0", "extensions"] | ["v2.0", "extensions", _] => Access::Member,
        // Neutron 2025.2 makes quotas ADMIN_OR_PROJECT_MANAGER; earlier
        // defaults let a project's reader see its own (what `openstack
        // quota show` asks): the caller's own project only.
        ["v2.0", "quotas", _] | ["v2.0", "quotas", _, "details" | "default"] => {
            Access::OwnProject {
                rule: "get_quota",
                segment: 2,
            }
        }
        ["v2.0", "quotas", ..] => Access::Admin("get_quota"),
        ["v2.0", "agents", ..] => Access::Admin("get_agent"),
        ["v2.0", "segments", ..] => Access::Admin("get_segment"),
        ["v2.0", c] | ["v2.0", c, _]
            if matches!(
                *c,
                "networks"
                    | "subnets"
                    | "ports"
                    | "routers"
                    | "floatingips"
                    | "security-groups"
                    | "security-group-rules"
                    | "subnetpools"
                    | "availability_zones"
            ) =>
        {
            Access::Member
        }
        _ => Access::Unknown,
    }
}

/// Whether a Neutron/Glance object is visible to a non-admin of the
/// project whose ID on this cloudlet is `own`: owned by it, shared,
/// external or public; objects without an owner are visible.
pub fn visible(obj: &Value, own: &str) -> bool {
    let owner = ["project_id", "tenant_id", "owner"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str));
    let Some(owner) = owner else { return true };
    if owner == own || owner.is_empty() {
        return true;
    }
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("shared") || flag("router:external") {
        return true;
    }
    matches!(
        obj.get("visibility").and_then(Value::as_str),
        Some("public" | "community")
    )
}

/// Attributes only admins see (Neutron strips them on GET).
const ADMIN_ATTRS: [&str; 4] = [
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "binding:profile",
];

fn strip_attrs(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        for k in ADMIN_ATTRS {
            o.remove(k);
        }
        o.retain(|k, _| !k.starts_with("binding:"));
    }
}

/// Trims a Neutron or Glance answer for a non-admin of project `own`:
/// other projects' objects leave lists; a single object that is not
/// visible makes the whole answer a 404 (returns `false`).
pub fn filter_owned(doc: &mut Value, own: &str) -> bool {
    // Glance lists/show: `{"images": [...]}` or the image itself.
    if doc.get("id").is_some() && doc.get("name").is_some() && doc.get("images").is_none() {
        strip_attrs(doc);
        return visible(doc, own);
    }
    let Some(o) = doc.as_object_mut() else {
        return true;
    };
    let mut ok = true;
    for (_, v) in o.iter_mut() {
        match v {
            Value::Array(items) => {
                items.retain(|it| !it.is_object() || visible(it, own));
                items.iter_mut().for_each(strip_attrs);
            }
            Value::Object(_) => {
                strip_attrs(v);
                if !visible(v, own) {
                    ok = false;
                }
            }
            _ => {}
        }
    }
    ok
}

/// Removes the server attributes Nova shows only to admins.
pub fn strip_admin_server_fields(server: &mut Value) {
    if let Some(o) = server.as_object_mut() {
        o.retain(|k, _| !is_admin_server_field(k));
    }
}

/// Whether a top-level server attribute is for admins only
/// (`OS-EXT-SRV-ATTR:*`, `host_status`).
pub fn is_admin_server_field(key: &str) -> bool {
    key.starts_with("OS-EXT-SRV-ATTR:") || key == "host_status"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_paths_only() {
        for ok in [
            "/",
            "/compute/v2.1/servers/detail",
            "/compute/v2.1/",
            "/identity/",
            "/network/v2.0/",
            "/image/v2/images",
            "/compute/v2.1/servers?x=..",
        ] {
            // (the query is not part of the path)
            let p = ok.split('?').next().unwrap_or(ok);
            assert_eq!(check_path(p), Ok(()), "{ok}");
        }
        for bad in [
            "/compute/v2.1//servers/detail",
            "//compute/v2.1/servers",
            "/compute/v2.1/servers/x/../detail",
            "/image/../mock/v1/faults",
            "/network/../placement/resource_providers",
            "/compute/v2.1/./servers",
            "/compute/v2.1/servers/%2e%2e/detail",
            "/compute/v2.1/servers/%2E%2E/detail",
            "/image/%2e%2e%2fmock/v1/faults",
            "/image/..%2fmock",
            "/image/%252e%252e/mock",
            "/image\\..\\mock",
            "/compute/v2.1/servers//",
            "/compute/v2.1/servers/detail\t",
            "compute/v2.1",
        ] {
            assert_eq!(check_path(bad), Err(PathError::NotNormal), "{bad}");
        }
        for slash in [
            "/compute/v2.1/servers/detail/",
            "/compute/v2.1/servers/",
            "/image/v2/images/",
        ] {
            assert_eq!(check_path(slash), Err(PathError::TrailingSlash), "{slash}");
        }
        assert_eq!(
            check_path("/compute/v2.1/servers/../detail/"),
            Err(PathError::NotNormal)
        );
    }

    #[test]
    fn nova_defaults() {
        assert_eq!(compute_access("/flavors/detail"), Access::Member);
        assert_eq!(compute_access("/flavors/1"), Access::Member);
        assert!(matches!(compute_access("/os-services"), Access::Admin(_)));
        assert!(matches!(
            compute_access("/os-hypervisors/statistics"),
            Access::Admin(_)
        ));
        assert!(matches!(compute_access("/os-aggregates"), Access::Admin(_)));
        assert!(matches!(
            compute_access("/os-availability-zone/detail"),
            Access::Admin(_)
        ));
        assert!(matches!(
            compute_access("/os-quota-sets/abc"),
            Access::OwnProject { segment: 1, .. }
        ));
        assert_eq!(
            compute_access("/os-quota-sets/abc/defaults"),
            Access::Member
        );
        assert_eq!(compute_access("/servers/x/metadata"), Access::Unknown);
        assert_eq!(compute_access("/servers"), Access::Unknown);
        assert_eq!(compute_access("/os-keypairs"), Access::Unknown);
        assert_eq!(network_access("/v2.0/ports"), Access::Member);
        assert!(matches!(
            network_access("/v2.0/quotas/x"),
            Access::OwnProject { segment: 2, .. }
        ));
        assert!(matches!(network_access("/v2.0/quotas"), Access::Admin(_)));
        assert_eq!(network_access("/v2.0/whatever"), Access::Unknown);
        assert_eq!(image_access("/v2/images/x"), Access::Member);
        assert_eq!(image_access("/v2/images/x/file"), Access::Unknown);
        assert_eq!(
            policy_message("os_compute_api:os-services:list"),
            "Policy doesn't allow os_compute_api:os-services:list to be performed."
        );
    }

    #[test]
    fn answers_are_trimmed_to_the_callers_project() {
        let mut ports = json!({"ports": [
            {"id": "1", "project_id": "mine", "binding:host_id": "h"},
            {"id": "2", "project_id": "theirs"},
            {"id": "3", "tenant_id": "theirs", "shared": true}
        ]});
        assert!(filter_owned(&mut ports, "mine"));
        let ids: Vec<&str> = ports["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["1", "3"]);
        assert!(ports["ports"][0].get("binding:host_id").is_none());
        let mut net = json!({"network": {"id": "n", "project_id": "theirs",
            "provider:network_type": "vxlan"}});
        assert!(!filter_owned(&mut net, "mine"));
        let mut public = json!({"network": {"id": "n", "project_id": "theirs",
            "router:external": true, "provider:network_type": "flat"}});
        assert!(filter_owned(&mut public, "mine"));
        assert!(public["network"].get("provider:network_type").is_none());
        let mut img = json!({"id": "i", "name": "x", "owner": "theirs", "visibility": "private"});
        assert!(!filter_owned(&mut img, "mine"));
        let mut imgs = json!({"images": [
            {"id": "i", "name": "x", "owner": "theirs", "visibility": "private"},
            {"id": "j", "name": "y", "owner": "theirs", "visibility": "public"}
        ], "first": "/v2/images"});
        assert!(filter_owned(&mut imgs, "mine"));
        assert_eq!(imgs["images"].as_array().unwrap().len(), 1);
        let mut s = json!({"id": "s", "OS-EXT-SRV-ATTR:host": "h", "status": "ACTIVE"});
        strip_admin_server_fields(&mut s);
        assert_eq!(s, json!({"id": "s", "status": "ACTIVE"}));
    }
}
