//! Nova v2.1 (max microversion 2.1): discovery, flavors, hypervisors,
//! quotas, limits, server groups. Servers live in `servers.rs`, their
//! actions in `actions.rs`; keypairs and aggregates have their own modules.

mod actions;
mod aggregates;
mod keypairs;
pub mod servers;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use os_wire::time::rfc3339;
use os_wire::Service;
use serde_json::{json, Value};

use crate::defaults::{self, Flavor, FLAVORS};
use crate::error::ApiResult;
use crate::http::{json_body, ok};
use crate::state::{AuthCtx, ServerGroup, State};
use os_wire::ApiError;

pub(crate) const S: Service = Service::Compute;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/compute", get(versions))
        .route("/compute/v2.1", get(version))
        .route("/compute/v2.1/flavors", get(flavors_list))
        .route("/compute/v2.1/flavors/detail", get(flavors_detail))
        .route("/compute/v2.1/flavors/{id}", get(flavor_show))
        .route(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            get(extra_specs),
        )
        .route("/compute/v2.1/os-hypervisors", get(hypervisors_list))
        .route(
            "/compute/v2.1/os-hypervisors/detail",
            get(hypervisors_detail),
        )
        .route(
            "/compute/v2.1/os-hypervisors/statistics",
            get(hypervisor_stats),
        )
        .route("/compute/v2.1/os-hypervisors/{id}", get(hypervisor_show))
        .route("/compute/v2.1/os-quota-sets/{project}", get(quota_show))
        .route(
            "/compute/v2.1/os-quota-sets/{project}/defaults",
            get(quota_defaults),
        )
        .route(
            "/compute/v2.1/os-quota-sets/{project}/detail",
            get(quota_detail),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route(
            "/compute/v2.1/os-server-groups",
            get(groups_list).post(groups_create),
        )
        .route(
            "/compute/v2.1/os-server-groups/{id}",
            get(group_show).delete(group_delete),
        )
        .route("/compute/v2.1/os-services", get(services))
        .route("/compute/v2.1/os-simple-tenant-usage", get(usage_all))
        .route(
            "/compute/v2.1/os-simple-tenant-usage/{project}",
            get(usage_one),
        )
        .route("/compute/v2.1/os-availability-zone", get(azs))
        .route("/compute/v2.1/os-availability-zone/detail", get(azs))
        .route(
            "/compute/v2.1/os-hypervisors/{id}/uptime",
            get(hypervisor_uptime),
        )
        .merge(aggregates::routes())
        .merge(keypairs::routes())
        .merge(servers::routes())
}

/// Echoes the (only) microversion we speak, as nova does on every response
/// (called by the edge service for every `/compute` response). Names and
/// values are constants: nothing is parsed or allocated per response.
pub fn microversion_headers(h: &mut HeaderMap) {
    const API_VERSION: HeaderName = HeaderName::from_static("openstack-api-version");
    const NOVA_API_VERSION: HeaderName = HeaderName::from_static("x-openstack-nova-api-version");
    const COMPUTE_2_1: HeaderValue = HeaderValue::from_static("compute 2.1");
    const V2_1: HeaderValue = HeaderValue::from_static("2.1");
    const VARY: HeaderValue =
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version");
    h.insert(API_VERSION, COMPUTE_2_1);
    h.insert(NOVA_API_VERSION, V2_1);
    h.insert(http::header::VARY, VARY);
}

fn version_obj(base: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [
            {"rel": "self", "href": format!("{base}/compute/v2.1/")},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

async fn versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    ok(json!({"versions": [version_obj(&st.base_url(&headers))]}))
}

async fn version(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    ok(json!({"version": version_obj(&st.base_url(&headers))}))
}

// ---- flavors -----------------------------------------------------------

fn flavor_links(base: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/compute/v2.1/flavors/{id}")},
        {"rel": "bookmark", "href": format!("{base}/compute/flavors/{id}")},
    ])
}

