//! Nova servers: create, show, list/detail with filters and pagination,
//! delete (actions are in `actions.rs`). Handlers validate and render; the
//! lifecycle itself is in `lifecycle.rs`, driven by the cp-model engine
//! task in `driver.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use os_wire::time::{rfc3339, usage_timestamp};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::S;
use crate::defaults::{self, Network, IMAGE_ID, NETWORKS, PRIVATE_NET_ID};
use crate::error::ApiResult;
use crate::http::{json_body, json_bytes_response, json_response, ok, with_status};
use crate::pagination::parse_limit;
use crate::state::{parse_query, q, truthy, AuthCtx, Server, State};
use os_wire::ApiError;

/// nova's `osapi_max_limit`.
pub const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/compute/v2.1/servers", get(list).post(create))
        .route("/compute/v2.1/servers/detail", get(list_detail))
        .route("/compute/v2.1/servers/{id}", get(show).delete(delete))
        .route(
            "/compute/v2.1/servers/{id}/action",
            post(super::actions::action),
        )
        .route("/compute/v2.1/servers/{id}/metadata", get(metadata))
}

/// The last path segment of an id-or-URL reference (`flavorRef`, `imageRef`).
fn ref_id(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let s = s.trim_end_matches('/');
    Some(s.rsplit('/').next().unwrap_or(s).to_string())
}

/// `min_count`/`max_count`: an integer or a numeric string, >= 1.
fn count(v: Option<&Value>, field: &str) -> ApiResult<u32> {
    let n = match v {
        None => return Ok(1),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=10_000).contains(&n) => Ok(n as u32),
        _ => Err(ApiError::bad_request(
            S,
            format!("Invalid input for field/attribute {field}."),
        )),
    }
}

