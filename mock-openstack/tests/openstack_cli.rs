//! Conformance with the REAL python-openstackclient and openstacksdk (from
//! `.venv`, installed by `scripts/setup-python.sh`). Without the venv the
//! tests say so and pass, unless `CI=true`, where they fail.

use std::path::Path;
use std::time::Duration;

use mock_openstack::{MockConfig, MockHandle};
use test_support::fixtures::CLI_BOOT;
use test_support::openstack_cli::{tool, Cli};

/// The devstack profile (boots in about 0.1 model s) at time scale 1.
fn devstack() -> MockConfig {
    MockConfig {
        listen: "127.0.0.1:0".into(),
        ..MockConfig::default()
    }
}

/// A mock and the CLI as its admin (cloud `devstack`); `None` without the
/// venv (the test is skipped).
async fn start_mock(cfg: MockConfig) -> Option<(MockHandle, Cli)> {
    let mock = mock_openstack::start(cfg).await.expect("mock starts");
    let cli = Cli::for_mock(&mock.auth_url())?;
    Some((mock, cli))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_boot_workflow() {
    cli_workflow(devstack()).await;
}

/// The calibrated profile (a boot takes about 8 model seconds, every API
/// call queues at the 4-worker API stage) at 1/20 of real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_boot_workflow_openstack_2017() {
    cli_workflow(MockConfig {
        profile: "openstack-2017".into(),
        time_scale: 0.05,
        ..devstack()
    })
    .await;
}