fn flavor_detail(base: &str, f: &Flavor) -> Value {
    json!({
        "id": f.id, "name": f.name, "ram": f.ram_mb, "disk": f.disk_gb, "vcpus": f.vcpus,
        "swap": "", "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true,
        "OS-FLV-DISABLED:disabled": false, "rxtx_factor": 1.0,
        "links": flavor_links(base, f.id),
    })
}

async fn flavors_list(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let base = st.base_url(&headers);
    let list: Vec<Value> = FLAVORS
        .iter()
        .map(|f| json!({"id": f.id, "name": f.name, "links": flavor_links(&base, f.id)}))
        .collect();
    Ok(ok(json!({ "flavors": list })))
}

async fn flavors_detail(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let base = st.base_url(&headers);
    let list: Vec<Value> = FLAVORS.iter().map(|f| flavor_detail(&base, f)).collect();
    Ok(ok(json!({ "flavors": list })))
}

fn flavor_or_404(id: &str) -> ApiResult<&'static Flavor> {
    defaults::flavor(id)
        .ok_or_else(|| ApiError::not_found(S, format!("Flavor {id} could not be found.")))
}

async fn flavor_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let f = flavor_or_404(&id)?;
    Ok(ok(
        json!({"flavor": flavor_detail(&st.base_url(&headers), f)}),
    ))
}

async fn extra_specs(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    flavor_or_404(&id)?;
    Ok(ok(json!({"extra_specs": {}})))
}

// ---- hypervisors -------------------------------------------------------

fn require_admin(ctx: &AuthCtx) -> ApiResult<()> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            S,
            "Policy doesn't allow os_compute_api:os-hypervisors to be performed.",
        ))
    }
}

fn hypervisor_views(st: &State, detail: bool) -> Vec<Value> {
    let g = st.lock();
    g.capacity
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = i + 1;
            let mut v = json!({
                "id": id, "hypervisor_hostname": n.hostname,
                "state": if n.up { "up" } else { "down" }, "status": "enabled",
            });
            if detail {
                let free_ram = n.ram_mb as i64 - n.used.ram_mb as i64;
                let free_disk = n.disk_gb as i64 - n.used.disk_gb as i64;
                let extra = json!({
                    "hypervisor_type": "QEMU", "hypervisor_version": 8002000,
                    "host_ip": format!("192.168.0.{}", 10 + i % 240),
                    "vcpus": n.vcpus, "memory_mb": n.ram_mb, "local_gb": n.disk_gb,
                    "vcpus_used": n.used.vcpus, "memory_mb_used": n.used.ram_mb,
                    "local_gb_used": n.used.disk_gb, "free_ram_mb": free_ram,
                    "free_disk_gb": free_disk, "disk_available_least": free_disk,
                    "current_workload": 0, "running_vms": n.running_vms,
                    "cpu_info": "{}",
                    "service": {"host": n.hostname, "id": id, "disabled_reason": null},
                });
                if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                    o.extend(e.clone());
                }
            }
            v
        })
        .collect()
}

async fn hypervisors_list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    Ok(ok(json!({"hypervisors": hypervisor_views(&st, false)})))
}

async fn hypervisors_detail(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    Ok(ok(json!({"hypervisors": hypervisor_views(&st, true)})))
}

async fn hypervisor_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    hypervisor_views(&st, true)
        .into_iter()
        .find(|h| {
            h["id"].as_u64().is_some_and(|n| id.parse() == Ok(n))
                || h["hypervisor_hostname"] == id.as_str()
        })
        .map(|h| ok(json!({ "hypervisor": h })))
        .ok_or_else(|| {
            ApiError::not_found(S, format!("Hypervisor with ID {id} could not be found."))
        })
}

/// `GET /os-hypervisors/{id}/uptime`: the host's `uptime` line, with the
/// deployment's model time as both the clock and the time up.
async fn hypervisor_uptime(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    let h = hypervisor_views(&st, false)
        .into_iter()
        .find(|h| h["id"].as_u64().is_some_and(|n| id.parse() == Ok(n)))
        .ok_or_else(|| {
            ApiError::not_found(S, format!("Hypervisor with ID {id} could not be found."))
        })?;
    let up = st.engine.time.model_now().max(0.0) as u64;
    let (days, hours, mins) = (up / 86_400, up % 86_400 / 3600, up % 3600 / 60);
    let clock = st.now().format("%H:%M:%S");
    let uptime = format!(
        " {clock} up {days} days, {hours:2}:{mins:02},  0 users,  load average: 0.00, 0.00, 0.00"
    );
    let mut v = h;
    v["uptime"] = json!(uptime);
    Ok(ok(json!({ "hypervisor": v })))
}