/// Resolves the `networks` field to the networks to attach.
fn networks(v: Option<&Value>, ctx: &AuthCtx) -> ApiResult<Vec<&'static Network>> {
    let private = defaults::network(PRIVATE_NET_ID).into_iter().collect();
    match v {
        None | Some(Value::Null) => Ok(private),
        Some(Value::String(s)) if s == "auto" => Ok(private),
        Some(Value::String(s)) if s == "none" => Ok(vec![]),
        Some(Value::Array(items)) => {
            let mut out = vec![];
            for it in items {
                if let Some(uuid) = it.get("uuid").and_then(Value::as_str) {
                    let net = NETWORKS
                        .iter()
                        .find(|n| n.id == uuid && n.visible_to(ctx.project_id, ctx.is_admin))
                        .ok_or_else(|| {
                            ApiError::bad_request(S, format!("Network {uuid} could not be found."))
                        })?;
                    out.push(net);
                } else if it.get("port").and_then(Value::as_str).is_some() {
                    // Ports are not modelled: a pre-made port lands on private.
                    out.extend(defaults::network(PRIVATE_NET_ID));
                } else {
                    return Err(ApiError::bad_request(
                        S,
                        "Invalid input for field/attribute networks.",
                    ));
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::bad_request(
            S,
            "Invalid input for field/attribute networks.",
        )),
    }
}

async fn create(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let v = json_body(S, &body)?;
    let s = v
        .get("server")
        .filter(|s| s.is_object())
        .ok_or_else(|| ApiError::required(S, "server"))?;
    let name = s
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 255)
        .ok_or_else(|| ApiError::bad_request(S, "Invalid input for field/attribute name."))?
        .to_string();
    let flavor_ref = s
        .get("flavorRef")
        .and_then(ref_id)
        .ok_or_else(|| ApiError::required(S, "flavorRef"))?;
    let flavor = defaults::flavor(&flavor_ref)
        .ok_or_else(|| ApiError::bad_request(S, "Invalid flavorRef provided."))?;
    let has_bdm = s
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let image_id = match s.get("imageRef").and_then(ref_id) {
        Some(i) if i.is_empty() && has_bdm => String::new(),
        None if has_bdm => String::new(),
        Some(i) if i == IMAGE_ID => i,
        Some(i) => {
            return Err(ApiError::bad_request(
                S,
                format!("Image {i} could not be found."),
            ))
        }
        None => return Err(ApiError::bad_request(S, "Invalid imageRef provided.")),
    };
    let nets = networks(s.get("networks"), &ctx)?;
    let min_count = count(s.get("min_count"), "min_count")?;
    let max_count = count(s.get("max_count"), "max_count")?.max(min_count);
    if s.get("max_count").is_some() && count(s.get("max_count"), "max_count")? < min_count {
        return Err(ApiError::bad_request(S, "min_count must be <= max_count"));
    }
    let metadata: Map<String, Value> = match s.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if m.values().all(Value::is_string) && m.len() <= 128 => m.clone(),
        _ => {
            return Err(ApiError::bad_request(
                S,
                "Invalid input for field/attribute metadata.",
            ))
        }
    };
    let key_name = s.get("key_name").and_then(Value::as_str).map(String::from);
    let security_groups: Vec<String> = s
        .get("security_groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["default".into()]);
    let az = s
        .get("availability_zone")
        .and_then(Value::as_str)
        .unwrap_or("nova")
        .to_string();
    let config_drive = match s.get("config_drive") {
        Some(Value::Bool(true)) => "True",
        Some(Value::String(x)) if truthy(x) && !x.is_empty() => "True",
        _ => "",
    };

    let base = st.base_url(&headers);
    let (first, res, reservation, ids) = {
        let mut g = st.lock();
        if let Some(k) = &key_name {
            if !g
                .keypairs
                .contains_key(&(ctx.user_id.to_string(), k.clone()))
            {
                return Err(ApiError::bad_request(S, "Invalid key_name provided."));
            }
        }
        // Quota: boot as many as fit up to max_count, at least min_count (nova).
        let (inst, cores, ram) = g.usage(ctx.project());
        let checks = [
            ("instances", st.cfg.quota_instances, inst, 1i64),
            ("cores", st.cfg.quota_cores, cores, flavor.vcpus as i64),
            ("ram", st.cfg.quota_ram_mb, ram, flavor.ram_mb as i64),
        ];
        let mut allowed = i64::from(max_count);
        for (_, quota, used, per) in checks {
            if quota >= 0 && per > 0 {
                allowed = allowed.min((quota - used).max(0) / per);
            }
        }
        if allowed < i64::from(min_count) {
            let (what, quota, used, per) = checks
                .into_iter()
                .find(|(_, q, u, p)| *q >= 0 && u + p * i64::from(min_count) > *q)
                .unwrap_or(checks[0]);
            return Err(ApiError::forbidden(
                S,
                format!(
                    "Quota exceeded for {what}: Requested {}, but already used {used} of {quota} {what}",
                    per * i64::from(min_count)
                ),
            ));
        }
        let n = allowed as u32;
        let res = crate::capacity::Resources {
            vcpus: flavor.vcpus,
            ram_mb: flavor.ram_mb,
            disk_gb: flavor.disk_gb,
        };
        // nova's scheduler places the instances of one request together or
        // not at all (`_ensure_sufficient_hosts`: NoValidHost for all).
        // The mock decides a multi-create at the API, on the engine's last
        // usage minus the boots not placed yet; a single boot is left to
        // the engine's scheduler.
        let no_room = n > 1 && {
            let pending = g
                .servers
                .values()
                .filter(|s| s.lc.host.is_none() && s.lc.status() == "BUILD")
                .count() as u64;
            g.capacity.room_for(res, pending) < u64::from(n)
        };
        let now = st.now();
        let reservation = reservation_id(&mut g.rng);
        let mut first = String::new();
        let mut ids: Vec<(String, String)> = Vec::with_capacity(n as usize);
        for i in 1..=n {
            g.seq += 1;
            let id = g.new_uuid();
            if first.is_empty() {
                first.clone_from(&id);
            }
            let item_name = if n > 1 {
                format!("{name}-{i}")
            } else {
                name.clone()
            };
            let mut server = Server::accepted(
                id.clone(),
                g.seq,
                item_name,
                (ctx.project(), ctx.user_id),
                flavor,
                now,
            );
            server.image_id.clone_from(&image_id);
            server.networks.clone_from(&nets);
            server.metadata.clone_from(&metadata);
            server.key_name.clone_from(&key_name);
            server.security_groups.clone_from(&security_groups);
            server.availability_zone.clone_from(&az);
            server.config_drive = config_drive.to_string();
            server.reservation_id.clone_from(&reservation);
            if no_room {
                let _ = server.lc.apply(crate::lifecycle::Event::NoValidHost);
                server.fault_at = Some(now);
            } else {
                ids.push((id, server.name.clone()));
            }
            g.servers.insert(server);
        }
        if no_room {
            g.boots_error += u64::from(n);
        }
        (first, res, reservation, ids)
    };
    // The instances of one request go to the engine in order, so the first
    // of a multi-create is scheduled first (as nova's scheduler does).
    for (id, name) in ids {
        st.engine.boot(id, res, name);
    }
    if s.get("return_reservation_id")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str().is_some_and(truthy))
    {
        return Ok(with_status(
            StatusCode::ACCEPTED,
            json!({ "reservation_id": reservation }),
        ));
    }
    let self_url = format!("{base}/compute/v2.1/servers/{first}");
    let body = json!({"server": {
        "id": first,
        "links": server_links(&base, &first),
        "adminPass": admin_pass(&first),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
    }});
    let mut resp = with_status(StatusCode::ACCEPTED, body);
    if let Ok(v) = HeaderValue::from_str(&self_url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// nova's `utils.generate_uid('r')`: `r-` and 8 characters.
fn reservation_id(rng: &mut impl rand::RngCore) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..8)
        .map(|_| CHARS[(rng.next_u32() as usize) % CHARS.len()] as char)
        .collect();
    format!("r-{tail}")
}