async fn cli_workflow(cfg: MockConfig) {
    let Some((mock, cli)) = start_mock(cfg).await else {
        return;
    };

    let token = cli.ok(&["token", "issue", "-f", "value", "-c", "id"]).await;
    assert!(!token.trim().is_empty());
    assert!(cli.ok(&["flavor", "list"]).await.contains("m1.tiny"));
    assert!(cli
        .ok(&["image", "list"])
        .await
        .contains("cirros-0.6.2-x86_64-disk"));
    let nets = cli.ok(&["network", "list"]).await;
    assert!(nets.contains("private") && nets.contains("public"));

    let status = cli
        .ok(&[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "cirros-0.6.2-x86_64-disk",
            "--network",
            "private",
            "--wait",
            "-f",
            "value",
            "-c",
            "status",
            "vm1",
        ])
        .await;
    assert_eq!(status.trim(), "ACTIVE");
    let list = cli.ok(&["server", "list"]).await;
    assert!(list.contains("vm1") && list.contains("ACTIVE"), "{list}");
    let show = cli.ok(&["server", "show", "vm1", "-f", "json"]).await;
    let show: serde_json::Value = serde_json::from_str(&show).expect("server show json");
    assert_eq!(show["status"], "ACTIVE");
    assert_eq!(show["OS-EXT-SRV-ATTR:host"], "devstack-compute-1");
    let stats = cli.ok(&["hypervisor", "stats", "show", "-f", "json"]).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats json");
    assert_eq!(stats["vcpus_used"], 1);
    assert_eq!(stats["running_vms"], 1);
    assert!(cli.ok(&["quota", "show"]).await.contains("instances"));
    cli.ok(&["server", "delete", "--wait", "vm1"]).await;

    let err = cli.fails(&["server", "show", "vm1"]).await.to_lowercase();
    assert!(
        err.contains("no server")
            || err.contains("not found")
            || err.contains("could not be found"),
        "unexpected error: {err}"
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstacksdk_boot_workflow() {
    let Some(python) = tool("python") else { return };
    let Some((mock, cli)) = start_mock(devstack()).await else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_conformance.py");
    let script = script.to_string_lossy();
    let out = cli.other_program(python).run(&[&script, "devstack"]).await;
    assert!(out.success, "sdk_conformance.py failed");
    assert!(out.stdout.contains("sdk conformance OK"));
    mock.shutdown().await;
}

/// A cells v2 deployment (4 computes in 2 cells) answers the real CLI like
/// the monolith: one endpoint; servers created, listed, shown and deleted
/// across both cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_across_cells() {
    let Some((mock, cli)) = start_mock(MockConfig {
        computes: 4,
        cells: 2,
        ..devstack()
    })
    .await
    else {
        return;
    };
    let names = ["cvm1", "cvm2", "cvm3", "cvm4"];
    for name in names {
        let status = cli
            .ok(&[
                "server",
                "create",
                "--flavor",
                "m1.tiny",
                "--image",
                "cirros-0.6.2-x86_64-disk",
                "--network",
                "private",
                "--wait",
                "-f",
                "value",
                "-c",
                "status",
                name,
            ])
            .await;
        assert_eq!(status.trim(), "ACTIVE", "{name}");
    }
    let list = cli
        .ok(&["server", "list", "-f", "value", "-c", "Name"])
        .await;
    for name in names {
        assert!(
            list.lines().any(|l| l.trim() == name),
            "{name} not in {list}"
        );
    }
    let mut cells = std::collections::BTreeSet::new();
    for name in names {
        let show = cli.ok(&["server", "show", name, "-f", "json"]).await;
        let show: serde_json::Value = serde_json::from_str(&show).expect("server show json");
        assert_eq!(show["status"], "ACTIVE");
        let host = show["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default();
        let cell = host
            .strip_prefix("devstack-")
            .and_then(|h| h.split('-').next())
            .unwrap_or_default()
            .to_string();
        assert!(cell == "cell1" || cell == "cell2", "host {host}");
        cells.insert(cell);
    }
    // The spreading weigher puts the four boots on the four nodes: both cells.
    assert_eq!(cells.len(), 2, "{cells:?}");
    let hv = cli
        .ok(&[
            "hypervisor",
            "list",
            "-f",
            "value",
            "-c",
            "Hypervisor Hostname",
        ])
        .await;
    assert_eq!(hv.lines().count(), 4, "{hv}");
    for name in names {
        cli.ok(&["server", "delete", "--wait", name]).await;
    }
    let list = cli
        .ok(&["server", "list", "-f", "value", "-c", "Name"])
        .await;
    assert!(list.trim().is_empty(), "left after delete: {list}");
    mock.shutdown().await;
}

/// How long a test waits for an action's end (calibrated times at 1/20).
const WAIT: Duration = Duration::from_secs(60);

/// Issue 15 on one mock: server actions with `--wait` (calibrated action
/// times at 1/20 of real time), lock, the 409 of a wrong state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_server_actions() {
    let Some((mock, cli)) = start_mock(MockConfig {
        profile: "openstack-2017".into(),
        time_scale: 0.05,
        ..devstack()
    })
    .await
    else {
        return;
    };
    let demo = cli.as_cloud("devstack-demo");
    let mut args = CLI_BOOT.to_vec();
    args.extend(["--wait", "-f", "value", "-c", "status", "act1"]);
    assert_eq!(demo.ok(&args).await.trim(), "ACTIVE");
    let status = |s: serde_json::Value| s["status"].as_str().unwrap_or("").to_string();
    let show = ["server", "show", "act1", "-f", "json"];

    demo.ok(&["server", "stop", "act1"]).await;
    let s = demo.wait_for_status("act1", "SHUTOFF", WAIT).await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "stopped");
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "nova's SHUTDOWN");
    let err = demo.fails(&["server", "stop", "act1"]).await;
    assert!(
        err.contains("Cannot 'stop' instance") && err.contains("while it is in vm_state stopped"),
        "{err}"
    );
    assert!(err.contains("409"), "{err}");

    demo.ok(&["server", "start", "act1"]).await;
    demo.wait_for_status("act1", "ACTIVE", WAIT).await;
    demo.ok(&["server", "reboot", "--wait", "act1"]).await;
    assert_eq!(status(demo.json(&show).await), "ACTIVE");
    demo.ok(&["server", "reboot", "--hard", "--wait", "act1"])
        .await;
    assert_eq!(status(demo.json(&show).await), "ACTIVE");

    demo.ok(&["server", "pause", "act1"]).await;
    demo.wait_for_status("act1", "PAUSED", WAIT).await;
    demo.ok(&["server", "unpause", "act1"]).await;
    demo.wait_for_status("act1", "ACTIVE", WAIT).await;
    demo.ok(&["server", "suspend", "act1"]).await;
    demo.wait_for_status("act1", "SUSPENDED", WAIT).await;
    demo.ok(&["server", "resume", "act1"]).await;
    demo.wait_for_status("act1", "ACTIVE", WAIT).await;

    demo.ok(&[
        "server",
        "rebuild",
        "--image",
        "cirros-0.6.2-x86_64-disk",
        "--wait",
        "act1",
    ])
    .await;
    assert_eq!(status(demo.json(&show).await), "ACTIVE");

    // Locked by the admin (by id: the name is demo's): the owner can
    // neither act nor unlock.
    let id = demo.json(&show).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    cli.ok(&["server", "lock", &id]).await;
    let err = demo.fails(&["server", "stop", "act1"]).await;
    assert!(err.contains("is locked"), "{err}");
    let err = demo.fails(&["server", "unlock", "act1"]).await;
    assert!(err.contains("unlock_override"), "{err}");
    cli.ok(&["server", "unlock", &id]).await;
    demo.ok(&["server", "delete", "--wait", "act1"]).await;
    mock.shutdown().await;
}

