//! The real OpenStack command-line tools from the workspace's `.venv`
//! (installed by `scripts/setup-python.sh`; `P2PSTACK_VENV` points
//! elsewhere). Without the venv a test says so and passes, unless
//! `CI=true`, where it fails: conformance tests must not be skipped there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How long one CLI command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// `<workspace>/.venv/bin/<name>`, or `$P2PSTACK_VENV/bin/<name>`.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("P2PSTACK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venv.join("bin").join(name)
}

/// `Some(path)` if the venv has `name`; otherwise prints `SKIPPED: …` and
/// returns `None`, or panics when `CI=true`.
pub fn tool(name: &str) -> Option<PathBuf> {
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

/// What one command printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout then stderr (what a user sees).
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The first JSON document in `out` (some CLI versions print progress
/// before it); panics with the text when there is none.
pub fn json_of(out: &str) -> Value {
    let start = out.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// One tool run with a fixed identity: a cloud of a clouds.yaml, or
/// password options. The caller's `OS_*` variables are never inherited.
#[derive(Debug, Clone)]
pub struct Cli {
    program: PathBuf,
    /// Options put before every command (`--os-cloud X` or `--os-auth-url …`).
    identity: Vec<String>,
    clouds_yaml: Option<PathBuf>,
    /// Keeps the clouds.yaml alive as long as any clone of this runner.
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Cli {
    /// `openstack` as cloud `devstack` (admin/admin) of a clouds.yaml for a
    /// mock's `auth_url` (see [`mock_openstack::clouds_yaml`]); its
    /// `devstack-demo` cloud is [`Cli::as_cloud`]`("devstack-demo")`.
    /// `None` (skipped) without the venv.
    pub fn for_mock(auth_url: &str) -> Option<Cli> {
        let program = tool("openstack")?;
        Some(Self::with_clouds_yaml(
            program,
            &mock_openstack::clouds_yaml("devstack", auth_url, "RegionOne"),
            "devstack",
        ))
    }

    /// `program` as `cloud` of the given clouds.yaml text (written to a
    /// temporary directory that lives as long as the runner).
    pub fn with_clouds_yaml(program: PathBuf, yaml: &str, cloud: &str) -> Cli {
        let dir = tempfile::tempdir().expect("tempdir for clouds.yaml");
        let path = dir.path().join("clouds.yaml");
        std::fs::write(&path, yaml).expect("write clouds.yaml");
        Cli {
            program,
            identity: vec!["--os-cloud".into(), cloud.into()],
            clouds_yaml: Some(path),
            _dir: Some(std::sync::Arc::new(dir)),
        }
    }

    /// `program` as `user` in project `project` (domain `Default`, password
    /// `secret`, region `RegionOne`) at `auth_url`, with password options.
    pub fn with_password(program: PathBuf, auth_url: &str, user: &str, project: &str) -> Cli {
        let identity = [
            ("--os-auth-url", auth_url),
            ("--os-username", user),
            ("--os-password", mock_openstack::defaults::PASSWORD),
            ("--os-project-name", project),
            ("--os-user-domain-name", "Default"),
            ("--os-project-domain-name", "Default"),
            ("--os-region-name", "RegionOne"),
            ("--os-identity-api-version", "3"),
            ("--os-interface", "public"),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect();
        Cli {
            program,
            identity,
            clouds_yaml: None,
            _dir: None,
        }
    }

    /// The same runner as another cloud of the same clouds.yaml.
    pub fn as_cloud(&self, cloud: &str) -> Cli {
        let mut c = self.clone();
        c.identity = vec!["--os-cloud".into(), cloud.into()];
        c
    }

    /// Another program of the venv (e.g. `python`) with the same
    /// environment; it gets no identity options (pass them as arguments).
    pub fn other_program(&self, program: PathBuf) -> Cli {
        let mut c = self.clone();
        c.program = program;
        c.identity.clear();
        c
    }

    /// The clouds.yaml this runner uses, if any.
    pub fn clouds_yaml(&self) -> Option<&Path> {
        self.clouds_yaml.as_deref()
    }

    /// Runs one command (identity options first); prints the command and
    /// its output for the test log. Panics after [`COMMAND_TIMEOUT`].
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        let mut cmd = tokio::process::Command::new(&self.program);
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        if let Some(c) = &self.clouds_yaml {
            cmd.env("OS_CLIENT_CONFIG_FILE", c);
        }
        cmd.args(&self.identity).args(args);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{args:?} timed out"))
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        let out = CliOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ {} {}\n{}",
            self.program.display(),
            args.join(" "),
            out.text()
        );
        out
    }

    /// Runs and expects success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.success, "{args:?} failed:\n{}", out.text());
        out.stdout
    }

    /// Runs with success expected and parses stdout as JSON (pass
    /// `-f json` yourself).
    pub async fn json(&self, args: &[&str]) -> Value {
        json_of(&self.ok(args).await)
    }

    /// Runs and expects a failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.success, "{args:?} succeeded:\n{}", out.text());
        out.stderr
    }

    /// Polls `server show NAME` until its status is `status` (what a client
    /// waiting for an action does; `server stop/start` have no `--wait`).
    /// Panics after `limit`.
    pub async fn wait_for_status(&self, server: &str, status: &str, limit: Duration) -> Value {
        let t0 = tokio::time::Instant::now();
        loop {
            let s = self.json(&["server", "show", server, "-f", "json"]).await;
            if s["status"] == status {
                return s;
            }
            assert!(
                t0.elapsed() < limit,
                "{server} not {status} after {limit:?}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
