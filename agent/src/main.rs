//! `p2p-agent`: one agent beside one cloudlet.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// mimalloc instead of glibc's malloc: malloc, free and `malloc_consolidate`
/// were ~15 % of the agent's CPU on a proxied `GET /servers/{id}` under load
/// (`perf`, docs/benchmarks.md, issue 17), as they were for the mock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "p2p-agent",
    about = "P2P agent: presents a federation of cloudlets as one OpenStack"
)]
struct Cli {
    /// TOML configuration file (flags override it).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long)]
    name: Option<String>,
    /// HTTP listen address (host:port).
    #[arg(long)]
    listen: Option<String>,
    /// URL users and peers reach this agent at.
    #[arg(long, alias = "advertise-url")]
    public_url: Option<String>,
    /// URL peers reach this agent at, if not the public URL (e.g.
    /// `http://<container>:8080` behind a port published on the host).
    #[arg(long)]
    peer_url: Option<String>,
    /// Keystone URL of the own cloudlet.
    #[arg(long)]
    cloudlet_auth_url: Option<String>,
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    service_username: Option<String>,
    /// Service password (prefer the env variable).
    #[arg(long, env = "P2P_SERVICE_PASSWORD", hide_env_values = true)]
    service_password: Option<String>,
    #[arg(long)]
    service_project: Option<String>,
    /// UDP gossip listen address.
    #[arg(long)]
    gossip_listen: Option<String>,
    /// Gossip address peers should use (`ip:port` or `host:port`).
    #[arg(long)]
    gossip_advertise: Option<String>,
    /// Gossip address of a peer, `ip:port` or `host:port` (repeatable).
    #[arg(long = "seed", alias = "seed-peer")]
    seeds: Vec<String>,
    /// Shared cluster secret (prefer the env variable).
    #[arg(long, env = "P2P_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// File holding the cluster secret (when P2P_CLUSTER_SECRET is unset).
    #[arg(long, env = "P2P_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Extra placement attempts (0 disables retries).
    #[arg(long)]
    retries: Option<u32>,
    #[arg(long)]
    gossip_interval_ms: Option<u64>,
    /// Request timeout towards the cloudlet and peers (ms).
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// How often a coordinator polls a boot until ACTIVE or ERROR (ms).
    #[arg(long)]
    boot_poll_ms: Option<u64>,
    /// How often the agent reads its cloudlet's capacity (ms).
    #[arg(long)]
    capacity_interval_ms: Option<u64>,
    /// Give up watching a boot after this many seconds.
    #[arg(long)]
    boot_watch_secs: Option<u64>,
    /// Re-place a boot whose cloudlet has not answered for this long while
    /// gossip still counts it alive (ms).
    #[arg(long)]
    owner_unreachable_ms: Option<u64>,
    /// Seed of the placement RNG (random when absent).
    #[arg(long)]
    rng_seed: Option<u64>,
    /// Membership overlay: full (every agent knows every other) or cyclon
    /// (partial view; docs/agent.md).
    #[arg(long)]
    overlay: Option<agent::config::Overlay>,
    /// CYCLON view size c.
    #[arg(long)]
    cyclon_view_size: Option<usize>,
    /// CYCLON shuffle length l.
    #[arg(long)]
    cyclon_shuffle_len: Option<usize>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run().await {
        eprintln!("p2p-agent: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = match &cli.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            agent::AgentConfig::from_toml(&text)?
        }
        None => agent::AgentConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = cli.$f.clone() { cfg.$f = v; } )* };
    }
    set!(
        name,
        listen,
        cloudlet_auth_url,
        region,
        service_username,
        service_password,
        service_project,
        gossip_listen,
        cluster_secret,
        retries,
        gossip_interval_ms,
        request_timeout_ms,
        boot_poll_ms,
        capacity_interval_ms,
        boot_watch_secs,
        owner_unreachable_ms,
        overlay,
        cyclon_view_size,
        cyclon_shuffle_len
    );
    if cli.cluster_secret_file.is_some() {
        cfg.cluster_secret_file = cli.cluster_secret_file.clone();
    }
    cfg.load_secret_file()?;
    if cli.rng_seed.is_some() {
        cfg.seed = cli.rng_seed;
    }
    if cli.public_url.is_some() {
        cfg.public_url = cli.public_url.clone();
    }
    if cli.peer_url.is_some() {
        cfg.peer_url = cli.peer_url.clone();
    }
    if cli.gossip_advertise.is_some() {
        cfg.gossip_advertise = cli.gossip_advertise.clone();
    }
    if !cli.seeds.is_empty() {
        cfg.seed_peers = cli.seeds.clone();
    }
    let transport =
        agent::http_client::AgentTransport::new(Duration::from_millis(cfg.request_timeout_ms))
            .context("building the HTTP client")?;
    let handle = agent::start(cfg, Arc::new(transport)).await?;
    println!(
        "p2p-agent listening on {} (gossip {})",
        handle.base_url(),
        handle.gossip_addr()
    );
    shutdown_signal().await?;
    handle.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `docker stop` sends; as PID 1 in a container
/// the process would otherwise ignore it).
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
