//! The system under test: credentials and the entry points to spread load over.

use os_client::cloudsyaml::{self, EnvFn};
use os_client::Credentials;
use serde::{Deserialize, Serialize};

use crate::config::EntryPolicy;
use crate::LoadgenError;

/// Credentials plus entry auth URLs. Build it in code (the testbed) or from
/// clouds.yaml / `OS_*` / flags ([`Target::resolve`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Username, password, project, domains, region; `auth_url` is the
    /// default entry.
    pub credentials: Credentials,
    /// Auth URLs of the entry points; empty means `credentials.auth_url`.
    pub entries: Vec<String>,
    pub entry_policy: EntryPolicy,
}

impl Target {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            entries: Vec::new(),
            entry_policy: EntryPolicy::RoundRobin,
        }
    }

    /// Password credentials (domain `Default`) used at every entry URL.
    pub fn password(
        entries: Vec<String>,
        username: &str,
        password: &str,
        project: &str,
        policy: EntryPolicy,
    ) -> Self {
        let first = entries.first().cloned().unwrap_or_default();
        Self {
            credentials: Credentials::password(first, username, password, project),
            entries,
            entry_policy: policy,
        }
    }

    /// The entry auth URLs actually used (deduplicated, order kept).
    pub fn entry_urls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let src = if self.entries.is_empty() {
            vec![self.credentials.auth_url.clone()]
        } else {
            self.entries.clone()
        };
        for e in src {
            if !e.is_empty() && !out.contains(&e) {
                out.push(e);
            }
        }
        if self.entry_policy == EntryPolicy::Single {
            out.truncate(1);
        }
        out
    }

    /// Resolves credentials like the OpenStack tools: clouds.yaml cloud
    /// `os_cloud` (or `OS_CLOUD`), overlaid by `OS_*`, overlaid by `flags`.
    pub fn resolve(
        os_cloud: Option<&str>,
        flags: &Credentials,
        entries: Vec<String>,
        policy: EntryPolicy,
        env: EnvFn<'_>,
    ) -> Result<Self, LoadgenError> {
        let mut creds = Credentials::default();
        let cloud = os_cloud.map(str::to_string).or_else(|| env("OS_CLOUD"));
        if let Some(name) = cloud {
            let (c, _) = cloudsyaml::load_cloud(&name, env)
                .map_err(|e| LoadgenError::Config(e.to_string()))?;
            creds = c;
        }
        creds.overlay(&cloudsyaml::from_env(env));
        creds.overlay(flags);
        if creds.auth_url.is_empty() {
            if let Some(first) = entries.first() {
                creds.auth_url = first.clone();
            }
        }
        creds
            .check()
            .map_err(|e| LoadgenError::Config(format!("{e} (or use --os-cloud)")))?;
        Ok(Self {
            credentials: creds,
            entries,
            entry_policy: policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_env_and_entries_dedupe() {
        let env = |k: &str| match k {
            "OS_AUTH_URL" => Some("http://env/identity".to_string()),
            "OS_USERNAME" => Some("envuser".to_string()),
            "OS_PASSWORD" => Some("pw".to_string()),
            _ => None,
        };
        let flags = Credentials {
            username: "flaguser".into(),
            ..Default::default()
        };
        let t = Target::resolve(
            None,
            &flags,
            vec![
                "http://a/identity".into(),
                "http://a/identity".into(),
                "http://b/identity".into(),
            ],
            EntryPolicy::RoundRobin,
            &env,
        )
        .unwrap();
        assert_eq!(t.credentials.username, "flaguser");
        assert_eq!(t.credentials.auth_url, "http://env/identity");
        assert_eq!(t.entry_urls(), ["http://a/identity", "http://b/identity"]);
        let none = |_: &str| None;
        let e = Target::resolve(
            None,
            &Credentials::default(),
            vec![],
            EntryPolicy::Single,
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
