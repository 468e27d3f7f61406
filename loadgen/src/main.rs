//! `loadgen`: concurrent-boot experiments against any OpenStack endpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use loadgen::{
    BootDeleteConfig, BootDeleteModel, BurstConfig, CancellationToken, EntryPolicy, Target,
};
use os_client::{cloudsyaml, Credentials, ReqwestTransport, SharedTransport};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Concurrent-boot experiments against any OpenStack, with honest latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// For each level, boot N servers at once, poll until final, delete all, audit.
    BootBurst {
        /// Burst sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64")]
        levels: Vec<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Boot→delete cycles: closed (--concurrency) or open (--rate) load model.
    BootDelete {
        /// Closed model: workers looping boot→delete (comma-separated: one level each).
        #[arg(long, value_delimiter = ',', conflicts_with = "rate")]
        concurrency: Option<Vec<u32>>,
        /// Open model: arrivals per model second (comma-separated: one level each).
        #[arg(long, value_delimiter = ',')]
        rate: Option<Vec<f64>>,
        /// Length of each level, model seconds.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Open model: most workflows in flight; further starts wait (late) …
        #[arg(long, default_value_t = 5000)]
        max_in_flight: u32,
        /// … up to this many model seconds, then are dropped.
        #[arg(long, default_value_t = 10.0)]
        max_lateness: f64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Cloud name in clouds.yaml (also OS_CLOUD).
    #[arg(long)]
    os_cloud: Option<String>,
    /// Keystone URL, e.g. http://HOST/identity (also OS_AUTH_URL).
    #[arg(long)]
    auth_url: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long)]
    project_name: Option<String>,
    #[arg(long)]
    project_id: Option<String>,
    #[arg(long)]
    user_domain_name: Option<String>,
    #[arg(long)]
    project_domain_name: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Catalog interface (public, internal, admin).
    #[arg(long)]
    interface: Option<String>,
    /// Entry point auth URL; repeat to spread the load over several.
    #[arg(long = "entry")]
    entries: Vec<String>,
    /// How requests are spread over the entries: single, round-robin, random.
    #[arg(long, default_value = "round-robin")]
    entry_policy: EntryPolicy,
    /// Flavor name or ID.
    #[arg(long, default_value = "m1.tiny")]
    flavor: String,
    /// Image name or ID.
    #[arg(long, default_value = "cirros-0.6.2-x86_64-disk")]
    image: String,
    /// Network name or ID.
    #[arg(long, default_value = "private")]
    network: String,
    /// Do not ask for a network (let Nova choose).
    #[arg(long)]
    no_network: bool,
    /// Mean poll interval of GET /servers/{id}, model seconds (jittered ±10 %).
    #[arg(long, default_value_t = 2.0)]
    poll_interval: f64,
    /// A boot not final after this many model seconds is a timeout (Rally: 300).
    #[arg(long, default_value_t = 300.0)]
    poll_timeout: f64,
    /// Longest wait for a deleted server to be gone, model seconds.
    #[arg(long, default_value_t = 120.0)]
    delete_timeout: f64,
    /// Pause between levels, model seconds.
    #[arg(long, default_value_t = 0.0)]
    pause: f64,
    /// Wall seconds per model second (default: the target's /mock/v1/info, else 1).
    #[arg(long)]
    time_scale: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-HTTP-request timeout, wall seconds.
    #[arg(long, default_value_t = 60.0)]
    http_timeout: f64,
    /// Results file (JSON), written atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Label of the system under test in the results (e.g. standard, p2p).
    #[arg(long, default_value = "external")]
    label: String,
    /// Leave per-request records out of the results file.
    #[arg(long)]
    no_requests: bool,
    /// Audit with all_tenants=1 (admin).
    #[arg(long)]
    all_tenants: bool,
    /// Audit at every entry (entries are separate clouds, not a federation).
    #[arg(long)]
    audit_every_entry: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

