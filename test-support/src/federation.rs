//! The federation fixture of the agent's tests: N mocks with one agent
//! each on loopback, joined into one overlay, and the calls the tests make
//! against it (logins, boots, lists, the mocks' fault injection and an
//! audit of what each cloudlet holds).
//!
//! Cloudlets and agents are numbered from 1, as their names are
//! (`cloudlet-1` …).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::{AgentConfig, AgentHandle};
use bytes::Bytes;
use mock_openstack::{MockConfig, MockHandle};
use os_client::{
    HttpRequest, HttpResponse, ReqwestTransport, SharedTransport, Transport, TransportError,
};
use serde_json::{json, Value};

use crate::fixtures;

/// How long the overlay may take to converge before the fixture fails.
const CONVERGE_LIMIT: Duration = Duration::from_secs(20);

pub struct Fed {
    pub mocks: Vec<Option<MockHandle>>,
    pub agents: Vec<Option<AgentHandle>>,
    pub transport: SharedTransport,
    /// Addresses the agents cannot reach (see [`Cuts`]).
    pub cuts: Cuts,
}

/// Base URLs (`http://host:port`) that the agents' HTTP calls cannot
/// reach, as across a network partition: a call to one fails at once as
/// a refused connection. Gossip (UDP) and the test's own calls are not
/// cut, so a cut agent stays alive to the overlay.
#[derive(Clone, Default)]
pub struct Cuts(Arc<Mutex<Vec<String>>>);

impl Cuts {
    /// Cuts `base` off from every agent.
    pub fn cut(&self, base: &str) {
        if let Ok(mut c) = self.0.lock() {
            c.push(base.trim_end_matches('/').to_string());
        }
    }

    /// Ends every cut.
    pub fn heal(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }

    fn is_cut(&self, uri: &str) -> bool {
        self.0.lock().is_ok_and(|c| {
            c.iter().any(|b| {
                uri.strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        })
    }

    /// `inner`, with these cuts applied (the agents' transport).
    pub fn transport(&self, inner: SharedTransport) -> SharedTransport {
        Arc::new(CutTransport {
            inner,
            cuts: self.clone(),
        })
    }
}

struct CutTransport {
    inner: SharedTransport,
    cuts: Cuts,
}

type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<HttpResponse, TransportError>> + Send>,
>;

impl Transport for CutTransport {
    fn call(&self, req: HttpRequest) -> Answer {
        let uri = req.uri().to_string();
        if self.cuts.is_cut(&uri) {
            return Box::pin(async move { Err(TransportError::Connect(uri)) });
        }
        self.inner.call(req)
    }
}

/// The cluster secret of every test federation.
pub const SECRET: &str = "test-cluster-secret";

/// Agent `i`'s configuration with the tests' short intervals; `seed` is a
/// member's gossip address.
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

/// Mock `cloudlet-i` with one compute node of `vcpus` (no overcommit).
pub async fn start_mock(i: usize, vcpus: u32, time_scale: f64, profile: &str) -> MockHandle {
    mock_openstack::start(MockConfig {
        name: format!("cloudlet-{i}"),
        listen: "127.0.0.1:0".into(),
        computes: 1,
        compute_vcpus: vcpus,
        cpu_allocation_ratio: 1.0,
        time_scale,
        profile: profile.into(),
        ..Default::default()
    })
    .await
    .expect("start mock")
}

/// The HTTP client every fixture call goes through.
pub fn transport() -> SharedTransport {
    Arc::new(ReqwestTransport::new(Duration::from_secs(10)).expect("HTTP client"))
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

/// Like [`federation_full`], with the mocks' performance profile. Returns
/// once every agent sees every member alive and capacity reports spread.
pub async fn federation_profile(
    vcpus: &[u32],
    time_scale: f64,
    profile: &str,
    tweak: impl Fn(&mut AgentConfig),
) -> Fed {
    let fed = start_pairs(vcpus, time_scale, profile, tweak).await;
    let n = vcpus.len();
    fed.wait_until("every member alive everywhere", |a| a.members_alive() >= n)
        .await;
    // Let capacity reports spread.
    tokio::time::sleep(Duration::from_millis(800)).await;
    fed
}

/// Starts the mocks and agents (each agent seeded with the first one's
/// gossip address) without waiting for the overlay.
pub async fn start_pairs(
    vcpus: &[u32],
    time_scale: f64,
    profile: &str,
    tweak: impl Fn(&mut AgentConfig),
) -> Fed {
    let transport = transport();
    let cuts = Cuts::default();
    let (mut mocks, mut agents) = (vec![], vec![]);
    let mut seed: Option<String> = None;
    for (i, v) in vcpus.iter().enumerate() {
        let m = start_mock(i + 1, *v, time_scale, profile).await;
        let mut cfg = agent_config(i + 1, m.auth_url(), seed.clone());
        tweak(&mut cfg);
        let a = agent::start(cfg, cuts.transport(transport.clone()))
            .await
            .expect("start agent");
        seed.get_or_insert_with(|| a.gossip_addr().to_string());
        mocks.push(Some(m));
        agents.push(Some(a));
    }
    Fed {
        mocks,
        agents,
        transport,
        cuts,
    }
}

impl Fed {
    pub fn agent(&self, i: usize) -> &AgentHandle {
        self.agents[i - 1].as_ref().expect("agent alive")
    }

    pub fn mock(&self, i: usize) -> &MockHandle {
        self.mocks[i - 1].as_ref().expect("mock alive")
    }

    /// Waits until `done` holds for every live agent; fails after
    /// [`CONVERGE_LIMIT`] naming `what`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&AgentHandle) -> bool) {
        let t0 = Instant::now();
        while !self.agents.iter().flatten().all(&done) {
            assert!(t0.elapsed() < CONVERGE_LIMIT, "overlay: not {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One HTTP call; the body parsed as JSON (`Null` when it is not).
    /// Panics when no answer comes (see [`Fed::try_call`]).
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, http::HeaderMap, Value) {
        self.try_call(method, url, token, body)
            .await
            .expect("call: no answer within the client's timeout")
    }

    /// Like [`Fed::call`], `None` when no answer came within the client's
    /// timeout (right after a kill, agents may still wait on the dead pair).
    pub async fn try_call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, http::HeaderMap, Value)> {
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
            .expect("request");
        let r = self.transport.call(req).await.ok()?;
        let v = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
        Some((r.status().as_u16(), r.headers().clone(), v))
    }

    /// A token for `user` (password `secret`, project of the same name)
    /// from the Keystone at `auth_url`.
    async fn token_at(&self, auth_url: &str, user: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": mock_openstack::defaults::PASSWORD}}},
            "scope": {"project": {"name": user, "domain": {"name": "Default"}}}}});
        let req = http::Request::post(format!("{auth_url}/v3/auth/tokens"))
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .expect("request");
        let r = self.transport.call(req).await.expect("auth call");
        assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
        r.headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("x-subject-token")
            .to_string()
    }

