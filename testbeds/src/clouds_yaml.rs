//! clouds.yaml for a testbed's entry points, in the format the `openstack`
//! CLI and openstacksdk read (`openstack --os-cloud testbed …`).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Serialize)]
struct CloudsFile {
    clouds: BTreeMap<String, Cloud>,
}

#[derive(Debug, Serialize)]
struct Cloud {
    auth: Auth,
    region_name: String,
    identity_api_version: u32,
    interface: &'static str,
}

#[derive(Debug, Serialize)]
struct Auth {
    auth_url: String,
    username: String,
    password: String,
    project_name: String,
    user_domain_name: String,
    project_domain_name: String,
}

/// Credentials written into every entry.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub domain: String,
    pub region: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            username: "demo".into(),
            password: "secret".into(),
            project_name: "demo".into(),
            domain: "Default".into(),
            region: "RegionOne".into(),
        }
    }
}

/// Entry `testbed` for the first auth URL and `testbed-<i>` (from 1) for each.
pub fn render(auth_urls: &[String], creds: &Credentials) -> String {
    let mut clouds = BTreeMap::new();
    let entry = |url: &str| Cloud {
        auth: Auth {
            auth_url: url.to_string(),
            username: creds.username.clone(),
            password: creds.password.clone(),
            project_name: creds.project_name.clone(),
            user_domain_name: creds.domain.clone(),
            project_domain_name: creds.domain.clone(),
        },
        region_name: creds.region.clone(),
        identity_api_version: 3,
        interface: "public",
    };
    if let Some(first) = auth_urls.first() {
        clouds.insert("testbed".to_string(), entry(first));
    }
    for (i, url) in auth_urls.iter().enumerate() {
        clouds.insert(format!("testbed-{}", i + 1), entry(url));
    }
    serde_yaml::to_string(&CloudsFile { clouds }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_url_plus_the_first_as_testbed() {
        let urls = vec![
            "http://127.0.0.1:1/identity".to_string(),
            "http://127.0.0.1:2/identity".to_string(),
        ];
        let text = render(&urls, &Credentials::default());
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let clouds = &v["clouds"];
        assert_eq!(
            clouds["testbed"]["auth"]["auth_url"],
            "http://127.0.0.1:1/identity"
        );
        assert_eq!(
            clouds["testbed-2"]["auth"]["auth_url"],
            "http://127.0.0.1:2/identity"
        );
        assert_eq!(clouds["testbed-1"]["auth"]["project_name"], "demo");
        assert_eq!(clouds["testbed-1"]["identity_api_version"], 3);
    }
}