pub(crate) fn admin_pass(id: &str) -> String {
    let d = sha2::Sha256::digest(id.as_bytes());
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn server_links(base: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/compute/v2.1/servers/{id}")},
        {"rel": "bookmark", "href": format!("{base}/compute/servers/{id}")},
    ])
}

#[derive(Serialize)]
struct Link {
    rel: &'static str,
    href: String,
}

/// A server's link, written straight into the response (a list carries
/// two per server, and every agent's watcher lists every cloudlet each
/// poll: no `String` is built per link).
#[derive(Serialize)]
struct ServerLink<'a> {
    rel: &'static str,
    href: ServerHref<'a>,
}

/// `{base}{path}{id}`, serialized as one JSON string.
struct ServerHref<'a> {
    base: &'a str,
    path: &'static str,
    id: &'a str,
}

impl Serialize for ServerHref<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(&format_args!("{}{}{}", self.base, self.path, self.id))
    }
}

fn links<'a>(base: &'a str, id: &'a str) -> [ServerLink<'a>; 2] {
    [
        ServerLink {
            rel: "self",
            href: ServerHref {
                base,
                path: "/compute/v2.1/servers/",
                id,
            },
        },
        ServerLink {
            rel: "bookmark",
            href: ServerHref {
                base,
                path: "/compute/servers/",
                id,
            },
        },
    ]
}

/// A flavor's or an image's `{"id", "links": [bookmark]}`.
#[derive(Serialize)]
struct RefView<'a> {
    id: &'a str,
    links: [ServerLink<'a>; 1],
}

impl<'a> RefView<'a> {
    fn bookmark(base: &'a str, path: &'static str, id: &'a str) -> Self {
        Self {
            id,
            links: [ServerLink {
                rel: "bookmark",
                href: ServerHref { base, path, id },
            }],
        }
    }
}

/// `""` when booted from a volume, like nova; the image's reference otherwise.
#[derive(Serialize)]
#[serde(untagged)]
enum ImageView<'a> {
    None(&'static str),
    Ref(RefView<'a>),
}

#[derive(Serialize)]
struct AddrView<'a> {
    addr: &'a str,
    version: u8,
    #[serde(rename = "OS-EXT-IPS:type")]
    ty: &'static str,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr")]
    mac: &'a str,
}

