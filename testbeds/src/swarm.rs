//! `testbed swarm`: the exported Swarm stack ([`crate::export::swarm`])
//! deployed on the local Docker engine, the standard testbed then the P2P
//! one, each with its load generator; the results come back from the
//! load generator's container and the same report as `testbed compare` is
//! rendered.
//!
//! Everything goes through the `docker` CLI (stack deploy is a CLI
//! feature, not an engine API). What the run creates is removed on return,
//! on error and on panic by guards, and on Ctrl-C because the wait loops
//! stop and return an error ([`interrupt`]): the stacks, their network,
//! volume and secret, and, only when this run initialised it, the swarm
//! membership (`docker swarm leave --force`) and the `docker_gwbridge`
//! network that `swarm init` makes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::embedded::TestbedSpec;
use crate::export::{self, Export};
use crate::topology::{self, Kind};

/// Set by the Ctrl-C handler: every wait loop gives up and the guards clean.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks a running [`run`] to stop and clean up.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SwarmRun {
    pub cloudlets: u32,
    pub levels: Vec<u32>,
    pub profile: String,
    pub time_scale: f64,
    pub seed: u64,
    pub retries: u32,
    /// Report directory (results in `<out>/results`).
    pub out: PathBuf,
    /// Longest wait for a stack to be up, and for a load generator to end.
    pub ready_timeout: Duration,
    pub run_timeout: Duration,
}

/// Runs `docker args…`; its stdout, or an error with its stderr.
fn docker(args: &[&str]) -> Result<String> {
    docker_stdin(args, None)
}

