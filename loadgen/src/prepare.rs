//! Before any load: authenticate at every entry, check the catalog, resolve
//! flavor/image/network, find the time scale. Every failure here is one
//! clear line and the run does not start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use os_client::{compute, image, network, ClientError, OpenStackSession, SharedTransport};
use serde_json::Value;

use crate::config::BurstConfig;
use crate::target::Target;
use crate::LoadgenError;

/// Longest wait for one preparation step at one entry (wall time).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(15);

/// One ready entry point.
#[derive(Debug)]
pub struct Entry {
    pub url: String,
    pub session: Arc<OpenStackSession>,
    pub flavor_id: String,
    pub image_id: String,
    pub network_id: Option<String>,
}

/// Everything a run needs from its target.
#[derive(Debug)]
pub struct Prepared {
    pub entries: Vec<Arc<Entry>>,
    pub time_scale: cp_model::TimeScale,
    pub time_scale_source: String,
}

async fn step<T>(
    entry: &str,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, LoadgenError> {
    match tokio::time::timeout(PREPARE_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LoadgenError::target(entry, what, &e)),
        Err(_) => Err(LoadgenError::Target {
            entry: entry.to_string(),
            what: format!("{what}: no answer within {PREPARE_TIMEOUT:?}"),
        }),
    }
}

async fn prepare_entry(
    cfg: &BurstConfig,
    target: &Target,
    transport: SharedTransport,
    url: String,
) -> Result<Entry, LoadgenError> {
    let creds = target.credentials.with_auth_url(url.clone());
    let session = step(
        &url,
        "authentication",
        OpenStackSession::connect(transport, creds),
    )
    .await?;
    session
        .endpoint(compute::SERVICE)
        .map_err(|e| LoadgenError::target(&url, "catalog", &e))?;
    let flavor = step(
        &url,
        "flavor lookup",
        compute::find_flavor(&session, &cfg.flavor),
    )
    .await?;
    // Without an image (network) service in the catalog, the value is used as an ID.
    let image_id = if session.endpoint(image::SERVICE).is_ok() {
        step(
            &url,
            "image lookup",
            image::find_image(&session, &cfg.image),
        )
        .await?
        .id
    } else {
        cfg.image.clone()
    };
    let network_id = match &cfg.network {
        Some(n) if session.endpoint(network::SERVICE).is_ok() => Some(
            step(&url, "network lookup", network::find_network(&session, n))
                .await?
                .id,
        ),
        Some(n) => Some(n.clone()),
        None => None,
    };
    Ok(Entry {
        url,
        session: Arc::new(session),
        flavor_id: flavor.id,
        image_id,
        network_id,
    })
}

/// `GET <base>/mock/v1/info` → `time_scale`, when the target is the mock.
pub async fn target_time_scale(transport: &SharedTransport, base_url: &str) -> Option<f64> {
    let url = format!("{base_url}/mock/v1/info");
    let req = http::Request::get(&url).body(Bytes::new()).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), transport.call(req))
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = serde_json::from_slice(resp.body()).ok()?;
    v.get("time_scale")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t > 0.0)
}

/// Prepares every entry concurrently; the first failure is returned.
pub async fn prepare(
    cfg: &BurstConfig,
    target: &Target,
    transport: SharedTransport,
) -> Result<Prepared, LoadgenError> {
    cfg.validate()?;
    let urls = target.entry_urls();
    if urls.is_empty() {
        return Err(LoadgenError::Config(
            "no entry point: give --auth-url, --entry or --os-cloud".into(),
        ));
    }
    let futs = urls
        .iter()
        .map(|u| prepare_entry(cfg, target, transport.clone(), u.clone()));
    let mut entries = Vec::with_capacity(urls.len());
    for r in futures::future::join_all(futs).await {
        entries.push(Arc::new(r?));
    }
    let (time_scale, source) = match cfg.time_scale {
        Some(t) => (t, "flag"),
        None => {
            let base = target.credentials.with_auth_url(urls[0].clone()).base_url();
            match target_time_scale(&transport, &base).await {
                Some(t) => (t, "target"),
                None => (1.0, "default"),
            }
        }
    };
    let time_scale = cp_model::TimeScale::new(time_scale)
        .map_err(|e| LoadgenError::Config(format!("--time-scale: {e}")))?;
    Ok(Prepared {
        entries,
        time_scale,
        time_scale_source: source.to_string(),
    })
}
