//! The `loadgen` binary: exit codes, one-line failures, results files, Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mock_openstack::MockConfig;

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

fn mock_cfg(boot_delay_s: f64) -> MockConfig {
    MockConfig {
        listen: "127.0.0.1:0".into(),
        computes: 2,
        quota_instances: 1000,
        quota_cores: 1000,
        quota_ram_mb: 1_000_000,
        time_scale: 0.01,
        boot_delay_s,
        delete_delay_s: 1.0,
        ..Default::default()
    }
}

#[test]
fn unreachable_target_fails_fast_with_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let t0 = Instant::now();
    let o = Command::new(BIN)
        .args([
            "boot-burst",
            "--auth-url",
            "http://127.0.0.1:1/identity",
            "--username",
            "demo",
            "--password",
            "secret",
            "--project-name",
            "demo",
            "--levels",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .env_remove("OS_CLOUD")
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_network_exit_nonzero() {
    let mock = mock_openstack::start(mock_cfg(3.0)).await.unwrap();
    for (pw, net, expect) in [
        ("nope", "private", "wrong credentials"),
        ("secret", "nonet", "no network named"),
    ] {
        let o = tokio::process::Command::new(BIN)
            .args([
                "boot-burst",
                "--auth-url",
                &mock.auth_url(),
                "--username",
                "demo",
                "--password",
                pw,
                "--project-name",
                "demo",
                "--network",
                net,
                "--levels",
                "1",
                "--quiet",
            ])
            .output()
            .await
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_writes_a_results_file_and_a_table() {
    let mock = mock_openstack::start(mock_cfg(3.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = tokio::process::Command::new(BIN)
        .args([
            "boot-burst",
            "--entry",
            &mock.auth_url(),
            "--username",
            "admin",
            "--password",
            "secret",
            "--project-name",
            "admin",
            "--levels",
            "3,5",
            "--poll-interval",
            "0.5",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("makespan"), "{stdout}");
    let r = results::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert!(r.complete);
    assert_eq!(
        r.levels.iter().map(|l| l.succeeded).collect::<Vec<_>>(),
        [3, 5]
    );
    assert_eq!(r.time_scale_source, "target");
    assert!(r.command_line.iter().any(|a| a == "boot-burst"));
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cleans_up_and_writes_an_incomplete_file() {
    // Spawns take ~400 model s = 4 wall s: the run is interrupted mid-level.
    // On the cp-model engine a delete waits for the running spawn (nova's
    // per-instance lock), so the deletes need more than the default 120 s.
    let mock = mock_openstack::start(mock_cfg(400.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let child = tokio::process::Command::new(BIN)
        .args([
            "boot-burst",
            "--auth-url",
            &mock.auth_url(),
            "--username",
            "admin",
            "--password",
            "secret",
            "--project-name",
            "admin",
            "--levels",
            "4,8",
            "--delete-timeout",
            "1000",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("loadgen did not stop after Ctrl-C")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = results::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert!(!r.complete);
    assert_eq!(r.levels.len(), 1);
    assert!(r.levels[0].audit.clean, "{:?}", r.levels[0].audit);
    assert_eq!(r.levels[0].delete_time.count, 4);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_cloud_reads_clouds_yaml_from_os_client_config_file() {
    let mock = mock_openstack::start(mock_cfg(3.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("clouds.yaml");
    std::fs::write(
        &yaml,
        mock_openstack::clouds_yaml("lgtest", &mock.auth_url(), "RegionOne"),
    )
    .unwrap();
    let o = tokio::process::Command::new(BIN)
        .args([
            "boot-burst",
            "--os-cloud",
            "lgtest-demo",
            "--levels",
            "2",
            "--poll-interval",
            "0.5",
            "--quiet",
        ])
        .env("OS_CLIENT_CONFIG_FILE", &yaml)
        .env_remove("OS_AUTH_URL")
        .env_remove("OS_PASSWORD")
        .env_remove("OS_USERNAME")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("clean"), "{stdout}");
    let o = tokio::process::Command::new(BIN)
        .args([
            "boot-burst",
            "--os-cloud",
            "nosuch",
            "--levels",
            "2",
            "--quiet",
        ])
        .env("OS_CLIENT_CONFIG_FILE", &yaml)
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lgtest-demo"));
    mock.shutdown().await;
}
