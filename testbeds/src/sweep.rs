//! Runs loadgen's boot-burst sweep against a running testbed and, in the
//! cloudlet-loss scenario, stops members in the middle of each level.

use std::time::Duration;

use anyhow::{Context, Result};
use loadgen::{BurstConfig, CancellationToken, EntryPolicy, LevelEvent, Target};

use crate::backend::Testbed;
use crate::compare::CompareArgs;
use crate::scenario::{self, Scenario};
use crate::topology::Kind;

/// The loadgen configuration shared by both testbeds of a comparison.
pub fn burst_config(args: &CompareArgs, levels: &[u32], time_scale: f64) -> BurstConfig {
    BurstConfig {
        levels: levels.to_vec(),
        poll_interval_s: args.poll_interval,
        poll_timeout_s: args.poll_timeout,
        seed: args.seed,
        time_scale: Some(time_scale),
        quiet: args.quiet,
        name_prefix: "cmp".into(),
        host_measured_by_caller: true,
        ..BurstConfig::default()
    }
}

/// Sweeps `levels` against `tb`. Ctrl-C cancels the sweep; loadgen then
/// deletes what it created and returns the results so far, marked incomplete.
/// Also returns when the last disturbance of the sweep ends (a partition's
/// end; the kill itself for the scenarios that stop members), `None` when
/// nothing was disturbed.
pub async fn run_sweep(
    args: &CompareArgs,
    tb: &mut Testbed,
    levels: &[u32],
    time_scale: f64,
) -> Result<(results::RunResults, Option<tokio::time::Instant>)> {
    let entries = tb.entries();
    // The sharded control's client spreads its boots itself, like P2P's.
    let policy = if tb.spec().kind.is_federated() {
        EntryPolicy::RoundRobin
    } else {
        EntryPolicy::Single
    };
    let target = Target::password(entries, "demo", "secret", "demo", policy);
    let transport = tb
        .client_transport(Duration::from_secs(60))
        .context("cannot create the HTTP client")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = burst_config(args, levels, time_scale);
    cfg.events = Some(tx);
    cfg.check_lost = args.scenario.checks_durability();
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: cleaning up and writing the results so far…");
            on_ctrl_c.cancel();
        }
    });

    let kill_count = if args.scenario.disturbs() {
        scenario::parse_kill(&args.kill, tb.spec().members).map_err(anyhow::Error::msg)?
    } else {
        0
    };
    let scale = cp_model::TimeScale::new(time_scale).map_err(anyhow::Error::msg)?;
    let mut disturbance_end = None;
    let sweep = loadgen::run_boot_burst(&cfg, &target, transport, cancel);
    tokio::pin!(sweep);
    // Kills wait for their moment in a select branch, so that the sweep
    // future keeps being polled meanwhile.
    let mut pending_kill: Option<(tokio::time::Instant, usize)> = None;
    let outcome = loop {
        let kill_at = pending_kill.map(|(at, _)| at);
        tokio::select! {
            // Fixed order: the same run on virtual time repeats exactly.
            biased;
            res = &mut sweep => break res,
            Some(ev) = rx.recv() => {
                if let LevelEvent::AllAnswered { index, .. } = ev {
                    if kill_count > 0 {
                        // "Middle of the level": a few model seconds after
                        // every boot POST was answered, while the accepted
                        // boots are in flight (a POST still unanswered at the
                        // kill would test the client's transport, not the
                        // federation, and depends on host load).
                        let delay = scale.wall(args.kill_after);
                        pending_kill = Some((cp_model::clock::now() + delay, index));
                    }
                }
            }
            _ = sleep_until_opt(kill_at) => {
                if let Some((_, index)) = pending_kill.take() {
                    let seed = args.seed.wrapping_add(index as u64);
                    let victims = scenario::choose_victims(tb.spec().members, kill_count, seed);
                    match disturb(args, tb, &victims, index, scale).await {
                        Ok(until) => disturbance_end = Some(until),
                        Err(e) => {
                            ctrl_c.abort();
                            return Err(e.context(format!("cannot disturb level {}", index + 1)));
                        }
                    }
                }
            }
        }
    };
    ctrl_c.abort();
    Ok((outcome.context("loadgen failed")?, disturbance_end))
}

