//! clouds.yaml for a testbed's entry points, in the format the `openstack`
//! CLI and openstacksdk read (`openstack --os-cloud testbed …`).

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
    let mut names: Vec<(String, &str)> = Vec::with_capacity(auth_urls.len() + 1);
    if let Some(first) = auth_urls.first() {
        names.push(("testbed".to_string(), first));
    }
    for (i, url) in auth_urls.iter().enumerate() {
        names.push((format!("testbed-{}", i + 1), url));
    }
    let clouds: Vec<os_wire::clouds_yaml::Cloud<'_>> = names
        .iter()
        .map(|(name, url)| os_wire::clouds_yaml::Cloud {
            name,
            auth_url: url,
            username: &creds.username,
            password: &creds.password,
            project_name: &creds.project_name,
            domain: &creds.domain,
            region: &creds.region,
        })
        .collect();
    os_wire::clouds_yaml::render(&clouds)
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
