//! Conformance with the REAL python-openstackclient and openstacksdk (from
//! `.venv`, installed by `scripts/setup-python.sh`). Without the venv the
//! tests say so and pass, unless `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Output;

use mock_openstack::{MockConfig, MockHandle};

/// `<workspace>/.venv/bin/<name>`; `P2PSTACK_VENV` points elsewhere.
fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("P2PSTACK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venv.join("bin").join(name)
}

/// `Some(path)` if the tool is installed; otherwise skip (or fail on CI).
fn tool(name: &str) -> Option<PathBuf> {
    let p = venv_bin(name);
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "{} not found: run scripts/setup-python.sh to install the OpenStack clients",
        p.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: conformance tests must not be skipped)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// The devstack profile (boots in about 0.1 model s) at time scale 1.
fn devstack() -> MockConfig {
    MockConfig {
        listen: "127.0.0.1:0".into(),
        ..MockConfig::default()
    }
}

async fn start_mock(cfg: MockConfig) -> (MockHandle, tempfile::TempDir, PathBuf) {
    let mock = mock_openstack::start(cfg).await.expect("mock starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        mock_openstack::clouds_yaml("devstack", &mock.auth_url(), "RegionOne"),
    )
    .expect("write clouds.yaml");
    (mock, dir, clouds)
}

