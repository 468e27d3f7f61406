//! The DevStack-like catalog of a fresh deployment: identity, flavors, the
//! cirros image, networks. Ids are fixed so scripts can hard-code them.

pub const DOMAIN_ID: &str = "default";
pub const DOMAIN_NAME: &str = "Default";
pub const PASSWORD: &str = "secret";

pub const ADMIN_PROJECT_ID: &str = "a1d8c3f0e5b94a2f8c7d6e5f4a3b2c10";
pub const DEMO_PROJECT_ID: &str = "d3e0b7c2a9f84e1d9b6c5a4f3e2d1c20";
pub const ADMIN_USER_ID: &str = "0a1b2c3d4e5f4a6b8c9d0e1f2a3b4c50";
pub const DEMO_USER_ID: &str = "5f4e3d2c1b0a49e8a7f6e5d4c3b2a160";
pub const ADMIN_ROLE_ID: &str = "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c61";
pub const MEMBER_ROLE_ID: &str = "7c6b5a4f3e2d4c1b9a0f8e7d6c5b4a72";
pub const READER_ROLE_ID: &str = "3b2a1f0e9d8c4b7a8f6e5d4c3b2a1f83";

pub const IMAGE_ID: &str = "5b1c0a2e-7d3f-4e8a-9b6c-2f1e0d9c8b7a";
pub const IMAGE_NAME: &str = "cirros-0.6.2-x86_64-disk";
pub const PRIVATE_NET_ID: &str = "0b6e8d2a-3c4f-4a5b-8e9d-1c2b3a4f5e60";
pub const PUBLIC_NET_ID: &str = "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f";
pub const PRIVATE_SUBNET_ID: &str = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
pub const PUBLIC_SUBNET_ID: &str = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
/// Creation time of everything seeded (glance/neutron `created_at`).
pub const SEED_TIME: &str = "2026-01-01T00:00:00Z";

#[derive(Debug, Clone)]
pub struct User {
    pub id: &'static str,
    pub name: &'static str,
    /// (project id, role names) assignments.
    pub projects: &'static [(&'static str, &'static [&'static str])],
    /// Role names on the Default domain (domain-scoped tokens).
    pub domain_roles: &'static [&'static str],
}

pub const USERS: &[User] = &[
    User {
        id: ADMIN_USER_ID,
        name: "admin",
        projects: &[
            (ADMIN_PROJECT_ID, &["admin", "member", "reader"]),
            (DEMO_PROJECT_ID, &["admin", "member", "reader"]),
        ],
        domain_roles: &["admin", "member", "reader"],
    },
    User {
        id: DEMO_USER_ID,
        name: "demo",
        projects: &[(DEMO_PROJECT_ID, &["member", "reader"])],
        domain_roles: &[],
    },
];

pub const PROJECTS: &[(&str, &str)] = &[(ADMIN_PROJECT_ID, "admin"), (DEMO_PROJECT_ID, "demo")];

pub fn role_id(name: &str) -> &'static str {
    match name {
        "admin" => ADMIN_ROLE_ID,
        "member" => MEMBER_ROLE_ID,
        _ => READER_ROLE_ID,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub id: &'static str,
    pub name: &'static str,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub vcpus: u64,
}

/// DevStack's nova flavors (ids are strings in the API).
pub const FLAVORS: &[Flavor] = &[
    Flavor {
        id: "1",
        name: "m1.tiny",
        ram_mb: 512,
        disk_gb: 1,
        vcpus: 1,
    },
    Flavor {
        id: "2",
        name: "m1.small",
        ram_mb: 2048,
        disk_gb: 20,
        vcpus: 1,
    },
    Flavor {
        id: "3",
        name: "m1.medium",
        ram_mb: 4096,
        disk_gb: 40,
        vcpus: 2,
    },
    Flavor {
        id: "4",
        name: "m1.large",
        ram_mb: 8192,
        disk_gb: 80,
        vcpus: 4,
    },
];

pub fn flavor(id: &str) -> Option<&'static Flavor> {
    FLAVORS.iter().find(|f| f.id == id)
}

#[derive(Debug, Clone)]
pub struct Network {
    pub id: &'static str,
    pub name: &'static str,
    pub project_id: &'static str,
    pub shared: bool,
    pub external: bool,
    pub subnet_id: &'static str,
    pub subnet_name: &'static str,
    pub cidr: &'static str,
    pub gateway: &'static str,
}

pub const NETWORKS: &[Network] = &[
    Network {
        id: PRIVATE_NET_ID,
        name: "private",
        project_id: DEMO_PROJECT_ID,
        shared: false,
        external: false,
        subnet_id: PRIVATE_SUBNET_ID,
        subnet_name: "private-subnet",
        cidr: "10.0.0.0/16",
        gateway: "10.0.0.1",
    },
    Network {
        id: PUBLIC_NET_ID,
        name: "public",
        project_id: ADMIN_PROJECT_ID,
        shared: false,
        external: true,
        subnet_id: PUBLIC_SUBNET_ID,
        subnet_name: "public-subnet",
        cidr: "172.24.4.0/24",
        gateway: "172.24.4.1",
    },
];

pub fn network(id: &str) -> Option<&'static Network> {
    NETWORKS.iter().find(|n| n.id == id)
}

impl Network {
    /// Whether a project may see and attach to this network.
    pub fn visible_to(&self, project: Option<&str>, admin: bool) -> bool {
        admin || self.shared || self.external || project == Some(self.project_id)
    }
}
