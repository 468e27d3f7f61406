//! The mock's own endpoints: `/mock/v1/info` (no auth), `/mock/v1/stats`
//! (engine statistics, no auth), the admin-only fault API
//! `/mock/v1/faults[/lose-node|/freeze|/api-unavailable]`, and `/metrics`
//! (Prometheus text, mock counters + engine stats).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cp_model::{FaultSet, Input};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use os_wire::{ApiError, Service};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiResult;
use crate::http::{json_response, ok};
use crate::state::State;

const S: Service = Service::Control;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/mock/v1/info", get(info))
        .route("/mock/v1/stats", get(stats))
        .route("/mock/v1/faults", get(faults_get).put(faults_put))
        .route("/mock/v1/faults/lose-node", post(lose_node))
        .route("/mock/v1/faults/freeze", post(freeze))
        .route("/mock/v1/faults/api-unavailable", post(api_unavailable))
        .route("/metrics", get(metrics))
}

/// Fault injection is for admins: 401 without a valid token, 403 otherwise.
fn require_admin(st: &State, headers: &HeaderMap) -> ApiResult<()> {
    if st.authenticate(headers, S)?.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            S,
            "Fault injection requires the admin role.",
        ))
    }
}

fn engine_gone() -> ApiError {
    ApiError::new(
        S,
        StatusCode::SERVICE_UNAVAILABLE,
        "The control-plane model is not running.",
    )
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(S, format!("Malformed request body: {e}")))
}

/// `GET /mock/v1/stats`: the engine's statistics (model time, per-stage
/// queues/waits/service times/utilization, boots by outcome and reason,
/// background load) as JSON.
async fn stats(AxState(st): AxState<Arc<State>>) -> ApiResult<Response> {
    let s = st.engine.stats().await.ok_or_else(engine_gone)?;
    Ok(json_response(StatusCode::OK, &s))
}

async fn faults_get(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&st, &headers)?;
    let f = st.engine.faults().await.ok_or_else(engine_gone)?;
    Ok(json_response(StatusCode::OK, &f))
}