#[derive(Serialize)]
struct NameView<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct FaultView<'a> {
    code: u16,
    message: &'a str,
    details: &'static str,
    created: String,
}

/// The full server representation (GET /servers/{id}, /servers/detail),
/// serialized straight from borrowed state (no intermediate `Value`).
#[derive(Serialize)]
pub struct ServerView<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    tenant_id: &'a str,
    user_id: &'a str,
    created: String,
    updated: String,
    progress: u8,
    #[serde(rename = "hostId")]
    host_id: &'a str,
    image: ImageView<'a>,
    flavor: RefView<'a>,
    addresses: BTreeMap<&'a str, Vec<AddrView<'a>>>,
    #[serde(rename = "accessIPv4")]
    access_ipv4: &'static str,
    #[serde(rename = "accessIPv6")]
    access_ipv6: &'static str,
    metadata: &'a Map<String, Value>,
    links: [ServerLink<'a>; 2],
    key_name: Option<&'a str>,
    config_drive: &'a str,
    security_groups: Vec<NameView<'a>>,
    #[serde(rename = "OS-DCF:diskConfig")]
    disk_config: &'static str,
    #[serde(rename = "OS-EXT-STS:vm_state")]
    vm_state: &'static str,
    #[serde(rename = "OS-EXT-STS:task_state")]
    task_state: Option<&'static str>,
    #[serde(rename = "OS-EXT-STS:power_state")]
    power_state: u8,
    #[serde(rename = "OS-EXT-AZ:availability_zone")]
    availability_zone: &'a str,
    #[serde(rename = "OS-SRV-USG:launched_at")]
    launched_at: Option<String>,
    #[serde(rename = "OS-SRV-USG:terminated_at")]
    terminated_at: Option<String>,
    #[serde(rename = "os-extended-volumes:volumes_attached")]
    volumes_attached: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<FaultView<'a>>,
    #[serde(
        rename = "OS-EXT-SRV-ATTR:host",
        skip_serializing_if = "Option::is_none"
    )]
    host: Option<Option<&'a str>>,
    #[serde(
        rename = "OS-EXT-SRV-ATTR:hypervisor_hostname",
        skip_serializing_if = "Option::is_none"
    )]
    hypervisor_hostname: Option<Option<&'a str>>,
    #[serde(
        rename = "OS-EXT-SRV-ATTR:instance_name",
        skip_serializing_if = "Option::is_none"
    )]
    instance_name: Option<String>,
}

pub fn server_view<'a>(base: &'a str, s: &'a Server, admin: bool) -> ServerView<'a> {
    let mut addresses: BTreeMap<&str, Vec<AddrView>> = BTreeMap::new();
    for a in &s.addresses {
        addresses.entry(a.network.name).or_default().push(AddrView {
            addr: &a.ip,
            version: 4,
            ty: "fixed",
            mac: &a.mac,
        });
    }
    let image = if s.image_id.is_empty() {
        ImageView::None("")
    } else {
        ImageView::Ref(RefView::bookmark(base, "/compute/images/", &s.image_id))
    };
    let status = s.lc.status();
    let host = s.lc.host.as_deref();
    ServerView {
        id: &s.id,
        name: &s.name,
        status,
        tenant_id: s.project_id,
        user_id: s.user_id,
        created: rfc3339(s.created),
        updated: rfc3339(s.updated),
        progress: if status == "ERROR" { 0 } else { s.lc.progress },
        host_id: &s.host_id,
        image,
        flavor: RefView::bookmark(base, "/compute/flavors/", s.flavor.id),
        addresses,
        access_ipv4: "",
        access_ipv6: "",
        metadata: &s.metadata,
        links: links(base, &s.id),
        key_name: s.key_name.as_deref(),
        config_drive: &s.config_drive,
        security_groups: s
            .security_groups
            .iter()
            .map(|n| NameView { name: n })
            .collect(),
        disk_config: "MANUAL",
        vm_state: s.lc.vm_state_str(),
        task_state: s.lc.task_state.map(|t| t.as_str()),
        power_state: s.lc.power_state,
        availability_zone: &s.availability_zone,
        launched_at: s.launched_at.map(usage_timestamp),
        terminated_at: None,
        volumes_attached: [],
        fault: s.lc.fault.as_deref().map(|m| FaultView {
            code: 500,
            message: m,
            details: "",
            created: rfc3339(s.fault_at.unwrap_or(s.updated)),
        }),
        host: admin.then_some(host),
        hypervisor_hostname: admin.then_some(host),
        instance_name: admin.then(|| format!("instance-{:08x}", s.seq)),
    }
}

