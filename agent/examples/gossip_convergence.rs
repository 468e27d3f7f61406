//! How long the overlay takes to agree, as N grows.
//!
//! For each N: start N−1 nodes over chitchat's in-memory transport (or UDP
//! loopback with `--udp`), wait until they agree, then measure
//! - join: a new node starts; time until every node counts N alive;
//! - update: a node publishes new capacity; time until every node sees it;
//! - death: a node stops; time until every other node counts N−1 alive
//!   (phi-accrual detection + dissemination).
//!
//! `cargo run --release -p agent --example gossip_convergence -- 4 16 64 --interval-ms 500`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent::gossip::{Gossip, GossipConfig};
use agent::state::CloudletState;
use chitchat::transport::{ChannelTransport, Transport, UdpTransport};

fn cfg(i: usize, base_port: u16, interval: Duration) -> GossipConfig {
    GossipConfig {
        node_id: format!("c{i}"),
        addr: SocketAddr::from(([127, 0, 0, 1], base_port + i as u16)),
        listen: SocketAddr::from(([127, 0, 0, 1], base_port + i as u16)),
        seeds: vec![format!("127.0.0.1:{base_port}")],
        cluster_id: "bench".into(),
        interval,
        phi_threshold: 8.0,
        rng_seed: None,
        overlay: agent::gossip::OverlayKind::Full,
    }
}

fn st(i: usize, v: i64) -> CloudletState {
    CloudletState {
        name: format!("c{i}"),
        free_vcpus: v,
        healthy: true,
        ..Default::default()
    }
}

async fn wait_all(nodes: &[Gossip], want: usize, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while nodes.iter().any(|n| n.members_alive() != want) {
        if t0.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(t0.elapsed())
}

async fn run(
    n: usize,
    interval: Duration,
    transport: &dyn Transport,
    base_port: u16,
) -> [Option<Duration>; 3] {
    let limit = Duration::from_secs(120);
    let mut nodes = vec![];
    for i in 0..n - 1 {
        nodes.push(
            Gossip::spawn(&cfg(i, base_port, interval), &st(i, 1), transport)
                .await
                .expect("spawn"),
        );
    }
    wait_all(&nodes, n - 1, limit).await;
    // Let the failure detectors learn the heartbeat rate.
    tokio::time::sleep(interval * 10).await;
    // join
    let t0 = Instant::now();
    nodes.push(
        Gossip::spawn(&cfg(n - 1, base_port, interval), &st(n - 1, 1), transport)
            .await
            .expect("spawn"),
    );
    let join = wait_all(&nodes, n, limit).await.map(|_| t0.elapsed());
    tokio::time::sleep(interval * 10).await;
    // update
    let t0 = Instant::now();
    nodes[1].publish(&st(1, 42)).await;
    let mut update = None;
    while t0.elapsed() < limit {
        let mut all = true;
        for g in &nodes {
            if !g
                .live_view()
                .await
                .iter()
                .any(|s| s.name == "c1" && s.free_vcpus == 42)
            {
                all = false;
                break;
            }
        }
        if all {
            update = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // death
    let victim = nodes.remove(n / 2);
    let t0 = Instant::now();
    victim.shutdown().await;
    let death = wait_all(&nodes, n - 1, limit).await.map(|_| t0.elapsed());
    for g in nodes {
        g.shutdown().await;
    }
    [join, update, death]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let udp = args.iter().any(|a| a == "--udp");
    let interval_ms: u64 = args
        .iter()
        .position(|a| a == "--interval-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut sizes: Vec<usize> = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .filter(|n| *n != interval_ms as usize)
        .collect();
    if sizes.is_empty() {
        sizes = vec![4, 16, 64];
    }
    let interval = Duration::from_millis(interval_ms);
    println!(
        "transport={} gossip_interval={interval_ms}ms phi_threshold=8",
        if udp { "udp-loopback" } else { "in-memory" }
    );
    println!("| N | join known by all | state update seen by all | death known by all |");
    println!("|---|---|---|---|");
    let fmt = |d: Option<Duration>| {
        d.map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "> 120 s".into())
    };
    for (k, n) in sizes.into_iter().enumerate() {
        let base_port = 30_000 + (k as u16) * 1_000;
        let r = if udp {
            run(n, interval, &UdpTransport, base_port).await
        } else {
            run(n, interval, &ChannelTransport::default(), base_port).await
        };
        println!("| {n} | {} | {} | {} |", fmt(r[0]), fmt(r[1]), fmt(r[2]));
    }
}