/// `PUT /mock/v1/faults`: replaces the whole fault set (times are absolute
/// model seconds, see `GET /mock/v1/stats` `now`); answers the new set.
async fn faults_put(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&st, &headers)?;
    let set: FaultSet = parse(&body)?;
    st.engine
        .set_faults(set)
        .await
        .map_err(|e| ApiError::bad_request(S, e))?;
    faults_get(AxState(st), headers).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeName {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Duration {
    duration_s: f64,
}

/// Longest fault a shortcut may inject (model seconds): one day. A longer
/// (or infinite) one would leave the mock useless until restarted.
pub const MAX_FAULT_DURATION_S: f64 = 86_400.0;

fn duration(body: &[u8]) -> ApiResult<f64> {
    let Duration { duration_s } = parse(body)?;
    if !(duration_s.is_finite() && (0.0..=MAX_FAULT_DURATION_S).contains(&duration_s)) {
        return Err(ApiError::bad_request(
            S,
            format!(
                "Invalid input for field/attribute duration_s. Value: {duration_s}. \
                 Expected seconds within 0..={MAX_FAULT_DURATION_S}."
            ),
        ));
    }
    Ok(duration_s)
}

async fn shortcut(st: &State, input: Input) -> ApiResult<Response> {
    st.engine
        .input(input)
        .await
        .map_err(|e| ApiError::bad_request(S, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /mock/v1/faults/lose-node {"name"}`: the node is lost now.
async fn lose_node(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&st, &headers)?;
    let NodeName { name } = parse(&body)?;
    shortcut(&st, Input::LoseNode { name }).await
}

/// `POST /mock/v1/faults/freeze {"duration_s"}`: controller frozen from now.
async fn freeze(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&st, &headers)?;
    let duration_s = duration(&body)?;
    shortcut(&st, Input::FreezeController { duration_s }).await
}

/// `POST /mock/v1/faults/api-unavailable {"duration_s"}`: every API call
/// answered 503 from now for `duration_s` model seconds.
async fn api_unavailable(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&st, &headers)?;
    let duration_s = duration(&body)?;
    shortcut(&st, Input::ApiUnavailable { duration_s }).await
}

async fn info(AxState(st): AxState<Arc<State>>) -> Response {
    let c = &st.cfg;
    let (vcpus, ram_mb, disk_gb) = c.capacity();
    ok(json!({
        "name": c.name, "region": c.region, "profile": st.engine.profile_name,
        "profile_source": c.profile, "profile_hash": st.engine.profile_hash,
        "time_scale": c.time_scale, "computes": c.computes, "cells": c.cells,
        "model_time_s": st.engine.time.model_now(),
        "epoch": os_wire::time::rfc3339_micros(st.engine.time.epoch),
        "capacity": {
            "vcpus": vcpus, "ram_mb": ram_mb, "disk_gb": disk_gb,
            "after_allocation_ratios": true,
            "allocation_ratios": {"cpu": c.cpu_allocation_ratio, "ram": c.ram_allocation_ratio, "disk": c.disk_allocation_ratio},
        },
        "seed": c.seed,
    }))
}

/// Prometheus text exposition (the one non-JSON body, as scrapers expect).
async fn metrics(AxState(st): AxState<Arc<State>>) -> Response {
    let engine_stats = st.engine.stats().await;
    let mut out = String::new();
    let reqs = st.metrics.snapshot();
    let _ = writeln!(
        out,
        "# HELP mock_openstack_requests_total HTTP requests by service and status."
    );
    let _ = writeln!(out, "# TYPE mock_openstack_requests_total counter");
    for (svc, code, n) in reqs {
        let _ = writeln!(
            out,
            "mock_openstack_requests_total{{service=\"{svc}\",code=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# TYPE mock_openstack_requests_in_flight gauge");
    let _ = writeln!(
        out,
        "mock_openstack_requests_in_flight {}",
        st.metrics.in_flight.load(Ordering::Relaxed)
    );
    for (name, kind, v) in [
        (
            "mock_openstack_connections",
            "gauge",
            &st.metrics.connections,
        ),
        (
            "mock_openstack_connections_refused_total",
            "counter",
            &st.metrics.connections_refused,
        ),
        (
            "mock_openstack_accept_failures_total",
            "counter",
            &st.metrics.accept_failures,
        ),
    ] {
        let _ = writeln!(
            out,
            "# TYPE {name} {kind}\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let g = st.lock();
    let mut by_status: BTreeMap<&str, u64> = ["BUILD", "ACTIVE", "ERROR"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let mut deleting = 0u64;
    for s in g.servers.values() {
        *by_status.entry(s.lc.status()).or_insert(0) += 1;
        deleting += u64::from(s.lc.is_deleting());
    }
    let _ = writeln!(out, "# HELP mock_openstack_servers Servers by API status.");
    let _ = writeln!(out, "# TYPE mock_openstack_servers gauge");
    for (s, n) in by_status {
        let _ = writeln!(out, "mock_openstack_servers{{status=\"{s}\"}} {n}");
    }
    let _ = writeln!(out, "# TYPE mock_openstack_servers_deleting gauge");
    let _ = writeln!(out, "mock_openstack_servers_deleting {deleting}");
    let _ = writeln!(out, "# TYPE mock_openstack_boots_total counter");
    let _ = writeln!(
        out,
        "mock_openstack_boots_total{{result=\"active\"}} {}",
        g.boots_active
    );
    let _ = writeln!(
        out,
        "mock_openstack_boots_total{{result=\"error\"}} {}",
        g.boots_error
    );
    let _ = writeln!(out, "# TYPE mock_openstack_deletes_total counter");
    let _ = writeln!(out, "mock_openstack_deletes_total {}", g.deletes_done);
    let used = g.capacity.used();
    let _ = writeln!(out, "# TYPE mock_openstack_capacity_used gauge");
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"vcpus\"}} {}",
        used.vcpus
    );
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"ram_mb\"}} {}",
        used.ram_mb
    );
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"disk_gb\"}} {}",
        used.disk_gb
    );
    drop(g);
    if let Some(stats) = engine_stats {
        out.push_str(&stats.to_prometheus());
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