#[derive(Serialize)]
struct Single<'a> {
    server: ServerView<'a>,
}

#[derive(Serialize)]
struct Brief<'a> {
    id: &'a str,
    name: &'a str,
    links: [ServerLink<'a>; 2],
}

#[derive(Serialize)]
struct List<T> {
    servers: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers_links: Option<[Link; 1]>,
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::not_found(S, format!("Instance {id} could not be found."))
}

pub(crate) fn visible(s: &Server, ctx: &AuthCtx) -> bool {
    ctx.is_admin || s.project_id == ctx.project()
}

/// Takes the request itself rather than a `HeaderMap` (axum's extractor
/// clones every header): this is the mock's hottest GET.
async fn show(
    AxState(st): AxState<Arc<State>>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let headers = req.headers();
    let ctx = st.authenticate(headers, S)?;
    let base = st.base_url(headers);
    let mut g = st.lock();
    let s = g
        .servers
        .get(&id)
        .filter(|s| visible(s, &ctx))
        .ok_or_else(|| not_found(&id))?;
    let seq = s.seq;
    // A record unchanged since it was last shown is not rendered again.
    if let Some(body) = g.servers.rendered(seq, &base, ctx.is_admin) {
        drop(g);
        return Ok(json_bytes_response(StatusCode::OK, body));
    }
    // Serialized under the lock straight from the record: no clone.
    let body = match serde_json::to_vec(&Single {
        server: server_view(&base, s, ctx.is_admin),
    }) {
        Ok(b) => Bytes::from(b),
        Err(e) => return Err(ApiError::internal(S, e.to_string())),
    };
    g.servers
        .keep_rendered(seq, &base, ctx.is_admin, body.clone());
    drop(g);
    Ok(json_bytes_response(StatusCode::OK, body))
}

async fn metadata(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let g = st.lock();
    let s = g
        .servers
        .get(&id)
        .filter(|s| visible(s, &ctx))
        .ok_or_else(|| not_found(&id))?;
    Ok(ok(json!({"metadata": s.metadata})))
}

async fn delete(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    {
        let g = st.lock();
        let s = g
            .servers
            .get(&id)
            .filter(|s| visible(s, &ctx))
            .ok_or_else(|| not_found(&id))?;
        super::actions::check_lock(s, &ctx)?;
    }
    if !st.request_delete(&id) {
        return Err(not_found(&id));
    }
    st.engine.delete(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(st: AxState<Arc<State>>, headers: HeaderMap, query: RawQuery) -> ApiResult<Response> {
    list_impl(st, headers, query, false).await
}

async fn list_detail(
    st: AxState<Arc<State>>,
    headers: HeaderMap,
    query: RawQuery,
) -> ApiResult<Response> {
    list_impl(st, headers, query, true).await
}

/// nova's `is_all_tenants`: an empty value enables it, anything else is
/// `oslo_utils.strutils.bool_from_string(v, strict=True)` (400 otherwise).
fn all_tenants_flag(v: &str) -> ApiResult<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(
            S,
            format!(
                "Invalid input received: Unrecognized value '{v}', acceptable values are: \
                 '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ),
        )),
    }
}

/// `changes-since`: RFC 3339, with or without zone (naive = UTC).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