async fn hypervisor_stats(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    let g = st.lock();
    let nodes = &g.capacity.nodes;
    let sum =
        |f: &dyn Fn(&crate::capacity::ComputeNode) -> u64| -> u64 { nodes.iter().map(f).sum() };
    let (vcpus, ram, disk) = (sum(&|n| n.vcpus), sum(&|n| n.ram_mb), sum(&|n| n.disk_gb));
    let used = g.capacity.used();
    let vms = sum(&|n| n.running_vms);
    Ok(ok(json!({"hypervisor_statistics": {
        "count": nodes.len(), "vcpus": vcpus, "vcpus_used": used.vcpus,
        "memory_mb": ram, "memory_mb_used": used.ram_mb,
        "free_ram_mb": ram as i64 - used.ram_mb as i64,
        "local_gb": disk, "local_gb_used": used.disk_gb,
        "free_disk_gb": disk as i64 - used.disk_gb as i64,
        "disk_available_least": disk as i64 - used.disk_gb as i64,
        "running_vms": vms, "current_workload": 0,
    }})))
}

// ---- quotas and limits -------------------------------------------------

/// Static per-project quota limits (nova defaults, instances/cores/ram from
/// the config).
fn quota_limits(st: &State) -> Vec<(&'static str, i64)> {
    vec![
        ("instances", st.cfg.quota_instances),
        ("cores", st.cfg.quota_cores),
        ("ram", st.cfg.quota_ram_mb),
        ("key_pairs", 100),
        ("metadata_items", 128),
        ("server_groups", 10),
        ("server_group_members", 10),
        ("injected_files", 5),
        ("injected_file_content_bytes", 10240),
        ("injected_file_path_bytes", 255),
        ("fixed_ips", -1),
        ("floating_ips", -1),
        ("security_groups", -1),
        ("security_group_rules", -1),
    ]
}

fn quota_set(st: &State, project: &str) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(project));
    for (k, v) in quota_limits(st) {
        m.insert(k.into(), json!(v));
    }
    json!({ "quota_set": m })
}

async fn quota_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(quota_set(&st, &project)))
}

async fn quota_defaults(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(quota_set(&st, &project)))
}

async fn quota_detail(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let (inst, cores, ram) = st.lock().usage(&project);
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(project));
    for (k, v) in quota_limits(&st) {
        let in_use = match k {
            "instances" => inst,
            "cores" => cores,
            "ram" => ram,
            _ => 0,
        };
        m.insert(
            k.into(),
            json!({"limit": v, "in_use": in_use, "reserved": 0}),
        );
    }
    Ok(ok(json!({ "quota_set": m })))
}

async fn limits(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let (inst, cores, ram) = st.lock().usage(ctx.project());
    let groups = st
        .lock()
        .groups
        .values()
        .filter(|g| g.project_id == ctx.project())
        .count();
    Ok(ok(json!({"limits": {"rate": [], "absolute": {
        "maxTotalInstances": st.cfg.quota_instances, "totalInstancesUsed": inst,
        "maxTotalCores": st.cfg.quota_cores, "totalCoresUsed": cores,
        "maxTotalRAMSize": st.cfg.quota_ram_mb, "totalRAMUsed": ram,
        "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5,
        "maxPersonalitySize": 10240, "maxTotalKeypairs": 100,
        "maxServerGroups": 10, "maxServerGroupMembers": 10, "totalServerGroupsUsed": groups,
        "maxTotalFloatingIps": -1, "totalFloatingIpsUsed": 0,
        "maxSecurityGroups": -1, "totalSecurityGroupsUsed": 0, "maxSecurityGroupRules": -1,
    }}})))
}

