//! `testbed`: start a standard or P2P testbed, or run the compare experiment.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use testbeds::backend::{Backend, Testbed};
use testbeds::compare::{self, CompareArgs};
use testbeds::docker;
use testbeds::embedded::TestbedSpec;
use testbeds::sensitivity::{self, SensitivityArgs};
use testbeds::topology::{self, Kind};

/// mimalloc instead of glibc malloc: the sim backend runs every member's
/// requests and gossip in one process, and allocation was a third of its
/// CPU (docs/benchmarks.md, "Where the sim backend's CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "testbed",
    version,
    about = "N cloudlets versus one monolith of equal capacity"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Start a testbed, print its entry points, run until Ctrl-C.
    Up(UpArgs),
    /// Run the boot-burst sweep against both testbeds and write the report.
    Compare(Box<CompareArgs>),
    /// Vary each assumed parameter over its range, one at a time; run the
    /// comparison at both limits for each value; write tornado charts per
    /// claim ratio, the claim map and CSV.
    Sensitivity(Box<SensitivityArgs>),
    /// The same load per compute at growing N (16 … 1024 by default):
    /// one comparison per N, then CSV and charts of makespan, boot p95,
    /// error rate, throughput and P2P placement quality against N.
    Scale(Box<testbeds::scale::ScaleArgs>),
    /// Build the container image (static binaries, FROM scratch) for --backend docker.
    Images(ImagesArgs),
    /// Write the testbed as a Docker Swarm stack or Kubernetes manifests.
    Export(ExportArgs),
    /// Run the comparison on an engine's exported stacks (`--engine swarm`:
    /// the local Docker engine in swarm mode) and write the same report.
    Run(RunArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// `docker stack deploy` on the local engine (a single-node swarm is
    /// initialised and left again when the engine is not in one).
    Swarm,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    engine: Engine,
    /// Cloudlets of the P2P testbed (and compute nodes of the standard one).
    #[arg(long, default_value_t = 8)]
    cloudlets: u32,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    levels: Vec<u32>,
    #[arg(long, default_value = "devstack")]
    profile: String,
    #[arg(long, default_value_t = 0.2)]
    time_scale: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Report directory.
    #[arg(long, default_value = "reports/swarm")]
    out: PathBuf,
    /// Longest wait for a stack to be up, seconds.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
    /// Longest wait for a load generator to finish, seconds.
    #[arg(long, default_value_t = 1800)]
    run_timeout: u64,
}

/// How `testbed up` and `testbed export` describe the testbed they make.
#[derive(Args)]
struct SpecArgs {
    #[arg(long, default_value = "devstack")]
    profile: String,
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Agents' gossip interval in model ms (default: 100 wall ms up to 64
    /// cloudlets, then in proportion to N; on `sim` 400 model ms and up).
    #[arg(long)]
    gossip_interval_ms: Option<u64>,
    /// The agents' membership overlay: full or cyclon (docs/agent.md;
    /// default: full up to 256 cloudlets, cyclon above).
    #[arg(long)]
    overlay: Option<agent::config::Overlay>,
    /// Cells of a `cells` testbed (default: about 100 computes per cell, at least 2).
    #[arg(long, value_name = "K")]
    cells: Option<u32>,
}

impl SpecArgs {
    /// The spec of a `kind` testbed of `members`, with a fresh cluster secret.
    fn into_spec(self, kind: Kind, members: u32, time_scale: f64) -> Result<TestbedSpec> {
        Ok(TestbedSpec {
            kind,
            members,
            cells: self.cells,
            sizing: topology::for_profile(members, &self.profile, topology::M1_TINY)?,
            profile: self.profile,
            time_scale,
            seed: self.seed,
            retries: self.retries,
            cluster_secret: compare::random_secret(),
            gossip_interval_ms: self.gossip_interval_ms,
            overlay: self
                .overlay
                .unwrap_or_else(|| testbeds::embedded::default_overlay(members)),
        })
    }
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long, value_enum)]
    format: testbeds::export::Format,
    #[arg(long, value_enum)]
    kind: Kind,
    /// Cloudlets of the P2P testbed, or compute nodes of the standard one.
    #[arg(long, default_value_t = 4)]
    cloudlets: u32,
    /// Concurrency levels the load generator runs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,2048"
    )]
    levels: Vec<u32>,
    #[command(flatten)]
    spec: SpecArgs,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ImagesArgs {
    /// Repository root to build from.
    #[arg(long)]
    source: Option<PathBuf>,
}

#[derive(Args)]
struct UpArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    /// Compute nodes of the standard testbed.
    #[arg(long, default_value_t = 4)]
    computes: u32,
    /// Cloudlets of the P2P testbed.
    #[arg(long, default_value_t = 4)]
    cloudlets: u32,
    #[command(flatten)]
    spec: SpecArgs,
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    backend: Backend,
    /// Write a clouds.yaml with entries `testbed` and `testbed-<i>`.
    #[arg(long)]
    clouds_yaml: Option<PathBuf>,
    /// Print how long the start took and the memory used, then tear down
    /// and exit instead of waiting for Ctrl-C (for scale measurements).
    #[arg(long)]
    exit_when_ready: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    // The sim backend runs everything on one thread with tokio's clock
    // paused: virtual time that advances only when every task waits.
    let virtual_time = match &cli.command {
        Command::Up(a) => a.backend.is_virtual(),
        Command::Compare(a) => a.backend.is_virtual(),
        Command::Sensitivity(a) => a.resolved_backend().is_virtual(),
        Command::Scale(a) => a.backend.is_virtual(),
        Command::Images(_) | Command::Export(_) | Command::Run(_) => false,
    };
    let rt = if virtual_time {
        testbeds::sim::runtime()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Compare(args) => compare::run(*args).await.map(|_| ()),
            Command::Sensitivity(args) => sensitivity::run(*args).await.map(|_| ()),
            Command::Scale(args) => testbeds::scale::run(*args).await.map(|_| ()),
            Command::Images(args) => images(args).await,
            Command::Export(args) => export(args),
            Command::Run(args) => run_engine(args).await,
        }
    })
}

