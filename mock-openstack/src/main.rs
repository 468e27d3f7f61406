//! `mock-openstack`: one mock OpenStack deployment on one port.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use mock_openstack::MockConfig;

/// mimalloc instead of glibc's malloc: allocation and free were ~8 % of the
/// mock's CPU per request under load (`perf`, docs/benchmarks.md, issue 17).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One OpenStack deployment (1 controller + K computes) that real clients accept.
#[derive(Debug, Parser)]
#[command(name = "mock-openstack", version)]
struct Cli {
    /// TOML file with any MockConfig field; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to bind; port 0 picks a free one [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Deployment name; computes are {name}-compute-{i} [default: devstack].
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Base URL for the catalog instead of the request's Host.
    #[arg(long)]
    public_url: Option<String>,
    /// Number of compute nodes [default: 1].
    #[arg(long)]
    computes: Option<u32>,
    /// Nova cells v2 with K cells (computes split evenly; each cell has its
    /// own conductor and message bus under one global API, super-conductor,
    /// scheduler and neutron). Large operators run about 100 computes per
    /// cell (CERN). 1 = single cell, the plain controller [default: 1].
    #[arg(long, value_name = "K")]
    cells: Option<u32>,
    #[arg(long)]
    compute_vcpus: Option<u32>,
    #[arg(long)]
    compute_ram_mb: Option<u64>,
    #[arg(long)]
    compute_disk_gb: Option<u64>,
    #[arg(long)]
    cpu_allocation_ratio: Option<f64>,
    #[arg(long)]
    ram_allocation_ratio: Option<f64>,
    #[arg(long)]
    disk_allocation_ratio: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    quota_instances: Option<i64>,
    #[arg(long)]
    quota_cores: Option<i64>,
    #[arg(long)]
    quota_ram_mb: Option<i64>,
    #[arg(long)]
    token_ttl_s: Option<u64>,
    /// Control-plane profile: devstack, openstack-2017 or a TOML file [default: devstack].
    #[arg(long, value_name = "NAME|PATH")]
    profile: Option<String>,
    /// Wall seconds per model second, > 0 (0.1 = ten times faster) [default: 1].
    #[arg(long)]
    time_scale: Option<f64>,
    /// When > 0: replaces the profile's compute.spawn_median_s (model seconds).
    #[arg(long)]
    boot_delay_s: Option<f64>,
    /// When > 0: replaces the profile's compute.destroy_s (model seconds).
    #[arg(long)]
    delete_delay_s: Option<f64>,
    /// Write a clouds.yaml (clouds `{name}` and `{name}-demo`) here.
    #[arg(long, value_name = "PATH")]
    clouds_yaml: Option<PathBuf>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<(MockConfig, Option<PathBuf>)> {
        let mut c = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config {}", p.display()))?;
                MockConfig::from_toml(&text).with_context(|| format!("in {}", p.display()))?
            }
            None => MockConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            listen,
            name,
            region,
            computes,
            cells,
            compute_vcpus,
            compute_ram_mb,
            compute_disk_gb,
            cpu_allocation_ratio,
            ram_allocation_ratio,
            disk_allocation_ratio,
            seed,
            quota_instances,
            quota_cores,
            quota_ram_mb,
            token_ttl_s,
            profile,
            time_scale,
            boot_delay_s,
            delete_delay_s
        );
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        c.validate()?;
        Ok((c, self.clouds_yaml))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (cfg, clouds) = Cli::parse().into_config()?;
    let (name, region) = (cfg.name.clone(), cfg.region.clone());
    let public = cfg.public_url.clone();
    let mock = mock_openstack::start(cfg).await?;
    let base = public
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| mock.base_url().to_string());
    if let Some(path) = clouds {
        let yaml = mock_openstack::clouds_yaml(&name, &format!("{base}/identity"), &region);
        std::fs::write(&path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), cloud = %name, "wrote clouds.yaml");
    }
    println!("mock-openstack listening on {base}");
    shutdown_signal().await?;
    tracing::info!("shutting down");
    mock.shutdown().await;
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
