//! Shared fixture: N mocks + N agents on loopback.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::{AgentConfig, AgentHandle};
use bytes::Bytes;
use mock_openstack::{MockConfig, MockHandle};
use os_client::{ReqwestTransport, SharedTransport};
use serde_json::{json, Value};

pub struct Fed {
    pub mocks: Vec<Option<MockHandle>>,
    pub agents: Vec<Option<AgentHandle>>,
    pub transport: SharedTransport,
}

pub const SECRET: &str = "test-cluster-secret";

pub fn agent_config(i: usize, auth_url: String, seed: Option<String>) -> AgentConfig {
    AgentConfig {
        name: format!("cloudlet-{i}"),
        cloudlet_auth_url: auth_url,
        seed_peers: seed.into_iter().collect(),
        cluster_secret: SECRET.into(),
        gossip_interval_ms: 200,
        capacity_interval_ms: 200,
        request_timeout_ms: 5_000,
        boot_poll_ms: 200,
        suspect_ms: 5_000,
        seed: Some(i as u64),
        ..Default::default()
    }
}

/// Starts `n` cloudlets; `vcpus[i]` is the compute capacity of cloudlet i+1.
pub async fn federation(vcpus: &[u32]) -> Fed {
    federation_with(vcpus, |_| {}).await
}

/// Like [`federation`], with a hook to adjust each agent's config.
pub async fn federation_with(vcpus: &[u32], tweak: impl Fn(&mut AgentConfig)) -> Fed {
    federation_full(vcpus, 0.1, tweak).await
}

/// Full control: mock `time_scale` (boot takes 3 s × time_scale) and agent configs.
pub async fn federation_full(
    vcpus: &[u32],
    time_scale: f64,
    tweak: impl Fn(&mut AgentConfig),
) -> Fed {
    federation_profile(vcpus, time_scale, "devstack", tweak).await
}

/// Like [`federation_full`], with the mocks' performance profile.
pub async fn federation_profile(
    vcpus: &[u32],
    time_scale: f64,
    profile: &str,
    tweak: impl Fn(&mut AgentConfig),
) -> Fed {
    let transport: SharedTransport =
        Arc::new(ReqwestTransport::new(Duration::from_secs(10)).unwrap());
    let mut mocks = vec![];
    let mut agents: Vec<Option<AgentHandle>> = vec![];
    let mut seed: Option<String> = None;
    for (i, v) in vcpus.iter().enumerate() {
        let m = mock_openstack::start(MockConfig {
            name: format!("cloudlet-{}", i + 1),
            listen: "127.0.0.1:0".into(),
            computes: 1,
            compute_vcpus: *v,
            cpu_allocation_ratio: 1.0,
            time_scale,
            profile: profile.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut cfg = agent_config(i + 1, m.auth_url(), seed.clone());
        tweak(&mut cfg);
        let a = agent::start(cfg, transport.clone()).await.unwrap();
        if seed.is_none() {
            seed = Some(a.gossip_addr().to_string());
        }
        mocks.push(Some(m));
        agents.push(Some(a));
    }
    let n = vcpus.len();
    let t0 = Instant::now();
    while agents.iter().flatten().any(|a| a.members_alive() < n) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "overlay did not converge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let capacity reports spread.
    tokio::time::sleep(Duration::from_millis(800)).await;
    Fed {
        mocks,
        agents,
        transport,
    }
}

impl Fed {
    pub fn agent(&self, i: usize) -> &AgentHandle {
        self.agents[i - 1].as_ref().unwrap()
    }

    pub async fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, http::HeaderMap, Value) {
        let mut b = http::Request::builder()
            .method(method)
            .uri(url)
            .header("accept", "application/json");
        if let Some(t) = token {
            b = b.header("x-auth-token", t);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(body.map(|v| Bytes::from(v.to_string())).unwrap_or_default())
            .unwrap();
        let r = self.transport.call(req).await.unwrap();
        let v = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
        (r.status().as_u16(), r.headers().clone(), v)
    }

    /// A federation token for demo/demo from agent `i`.
    pub async fn login(&self, i: usize, user: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": user, "domain": {"name": "Default"}}}}});
        let url = format!("{}/v3/auth/tokens", self.agent(i).auth_url());
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap();
        let r = self.transport.call(req).await.unwrap();
        assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
        r.headers()
            .get("x-subject-token")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    pub fn compute(&self, i: usize) -> String {
        format!("{}/compute/v2.1", self.agent(i).base_url())
    }

    /// Boots one m1.tiny through agent `i`; returns (id, owner cloudlet).
    pub async fn boot(&self, i: usize, token: &str, name: &str) -> (String, String) {
        let body = json!({"server": {"name": name, "imageRef": mock_openstack::defaults::IMAGE_ID,
            "flavorRef": "1", "networks": [{"uuid": mock_openstack::defaults::PRIVATE_NET_ID}]}});
        let (s, h, v) = self
            .call(
                "POST",
                &format!("{}/servers", self.compute(i)),
                Some(token),
                Some(body),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let owner = h
            .get("x-p2p-cloudlet")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        (v["server"]["id"].as_str().unwrap().to_string(), owner)
    }

    pub async fn wait_status(&self, i: usize, token: &str, id: &str, want: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, _, v) = self
                .call(
                    "GET",
                    &format!("{}/servers/{id}", self.compute(i)),
                    Some(token),
                    None,
                )
                .await;
            if s == 200 && v["server"]["status"] == want {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{id} never reached {want}: {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills only the mock (cloudlet) `i`; its agent stays up.
    pub fn kill_mock(&mut self, i: usize) {
        if let Some(m) = self.mocks[i - 1].take() {
            m.abort();
        }
    }

    /// Kills agent `i` and its mock.
    pub fn kill(&mut self, i: usize) {
        if let Some(a) = self.agents[i - 1].take() {
            a.abort();
        }
        if let Some(m) = self.mocks[i - 1].take() {
            m.abort();
        }
    }
}

/// The real `openstack` CLI from the workspace's `.venv` (installed by
/// `scripts/setup-python.sh`; `$P2PSTACK_VENV` points elsewhere). `None`,
/// after saying SKIP, when it is missing; under `CI=true` a missing CLI fails.
pub fn openstack_cli() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("P2PSTACK_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    let bin = venv.join("bin").join("openstack");
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!(
        "{} not found: run scripts/setup-python.sh to install the OpenStack clients",
        bin.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true: CLI tests must not be skipped)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Runs the CLI as the demo user against `auth_url`, ignoring any `OS_*`
/// of the caller's environment; (success, stdout then stderr).
pub async fn openstack(bin: &std::path::Path, auth_url: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "--os-auth-url",
            auth_url,
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
            "--os-identity-api-version",
            "3",
            "--os-interface",
            "public",
        ])
        .args(args)
        .output()
        .await
        .expect("run openstack");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
