//! Neutron v2.0: networks and subnets (seeded), ports (one per server
//! address), quotas, and empty answers for collections we do not model.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, StatusCode};
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use crate::defaults::{Network, NETWORKS, SEED_TIME};
use crate::error::ApiResult;
use crate::http::{ok, with_status};
use crate::pagination::{paginate, parse_limit, PageError};
use crate::state::{parse_query, q, AuthCtx, State};

const S: Service = Service::Network;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/network", get(versions))
        .route("/network/v2.0", get(resources))
        .route("/network/v2.0/networks", get(networks_list))
        .route("/network/v2.0/networks/{id}", get(network_show))
        .route("/network/v2.0/subnets", get(subnets_list))
        .route("/network/v2.0/subnets/{id}", get(subnet_show))
        .route("/network/v2.0/ports", get(ports_list))
        .route("/network/v2.0/quotas/{project}", get(quota_show))
        .route("/network/v2.0/quotas/{project}/details", get(quota_details))
        .route("/network/v2.0/quotas/{project}/default", get(quota_show))
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/{collection}", get(empty_collection))
}

async fn versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    let base = st.base_url(&headers);
    ok(
        json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/network/v2.0/")}]}]}),
    )
}

async fn resources(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    let base = st.base_url(&headers);
    let r = |name: &str, coll: &str| json!({"name": name, "collection": coll, "links": [{"rel": "self", "href": format!("{base}/network/v2.0/{coll}")}]});
    ok(json!({"resources": [r("network", "networks"), r("subnet", "subnets"), r("port", "ports")]}))
}

fn network_view(n: &Network) -> Value {
    json!({
        "id": n.id, "name": n.name, "status": "ACTIVE", "admin_state_up": true,
        "shared": n.shared, "subnets": [n.subnet_id], "tenant_id": n.project_id,
        "project_id": n.project_id, "router:external": n.external, "mtu": 1442,
        "availability_zones": ["nova"], "availability_zone_hints": [], "tags": [],
        "description": "", "port_security_enabled": true, "is_default": n.external,
        "ipv4_address_scope": null, "ipv6_address_scope": null,
        "provider:network_type": if n.external { "flat" } else { "geneve" },
        "provider:physical_network": if n.external { json!("public") } else { Value::Null },
        "provider:segmentation_id": null,
        "created_at": SEED_TIME, "updated_at": SEED_TIME, "revision_number": 1,
    })
}

fn subnet_view(n: &Network) -> Value {
    let prefix = n.cidr.rsplit_once('.').map(|(p, _)| p).unwrap_or("10.0.0");
    json!({
        "id": n.subnet_id, "name": n.subnet_name, "network_id": n.id,
        "tenant_id": n.project_id, "project_id": n.project_id, "ip_version": 4,
        "cidr": n.cidr, "gateway_ip": n.gateway, "enable_dhcp": !n.external,
        "allocation_pools": [{"start": format!("{prefix}.2"), "end": format!("{prefix}.254")}],
        "dns_nameservers": [], "host_routes": [], "ipv6_ra_mode": null, "ipv6_address_mode": null,
        "subnetpool_id": null, "description": "", "tags": [], "service_types": [],
        "created_at": SEED_TIME, "updated_at": SEED_TIME, "revision_number": 0,
    })
}

/// Neutron filters: `key=value` exact match on the object's field; repeated
/// keys are OR-ed. Paging and display keys are not filters.
fn filter(items: Vec<Value>, query: &[(String, String)]) -> Vec<Value> {
    const NOT_FILTERS: [&str; 6] = [
        "limit",
        "marker",
        "fields",
        "sort_key",
        "sort_dir",
        "page_reverse",
    ];
    items
        .into_iter()
        .filter(|item| {
            let mut keys: Vec<&str> = query
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !NOT_FILTERS.contains(k))
                .collect();
            keys.dedup();
            keys.iter().all(|k| {
                let field = item.get(*k);
                query
                    .iter()
                    .filter(|(qk, _)| qk == k)
                    .any(|(_, want)| match field {
                        Some(Value::String(s)) => s == want,
                        Some(Value::Bool(b)) => b.to_string() == want.to_ascii_lowercase(),
                        Some(Value::Number(n)) => n.to_string() == *want,
                        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
                        // Unknown filter: ignored, like neutron for unknown attributes.
                        None => true,
                        _ => false,
                    })
            })
        })
        .collect()
}

