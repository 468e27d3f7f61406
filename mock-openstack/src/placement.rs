//! Placement: one resource provider per compute node, with inventories
//! and usages taken from the live capacity books.

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use os_wire::Service;
use serde_json::{json, Value};

use crate::capacity::ComputeNode;
use crate::error::ApiResult;
use crate::http::ok;
use crate::state::State;
use os_wire::ApiError;

const S: Service = Service::Placement;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/placement", get(versions))
        .route("/placement/resource_providers", get(providers))
        .route("/placement/resource_providers/{uuid}", get(provider))
        .route(
            "/placement/resource_providers/{uuid}/inventories",
            get(inventories),
        )
        .route("/placement/resource_providers/{uuid}/usages", get(usages))
}

async fn versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    let base = st.base_url(&headers);
    ok(json!({"versions": [{
        "id": "v1.0", "min_version": "1.0", "max_version": "1.39", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{base}/placement/")}],
    }]}))
}

fn rp_view(base: &str, uuid: &str, name: &str) -> Value {
    let l = |rel: &str, suffix: &str| json!({"rel": rel, "href": format!("{base}/placement/resource_providers/{uuid}{suffix}")});
    json!({
        "uuid": uuid, "name": name, "generation": 1,
        "parent_provider_uuid": null, "root_provider_uuid": uuid,
        "links": [l("self", ""), l("inventories", "/inventories"), l("usages", "/usages")],
    })
}

/// Finds the provider and a snapshot of its node.
fn lookup(st: &State, uuid: &str) -> ApiResult<(String, ComputeNode)> {
    let p = st
        .providers
        .iter()
        .find(|p| p.uuid == uuid)
        .ok_or_else(|| {
            ApiError::not_found(S, format!("No resource provider with uuid {uuid} found"))
        })?;
    let g = st.lock();
    let node = g
        .capacity
        .nodes
        .iter()
        .find(|n| n.hostname == p.hostname)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(S, format!("No resource provider with uuid {uuid} found"))
        })?;
    Ok((p.uuid.clone(), node))
}

async fn providers(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let base = st.base_url(&headers);
    let list: Vec<Value> = st
        .providers
        .iter()
        .map(|p| rp_view(&base, &p.uuid, &p.hostname))
        .collect();
    Ok(ok(json!({ "resource_providers": list })))
}

async fn provider(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let (uuid, node) = lookup(&st, &uuid)?;
    Ok(ok(rp_view(&st.base_url(&headers), &uuid, &node.hostname)))
}

async fn inventories(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let (_, n) = lookup(&st, &uuid)?;
    let inv = |total: u64, ratio: f64| json!({"total": total, "reserved": 0, "min_unit": 1, "max_unit": total, "step_size": 1, "allocation_ratio": ratio});
    Ok(ok(json!({
        "resource_provider_generation": 1,
        "inventories": {
            "VCPU": inv(n.vcpus, n.cpu_allocation_ratio),
            "MEMORY_MB": inv(n.ram_mb, n.ram_allocation_ratio),
            "DISK_GB": inv(n.disk_gb, n.disk_allocation_ratio),
        },
    })))
}

async fn usages(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let (_, n) = lookup(&st, &uuid)?;
    Ok(ok(json!({
        "resource_provider_generation": 1,
        "usages": {"VCPU": n.used.vcpus, "MEMORY_MB": n.used.ram_mb, "DISK_GB": n.used.disk_gb},
    })))
}