impl Common {
    fn target(&self) -> anyhow::Result<Target> {
        let flags = Credentials {
            auth_url: self.auth_url.clone().unwrap_or_default(),
            username: self.username.clone().unwrap_or_default(),
            password: self.password.clone().unwrap_or_default(),
            project_name: self.project_name.clone(),
            project_id: self.project_id.clone(),
            user_domain_name: self.user_domain_name.clone(),
            user_domain_id: None,
            project_domain_name: self.project_domain_name.clone(),
            project_domain_id: None,
            region_name: self.region.clone(),
            interface: self.interface.clone(),
        };
        Ok(Target::resolve(
            self.os_cloud.as_deref(),
            &flags,
            self.entries.clone(),
            self.entry_policy,
            &cloudsyaml::process_env,
        )?)
    }

    fn burst_config(&self, levels: Vec<u32>) -> BurstConfig {
        BurstConfig {
            levels,
            flavor: self.flavor.clone(),
            image: self.image.clone(),
            network: (!self.no_network).then(|| self.network.clone()),
            poll_interval_s: self.poll_interval,
            poll_timeout_s: self.poll_timeout,
            delete_timeout_s: self.delete_timeout,
            pause_between_levels_s: self.pause,
            seed: self.seed,
            time_scale: self.time_scale,
            quiet: self.quiet,
            record_requests: !self.no_requests,
            audit_all_tenants: self.all_tenants,
            audit_every_entry: self.audit_every_entry,
            system: results::SystemInfo {
                label: self.label.clone(),
                kind: Some("external".into()),
                backend: Some("external".into()),
                ..Default::default()
            },
            command_line: std::env::args().collect(),
            ..BurstConfig::default()
        }
    }

    fn transport(&self) -> anyhow::Result<SharedTransport> {
        if !(self.http_timeout.is_finite() && self.http_timeout > 0.0) {
            anyhow::bail!("--http-timeout must be positive");
        }
        let t = ReqwestTransport::new(Duration::from_secs_f64(self.http_timeout))
            .context("cannot build the HTTP client")?;
        Ok(Arc::new(t))
    }
}

fn install_ctrl_c(cancel: CancellationToken) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("loadgen: interrupted; deleting what was created and writing results (Ctrl-C again to quit at once)");
        cancel.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("loadgen: quitting without cleanup; servers may be left behind");
            std::process::exit(130);
        }
    });
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let cancel = CancellationToken::new();
    install_ctrl_c(cancel.clone());
    let (results, out) = match cli.command {
        Command::BootBurst { levels, common } => {
            let target = common.target()?;
            let cfg = common.burst_config(levels);
            let transport = common.transport()?;
            (
                loadgen::run_boot_burst(&cfg, &target, transport, cancel).await?,
                common.out,
            )
        }
        Command::BootDelete {
            concurrency,
            rate,
            duration,
            max_in_flight,
            max_lateness,
            common,
        } => {
            let model = match (concurrency, rate) {
                (Some(c), None) => BootDeleteModel::Closed {
                    concurrency: c,
                    duration_s: duration,
                },
                (None, Some(r)) => BootDeleteModel::Open {
                    rates: r,
                    duration_s: duration,
                    max_in_flight,
                    max_lateness_s: max_lateness,
                },
                _ => anyhow::bail!("boot-delete needs --concurrency (closed) or --rate (open)"),
            };
            let target = common.target()?;
            let cfg = BootDeleteConfig {
                base: common.burst_config(Vec::new()),
                model,
            };
            let transport = common.transport()?;
            (
                loadgen::run_boot_delete(&cfg, &target, transport, cancel).await?,
                common.out,
            )
        }
    };
    if let Some(path) = &out {
        loadgen::write_results_atomic(path, &results)?;
    }
    print!("{}", loadgen::summary_table(&results));
    if let Some(path) = &out {
        println!("results: {}", path.display());
    }
    Ok(results.complete)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(130),
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
