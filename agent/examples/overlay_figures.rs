//! Overlay figures as N grows, full membership (chitchat) versus CYCLON,
//! on the simulated gossip network (250 µs one-way) and a virtual clock:
//! deterministic for the seeds, no sockets.
//!
//! For each N: N−1 members start and settle; then
//! - traffic: messages and bytes each member sends per (model) second;
//! - memory: resident memory of the process per member (RSS growth while
//!   the members started, divided by their number; the whole gossip
//!   state, chitchat's or CYCLON's, plus the runtime's share);
//! - join: a newcomer starts; full: time until 99% of members count it
//!   alive; cyclon: time until it is in c/2 views (nobody knows everyone:
//!   the mean in-degree is c);
//! - death: one member stops; time until no member holds it alive.
//!
//! `cargo run --release -p agent --example overlay_figures -- --overlay cyclon 64 256 1024`
//! (`--overlay full`, `--interval-ms 400`, `--view 20`)

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use agent::cyclon::CyclonConfig;
use agent::cyclon_node::CyclonParams;
use agent::gossip::{Gossip, GossipConfig, OverlayKind};
use agent::gossip_sim::SimGossipNet;
use agent::state::CloudletState;
use cp_model::clock;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0A00_0001u32 + i as u32).into(), 7946)
}

fn cfg(i: usize, interval: Duration, overlay: OverlayKind) -> GossipConfig {
    GossipConfig {
        node_id: format!("c{i}"),
        addr: addr(i),
        listen: addr(i),
        seeds: if i == 0 {
            vec![]
        } else {
            vec![addr(0).to_string()]
        },
        cluster_id: "figures".into(),
        interval,
        phi_threshold: 8.0,
        rng_seed: Some(i as u64 + 1),
        overlay,
    }
}

fn state(i: usize) -> CloudletState {
    CloudletState {
        name: format!("c{i}"),
        url: format!("http://agent-{i}"),
        free_vcpus: 8,
        free_ram_mb: 16_384,
        free_disk_gb: 100,
        total_vcpus: 8,
        healthy: true,
        ..Default::default()
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Members holding `name` alive (self excluded).
async fn holders(nodes: &[Option<Gossip>], name: &str) -> usize {
    let mut n = 0;
    for g in nodes.iter().flatten() {
        if g.live_view().await.iter().skip(1).any(|s| s.name == name) {
            n += 1;
        }
    }
    n
}

async fn settled(nodes: &[Option<Gossip>], n: usize) -> bool {
    for g in nodes.iter().flatten() {
        let ok = match g.partial_view() {
            Some((len, c)) => len * 10 >= 9 * c.min(n - 1),
            None => g.members_alive() >= n,
        };
        if !ok {
            return false;
        }
    }
    true
}

struct Figures {
    settle_s: f64,
    msgs_per_s: f64,
    bytes_per_s: f64,
    rss_per_member: f64,
    join_s: Option<f64>,
    death_s: Option<f64>,
}

async fn run(n: usize, interval: Duration, overlay: OverlayKind) -> Figures {
    let net = SimGossipNet::new(Duration::from_micros(250));
    let limit = Duration::from_secs(600);
    let rss0 = rss_bytes();
    let t0 = clock::now();
    let mut nodes: Vec<Option<Gossip>> = Vec::new();
    for i in 0..n - 1 {
        let g = Gossip::spawn(&cfg(i, interval, overlay), &state(i), &net)
            .await
            .expect("spawn");
        nodes.push(Some(g));
    }
    while !settled(&nodes, n - 1).await {
        assert!(clock::now() - t0 < limit, "N = {n} did not settle");
        tokio::time::sleep(interval).await;
    }
    let settle_s = (clock::now() - t0).as_secs_f64();
    // Steady state: 20 rounds of traffic.
    tokio::time::sleep(interval * 10).await;
    let rss_per_member = rss_bytes().saturating_sub(rss0) as f64 / (n - 1) as f64;
    let s0 = net.stats();
    let window = interval * 20;
    tokio::time::sleep(window).await;
    let s1 = net.stats();
    let per = |d: u64| d as f64 / (n - 1) as f64 / window.as_secs_f64();
    let (msgs_per_s, bytes_per_s) = (per(s1.sent - s0.sent), per(s1.bytes - s0.bytes));

    // Join.
    let newcomer = format!("c{}", n - 1);
    let t0 = clock::now();
    nodes.push(Some(
        Gossip::spawn(&cfg(n - 1, interval, overlay), &state(n - 1), &net)
            .await
            .expect("spawn"),
    ));
    let want = match overlay {
        OverlayKind::Full => ((n - 1) * 99).div_ceil(100),
        OverlayKind::Cyclon(p) => p.sizes.view_size.min(n - 1).div_ceil(2),
    };
    let mut join_s = None;
    while clock::now() - t0 < limit {
        if holders(&nodes, &newcomer).await >= want {
            join_s = Some((clock::now() - t0).as_secs_f64());
            break;
        }
        tokio::time::sleep(interval / 4).await;
    }
    tokio::time::sleep(interval * 10).await;

    // Death.
    let victim = n / 2;
    let name = format!("c{victim}");
    if let Some(g) = nodes[victim].take() {
        g.abort();
        net.close(addr(victim));
    }
    let t0 = clock::now();
    let mut death_s = None;
    while clock::now() - t0 < limit {
        if holders(&nodes, &name).await == 0 {
            death_s = Some((clock::now() - t0).as_secs_f64());
            break;
        }
        tokio::time::sleep(interval / 4).await;
    }
    for g in nodes.iter().flatten() {
        g.abort();
    }
    Figures {
        settle_s,
        msgs_per_s,
        bytes_per_s,
        rss_per_member,
        join_s,
        death_s,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let interval = Duration::from_millis(
        flag("--interval-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
    );
    let view: usize = flag("--view").and_then(|v| v.parse().ok()).unwrap_or(20);
    let overlay = match flag("--overlay").as_deref() {
        Some("full") => OverlayKind::Full,
        _ => OverlayKind::Cyclon(CyclonParams {
            sizes: CyclonConfig {
                view_size: view,
                shuffle_len: CyclonConfig::DEFAULT.shuffle_len.min(view),
            },
            ..CyclonParams::DEFAULT
        }),
    };
    let values: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[i - 1].starts_with("--"))
        .map(|(_, a)| a)
        .collect();
    let mut sizes: Vec<usize> = values.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![64, 256];
    }
    println!(
        "overlay={} interval={} ms (model), one-way delay 250 us, simulated network",
        match overlay {
            OverlayKind::Full => "full".to_string(),
            OverlayKind::Cyclon(p) => format!(
                "cyclon c={} l={} cache={} book={}",
                p.sizes.view_size, p.sizes.shuffle_len, p.cache_size, p.book_size
            ),
        },
        interval.as_millis()
    );
    println!("| N | settled | msgs/agent/s | bytes/agent/s | RSS/agent | join | death excluded everywhere | wall |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let wall = std::time::Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let f = rt.block_on(run(n.max(3), interval, overlay));
        drop(rt);
        let s = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} s"));
        println!(
            "| {n} | {:.1} s | {:.1} | {:.0} | {:.1} KiB | {} | {} | {:.0} s |",
            f.settle_s,
            f.msgs_per_s,
            f.bytes_per_s,
            f.rss_per_member / 1024.0,
            s(f.join_s),
            s(f.death_s),
            wall.elapsed().as_secs_f64()
        );
    }
}
