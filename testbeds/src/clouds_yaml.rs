//! clouds.yaml for a testbed's entry points, in the format the `openstack`
//! CLI and openstacksdk read (`openstack --os-cloud testbed …`).
//!
//! Whoever starts a testbed owns it, so the plain entries (`testbed`,
//! `testbed-<i>`) are the cloud admin's, like DevStack's `devstack-admin`:
//! admin-only routes (hypervisor statistics, services) answer 403 to a
//! member under Nova's default policy. `testbed-demo` and `testbed-<i>-demo`
//! are a tenant's view (the `demo` project), like DevStack's `devstack`.

/// Credentials of one set of entries.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub domain: String,
    pub region: String,
}

impl Credentials {
    /// DevStack's default user `name` in the project of the same name.
    pub fn devstack(name: &str) -> Self {
        Self {
            username: name.into(),
            password: "secret".into(),
            project_name: name.into(),
            domain: "Default".into(),
            region: "RegionOne".into(),
        }
    }
}

/// Entry `testbed` for the first auth URL and `testbed-<i>` (from 1) for
/// each, with `admin`'s credentials; the same names with `-demo` appended
/// carry `tenant`'s.
pub fn render(auth_urls: &[String], admin: &Credentials, tenant: &Credentials) -> String {
    let regions = vec![admin.region.clone(); auth_urls.len()];
    render_regions(auth_urls, &regions, admin, tenant)
}

/// [`render`] with one region per auth URL (the sharded control's cloudlets
/// are independent regions; a client must name the one it talks to).
pub fn render_regions(
    auth_urls: &[String],
    regions: &[String],
    admin: &Credentials,
    tenant: &Credentials,
) -> String {
    let region = |i: usize| -> String {
        regions
            .get(i)
            .cloned()
            .unwrap_or_else(|| admin.region.clone())
    };
    let mut names: Vec<(String, &str, String)> = Vec::with_capacity(auth_urls.len() + 1);
    if let Some(first) = auth_urls.first() {
        names.push(("testbed".to_string(), first, region(0)));
    }
    for (i, url) in auth_urls.iter().enumerate() {
        names.push((format!("testbed-{}", i + 1), url, region(i)));
    }
    let with_region = |c: &Credentials, r: &str| Credentials {
        region: r.to_string(),
        ..c.clone()
    };
    let entries: Vec<(String, &str, Credentials)> = names
        .iter()
        .map(|(name, url, r)| (name.clone(), *url, with_region(admin, r)))
        .chain(
            names
                .iter()
                .map(|(name, url, r)| (format!("{name}-demo"), *url, with_region(tenant, r))),
        )
        .collect();
    let clouds: Vec<os_wire::clouds_yaml::Cloud<'_>> = entries
        .iter()
        .map(|(name, url, creds)| os_wire::clouds_yaml::Cloud {
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
        let text = render(
            &urls,
            &Credentials::devstack("admin"),
            &Credentials::devstack("demo"),
        );
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
        assert_eq!(clouds["testbed-1"]["auth"]["project_name"], "admin");
        assert_eq!(clouds["testbed-1"]["identity_api_version"], 3);
        assert_eq!(
            clouds["testbed-2-demo"]["auth"]["auth_url"],
            "http://127.0.0.1:2/identity"
        );
        assert_eq!(clouds["testbed-demo"]["auth"]["username"], "demo");
        assert_eq!(clouds["testbed-demo"]["auth"]["project_name"], "demo");
    }

    #[test]
    fn every_region_is_listed_with_its_entry() {
        let urls = vec![
            "http://a/identity".to_string(),
            "http://b/identity".to_string(),
        ];
        let regions = vec!["Region1".to_string(), "Region2".to_string()];
        let text = render_regions(
            &urls,
            &regions,
            &Credentials::devstack("admin"),
            &Credentials::devstack("demo"),
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let clouds = &v["clouds"];
        assert_eq!(clouds["testbed"]["region_name"], "Region1");
        assert_eq!(clouds["testbed-2"]["region_name"], "Region2");
        assert_eq!(clouds["testbed-2-demo"]["region_name"], "Region2");
    }
}
