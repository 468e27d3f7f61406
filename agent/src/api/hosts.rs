//! Admin views across the federation: hypervisors, aggregates, their
//! statistics, and the summed limits and quotas.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use os_wire::{ApiError, Service};
use serde_json::json;

use super::*;

/// The caller of an admin-only route: its context, or Nova's 403 naming
/// policy `rule`.
fn admin_ctx(core: &Core, headers: &HeaderMap, rule: &str) -> Result<Ctx, ApiError> {
    let c = ctx(core, headers, Service::Compute)?;
    if !c.claims.is_admin() {
        return Err(forbidden(Service::Compute, rule));
    }
    Ok(c)
}

/// A federated hypervisor ID (its number in the federated list) from an
/// ID or a host name.
pub(super) async fn hypervisor_number(core: &Core, c: &Ctx, id: &str) -> Result<u64, ApiError> {
    let nf = || {
        fault(
            Service::Compute,
            404,
            format!("Hypervisor with ID {id} could not be found."),
        )
    };
    if let Ok(n) = id.parse::<u64>() {
        return Ok(n);
    }
    let list = core
        .federated_numbered(
            &c.claims,
            &c.project,
            "/os-hypervisors",
            "hypervisors",
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    list.iter()
        .find(|h| h["hypervisor_hostname"] == id)
        .and_then(|h| h["id"].as_u64())
        .ok_or_else(nf)
}

/// `GET /os-hypervisors/{id}` and `…/uptime` through the federation.
pub(super) async fn hypervisor_part(
    core: Arc<Core>,
    headers: HeaderMap,
    id: String,
    suffix: &str,
) -> Result<Response, ApiError> {
    let c = admin_ctx(&core, &headers, "os_compute_api:os-hypervisors:show")?;
    let n = hypervisor_number(&core, &c, &id).await?;
    let cf = |e| call_fault(Service::Compute, e);
    let at = core
        .federated_find(
            &c.claims,
            &c.project,
            "/os-hypervisors",
            "hypervisors",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?
        .ok_or_else(|| {
            fault(
                Service::Compute,
                404,
                format!("Hypervisor with ID {id} could not be found."),
            )
        })?;
    let v = core
        .show_located(
            &c.claims,
            &c.project,
            &at,
            "/os-hypervisors",
            suffix,
            "hypervisor",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    Ok(json_resp(StatusCode::OK, &v))
}

pub(super) async fn hypervisor_show(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    hypervisor_part(core, headers, id, "").await
}

pub(super) async fn hypervisor_uptime(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    hypervisor_part(core, headers, id, "/uptime").await
}

/// Every cloudlet's host aggregates, numbered 1..N.
pub(super) async fn aggregates_list(
    State(core): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = admin_ctx(&core, &headers, "os_compute_api:os-aggregates:index")?;
    let list = core
        .federated_numbered(
            &c.claims,
            &c.project,
            "/os-aggregates",
            "aggregates",
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(StatusCode::OK, &json!({ "aggregates": list })))
}

pub(super) async fn aggregate_show(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = admin_ctx(&core, &headers, "os_compute_api:os-aggregates:show")?;
    let nf = || {
        fault(
            Service::Compute,
            404,
            format!("Aggregate {id} could not be found."),
        )
    };
    let n = id.parse::<u64>().map_err(|_| nf())?;
    let cf = |e| call_fault(Service::Compute, e);
    let at = core
        .federated_find(
            &c.claims,
            &c.project,
            "/os-aggregates",
            "aggregates",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?
        .ok_or_else(nf)?;
    let v = core
        .show_located(
            &c.claims,
            &c.project,
            &at,
            "/os-aggregates",
            "",
            "aggregate",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    Ok(json_resp(StatusCode::OK, &v))
}

pub(super) async fn hypervisor_stats(
    State(core): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = admin_ctx(&core, &headers, "os_compute_api:os-hypervisors:statistics")?;
    let v = core
        .federated_sum(
            &c.claims,
            &c.project,
            "/os-hypervisors/statistics",
            "/hypervisor_statistics",
            view::SumKind::All,
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"hypervisor_statistics": v}),
    ))
}

/// Every cloudlet's compute nodes, renumbered 1..N (IDs are per cloudlet;
/// `hypervisor show` maps the federated number back).
async fn hypervisors(
    core: Arc<Core>,
    headers: HeaderMap,
    detail: bool,
) -> Result<Response, ApiError> {
    let c = admin_ctx(&core, &headers, "os_compute_api:os-hypervisors:list")?;
    let path = if detail {
        "/os-hypervisors/detail"
    } else {
        "/os-hypervisors"
    };
    let list = core
        .federated_numbered(&c.claims, &c.project, path, "hypervisors", &c.rid)
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(StatusCode::OK, &json!({"hypervisors": list})))
}

pub(super) async fn hypervisors_brief(
    State(core): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    hypervisors(core, headers, false).await
}

pub(super) async fn hypervisors_detail(
    State(core): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    hypervisors(core, headers, true).await
}

pub(super) async fn limits(
    State(core): S,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    // Another project's limits are admin-only (`limits:other_project`);
    // the figures below are always the caller's own project.
    if let Some((_, t)) = query_pairs(&uri)
        .into_iter()
        .find(|(k, _)| k == "tenant_id")
    {
        if !is_own_project(&core, &c, &t).await {
            if !c.claims.is_admin() {
                return Err(forbidden(
                    Service::Compute,
                    "os_compute_api:limits:other_project",
                ));
            }
            return Err(fault(
                Service::Compute,
                400,
                "Another project's limits are not federated; ask its cloudlet.",
            ));
        }
    }
    let v = core
        .federated_sum(
            &c.claims,
            &c.project,
            "/limits",
            "/limits/absolute",
            view::SumKind::Limits,
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"limits": {"rate": [], "absolute": v}}),
    ))
}

pub(super) async fn quotas(
    State(core): S,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let cf = |e| call_fault(Service::Compute, e);
    // Nova: a project reader sees its own quota only (target project_id =
    // the path's); the admin sees any project's, here on this cloudlet
    // (project IDs are per cloudlet).
    if !is_own_project(&core, &c, &project).await {
        if !c.claims.is_admin() {
            return Err(forbidden(
                Service::Compute,
                "os_compute_api:os-quota-sets:show",
            ));
        }
        let v = core
            .cloudlet
            .get_json(
                &c.project,
                Svc::Compute,
                &format!("/os-quota-sets/{project}"),
                &c.rid,
            )
            .await
            .map_err(cf)?;
        return Ok(json_resp(StatusCode::OK, &v));
    }
    // Project IDs are per cloudlet: each cloudlet answers for its own ID of
    // the caller's project (`@project` is substituted where the call lands).
    let path = format!("/os-quota-sets/{PROJECT_PLACEHOLDER}");
    let v = core
        .federated_sum(
            &c.claims,
            &c.project,
            &path,
            "/quota_set",
            view::SumKind::Quota,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    Ok(json_resp(StatusCode::OK, &json!({"quota_set": v})))
}
