//! Where the OpenStack tools find credentials: `clouds.yaml` and `OS_*`.
//!
//! Search order of clouds.yaml, as openstacksdk does it: the file named by
//! `OS_CLIENT_CONFIG_FILE`, then `./clouds.yaml`,
//! `~/.config/openstack/clouds.yaml` (`$XDG_CONFIG_HOME` honoured),
//! `/etc/openstack/clouds.yaml`; the first file that exists is used.
//! Precedence when resolving a target: clouds.yaml, then `OS_*` variables,
//! then command-line flags, each overriding the previous one field by field.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Credentials;
use crate::error::ClientError;

/// Reads an environment variable (a closure so tests need not touch the
/// process environment).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`EnvFn`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The clouds.yaml candidates, in search order.
pub fn search_paths(env: EnvFn<'_>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = env("OS_CLIENT_CONFIG_FILE") {
        out.push(PathBuf::from(p));
    }
    out.push(PathBuf::from("clouds.yaml"));
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(c) = config_home {
        out.push(c.join("openstack").join("clouds.yaml"));
    }
    out.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    out
}

#[derive(Debug, Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: std::collections::BTreeMap<String, CloudEntry>,
}

#[derive(Debug, Default, Deserialize)]
struct CloudEntry {
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    interface: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthSection {
    auth_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    #[serde(alias = "tenant_name")]
    tenant_name_: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    domain_name: Option<String>,
}

/// The credentials of cloud `name` in clouds.yaml text `yaml`.
pub fn parse_cloud(yaml: &str, name: &str, source: &str) -> Result<Credentials, ClientError> {
    let file: CloudsFile = serde_yaml::from_str(yaml)
        .map_err(|e| ClientError::Config(format!("{source}: not a valid clouds.yaml: {e}")))?;
    let known: Vec<&str> = file.clouds.keys().map(String::as_str).collect();
    let entry = file.clouds.get(name).ok_or_else(|| {
        ClientError::Config(format!(
            "{source} has no cloud named {name:?} (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let a = &entry.auth;
    Ok(Credentials {
        auth_url: a.auth_url.clone().unwrap_or_default(),
        username: a.username.clone().unwrap_or_default(),
        password: a.password.clone().unwrap_or_default(),
        project_name: a.project_name.clone().or_else(|| a.tenant_name_.clone()),
        project_id: a.project_id.clone(),
        user_domain_name: a.user_domain_name.clone().or_else(|| a.domain_name.clone()),
        user_domain_id: a.user_domain_id.clone(),
        project_domain_name: a
            .project_domain_name
            .clone()
            .or_else(|| a.domain_name.clone()),
        project_domain_id: a.project_domain_id.clone(),
        region_name: entry.region_name.clone(),
        interface: entry.interface.clone(),
    })
}

/// Finds the first clouds.yaml on the search path and reads cloud `name`.
pub fn load_cloud(name: &str, env: EnvFn<'_>) -> Result<(Credentials, PathBuf), ClientError> {
    let paths = search_paths(env);
    for p in &paths {
        if p.is_file() {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ClientError::Config(format!("cannot read {}: {e}", p.display())))?;
            let creds = parse_cloud(&text, name, &p.display().to_string())?;
            return Ok((creds, p.clone()));
        }
    }
    Err(ClientError::Config(format!(
        "--os-cloud {name}: no clouds.yaml found (searched {})",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Credentials from the `OS_*` variables (missing ones empty / `None`).
pub fn from_env(env: EnvFn<'_>) -> Credentials {
    Credentials {
        auth_url: env("OS_AUTH_URL").unwrap_or_default(),
        username: env("OS_USERNAME").unwrap_or_default(),
        password: env("OS_PASSWORD").unwrap_or_default(),
        project_name: env("OS_PROJECT_NAME").or_else(|| env("OS_TENANT_NAME")),
        project_id: env("OS_PROJECT_ID").or_else(|| env("OS_TENANT_ID")),
        user_domain_name: env("OS_USER_DOMAIN_NAME"),
        user_domain_id: env("OS_USER_DOMAIN_ID"),
        project_domain_name: env("OS_PROJECT_DOMAIN_NAME"),
        project_domain_id: env("OS_PROJECT_DOMAIN_ID"),
        region_name: env("OS_REGION_NAME"),
        interface: env("OS_INTERFACE"),
    }
}

impl Credentials {
    /// Overrides every field that `other` sets (non-empty / `Some`).
    pub fn overlay(&mut self, other: &Credentials) {
        fn s(dst: &mut String, src: &str) {
            if !src.is_empty() {
                *dst = src.to_string();
            }
        }
        fn o(dst: &mut Option<String>, src: &Option<String>) {
            if let Some(v) = src {
                if !v.is_empty() {
                    *dst = Some(v.clone());
                }
            }
        }
        s(&mut self.auth_url, &other.auth_url);
        s(&mut self.username, &other.username);
        s(&mut self.password, &other.password);
        o(&mut self.project_name, &other.project_name);
        o(&mut self.project_id, &other.project_id);
        o(&mut self.user_domain_name, &other.user_domain_name);
        o(&mut self.user_domain_id, &other.user_domain_id);
        o(&mut self.project_domain_name, &other.project_domain_name);
        o(&mut self.project_domain_id, &other.project_domain_id);
        o(&mut self.region_name, &other.region_name);
        o(&mut self.interface, &other.interface);
    }

    /// Fails with one line naming what is missing.
    pub fn check(&self) -> Result<(), ClientError> {
        let mut missing = Vec::new();
        if self.auth_url.is_empty() {
            missing.push("auth URL (--auth-url / OS_AUTH_URL)");
        }
        if self.username.is_empty() {
            missing.push("username (--username / OS_USERNAME)");
        }
        if self.password.is_empty() {
            missing.push("password (--password / OS_PASSWORD)");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ClientError::Config(format!(
                "missing {}",
                missing.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn what_os_wire_writes_reads_back() {
        let cloud = os_wire::clouds_yaml::Cloud {
            name: "edge: 1",
            auth_url: "http://127.0.0.1:5/identity",
            username: "demo",
            password: "p#ss: \"x\"",
            project_name: "demo",
            domain: "Default",
            region: "RegionOne",
        };
        let text = os_wire::clouds_yaml::render(&[cloud]);
        let c = parse_cloud(&text, "edge: 1", "test").expect("parses");
        assert_eq!(c.auth_url, cloud.auth_url);
        assert_eq!(c.password, cloud.password);
        assert_eq!(c.project_name.as_deref(), Some("demo"));
        assert_eq!(c.user_domain_name.as_deref(), Some("Default"));
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface.as_deref(), Some("public"));
    }

    const YAML: &str = r#"
clouds:
  devstack:
    auth:
      auth_url: http://10.0.0.1/identity
      username: demo
      password: secret
      project_name: demo
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
"#;

    #[test]
    fn parses_a_cloud_and_names_the_known_ones_on_a_miss() {
        let c = parse_cloud(YAML, "devstack", "t").unwrap();
        assert_eq!(c.auth_url, "http://10.0.0.1/identity");
        assert_eq!(c.project_domain_id.as_deref(), Some("default"));
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        let e = parse_cloud(YAML, "prod", "t").unwrap_err().to_string();
        assert!(e.contains("devstack"), "{e}");
    }

    #[test]
    fn search_path_order_and_env_overlay() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("OS_CLIENT_CONFIG_FILE", "/x/c.yaml"),
            ("HOME", "/home/u"),
            ("OS_USERNAME", "admin"),
            ("OS_REGION_NAME", "R2"),
        ]);
        let f = |k: &str| env.get(k).map(|v| v.to_string());
        let p = search_paths(&f);
        assert_eq!(p[0], PathBuf::from("/x/c.yaml"));
        assert_eq!(p[1], PathBuf::from("clouds.yaml"));
        assert_eq!(p[2], PathBuf::from("/home/u/.config/openstack/clouds.yaml"));
        assert_eq!(p[3], PathBuf::from("/etc/openstack/clouds.yaml"));
        let mut c = parse_cloud(YAML, "devstack", "t").unwrap();
        c.overlay(&from_env(&f));
        assert_eq!(c.username, "admin");
        assert_eq!(c.password, "secret");
        assert_eq!(c.region_name.as_deref(), Some("R2"));
        assert!(c.check().is_ok());
        assert!(Credentials::default().check().is_err());
    }

    #[test]
    fn load_cloud_uses_the_first_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clouds.yaml");
        std::fs::write(&p, YAML).unwrap();
        let ps = p.display().to_string();
        let f = move |k: &str| (k == "OS_CLIENT_CONFIG_FILE").then(|| ps.clone());
        let (c, from) = load_cloud("devstack", &f).unwrap();
        assert_eq!(from, p);
        assert_eq!(c.username, "demo");
    }
}