async fn azs(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(json!({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}
    ]})))
}

/// nova services: scheduler and conductor on the controller, one
/// nova-compute per compute node; all up.
async fn services(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    let now = rfc3339(st.now());
    let controller = format!("{}-controller", st.cfg.name);
    let list = vec![
        ("nova-scheduler", controller.clone(), "internal"),
        ("nova-conductor", controller, "internal"),
    ];
    let g = st.lock();
    let mut list: Vec<_> = list.into_iter().map(|(b, h, z)| (b, h, z, true)).collect();
    list.extend(
        g.capacity
            .nodes
            .iter()
            .map(|n| ("nova-compute", n.hostname.clone(), "nova", n.up)),
    );
    drop(g);
    let out: Vec<Value> = list
        .into_iter()
        .enumerate()
        .map(|(i, (binary, host, zone, up))| {
            json!({"id": i + 1, "binary": binary, "host": host, "zone": zone,
                "status": "enabled", "state": if up { "up" } else { "down" }, "updated_at": now,
                "disabled_reason": null, "forced_down": false})
        })
        .collect();
    Ok(ok(json!({ "services": out })))
}

fn tenant_usage(project: &str, servers: usize) -> Value {
    json!({
        "tenant_id": project, "total_hours": 0.0, "total_vcpus_usage": 0.0,
        "total_memory_mb_usage": 0.0, "total_local_gb_usage": 0.0,
        "start": null, "stop": null, "server_usages": [], "servers": servers,
    })
}

async fn usage_all(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&st.authenticate(&headers, S)?)?;
    Ok(ok(json!({"tenant_usages": []})))
}

async fn usage_one(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let (n, _, _) = st.lock().usage(&project);
    Ok(ok(
        json!({"tenant_usage": tenant_usage(&project, n as usize)}),
    ))
}

// ---- server groups -----------------------------------------------------

fn group_view(g: &ServerGroup, members: Vec<String>) -> Value {
    json!({
        "id": g.id, "name": g.name, "policies": g.policies, "members": members,
        "metadata": {}, "project_id": g.project_id, "user_id": g.user_id,
    })
}

async fn groups_list(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let g = st.lock();
    let list: Vec<Value> = g
        .groups
        .values()
        .filter(|x| x.project_id == ctx.project())
        .map(|x| group_view(x, vec![]))
        .collect();
    Ok(ok(json!({ "server_groups": list })))
}

async fn groups_create(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let v = json_body(S, &body)?;
    let sg = v
        .get("server_group")
        .ok_or_else(|| ApiError::required(S, "server_group"))?;
    let name = sg
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::required(S, "name"))?;
    let policies: Vec<String> = sg
        .get("policies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    const OK: [&str; 4] = [
        "affinity",
        "anti-affinity",
        "soft-affinity",
        "soft-anti-affinity",
    ];
    if policies.len() != 1 || !OK.contains(&policies[0].as_str()) {
        return Err(ApiError::bad_request(
            S,
            "Invalid input for field/attribute policies.",
        ));
    }
    let mut g = st.lock();
    let group = ServerGroup {
        id: g.new_uuid(),
        name: name.to_string(),
        policies,
        project_id: ctx.project(),
        user_id: ctx.user_id,
    };
    let view = group_view(&group, vec![]);
    g.groups.insert(group.id.clone(), group);
    Ok(ok(json!({ "server_group": view })))
}

async fn group_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let g = st.lock();
    g.groups
        .get(&id)
        .filter(|x| ctx.is_admin || x.project_id == ctx.project())
        .map(|x| ok(json!({"server_group": group_view(x, vec![])})))
        .ok_or_else(|| ApiError::not_found(S, format!("Instance group {id} could not be found.")))
}

async fn group_delete(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let mut g = st.lock();
    let visible = g
        .groups
        .get(&id)
        .is_some_and(|x| ctx.is_admin || x.project_id == ctx.project());
    if !visible {
        return Err(ApiError::not_found(
            S,
            format!("Instance group {id} could not be found."),
        ));
    }
    g.groups.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
