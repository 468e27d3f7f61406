//! Everyday read commands of the real `openstack` CLI through an agent.

use test_support::federation::*;
use test_support::openstack_cli::{tool, Cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_reads_through_an_agent() {
    let Some(bin) = tool("openstack") else {
        return;
    };
    let fed = federation(&[4, 4]).await;
    let cli = Cli::with_password(bin, &fed.agent(2).auth_url(), "demo", "demo");
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
        cli.ok(&cmd).await;
    }
    // Admin-only by Nova's default policy: the demo user is refused.
    // (The status itself, 403 with Nova's message, is checked in
    // tests/security.rs; the deprecated `hypervisor stats show` turns it
    // into a client-side error message.)
    for cmd in [
        vec!["hypervisor", "stats", "show"],
        vec!["hypervisor", "list"],
    ] {
        cli.fails(&cmd).await;
    }
}