    /// A federation token for `user` (project of the same name) from agent `i`.
    pub async fn login(&self, i: usize, user: &str) -> String {
        self.token_at(&self.agent(i).auth_url(), user).await
    }

    /// An admin token of mock `i`'s own Keystone (for its `/mock/v1` and
    /// all-projects reads).
    pub async fn mock_admin_token(&self, i: usize) -> String {
        self.token_at(&self.mock(i).auth_url(), "admin").await
    }

    pub fn compute(&self, i: usize) -> String {
        format!("{}/compute/v2.1", self.agent(i).base_url())
    }

    /// POSTs a boot through agent `via`; `server` (a JSON object, the
    /// name included) is merged into [`fixtures::boot_body`]. Returns
    /// (status, body, `X-P2P-Cloudlet`).
    pub async fn boot_with(&self, via: usize, token: &str, server: Value) -> (u16, Value, String) {
        let body = fixtures::boot_body_with("server", server);
        let (s, h, v) = self
            .call(
                "POST",
                &format!("{}/servers", self.compute(via)),
                Some(token),
                Some(body),
            )
            .await;
        let owner = h
            .get("x-p2p-cloudlet")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (s, v, owner)
    }

    /// Boots one m1.tiny through agent `i`; returns (id, owner cloudlet).
    pub async fn boot(&self, i: usize, token: &str, name: &str) -> (String, String) {
        let (s, v, owner) = self.boot_with(i, token, json!({ "name": name })).await;
        assert_eq!(s, 202, "{v}");
        assert!(!owner.is_empty(), "no X-P2P-Cloudlet: {v}");
        let id = v["server"]["id"].as_str().expect("server id").to_string();
        (id, owner)
    }

    /// Waits until server `id`, read through agent `i`, has status `want`.
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

    /// The client deletes server `gid` through agent `via` (204 expected).
    pub async fn delete_server(&self, via: usize, token: &str, gid: &str) {
        let (s, _, v) = self
            .call(
                "DELETE",
                &format!("{}/servers/{gid}", self.compute(via)),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 204, "{v}");
    }

