//! Everyday read commands of the real `openstack` CLI through an agent.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_reads_through_an_agent() {
    let Some(bin) = openstack_cli() else {
        return;
    };
    let fed = federation(&[4, 4]).await;
    let auth = fed.agent(2).auth_url();
    for cmd in [
        vec!["flavor", "list"],
        vec!["flavor", "show", "m1.tiny"],
        vec!["image", "list"],
        vec!["image", "show", "cirros-0.6.2-x86_64-disk"],
        vec!["network", "list"],
        vec!["network", "show", "private"],
        vec!["limits", "show", "--absolute"],
        vec!["quota", "show"],
        vec!["server", "list"],
        vec!["token", "issue"],
    ] {
        let (ok, text) = openstack(&bin, &auth, &cmd).await;
        eprintln!("$ openstack {}\n{text}", cmd.join(" "));
        assert!(ok, "openstack {} failed:\n{text}", cmd.join(" "));
    }
    // Admin-only by Nova's default policy: the demo user is refused.
    for cmd in [
        vec!["hypervisor", "stats", "show"],
        vec!["hypervisor", "list"],
    ] {
        let (ok, text) = openstack(&bin, &auth, &cmd).await;
        eprintln!("$ openstack {}\n{text}", cmd.join(" "));
        // (The status itself, 403 with Nova's message, is checked in
        // tests/security.rs; the deprecated `hypervisor stats show` turns
        // it into a client-side error message.)
        assert!(
            !ok,
            "openstack {} succeeded for demo:\n{text}",
            cmd.join(" ")
        );
    }
}