async fn run(program: &Path, clouds: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("OS_CLIENT_CONFIG_FILE", clouds).args(args);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} timed out"))
        .expect("command runs");
    eprintln!(
        "$ {} {}\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn ok(program: &Path, clouds: &Path, args: &[&str]) -> String {
    let mut full = vec!["--os-cloud", "devstack"];
    full.extend_from_slice(args);
    let out = run(program, clouds, &full).await;
    assert!(out.status.success(), "openstack {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let Some(os) = tool("openstack") else { return };
    let (mock, _dir, clouds) = start_mock(cfg).await;
    let (os, c) = (os.as_path(), clouds.as_path());

    let token = ok(os, c, &["token", "issue", "-f", "value", "-c", "id"]).await;
    assert!(!token.trim().is_empty());
    assert!(ok(os, c, &["flavor", "list"]).await.contains("m1.tiny"));
    assert!(ok(os, c, &["image", "list"])
        .await
        .contains("cirros-0.6.2-x86_64-disk"));
    let nets = ok(os, c, &["network", "list"]).await;
    assert!(nets.contains("private") && nets.contains("public"));

    let status = ok(
        os,
        c,
        &[
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
        ],
    )
    .await;
    assert_eq!(status.trim(), "ACTIVE");
    let list = ok(os, c, &["server", "list"]).await;
    assert!(list.contains("vm1") && list.contains("ACTIVE"), "{list}");
    let show = ok(os, c, &["server", "show", "vm1", "-f", "json"]).await;
    let show: serde_json::Value = serde_json::from_str(&show).expect("server show json");
    assert_eq!(show["status"], "ACTIVE");
    assert_eq!(show["OS-EXT-SRV-ATTR:host"], "devstack-compute-1");
    let stats = ok(os, c, &["hypervisor", "stats", "show", "-f", "json"]).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats json");
    assert_eq!(stats["vcpus_used"], 1);
    assert_eq!(stats["running_vms"], 1);
    assert!(ok(os, c, &["quota", "show"]).await.contains("instances"));
    ok(os, c, &["server", "delete", "--wait", "vm1"]).await;

    let out = run(os, c, &["--os-cloud", "devstack", "server", "show", "vm1"]).await;
    assert!(!out.status.success(), "vm1 still exists after delete");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
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
    let (mock, _dir, clouds) = start_mock(devstack()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_conformance.py");
    let script = script.to_string_lossy();
    let out = run(&python, &clouds, &[&script, "devstack"]).await;
    assert!(out.status.success(), "sdk_conformance.py failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sdk conformance OK"));
    mock.shutdown().await;
}

/// A cells v2 deployment (4 computes in 2 cells) answers the real CLI like
/// the monolith: one endpoint; servers created, listed, shown and deleted
/// across both cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_across_cells() {
    let Some(os) = tool("openstack") else { return };
    let (mock, _dir, clouds) = start_mock(MockConfig {
        computes: 4,
        cells: 2,
        ..devstack()
    })
    .await;
    let (os, c) = (os.as_path(), clouds.as_path());
    let names = ["cvm1", "cvm2", "cvm3", "cvm4"];
    for name in names {
        let status = ok(
            os,
            c,
            &[
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
            ],
        )
        .await;
        assert_eq!(status.trim(), "ACTIVE", "{name}");
    }
    let list = ok(os, c, &["server", "list", "-f", "value", "-c", "Name"]).await;
    for name in names {
        assert!(
            list.lines().any(|l| l.trim() == name),
            "{name} not in {list}"
        );
    }
    let mut cells = std::collections::BTreeSet::new();
    for name in names {
        let show = ok(os, c, &["server", "show", name, "-f", "json"]).await;
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
    let hv = ok(
        os,
        c,
        &[
            "hypervisor",
            "list",
            "-f",
            "value",
            "-c",
            "Hypervisor Hostname",
        ],
    )
    .await;
    assert_eq!(hv.lines().count(), 4, "{hv}");
    for name in names {
        ok(os, c, &["server", "delete", "--wait", name]).await;
    }
    let list = ok(os, c, &["server", "list", "-f", "value", "-c", "Name"]).await;
    assert!(list.trim().is_empty(), "left after delete: {list}");
    mock.shutdown().await;
}

/// `ok` as the demo user (the `devstack-demo` cloud).
async fn ok_demo(program: &Path, clouds: &Path, args: &[&str]) -> String {
    let mut full = vec!["--os-cloud", "devstack-demo"];
    full.extend_from_slice(args);
    let out = run(program, clouds, &full).await;
    assert!(out.status.success(), "openstack {args:?} (demo) failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs as `cloud` and expects a failure; returns stderr.
async fn fails(program: &Path, clouds: &Path, cloud: &str, args: &[&str]) -> String {
    let mut full = vec!["--os-cloud", cloud];
    full.extend_from_slice(args);
    let out = run(program, clouds, &full).await;
    assert!(!out.status.success(), "openstack {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &str) -> serde_json::Value {
    let start = out.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Polls `server show` (as demo) until `status`, as a client waiting for an
/// action does (`openstack server stop/start` have no `--wait`).
async fn wait_status(program: &Path, clouds: &Path, name: &str, status: &str) -> serde_json::Value {
    for _ in 0..120 {
        let s = json_of(&ok_demo(program, clouds, &["server", "show", name, "-f", "json"]).await);
        if s["status"] == status {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("{name} never reached {status}");
}

const BOOT: [&str; 8] = [
    "server",
    "create",
    "--flavor",
    "m1.tiny",
    "--image",
    "cirros-0.6.2-x86_64-disk",
    "--network",
    "private",
];

/// Issue 15 on one mock: server actions with `--wait` (calibrated action
/// times at 1/20 of real time), lock, the 409 of a wrong state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_server_actions() {
    let Some(os) = tool("openstack") else { return };
    let (mock, _dir, clouds) = start_mock(MockConfig {
        profile: "openstack-2017".into(),
        time_scale: 0.05,
        ..devstack()
    })
    .await;
    let (os, c) = (os.as_path(), clouds.as_path());
    let mut args = BOOT.to_vec();
    args.extend(["--wait", "-f", "value", "-c", "status", "act1"]);
    assert_eq!(ok_demo(os, c, &args).await.trim(), "ACTIVE");
    let status = |out: String| json_of(&out)["status"].as_str().unwrap_or("").to_string();
    let show = ["server", "show", "act1", "-f", "json"];

    ok_demo(os, c, &["server", "stop", "act1"]).await;
    let s = wait_status(os, c, "act1", "SHUTOFF").await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "stopped");
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "nova's SHUTDOWN");
    let err = fails(os, c, "devstack-demo", &["server", "stop", "act1"]).await;
    assert!(
        err.contains("Cannot 'stop' instance") && err.contains("while it is in vm_state stopped"),
        "{err}"
    );
    assert!(err.contains("409"), "{err}");

    ok_demo(os, c, &["server", "start", "act1"]).await;
    wait_status(os, c, "act1", "ACTIVE").await;
    ok_demo(os, c, &["server", "reboot", "--wait", "act1"]).await;
    assert_eq!(status(ok_demo(os, c, &show).await), "ACTIVE");
    ok_demo(os, c, &["server", "reboot", "--hard", "--wait", "act1"]).await;
    assert_eq!(status(ok_demo(os, c, &show).await), "ACTIVE");

    ok_demo(os, c, &["server", "pause", "act1"]).await;
    wait_status(os, c, "act1", "PAUSED").await;
    ok_demo(os, c, &["server", "unpause", "act1"]).await;
    wait_status(os, c, "act1", "ACTIVE").await;
    ok_demo(os, c, &["server", "suspend", "act1"]).await;
    wait_status(os, c, "act1", "SUSPENDED").await;
    ok_demo(os, c, &["server", "resume", "act1"]).await;
    wait_status(os, c, "act1", "ACTIVE").await;

    ok_demo(
        os,
        c,
        &[
            "server",
            "rebuild",
            "--image",
            "cirros-0.6.2-x86_64-disk",
            "--wait",
            "act1",
        ],
    )
    .await;
    assert_eq!(status(ok_demo(os, c, &show).await), "ACTIVE");

    // Locked by the admin (by id: the name is demo's): the owner can
    // neither act nor unlock.
    let id = json_of(&ok_demo(os, c, &show).await)["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(os, c, &["server", "lock", &id]).await;
    let err = fails(os, c, "devstack-demo", &["server", "stop", "act1"]).await;
    assert!(err.contains("is locked"), "{err}");
    let err = fails(os, c, "devstack-demo", &["server", "unlock", "act1"]).await;
    assert!(err.contains("unlock_override"), "{err}");
    ok(os, c, &["server", "unlock", &id]).await;
    ok_demo(os, c, &["server", "delete", "--wait", "act1"]).await;
    mock.shutdown().await;
}

/// Keypairs, `--key-name`, multi-create, `--all-projects`, aggregates and
/// `hypervisor show` with the real CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_keypairs_multi_create_admin_lists_and_hypervisors() {
    let Some(os) = tool("openstack") else { return };
    let (mock, dir, clouds) = start_mock(MockConfig {
        computes: 2,
        ..devstack()
    })
    .await;
    let (os, c) = (os.as_path(), clouds.as_path());

    // Keypairs: one the CLI generates, one imported.
    let key = ok_demo(os, c, &["keypair", "create", "k1"]).await;
    assert!(key.contains("PRIVATE KEY"), "{key}");
    let pubkey = dir.path().join("k2.pub");
    std::fs::write(
        &pubkey,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8tTR6vqg6jJQ0UQ5p7x4f2Y8V7mP6L3Q2h1fG9cYzX test@p2pstack\n",
    )
    .expect("write key");
    let pubkey = pubkey.to_string_lossy().into_owned();
    ok_demo(os, c, &["keypair", "create", "--public-key", &pubkey, "k2"]).await;
    let list = ok_demo(os, c, &["keypair", "list", "-f", "value", "-c", "Name"]).await;
    assert_eq!(
        list.split_whitespace().collect::<Vec<_>>(),
        ["k1", "k2"],
        "{list}"
    );
    let k2 = json_of(&ok_demo(os, c, &["keypair", "show", "k2", "-f", "json"]).await);
    assert_eq!(k2["name"], "k2");
    // Keypairs belong to their user: the admin does not see demo's.
    let admin_list = ok(os, c, &["keypair", "list", "-f", "value", "-c", "Name"]).await;
    assert!(admin_list.trim().is_empty(), "{admin_list}");

    let mut args = BOOT.to_vec();
    args.extend(["--key-name", "k1", "--wait", "-f", "json", "keyed"]);
    let s = json_of(&ok_demo(os, c, &args).await);
    assert_eq!(
        (&s["status"], &s["key_name"]),
        (&"ACTIVE".into(), &"k1".into()),
        "{s}"
    );
    let mut args = BOOT.to_vec();
    args.extend(["--key-name", "nokey", "unkeyed"]);
    let err = fails(os, c, "devstack-demo", &args).await;
    assert!(
        err.contains("Invalid key_name provided") && err.contains("400"),
        "{err}"
    );

    // Multi-create: three servers named name-N, all ACTIVE.
    let mut args = BOOT.to_vec();
    args.extend(["--min", "3", "--max", "3", "--wait", "multi"]);
    ok_demo(os, c, &args).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list = ok_demo(
        os,
        c,
        &[
            "server", "list", "--name", "^multi", "-f", "value", "-c", "Name", "-c", "Status",
        ],
    )
    .await;
    let mut lines: Vec<&str> = list.lines().map(str::trim).collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["multi-1 ACTIVE", "multi-2 ACTIVE", "multi-3 ACTIVE"],
        "{list}"
    );
    // Over quota as a whole: min 20 of m1.tiny is refused, nothing created.
    let mut args = BOOT.to_vec();
    args.extend(["--min", "20", "--max", "20", "toomany"]);
    let err = fails(os, c, "devstack-demo", &args).await;
    assert!(err.contains("Quota exceeded for instances"), "{err}");

    // Admin lists: --all-projects sees demo's servers; demo is refused.
    let mut args = BOOT.to_vec();
    args.extend(["--wait", "adminvm"]);
    ok(os, c, &args).await;
    let all = ok(
        os,
        c,
        &[
            "server",
            "list",
            "--all-projects",
            "-f",
            "value",
            "-c",
            "Name",
        ],
    )
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
    let paged = ok(
        os,
        c,
        &[
            "server",
            "list",
            "--all-projects",
            "--limit",
            "2",
            "-f",
            "value",
            "-c",
            "Name",
        ],
    )
    .await;
    assert_eq!(paged.lines().count(), 2, "{paged}");
    let err = fails(
        os,
        c,
        "devstack-demo",
        &["server", "list", "--all-projects"],
    )
    .await;
    assert!(
        err.contains("get_all_tenants") && err.contains("403"),
        "{err}"
    );

    // Aggregates and hypervisor show.
    ok(os, c, &["aggregate", "create", "--zone", "az1", "fast"]).await;
    ok(
        os,
        c,
        &["aggregate", "add", "host", "fast", "devstack-compute-2"],
    )
    .await;
    let agg = json_of(&ok(os, c, &["aggregate", "show", "fast", "-f", "json"]).await);
    assert_eq!(
        agg["hosts"],
        serde_json::json!(["devstack-compute-2"]),
        "{agg}"
    );
    let hv = json_of(
        &ok(
            os,
            c,
            &["hypervisor", "show", "devstack-compute-2", "-f", "json"],
        )
        .await,
    );
    assert_eq!(hv["hypervisor_hostname"], "devstack-compute-2", "{hv}");
    assert_eq!(hv["aggregates"], serde_json::json!(["fast"]), "{hv}");
    let hv1 = json_of(&ok(os, c, &["hypervisor", "show", "1", "-f", "json"]).await);
    assert_eq!(hv1["aggregates"], serde_json::json!([]), "{hv1}");
    let err = fails(os, c, "devstack-demo", &["hypervisor", "show", "1"]).await;
    assert!(err.contains("403") || err.contains("Policy"), "{err}");

    ok_demo(os, c, &["keypair", "delete", "k1", "k2"]).await;
    let list = ok_demo(os, c, &["keypair", "list", "-f", "value"]).await;
    assert!(list.trim().is_empty(), "{list}");
    mock.shutdown().await;
}