    /// (global id, status) of the servers whose name starts with `prefix`
    /// in a detailed list through agent `i`.
    pub async fn listed(&self, i: usize, token: &str, prefix: &str) -> Vec<(String, String)> {
        let (s, _, v) = self
            .call(
                "GET",
                &format!("{}/servers/detail", self.compute(i)),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or_default().to_string(),
                    s["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The audit: every server on mock `i` (all projects), as (local id,
    /// global id); `token` is that mock's admin token.
    pub async fn instances(&self, i: usize, token: &str) -> Vec<(String, String)> {
        let (s, _, v) = self
            .call(
                "GET",
                &format!(
                    "{}/compute/v2.1/servers/detail?all_tenants=1",
                    self.mock(i).base_url()
                ),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or_default().to_string(),
                    s["metadata"]["p2p_global_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// [`Fed::instances`] without those whose delete was accepted (task
    /// state `deleting`: gone once the cloudlet's delete completes).
    pub async fn instances_kept(&self, i: usize, token: &str) -> Vec<(String, String)> {
        let (s, _, v) = self
            .call(
                "GET",
                &format!(
                    "{}/compute/v2.1/servers/detail?all_tenants=1",
                    self.mock(i).base_url()
                ),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter(|s| s["OS-EXT-STS:task_state"] != "deleting")
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or_default().to_string(),
                    s["metadata"]["p2p_global_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// Sets mock `i`'s fault injection (`PUT /mock/v1/faults`).
    pub async fn set_faults(&self, i: usize, faults: Value) {
        let admin = self.mock_admin_token(i).await;
        let (s, _, v) = self
            .call(
                "PUT",
                &format!("{}/mock/v1/faults", self.mock(i).base_url()),
                Some(&admin),
                Some(faults),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// Makes cloudlet `i`'s API answer 503 to everything for `secs` model
    /// seconds; returns when the cut began.
    pub async fn cut_cloudlet(&self, i: usize, secs: f64) -> Instant {
        let admin = self.mock_admin_token(i).await;
        let (s, _, v) = self
            .call(
                "POST",
                &format!("{}/mock/v1/faults/api-unavailable", self.mock(i).base_url()),
                Some(&admin),
                Some(json!({ "duration_s": secs })),
            )
            .await;
        assert_eq!(s, 204, "{v}");
        Instant::now()
    }

    /// The value of metric `name` (the first sample line starting with
    /// it) on the `/metrics` page at `base`; panics when missing.
    pub async fn metric_at(&self, base: &str, name: &str) -> u64 {
        let req = http::Request::get(format!("{base}/metrics"))
            .body(Bytes::new())
            .expect("request");
        let r = self.transport.call(req).await.expect("metrics call");
        let text = String::from_utf8_lossy(r.body()).into_owned();
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
    }

    /// [`Fed::metric_at`] of agent `i`.
    pub async fn metric(&self, i: usize, name: &str) -> u64 {
        self.metric_at(self.agent(i).base_url(), name).await
    }

    /// Kills only the mock (cloudlet) `i`; its agent stays up.
    pub fn kill_mock(&mut self, i: usize) {
        if let Some(m) = self.mocks[i - 1].take() {
            m.abort();
        }
    }

    /// Kills only agent `i`; its cloudlet stays up.
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(a) = self.agents[i - 1].take() {
            a.abort();
        }
    }

    /// Starts one more pair, `cloudlet-{n+1}` (a mock of `vcpus` at time
    /// scale 0.1 and its agent, seeded with agent `seed`'s gossip address)
    /// joining the running overlay; returns its number. `tweak` adjusts
    /// the agent's config.
    pub async fn add_pair(
        &mut self,
        vcpus: u32,
        seed: usize,
        tweak: impl Fn(&mut AgentConfig),
    ) -> usize {
        let i = self.mocks.len() + 1;
        let m = start_mock(i, vcpus, 0.1, "devstack").await;
        let seed = self.agent(seed).gossip_addr().to_string();
        let mut cfg = agent_config(i, m.auth_url(), Some(seed));
        tweak(&mut cfg);
        let a = agent::start(cfg, self.cuts.transport(self.transport.clone()))
            .await
            .expect("start agent");
        self.mocks.push(Some(m));
        self.agents.push(Some(a));
        i
    }

    /// Kills agent `i` and its mock.
    pub fn kill(&mut self, i: usize) {
        self.kill_agent(i);
        self.kill_mock(i);
    }
}
