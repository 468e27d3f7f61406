//! Request bodies with the mock's DevStack defaults (cirros, m1.tiny, the
//! `private` network), so tests do not spell the ids out.

use mock_openstack::defaults::{IMAGE_ID, PRIVATE_NET_ID};
use serde_json::{json, Value};

/// `POST /servers` body for one m1.tiny cirros server on `private`.
pub fn boot_body(name: &str) -> Value {
    json!({"server": {"name": name, "flavorRef": "1", "imageRef": IMAGE_ID,
        "networks": [{"uuid": PRIVATE_NET_ID}]}})
}

/// [`boot_body`] with more fields of the `server` object set (`min_count`,
/// `key_name`, …); `extra` must be a JSON object.
pub fn boot_body_with(name: &str, extra: Value) -> Value {
    let mut b = boot_body(name);
    if let (Some(s), Some(e)) = (b["server"].as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    b
}

/// The openstack CLI arguments of the same boot (`server create …`); add
/// `--wait`, output options and the name.
pub const CLI_BOOT: [&str; 8] = [
    "server",
    "create",
    "--flavor",
    "m1.tiny",
    "--image",
    "cirros-0.6.2-x86_64-disk",
    "--network",
    "private",
];

/// [`CLI_BOOT`] followed by `extra` (`--wait`, `--key-name k`, the name…).
pub fn cli_boot<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    CLI_BOOT
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_merge_into_the_server_object() {
        let b = boot_body_with("x", json!({"min_count": 2}));
        assert_eq!(b["server"]["min_count"], 2);
        assert_eq!(b["server"]["imageRef"], IMAGE_ID);
        assert_eq!(b["server"]["name"], "x");
    }
}