/// Applies filters and limit/marker, adding `<coll>_links` for a full page.
fn page(base: &str, coll: &str, items: Vec<Value>, query: &[(String, String)]) -> ApiResult<Value> {
    let items = filter(items, query);
    let limit = match q(query, "limit") {
        None => usize::MAX,
        Some(_) => parse_limit(q(query, "limit"), usize::MAX, 10_000)
            .map_err(|e| ApiError::bad_request(S, e.to_string()))?,
    };
    let p = paginate(
        items,
        |v| v["id"].as_str().unwrap_or(""),
        q(query, "marker"),
        limit,
    )
    .map_err(|e| match e {
        PageError::MarkerNotFound(m) => ApiError::bad_request(S, format!("Marker {m} not found")),
        other => ApiError::bad_request(S, other.to_string()),
    })?;
    let mut body = json!({ coll: p.items });
    if let Some(m) = p.next_marker {
        body[format!("{coll}_links")] = json!([{"rel": "next", "href": format!("{base}/network/v2.0/{coll}?limit={limit}&marker={m}")}]);
    }
    Ok(body)
}

fn visible_networks(ctx: &AuthCtx) -> impl Iterator<Item = &'static Network> + '_ {
    NETWORKS
        .iter()
        .filter(|n| n.visible_to(ctx.project_id, ctx.is_admin))
}

async fn networks_list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let items = visible_networks(&ctx).map(network_view).collect();
    Ok(ok(page(&st.base_url(&headers), "networks", items, &query)?))
}

async fn network_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let found = visible_networks(&ctx).find(|n| n.id == id);
    found
        .map(|n| ok(json!({"network": network_view(n)})))
        .ok_or_else(|| {
            ApiError::not_found(S, format!("Network {id} could not be found."))
                .with_kind("NetworkNotFound")
        })
}

async fn subnets_list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let items = visible_networks(&ctx).map(subnet_view).collect();
    Ok(ok(page(&st.base_url(&headers), "subnets", items, &query)?))
}

async fn subnet_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let found = visible_networks(&ctx).find(|n| n.subnet_id == id);
    found
        .map(|n| ok(json!({"subnet": subnet_view(n)})))
        .ok_or_else(|| {
            ApiError::not_found(S, format!("Subnet {id} could not be found."))
                .with_kind("SubnetNotFound")
        })
}

async fn ports_list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let items: Vec<Value> = {
        let g = st.lock();
        g.servers
            .values()
            .filter(|s| ctx.is_admin || s.project_id == ctx.project())
            .flat_map(|s| {
                s.addresses.iter().map(move |a| {
                    json!({
                        "id": a.port_id, "name": "", "network_id": a.network.id,
                        "tenant_id": s.project_id, "project_id": s.project_id,
                        "mac_address": a.mac, "admin_state_up": true, "status": "ACTIVE",
                        "device_id": s.id, "device_owner": "compute:nova",
                        "fixed_ips": [{"subnet_id": a.network.subnet_id, "ip_address": a.ip}],
                        "security_groups": [], "allowed_address_pairs": [], "tags": [],
                        "binding:vnic_type": "normal", "description": "",
                    })
                })
            })
            .collect()
    };
    Ok(ok(page(&st.base_url(&headers), "ports", items, &query)?))
}

fn quota_values() -> Value {
    json!({
        "network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
        "security_group": 10, "security_group_rule": 100, "rbac_policy": 10, "subnetpool": -1,
    })
}

async fn quota_show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(_project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(json!({"quota": quota_values()})))
}

async fn quota_details(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(_project): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let mut m = serde_json::Map::new();
    if let Some(o) = quota_values().as_object() {
        for (k, v) in o {
            m.insert(k.clone(), json!({"limit": v, "used": 0, "reserved": 0}));
        }
    }
    Ok(ok(json!({ "quota": m })))
}

async fn extensions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let e = |alias: &str, name: &str| json!({"alias": alias, "name": name, "description": name, "links": [], "updated": "2013-01-20T00:00:00-00:00"});
    Ok(ok(json!({"extensions": [
        e("external-net", "Neutron external network"),
        e("quotas", "Quota management support"),
        e("network_availability_zone", "Network Availability Zone"),
    ]})))
}

/// Collections we do not model (routers, floatingips, security-groups …)
/// are empty rather than 404, so client listings work.
async fn empty_collection(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(collection): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    const KNOWN: [&str; 8] = [
        "routers",
        "floatingips",
        "security-groups",
        "security-group-rules",
        "subnetpools",
        "network-ip-availabilities",
        "trunks",
        "qos/policies",
    ];
    if !KNOWN.contains(&collection.as_str()) {
        return Err(ApiError::not_found(S, "The resource could not be found."));
    }
    let key = collection.replace('-', "_");
    Ok(with_status(StatusCode::OK, json!({ key: [] })))
}
