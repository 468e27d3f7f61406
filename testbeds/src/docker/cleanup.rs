//! Cleanup of a Docker testbed, whatever way the run ends.
//!
//! Every container of a run carries the label `p2pstack.run=<run id>` and
//! sits on the network `<run id>-net` (labelled the same). Three paths
//! remove them:
//!
//! - normal exit: [`super::DockerTestbed::shutdown`] calls [`sweep`];
//! - failure or panic: the testbed's [`RunGuard`] sweeps on drop (a
//!   partially started testbed included);
//! - Ctrl-C / SIGTERM: a watcher thread (installed with the first run)
//!   sweeps every registered run, then exits the process with status 130.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use testcontainers::bollard::models::NetworkCreateRequest;
use testcontainers::bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use testcontainers::bollard::Docker;

/// Label put on every container and network of a run.
pub const RUN_LABEL: &str = "p2pstack.run";

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("cannot reach the Docker engine: {0}")]
    Engine(String),
    #[error("docker API call failed: {0}")]
    Api(String),
}

fn api(e: testcontainers::bollard::errors::Error) -> CleanupError {
    CleanupError::Api(e.to_string())
}

/// A Docker API client that speaks the engine's API version.
pub async fn connect() -> Result<Docker, CleanupError> {
    Docker::connect_with_local_defaults()
        .map_err(|e| CleanupError::Engine(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| CleanupError::Engine(e.to_string()))
}

fn run_filter(run_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])])
}

/// Creates the run's private bridge network (labelled with the run id).
pub async fn create_network(docker: &Docker, run_id: &str, name: &str) -> Result<(), CleanupError> {
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(HashMap::from([(RUN_LABEL.to_string(), run_id.to_string())])),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(api)
}

/// Names of the containers (any state) labelled with `run_id`.
pub async fn containers_of(docker: &Docker, run_id: &str) -> Result<Vec<String>, CleanupError> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(run_filter(run_id)),
            ..Default::default()
        }))
        .await
        .map_err(api)?;
    Ok(list
        .into_iter()
        .filter_map(|c| c.id.or_else(|| c.names.and_then(|n| n.into_iter().next())))
        .collect())
}

/// Names of the networks labelled with `run_id`.
pub async fn networks_of(docker: &Docker, run_id: &str) -> Result<Vec<String>, CleanupError> {
    let list = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(run_filter(run_id)),
        }))
        .await
        .map_err(api)?;
    Ok(list.into_iter().filter_map(|n| n.name).collect())
}

/// Force-removes every container of `run_id` (SIGKILL, no grace) and then
/// its networks (`network` by name, plus any labelled with the run).
/// Returns how many containers were removed.
pub async fn sweep(run_id: &str, network: &str) -> Result<usize, CleanupError> {
    let docker = connect().await?;
    let ids = containers_of(&docker, run_id).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let d = docker.clone();
        tasks.spawn(async move {
            d.remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
            .is_ok()
        });
    }
    let mut removed = 0;
    while let Some(r) = tasks.join_next().await {
        if matches!(r, Ok(true)) {
            removed += 1;
        }
    }
    let mut nets = networks_of(&docker, run_id).await.unwrap_or_default();
    if !nets.iter().any(|n| n == network) {
        nets.push(network.to_string());
    }
    for n in nets {
        remove_network(&docker, &n).await;
    }
    Ok(removed)
}

/// Removes a network, retrying for a few seconds: the engine may still be
/// releasing the endpoint of a container it has just removed ("has active
/// endpoints"). A network already gone (404) counts as removed.
async fn remove_network(docker: &Docker, name: &str) {
    use testcontainers::bollard::errors::Error;
    for _ in 0..40 {
        match docker.remove_network(name).await {
            Ok(())
            | Err(Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
    eprintln!(
        "docker network {name} could not be removed; remove it with: docker network rm {name}"
    );
}

/// [`sweep`] from synchronous code (a `Drop`), on a thread of its own so
/// that it works inside or outside an async runtime.
pub fn sweep_blocking(run_id: &str, network: &str) -> Result<usize, CleanupError> {
    let (run_id, network) = (run_id.to_string(), network.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CleanupError::Engine(e.to_string()))?;
        rt.block_on(sweep(&run_id, &network))
    })
    .join()
    .unwrap_or_else(|_| Err(CleanupError::Engine("the cleanup thread panicked".into())))
}

/// Set when Ctrl-C or SIGTERM arrived: the watcher owns the cleanup and
/// will exit the process.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs alive in this process: run id → network name.
fn active() -> &'static Mutex<BTreeMap<String, String>> {
    static ACTIVE: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    ACTIVE.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Removes a run on drop (failure, panic, early return) unless disarmed
/// by a clean shutdown; registers the run with the signal watcher.
pub struct RunGuard {
    pub run_id: String,
    pub network: String,
    armed: bool,
}

impl RunGuard {
    pub fn new(run_id: String, network: String) -> Self {
        install_signal_watcher();
        if let Ok(mut a) = active().lock() {
            a.insert(run_id.clone(), network.clone());
        }
        Self {
            run_id,
            network,
            armed: true,
        }
    }

    /// The run was removed cleanly: nothing left to do on drop.
    pub fn disarm(&mut self) {
        self.armed = false;
        if let Ok(mut a) = active().lock() {
            a.remove(&self.run_id);
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.armed {
            match sweep_blocking(&self.run_id, &self.network) {
                Ok(n) if n > 0 => {
                    eprintln!(
                        "docker testbed {}: removed {n} container(s) and its network",
                        self.run_id
                    )
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "docker testbed {}: cleanup failed ({e}); remove with: docker rm -f $(docker ps -aq --filter label={RUN_LABEL}={}) && docker network rm {}",
                    self.run_id, self.run_id, self.network
                ),
            }
        }
        self.disarm();
    }
}

/// Installs (once per process) a thread that, on Ctrl-C or SIGTERM,
/// removes the containers and networks of every active run and exits 130.
fn install_signal_watcher() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("p2pstack-docker-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = ready_tx.send(());
                    return;
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        let _ = ready_tx.send(());
                        return;
                    };
                    let _ = ready_tx.send(());
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    let runs: Vec<(String, String)> = active()
                        .lock()
                        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    for (run, net) in runs {
                        eprintln!("interrupted: removing the containers of docker testbed {run}");
                        if let Err(e) = sweep(&run, &net).await {
                            eprintln!("docker testbed {run}: cleanup failed: {e}");
                        }
                    }
                    std::process::exit(130);
                });
            });
        if spawned.is_ok() {
            // Wait until the handlers are in place (bounded, never hangs).
            let _ = ready_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    });
}