async fn up(args: UpArgs) -> Result<()> {
    let members = if args.kind.is_federated() {
        args.cloudlets
    } else {
        args.computes
    };
    if members == 0 {
        bail!("a testbed needs at least one compute node or cloudlet");
    }
    if args.backend.is_virtual() && !args.exit_when_ready {
        bail!("--backend sim has no sockets for a client to reach and runs on virtual time; use it with --exit-when-ready (start-up time and memory), or `testbed compare --backend sim`");
    }
    let time_scale = if args.backend.is_virtual() {
        1.0
    } else {
        args.spec.time_scale
    };
    let spec = args.spec.into_spec(args.kind, members, time_scale)?;
    let spec_scale = spec.time_scale;
    let started = cp_model::clock::host_now();
    let started_model = cp_model::clock::now();
    let tb = Testbed::start(args.backend, spec)
        .await
        .context("cannot start the testbed")?;
    let ready_s = started.elapsed().as_secs_f64();
    let ready_model_s = cp_model::clock::now()
        .saturating_duration_since(started_model)
        .as_secs_f64()
        / spec_scale;
    let entries = tb.entries();
    println!(
        "{} testbed with {} members is up; entry points:",
        args.kind.label(),
        members
    );
    for (i, e) in entries.iter().enumerate() {
        println!("  testbed-{}  {}", i + 1, e);
    }
    if let Some(path) = &args.clouds_yaml {
        let regions: Vec<String> = (0..entries.len() as u32)
            .map(|i| testbeds::embedded::member_region(args.kind, i))
            .collect();
        let text = testbeds::clouds_yaml::render_regions(
            &entries,
            &regions,
            &testbeds::clouds_yaml::Credentials::devstack("admin"),
            &testbeds::clouds_yaml::Credentials::devstack("demo"),
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "clouds.yaml written to {} (use: openstack --os-cloud testbed …)",
            path.display()
        );
    }
    if args.exit_when_ready {
        let rss = testbeds::hostmon::peak_rss_bytes().unwrap_or(0);
        println!(
            "ready: {} members in {ready_s:.2} s (wall; {ready_model_s:.1} model s), peak RSS {:.1} MiB",
            members,
            rss as f64 / (1024.0 * 1024.0)
        );
        tb.shutdown().await;
        return Ok(());
    }
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    println!("stopping…");
    tb.shutdown().await;
    Ok(())
}

async fn images(args: ImagesArgs) -> Result<()> {
    if !docker::docker_available() {
        bail!("no Docker engine is reachable (is the daemon running?)");
    }
    let source = args
        .source
        .unwrap_or_else(docker::images::default_source_dir);
    println!("building static binaries in {} …", source.display());
    let source_for_build = source.clone();
    let bin_dir = tokio::task::spawn_blocking(move || docker::static_build(&source_for_build))
        .await
        .context("the build task failed")??;
    let image = docker::build_image(&bin_dir).await?;
    println!("image {image} built from {}", bin_dir.display());
    Ok(())
}

fn export(args: ExportArgs) -> Result<()> {
    if args.cloudlets == 0 {
        bail!("a testbed needs at least one compute node or cloudlet");
    }
    // The same spec `testbed up` starts, with a fresh secret per export.
    let time_scale = args.spec.time_scale;
    let spec = args.spec.into_spec(args.kind, args.cloudlets, time_scale)?;
    spec.scale().context("invalid --time-scale")?;
    let text = testbeds::export::Export::new(spec, args.levels).render(args.format)?;
    match &args.out {
        Some(path) => {
            // Kubernetes manifests hold the cluster key: owner-only.
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn run_engine(args: RunArgs) -> Result<()> {
    let Engine::Swarm = args.engine;
    let cfg = testbeds::swarm::SwarmRun {
        cloudlets: args.cloudlets,
        levels: args.levels,
        profile: args.profile,
        time_scale: args.time_scale,
        seed: args.seed,
        retries: args.retries,
        out: args.out.clone(),
        ready_timeout: std::time::Duration::from_secs(args.ready_timeout),
        run_timeout: std::time::Duration::from_secs(args.run_timeout),
    };
    let mut task = tokio::task::spawn_blocking(move || testbeds::swarm::run(&cfg));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let joined = tokio::select! {
        r = &mut task => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: removing what the run created…");
            testbeds::swarm::interrupt();
            task.await
        }
        _ = term.recv() => {
            eprintln!("terminated: removing what the run created…");
            testbeds::swarm::interrupt();
            task.await
        }
    };
    let table = joined.context("the swarm run panicked")??;
    println!("{table}");
    println!("report: {}", args.out.join("index.html").display());
    Ok(())
}
