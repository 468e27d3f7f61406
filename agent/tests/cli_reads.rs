//! Everyday read commands of the real `openstack` CLI through an agent.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_reads_through_an_agent() {
    let bin = ["../.venv/bin/openstack", "/work/main/.venv/bin/openstack"]
        .iter()
        .map(|p| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p))
        .find(|p| p.exists());
    let Some(bin) = bin else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("openstack CLI missing: run scripts/setup-python.sh");
        }
        eprintln!("SKIP: no openstack CLI (.venv/bin/openstack); run scripts/setup-python.sh");
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
        vec!["hypervisor", "stats", "show"],
        vec!["hypervisor", "list"],
        vec!["server", "list"],
        vec!["token", "issue"],
    ] {
        let out = tokio::process::Command::new(&bin)
            .args([
                "--os-auth-url",
                &auth,
                "--os-username",
                "demo",
                "--os-password",
                "secret",
                "--os-project-name",
                "demo",
                "--os-user-domain-name",
                "Default",
                "--os-project-domain-name",
                "Default",
                "--os-region-name",
                "RegionOne",
            ])
            .args(&cmd)
            .output()
            .await
            .expect("run openstack");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ openstack {}\n{text}", cmd.join(" "));
        assert!(
            out.status.success(),
            "openstack {} failed:\n{text}",
            cmd.join(" ")
        );
    }
}