fn docker_stdin(args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run docker {}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .context("cannot write to docker's stdin")?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("docker {} did not finish", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `LocalNodeState` of the engine: inactive, active, pending, error, locked.
pub fn swarm_state() -> Result<String> {
    Ok(docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?
        .trim()
        .to_string())
}

fn network_exists(name: &str) -> bool {
    docker(&["network", "inspect", name]).is_ok()
}

/// Swarm membership for the run: initialised (loopback only) when the
/// engine was not in a swarm, and then left again when dropped, whatever
/// happened in between. A swarm that existed before is used and left alone.
pub struct SwarmMembership {
    initialised: bool,
    gwbridge_created: bool,
}

impl SwarmMembership {
    pub fn join() -> Result<Self> {
        let state = swarm_state()?;
        match state.as_str() {
            "active" => Ok(Self {
                initialised: false,
                gwbridge_created: false,
            }),
            "inactive" => {
                let had_gwbridge = network_exists("docker_gwbridge");
                // From here on, drop leaves the swarm even if init half failed.
                let me = Self {
                    initialised: true,
                    gwbridge_created: !had_gwbridge,
                };
                docker(&[
                    "swarm",
                    "init",
                    "--advertise-addr",
                    "127.0.0.1",
                    "--listen-addr",
                    "127.0.0.1:2377",
                ])
                .context("docker swarm init")?;
                eprintln!("testbed: initialised a single-node swarm (left again at the end)");
                Ok(me)
            }
            other => bail!("the engine's swarm state is {other:?}; expected active or inactive"),
        }
    }

    pub fn initialised(&self) -> bool {
        self.initialised
    }
}

impl Drop for SwarmMembership {
    fn drop(&mut self) {
        if !self.initialised {
            return;
        }
        if let Err(e) = docker(&["swarm", "leave", "--force"]) {
            eprintln!(
                "testbed: could not leave the swarm: {e:#}; run `docker swarm leave --force`"
            );
        }
        if self.gwbridge_created {
            // The swarm's endpoints on it go shortly after the leave;
            // removed only once nothing else uses it.
            for _ in 0..40 {
                if docker(&["network", "rm", "docker_gwbridge"]).is_ok()
                    || !network_exists("docker_gwbridge")
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            eprintln!("testbed: docker_gwbridge is still in use; remove it with `docker network rm docker_gwbridge`");
        }
    }
}

/// One deployed stack; dropping it removes the stack, then its network,
/// volume and secret, once its containers are gone.
pub struct StackGuard {
    pub name: String,
    secret: Option<String>,
}

const STACK_LABEL: &str = "com.docker.stack.namespace";

impl StackGuard {
    fn filter(&self) -> String {
        format!("label={STACK_LABEL}={}", self.name)
    }

    /// Names of what is left of the stack: services, containers,
    /// networks, volumes, secret.
    pub fn leftovers(&self) -> Vec<String> {
        let f = self.filter();
        let mut left = Vec::new();
        for (what, args) in [
            ("service", vec!["service", "ls", "-q", "--filter", &f]),
            ("container", vec!["ps", "-aq", "--filter", &f]),
            ("network", vec!["network", "ls", "-q", "--filter", &f]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &f]),
        ] {
            if let Ok(out) = docker(&args) {
                left.extend(lines(&out).into_iter().map(|id| format!("{what} {id}")));
            }
        }
        if let Some(s) = &self.secret {
            if docker(&["secret", "inspect", s]).is_ok() {
                left.push(format!("secret {s}"));
            }
        }
        left
    }

    fn remove(&mut self) {
        let f = self.filter();
        let _ = docker(&["stack", "rm", &self.name]);
        // Task containers and the network go asynchronously.
        for _ in 0..120 {
            let containers = docker(&["ps", "-aq", "--filter", &f])
                .map(|o| lines(&o))
                .unwrap_or_default();
            let networks = docker(&["network", "ls", "-q", "--filter", &f])
                .map(|o| lines(&o))
                .unwrap_or_default();
            if containers.is_empty() && networks.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for id in docker(&["ps", "-aq", "--filter", &f])
            .map(|o| lines(&o))
            .unwrap_or_default()
        {
            let _ = docker(&["rm", "-f", &id]);
        }
        for id in docker(&["network", "ls", "-q", "--filter", &f])
            .map(|o| lines(&o))
            .unwrap_or_default()
        {
            let _ = docker(&["network", "rm", &id]);
        }
        for id in docker(&["volume", "ls", "-q", "--filter", &f])
            .map(|o| lines(&o))
            .unwrap_or_default()
        {
            let _ = docker(&["volume", "rm", "-f", &id]);
        }
        if let Some(s) = self.secret.take() {
            let _ = docker(&["secret", "rm", &s]);
        }
    }
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `GET path` on `ip:port` (HTTP/1.0, the whole body), 2 s bound.
fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

/// Address of each running container of the stack on `docker_gwbridge`,
/// the local bridge through which swarm tasks leave their overlay: the
/// only address the host can reach an unpublished task at.
fn gwbridge_addresses() -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Endpoint {
        #[serde(rename = "IPv4Address")]
        ipv4: String,
    }
    let out = docker(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{json .Containers}}",
    ])?;
    let map: BTreeMap<String, Endpoint> =
        serde_json::from_str(out.trim()).context("docker_gwbridge's containers")?;
    Ok(map
        .into_iter()
        .filter_map(|(id, e)| {
            let ip = e.ipv4.split('/').next()?.to_string();
            Some((id, ip))
        })
        .collect())
}

fn service_container(stack: &str, service: &str, all: bool) -> Result<Option<String>> {
    let f = format!("label=com.docker.swarm.service.name={stack}_{service}");
    let args: Vec<&str> = if all {
        vec!["ps", "-aq", "--no-trunc", "--filter", &f]
    } else {
        vec!["ps", "-q", "--no-trunc", "--filter", &f]
    };
    Ok(lines(&docker(&args)?).into_iter().next())
}

fn sleep_or_interrupt(d: Duration) -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    std::thread::sleep(d);
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Waits until every service of the stack but the load generator runs
/// its one replica.
fn wait_services(stack: &str, expected: usize, limit: Duration) -> Result<()> {
    let f = format!("label={STACK_LABEL}={stack}");
    let started = cp_model::clock::host_now();
    loop {
        let out = docker(&[
            "service",
            "ls",
            "--filter",
            &f,
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])?;
        let up = lines(&out)
            .iter()
            .filter(|l| !l.starts_with(&format!("{stack}_{}", export::swarm::LOADGEN)))
            .filter(|l| l.ends_with(" 1/1"))
            .count();
        if up >= expected {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{up} of {expected} services of {stack} running after {limit:?}");
        }
        sleep_or_interrupt(Duration::from_millis(500))?;
    }
}

/// Waits until every agent's `/metrics` counts every member alive.
fn wait_converged(stack: &str, members: u32, limit: Duration) -> Result<()> {
    let started = cp_model::clock::host_now();
    loop {
        let addrs = gwbridge_addresses().unwrap_or_default();
        let mut least = usize::MAX;
        for i in 0..members {
            let svc = export::service_name(Kind::P2p, i, "agent");
            let alive = service_container(stack, &svc, false)
                .ok()
                .flatten()
                .and_then(|id| addrs.get(&id).cloned())
                .and_then(|ip| http_get(&ip, crate::docker::testbed::API_PORT, "/metrics"))
                .and_then(|text| {
                    text.lines()
                        .find(|l| l.starts_with("p2p_members_alive"))
                        .and_then(|l| l.rsplit(' ').next())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .map(|v| v as usize)
                .unwrap_or(0);
            least = least.min(alive);
        }
        if least >= members as usize {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "the agents of {stack} did not all see each other within {limit:?} ({least} of {members} alive)"
            );
        }
        sleep_or_interrupt(Duration::from_millis(500))?;
    }
}

/// Starts the load generator and waits for its one task to end; its
/// final state (`Complete …`, `Failed …`).
fn run_loadgen(stack: &str, limit: Duration) -> Result<String> {
    let svc = format!("{stack}_{}", export::swarm::LOADGEN);
    docker(&["service", "scale", "--detach", &format!("{svc}=1")])?;
    let started = cp_model::clock::host_now();
    loop {
        let out = docker(&["service", "ps", &svc, "--format", "{{.CurrentState}}"])?;
        if let Some(state) = lines(&out).into_iter().next() {
            let word = state.split_whitespace().next().unwrap_or("");
            if ["Complete", "Failed", "Rejected", "Shutdown", "Orphaned"].contains(&word) {
                return Ok(state);
            }
        }
        if started.elapsed() > limit {
            bail!("the load generator of {stack} did not finish within {limit:?}");
        }
        sleep_or_interrupt(Duration::from_secs(1))?;
    }
}

/// Deploys one testbed, runs its load generator and returns its results.
fn run_kind(
    cfg: &SwarmRun,
    kind: Kind,
    results_dir: &Path,
    guards: &mut Vec<StackGuard>,
) -> Result<results::RunResults> {
    let spec = TestbedSpec {
        kind,
        members: cfg.cloudlets,
        cells: None,
        sizing: topology::for_profile(cfg.cloudlets, &cfg.profile, topology::M1_TINY)?,
        profile: cfg.profile.clone(),
        time_scale: cfg.time_scale,
        seed: cfg.seed,
        retries: cfg.retries,
        cluster_secret: crate::compare::random_secret(),
        gossip_interval_ms: None,
        overlay: Default::default(),
    };
    let e = Export::new(spec.clone(), cfg.levels.clone());
    let mut stack = export::swarm::stack(&e)?;
    let name = format!("p2pstack-{}-{}", std::process::id(), kind.label());
    let secret_name = format!("{name}-cluster-secret");
    for s in stack.secrets.values_mut() {
        s.name = secret_name.clone();
    }
    let file = results_dir.join(format!("{}-stack.yaml", kind.label()));
    std::fs::write(&file, serde_yaml::to_string(&stack)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let file_s = file.to_string_lossy().into_owned();
    let mut guard = StackGuard {
        name: name.clone(),
        secret: None,
    };
    if !stack.secrets.is_empty() {
        guard.secret = Some(secret_name.clone());
        docker_stdin(
            &["secret", "create", &secret_name, "-"],
            Some(&spec.cluster_secret),
        )?;
    }
    guards.push(guard);
    let started = cp_model::clock::host_now();
    docker(&["stack", "deploy", "-c", &file_s, &name])?;
    let services = stack.services.len() - 1;
    wait_services(&name, services, cfg.ready_timeout)?;
    if kind == Kind::P2p {
        wait_converged(&name, cfg.cloudlets, cfg.ready_timeout)?;
    }
    eprintln!(
        "{}: {services} services up in {:.1} s",
        kind.label(),
        started.elapsed().as_secs_f64()
    );
    let state = run_loadgen(&name, cfg.run_timeout)?;
    let cid = service_container(&name, export::swarm::LOADGEN, true)?
        .context("the load generator's container is gone")?;
    if let Ok(logs) = docker(&["logs", &cid]) {
        print!("{logs}");
    }
    if !state.starts_with("Complete") {
        let err = Command::new("docker")
            .args(["logs", &cid])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        bail!("the load generator of {name} ended {state}: {}", err.trim());
    }
    let dest = results_dir.join(format!("{}.json", kind.label()));
    docker(&[
        "cp",
        &format!("{cid}:{}", export::results_file(kind)),
        &dest.to_string_lossy(),
    ])?;
    let text = std::fs::read_to_string(&dest)
        .with_context(|| format!("cannot read {}", dest.display()))?;
    let mut run: results::RunResults = serde_json::from_str(&text)
        .with_context(|| format!("{} is not results", dest.display()))?;
    // The system as `testbed compare` describes it (see compare::run_one).
    let members = cfg.cloudlets;
    run.system.label = kind.label().to_string();
    run.system.kind = Some(kind.label().to_string());
    run.system.backend = Some("swarm".to_string());
    run.system.cloudlets = Some(if kind == Kind::P2p { members } else { 1 });
    run.system.computes = Some(members);
    run.system.profile = Some(cfg.profile.clone());
    let profile = cp_model::Profile::load(&cfg.profile).ok();
    run.system.profile_hash = profile.as_ref().map(|p| p.hash());
    run.system.retries = (kind == Kind::P2p).then_some(cfg.retries);
    run.system.scenario = Some("steady".to_string());
    let node_source = profile.map(|p| p.hardware.source).unwrap_or_default();
    run.system.capacity = Some(crate::capacity::deployed(&spec, &node_source));
    run.command_line = std::env::args().collect();
    std::fs::write(&dest, serde_json::to_vec_pretty(&run)?)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(run)
}

/// The whole run; returns the headline table. Everything it created is
/// gone when it returns, with or without an error.
pub fn run(cfg: &SwarmRun) -> Result<String> {
    if cfg.cloudlets == 0 {
        bail!("--cloudlets must be at least 1");
    }
    if cfg.levels.is_empty() {
        bail!("at least one level is needed");
    }
    if !crate::docker::docker_available() {
        bail!("no Docker engine is reachable (is the daemon running?)");
    }
    let image = format!(
        "{}:{}",
        crate::docker::images::IMAGE_NAME,
        crate::docker::images::IMAGE_TAG
    );
    docker(&["image", "inspect", &image])
        .with_context(|| format!("image {image} is missing; build it with `testbed images`"))?;
    let results_dir = cfg.out.join("results");
    std::fs::create_dir_all(&results_dir)
        .with_context(|| format!("cannot create {}", results_dir.display()))?;
    // Declared first, dropped last: the stacks go before the swarm.
    let membership = SwarmMembership::join()?;
    let mut guards = Vec::new();
    let mut runs = Vec::new();
    let outcome = (|| -> Result<()> {
        for kind in [Kind::Standard, Kind::P2p] {
            runs.push(run_kind(cfg, kind, &results_dir, &mut guards)?);
            // One testbed at a time, as `testbed compare` does.
            if let Some(mut g) = guards.pop() {
                g.remove();
                let left = g.leftovers();
                if !left.is_empty() {
                    bail!("stack {} left {left:?}", g.name);
                }
            }
        }
        Ok(())
    })();
    drop(guards);
    drop(membership);
    outcome?;
    let headline = reports::compare(
        &runs[0],
        &runs[1],
        &cfg.out,
        &reports::ReportOptions::default(),
    )
    .context("cannot render the report")?;
    Ok(headline.table())
}
