//! The compute capacity of a testbed, as deployed and as the system itself
//! reports it, for the results file.
//!
//! "Same compute capacity on both sides" is a claim about what each system
//! offers, so it is read back from each system's own API
//! (`GET /os-hypervisors/statistics` at an entry point: the monolith's
//! nova-api, or an agent, which sums its federation), not only from the
//! configuration both testbeds were started from.

use anyhow::{Context, Result};
use results::{Capacity, ReportedCapacity, Resources};
use serde_json::Value;

use crate::embedded::TestbedSpec;

/// What `spec` deploys: deployments, nodes per deployment and node size.
pub fn deployed(spec: &TestbedSpec, node_source: &str) -> Capacity {
    let (deployments, nodes_per_deployment) = spec.kind.deployments(spec.members);
    let node = Resources {
        vcpus: u64::from(spec.sizing.node.vcpus),
        ram_mb: spec.sizing.node.ram_mb,
        disk_gb: spec.sizing.node.disk_gb,
    };
    let total_nodes = deployments.saturating_mul(nodes_per_deployment);
    let n = u64::from(total_nodes);
    Capacity {
        deployments,
        nodes_per_deployment,
        node,
        node_source: node_source.to_string(),
        total_nodes,
        total: Resources {
            vcpus: node.vcpus.saturating_mul(n),
            ram_mb: node.ram_mb.saturating_mul(n),
            disk_gb: node.disk_gb.saturating_mul(n),
        },
        reported: None,
    }
}

/// Asks the system at `auth_url` (as `admin`) for its hypervisor statistics.
pub async fn reported(
    transport: os_client::SharedTransport,
    auth_url: &str,
) -> Result<ReportedCapacity> {
    let creds = os_client::Credentials::password(auth_url, "admin", "secret", "admin");
    let session = os_client::OpenStackSession::connect(transport, creds)
        .await
        .with_context(|| format!("cannot authenticate as admin at {auth_url}"))?;
    let stats = os_client::compute::hypervisor_statistics(&session)
        .await
        .with_context(|| format!("GET /os-hypervisors/statistics at {auth_url}"))?;
    from_statistics(auth_url, &stats)
}

/// Reads the fields of a `hypervisor_statistics` object.
pub fn from_statistics(entry: &str, stats: &Value) -> Result<ReportedCapacity> {
    let field = |name: &str| -> Result<u64> {
        stats
            .get(name)
            .and_then(Value::as_u64)
            .with_context(|| format!("hypervisor statistics from {entry}: no {name}"))
    };
    Ok(ReportedCapacity {
        entry: entry.to_string(),
        hypervisors: field("count")?,
        vcpus: field("vcpus")?,
        memory_mb: field("memory_mb")?,
        local_gb: field("local_gb")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Kind;
    use crate::topology::{for_profile, M1_TINY};

    fn spec(kind: Kind, members: u32) -> TestbedSpec {
        TestbedSpec {
            kind,
            members,
            cells: None,
            sizing: for_profile(members, "openstack-2017", M1_TINY).expect("builtin"),
            profile: "openstack-2017".into(),
            time_scale: 1.0,
            seed: 1,
            retries: 0,
            cluster_secret: "x".into(),
            gossip_interval_ms: None,
            overlay: Default::default(),
        }
    }

    #[test]
    fn both_shapes_total_the_same() {
        let s = deployed(&spec(Kind::Standard, 8), "test");
        let p = deployed(&spec(Kind::P2p, 8), "test");
        assert_eq!((s.deployments, s.nodes_per_deployment), (1, 8));
        assert_eq!((p.deployments, p.nodes_per_deployment), (8, 1));
        assert_eq!(s.total, p.total);
        assert_eq!(s.total.vcpus, 8 * s.node.vcpus);
    }

    #[test]
    fn statistics_fields_are_required() {
        let v = serde_json::json!({"count": 4, "vcpus": 32, "memory_mb": 65536, "local_gb": 640});
        let r = from_statistics("http://x/identity", &v).unwrap();
        assert_eq!(
            (r.hypervisors, r.vcpus, r.memory_mb, r.local_gb),
            (4, 32, 65536, 640)
        );
        assert!(from_statistics("e", &serde_json::json!({"count": 4})).is_err());
    }
}