/// Disturbs `victims` as the scenario says; returns when the disturbance
/// ends (now, for the ones that stop members for good).
async fn disturb(
    args: &CompareArgs,
    tb: &mut Testbed,
    victims: &[u32],
    index: usize,
    scale: cp_model::TimeScale,
) -> Result<tokio::time::Instant> {
    let kind = tb.spec().kind;
    match args.scenario {
        Scenario::Steady => {}
        Scenario::CloudletLoss => match kind {
            Kind::P2p | Kind::Sharded => {
                for &v in victims {
                    tracing::info!(member = v, level = index, "stopping cloudlet");
                    tb.kill(v).await;
                }
            }
            // The monolith cannot lose part of its controller; it
            // loses the same share of compute nodes instead.
            Kind::Standard | Kind::Cells => {
                let transport = tb.client_transport(Duration::from_secs(30))?;
                let hosts = host_names(tb.spec(), victims);
                if let Err(e) = lose_computes(&tb.entries(), &hosts, transport).await {
                    tracing::warn!(error = %e, "cannot inject compute-node loss");
                }
            }
        },
        // Never run on the other systems (`Scenario::not_applicable`).
        _ if kind != Kind::P2p => {
            anyhow::bail!(
                "{} does not apply to the {} system",
                args.scenario.name(),
                kind.label()
            )
        }
        Scenario::AgentLoss => {
            for &v in victims {
                tracing::info!(member = v, level = index, "stopping agent");
                tb.kill_agent(v).await?;
            }
        }
        Scenario::Partition => {
            let transport = tb.client_transport(Duration::from_secs(30))?;
            let urls = tb.cloudlet_auth_urls()?;
            for &v in victims {
                tracing::info!(member = v, level = index, "cutting cloudlet off");
                let url = urls
                    .get(v as usize)
                    .cloned()
                    .flatten()
                    .with_context(|| format!("member {v} has no cloudlet"))?;
                crate::chaos::partition(transport.clone(), &url, args.partition_for).await?;
            }
            // Measured from the last cut: every victim is off at least this long.
            return Ok(cp_model::clock::now() + scale.wall(args.partition_for));
        }
    }
    Ok(cp_model::clock::now())
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hostnames of the one deployment's compute nodes `victims` (0-based).
fn host_names(spec: &crate::embedded::TestbedSpec, victims: &[u32]) -> Vec<String> {
    let name = crate::embedded::member_name(spec.kind, 0);
    let cfg = crate::embedded::mock_config(spec, name, spec.members, spec.seed);
    victims.iter().map(|v| cfg.host_name(v + 1)).collect()
}

/// Asks the one deployment's mock to lose compute nodes `hosts` through its
/// admin fault API.
async fn lose_computes(
    entries: &[String],
    hosts: &[String],
    transport: os_client::SharedTransport,
) -> Result<()> {
    let auth_url = entries.first().context("the testbed has no entry point")?;
    let creds = os_client::Credentials::password(auth_url.clone(), "admin", "secret", "admin");
    let session = os_client::OpenStackSession::connect(transport, creds)
        .await
        .context("cannot authenticate as admin")?;
    let url = format!(
        "{}/mock/v1/faults/lose-node",
        auth_url.trim_end_matches("/identity")
    );
    for name in hosts {
        tracing::info!(host = %name, "losing compute node");
        let resp = session
            .send(
                "compute",
                http::Method::POST,
                &url,
                Some(&serde_json::json!({ "name": name })),
            )
            .await
            .with_context(|| format!("cannot lose {name}"))?;
        if resp.status >= 300 {
            anyhow::bail!(
                "losing {name}: HTTP {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
        }
    }
    Ok(())
}
