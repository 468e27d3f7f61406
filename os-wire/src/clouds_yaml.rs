//! Writing clouds.yaml, the file the `openstack` CLI and openstacksdk read
//! (`openstack --os-cloud NAME …`). os-client reads it back.

/// One cloud entry: Keystone v3 password auth against `auth_url`, user and
/// project in the same `domain`.
#[derive(Debug, Clone, Copy)]
pub struct Cloud<'a> {
    pub name: &'a str,
    pub auth_url: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub project_name: &'a str,
    pub domain: &'a str,
    pub region: &'a str,
}

/// The clouds.yaml text holding `clouds`, in the given order. Every value
/// is a double-quoted string (JSON strings are YAML), so no name, password
/// or URL can break the document.
pub fn render(clouds: &[Cloud<'_>]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::from("clouds:\n");
    for c in clouds {
        out.push_str(&format!(
            "  {}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: {}\n      project_domain_name: {}\n    region_name: {}\n    identity_api_version: 3\n    interface: public\n",
            q(c.name),
            q(c.auth_url),
            q(c.username),
            q(c.password),
            q(c.project_name),
            q(c.domain),
            q(c.domain),
            q(c.region)
        ));
    }
    out
}