async fn list_impl(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    detail: bool,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let all_tenants = match q(&query, "all_tenants") {
        Some(v) => all_tenants_flag(v)?,
        None => false,
    };
    // nova policy `servers:{index,detail}:get_all_tenants` is admin-only.
    if all_tenants && !ctx.is_admin {
        let which = if detail { "detail" } else { "index" };
        return Err(ApiError::forbidden(
            S,
            format!("Policy doesn't allow os_compute_api:servers:{which}:get_all_tenants to be performed."),
        ));
    }
    let project_filter = if all_tenants {
        q(&query, "project_id").or(q(&query, "tenant_id"))
    } else {
        Some(ctx.project())
    };
    let name_re = match q(&query, "name") {
        Some(n) => Some(
            regex::RegexBuilder::new(n)
                .size_limit(1 << 20)
                .build()
                .map_err(|_| {
                    ApiError::bad_request(S, format!("Invalid regex in name filter: {n}"))
                })?,
        ),
        None => None,
    };
    let status = q(&query, "status").map(str::to_ascii_uppercase);
    let since = match q(&query, "changes-since") {
        Some(t) => Some(parse_time(t).ok_or_else(|| {
            ApiError::bad_request(
                S,
                format!("Invalid input for field/attribute changes-since. Value: {t}."),
            )
        })?),
        None => None,
    };
    let image = q(&query, "image").and_then(|i| ref_id(&json!(i)));
    let flavor = q(&query, "flavor").and_then(|f| ref_id(&json!(f)));
    let host = if ctx.is_admin {
        q(&query, "host")
    } else {
        None
    };
    let limit = parse_limit(q(&query, "limit"), MAX_LIMIT, MAX_LIMIT)
        .map_err(|e| ApiError::bad_request(S, e.to_string()))?;
    let marker = q(&query, "marker");
    let reservation = q(&query, "reservation_id");
    let base = st.base_url(&headers);

    let g = st.lock();
    // Marker: any server we know of, even one deleted since (so a cleanup
    // loop that deletes while it pages keeps going).
    let marker_seq = match marker {
        None => None,
        Some(m) => Some(
            g.servers
                .seq_of(m)
                .ok_or_else(|| ApiError::bad_request(S, format!("marker [{m}] not found")))?,
        ),
    };
    // Newest first, like nova's default sort (created_at desc): walk back
    // from the marker and stop at a full page.
    let items: Vec<&Server> = g
        .servers
        .newest_first(marker_seq)
        .filter(|s| project_filter.is_none_or(|p| s.project_id == p))
        .filter(|s| name_re.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| status.as_deref().is_none_or(|x| s.lc.status() == x))
        .filter(|s| since.is_none_or(|t| s.updated >= t))
        .filter(|s| image.as_deref().is_none_or(|i| s.image_id == i))
        .filter(|s| flavor.as_deref().is_none_or(|f| s.flavor.id == f))
        .filter(|s| host.is_none_or(|h| s.lc.host.as_deref() == Some(h)))
        .filter(|s| reservation.is_none_or(|r| s.reservation_id == r))
        .take(limit)
        .collect();
    let last = items.last().map(|s| s.id.clone());
    let full = items.len() == limit;
    let mut servers_links = None;
    if let (true, Some(last)) = (full, last) {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "marker" && k != "limit") {
            qs.append_pair(k, v);
        }
        qs.append_pair("limit", &limit.to_string());
        qs.append_pair("marker", &last);
        let path = if detail { "servers/detail" } else { "servers" };
        servers_links = Some([Link {
            rel: "next",
            href: format!("{base}/compute/v2.1/{path}?{}", qs.finish()),
        }]);
    }
    let resp = if detail {
        let servers = items
            .iter()
            .map(|s| server_view(&base, s, ctx.is_admin))
            .collect();
        json_response(
            StatusCode::OK,
            &List {
                servers,
                servers_links,
            },
        )
    } else {
        let servers = items
            .iter()
            .map(|s| Brief {
                id: &s.id,
                name: &s.name,
                links: links(&base, &s.id),
            })
            .collect();
        json_response(
            StatusCode::OK,
            &List {
                servers,
                servers_links,
            },
        )
    };
    drop(g);
    Ok(resp)
}