/// Keypairs, `--key-name`, multi-create, `--all-projects`, aggregates and
/// `hypervisor show` with the real CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_keypairs_multi_create_admin_lists_and_hypervisors() {
    let Some((mock, cli)) = start_mock(MockConfig {
        computes: 2,
        ..devstack()
    })
    .await
    else {
        return;
    };
    let demo = cli.as_cloud("devstack-demo");
    let dir = tempfile::tempdir().expect("tempdir");

    // Keypairs: one the CLI generates, one imported.
    let key = demo.ok(&["keypair", "create", "k1"]).await;
    assert!(key.contains("PRIVATE KEY"), "{key}");
    let pubkey = dir.path().join("k2.pub");
    std::fs::write(
        &pubkey,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@p2pstack\n",
    )
    .expect("write key");
    let pubkey = pubkey.to_string_lossy().into_owned();
    demo.ok(&["keypair", "create", "--public-key", &pubkey, "k2"])
        .await;
    let list = demo
        .ok(&["keypair", "list", "-f", "value", "-c", "Name"])
        .await;
    assert_eq!(
        list.split_whitespace().collect::<Vec<_>>(),
        ["k1", "k2"],
        "{list}"
    );
    let k2 = demo.json(&["keypair", "show", "k2", "-f", "json"]).await;
    assert_eq!(k2["name"], "k2");
    // Keypairs belong to their user: the admin does not see demo's.
    let admin_list = cli
        .ok(&["keypair", "list", "-f", "value", "-c", "Name"])
        .await;
    assert!(admin_list.trim().is_empty(), "{admin_list}");

    let mut args = CLI_BOOT.to_vec();
    args.extend(["--key-name", "k1", "--wait", "-f", "json", "keyed"]);
    let s = demo.json(&args).await;
    assert_eq!(
        (&s["status"], &s["key_name"]),
        (&"ACTIVE".into(), &"k1".into()),
        "{s}"
    );
    let mut args = CLI_BOOT.to_vec();
    args.extend(["--key-name", "nokey", "unkeyed"]);
    let err = demo.fails(&args).await;
    assert!(
        err.contains("Invalid key_name provided") && err.contains("400"),
        "{err}"
    );

    // Multi-create: three servers named name-N, all ACTIVE.
    let mut args = CLI_BOOT.to_vec();
    args.extend(["--min", "3", "--max", "3", "--wait", "multi"]);
    demo.ok(&args).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list = demo
        .ok(&[
            "server", "list", "--name", "^multi", "-f", "value", "-c", "Name", "-c", "Status",
        ])
        .await;
    let mut lines: Vec<&str> = list.lines().map(str::trim).collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["multi-1 ACTIVE", "multi-2 ACTIVE", "multi-3 ACTIVE"],
        "{list}"
    );
    // Over quota as a whole: min 20 of m1.tiny is refused, nothing created.
    let mut args = CLI_BOOT.to_vec();
    args.extend(["--min", "20", "--max", "20", "toomany"]);
    let err = demo.fails(&args).await;
    assert!(err.contains("Quota exceeded for instances"), "{err}");

    // Admin lists: --all-projects sees demo's servers; demo is refused.
    let mut args = CLI_BOOT.to_vec();
    args.extend(["--wait", "adminvm"]);
    cli.ok(&args).await;
    let all = cli
        .ok(&[
            "server",
            "list",
            "--all-projects",
            "-f",
            "value",
            "-c",
            "Name",
        ])
        .await;
    let mut names: Vec<&str> = all.split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["adminvm", "keyed", "multi-1", "multi-2", "multi-3"],
        "{all}"
    );
    // Paging through every project with a small page (the CLI follows the
    // marker until an empty page).
    let paged = cli
        .ok(&[
            "server",
            "list",
            "--all-projects",
            "--limit",
            "2",
            "-f",
            "value",
            "-c",
            "Name",
        ])
        .await;
    assert_eq!(paged.lines().count(), 2, "{paged}");
    let err = demo.fails(&["server", "list", "--all-projects"]).await;
    assert!(
        err.contains("get_all_tenants") && err.contains("403"),
        "{err}"
    );

    // Aggregates and hypervisor show.
    cli.ok(&["aggregate", "create", "--zone", "az1", "fast"])
        .await;
    cli.ok(&["aggregate", "add", "host", "fast", "devstack-compute-2"])
        .await;
    let agg = cli.json(&["aggregate", "show", "fast", "-f", "json"]).await;
    assert_eq!(
        agg["hosts"],
        serde_json::json!(["devstack-compute-2"]),
        "{agg}"
    );
    let hv = cli
        .json(&["hypervisor", "show", "devstack-compute-2", "-f", "json"])
        .await;
    assert_eq!(hv["hypervisor_hostname"], "devstack-compute-2", "{hv}");
    assert_eq!(hv["aggregates"], serde_json::json!(["fast"]), "{hv}");
    let hv1 = cli.json(&["hypervisor", "show", "1", "-f", "json"]).await;
    assert_eq!(hv1["aggregates"], serde_json::json!([]), "{hv1}");
    let err = demo.fails(&["hypervisor", "show", "1"]).await;
    assert!(err.contains("403") || err.contains("Policy"), "{err}");

    demo.ok(&["keypair", "delete", "k1", "k2"]).await;
    let list = demo.ok(&["keypair", "list", "-f", "value"]).await;
    assert!(list.trim().is_empty(), "{list}");
    mock.shutdown().await;
}
