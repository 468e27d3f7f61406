//! The agent's own overhead:
//! - placement decision cost at 64 and 1,000 members (pure function);
//! - added latency of `GET /servers/{id}` through an agent versus the mock
//!   directly (loopback, one mock + one agent, the server on the agent's own
//!   cloudlet). Besides criterion's means, p50/p99 over 2,000 sequential
//!   requests are printed for each path.
//!
//! `cargo bench -p agent --bench agent_overhead`

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::placement::{choose, Demand, Policy};
use agent::state::CloudletState;
use agent::AgentConfig;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use os_client::{ReqwestTransport, SharedTransport};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn view(n: usize) -> Vec<CloudletState> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    (0..n)
        .map(|i| CloudletState {
            name: format!("cloudlet-{i}"),
            url: format!("http://10.0.{}.{}:8080", i / 250, i % 250),
            free_vcpus: rng.gen_range(0..64),
            free_ram_mb: rng.gen_range(0..65536),
            free_disk_gb: rng.gen_range(0..1000),
            total_vcpus: 64,
            builds_in_flight: rng.gen_range(0..12),
            healthy: true,
            updated_ms: 0,
            saturated: false,
            cloudlet_auth_url: None,
        })
        .collect()
}

fn placement(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement_decision");
    let demand = Demand {
        vcpus: 2,
        ram_mb: 2048,
        disk_gb: 20,
    };
    for n in [64usize, 1000] {
        let v = view(n);
        // The local cloudlet is full so the decision scans everyone.
        let mut v2 = v.clone();
        v2[0].free_vcpus = 0;
        let tried: HashSet<String> = HashSet::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        g.bench_with_input(BenchmarkId::from_parameter(n), &v2, |b, v| {
            b.iter(|| {
                choose(
                    "cloudlet-0",
                    v,
                    &demand,
                    &tried,
                    &Policy::default(),
                    &mut rng,
                )
                .map(str::len)
            })
        });
    }
    g.finish();
}

async fn send(
    t: &SharedTransport,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, http::HeaderMap, Value) {
    let mut b = http::Request::builder().method(method).uri(url);
    if let Some(tok) = token {
        b = b.header("x-auth-token", tok);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let r = t
        .call(
            b.body(body.map(|v| Bytes::from(v.to_string())).unwrap_or_default())
                .expect("request"),
        )
        .await
        .expect("call");
    let v = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
    (r.status().as_u16(), r.headers().clone(), v)
}

async fn login(t: &SharedTransport, auth_url: &str) -> String {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let (_, h, _) = send(
        t,
        "POST",
        &format!("{auth_url}/v3/auth/tokens"),
        None,
        Some(body),
    )
    .await;
    h.get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .expect("token")
        .to_string()
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (p(0.5), p(0.99))
}

fn proxied_get(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t: SharedTransport =
        Arc::new(ReqwestTransport::new(Duration::from_secs(10)).expect("transport"));
    let (mocks, agents, direct_url, agent_url, hop_url, mock_tok, fed_tok) = rt.block_on(async {
        let mut mocks = vec![];
        let mut agents: Vec<agent::AgentHandle> = vec![];
        for i in 0..2 {
            let mock = mock_openstack::start(mock_openstack::MockConfig {
                name: format!("bench-{i}"),
                listen: "127.0.0.1:0".into(),
                time_scale: 0.01,
                ..Default::default()
            })
            .await
            .expect("mock");
            let agent = agent::start(
                AgentConfig {
                    name: format!("bench-{i}"),
                    cloudlet_auth_url: mock.auth_url(),
                    cluster_secret: "bench-cluster-secret".into(),
                    gossip_interval_ms: 100,
                    seed_peers: agents.first().map(|a| a.gossip_addr().to_string()).into_iter().collect(),
                    ..Default::default()
                },
                t.clone(),
            )
            .await
            .expect("agent");
            mocks.push(mock);
            agents.push(agent);
        }
        while agents.iter().any(|a| a.members_alive() < 2) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let fed_tok = login(&t, &agents[0].auth_url()).await;
        let mock_tok = login(&t, &mocks[0].auth_url()).await;
        let body = json!({"server": {"name": "b", "imageRef": mock_openstack::defaults::IMAGE_ID, "flavorRef": "1",
            "networks": [{"uuid": mock_openstack::defaults::PRIVATE_NET_ID}]}});
        let (s, h, v) = send(&t, "POST", &format!("{}/compute/v2.1/servers", agents[0].base_url()), Some(&fed_tok), Some(body)).await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(h.get("x-p2p-cloudlet").and_then(|v| v.to_str().ok()), Some("bench-0"));
        let gid = v["server"]["id"].as_str().expect("id").to_string();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, _, list) = send(&t, "GET", &format!("{}/compute/v2.1/servers/detail", mocks[0].base_url()), Some(&mock_tok), None).await;
        let local = list["servers"][0]["id"].as_str().expect("local id").to_string();
        let direct_url = format!("{}/compute/v2.1/servers/{local}", mocks[0].base_url());
        let agent_url = format!("{}/compute/v2.1/servers/{gid}", agents[0].base_url());
        let hop_url = format!("{}/compute/v2.1/servers/{gid}", agents[1].base_url());
        (mocks, agents, direct_url, agent_url, hop_url, mock_tok, fed_tok)
    });
    // p50/p99, sequential, after warm-up.
    rt.block_on(async {
        let mut d = vec![];
        let mut a = vec![];
        let mut h = vec![];
        for i in 0..2200 {
            let one = |url: &str, tok: &str| {
                let (url, tok) = (url.to_string(), tok.to_string());
                let t = t.clone();
                async move {
                    let t0 = Instant::now();
                    let (s, _, _) = send(&t, "GET", &url, Some(&tok), None).await;
                    assert_eq!(s, 200);
                    t0.elapsed()
                }
            };
            let e1 = one(&direct_url, &mock_tok).await;
            let e2 = one(&agent_url, &fed_tok).await;
            let e3 = one(&hop_url, &fed_tok).await;
            if i >= 200 {
                d.push(e1);
                a.push(e2);
                h.push(e3);
            }
        }
        let (d50, d99) = percentiles(d);
        let (a50, a99) = percentiles(a);
        let (h50, h99) = percentiles(h);
        println!("GET /servers/{{id}} over loopback, 2000 sequential requests each:");
        println!("  mock directly                 : p50 {d50:.3} ms  p99 {d99:.3} ms");
        println!("  through the owning agent      : p50 {a50:.3} ms  p99 {a99:.3} ms");
        println!(
            "  added by the agent            : p50 {:.3} ms  p99 {:.3} ms",
            a50 - d50,
            a99 - d99
        );
        println!("  through another agent (1 hop) : p50 {h50:.3} ms  p99 {h99:.3} ms");
    });
    let mut g = c.benchmark_group("get_server");
    g.bench_function("mock_direct", |b| {
        b.to_async(&rt)
            .iter(|| send(&t, "GET", &direct_url, Some(&mock_tok), None))
    });
    g.bench_function("through_agent", |b| {
        b.to_async(&rt)
            .iter(|| send(&t, "GET", &agent_url, Some(&fed_tok), None))
    });
    g.bench_function("through_other_agent", |b| {
        b.to_async(&rt)
            .iter(|| send(&t, "GET", &hop_url, Some(&fed_tok), None))
    });
    g.finish();
    for a in &agents {
        a.abort();
    }
    for m in &mocks {
        m.abort();
    }
}

criterion_group!(benches, placement, proxied_get);
criterion_main!(benches);
