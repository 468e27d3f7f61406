//! Nova v2.1: servers, flavors, hypervisors.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ClientError;
use crate::session::{ApiResponse, OpenStackSession, RetryPolicy};

pub const SERVICE: &str = "compute";

/// Header a P2P agent sets to the cloudlet that owns the server.
pub const HEADER_CLOUDLET: &str = "x-p2p-cloudlet";
/// Header a P2P agent sets to its own cloudlet.
pub const HEADER_AGENT: &str = "x-p2p-agent";

/// Percent-encodes one path segment or query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Where a P2P agent says a server lives, from its response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementHint {
    /// `X-P2P-Cloudlet`: the cloudlet owning the server.
    pub cloudlet: Option<String>,
    /// `X-P2P-Agent`: the cloudlet of the agent that answered.
    pub agent: Option<String>,
}

impl PlacementHint {
    fn from(resp: &ApiResponse) -> Self {
        Self {
            cloudlet: resp.header(HEADER_CLOUDLET).map(str::to_string),
            agent: resp.header(HEADER_AGENT).map(str::to_string),
        }
    }
}

/// The boot request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateServer {
    pub name: String,
    pub image_ref: String,
    pub flavor_ref: String,
    /// Network UUIDs; when empty the key is omitted (microversion 2.1 lets
    /// Nova pick the network).
    pub networks: Vec<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

impl CreateServer {
    pub fn body(&self) -> Value {
        let mut server = json!({
            "name": self.name,
            "imageRef": self.image_ref,
            "flavorRef": self.flavor_ref,
            "min_count": 1,
            "max_count": 1,
        });
        if !self.networks.is_empty() {
            server["networks"] =
                Value::Array(self.networks.iter().map(|n| json!({ "uuid": n })).collect());
        }
        if !self.metadata.is_empty() {
            server["metadata"] = Value::Object(self.metadata.clone());
        }
        json!({ "server": server })
    }
}

/// The answer to a boot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedServer {
    pub id: String,
    pub hint: PlacementHint,
}

/// What a server GET tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub task_state: Option<String>,
    /// `fault.message` when the server is in ERROR.
    pub fault: Option<String>,
    /// `OS-EXT-SRV-ATTR:host` (admin only).
    pub host: Option<String>,
    pub hint: PlacementHint,
}

/// One row of a server list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSummary {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `POST /servers`. The server id is read from the body.
pub async fn create_server(
    s: &OpenStackSession,
    req: &CreateServer,
) -> Result<CreatedServer, ClientError> {
    create_server_with(s, req, RetryPolicy::NONE).await
}

/// `POST /servers` with an explicit retry policy for over-limit answers.
pub async fn create_server_with(
    s: &OpenStackSession,
    req: &CreateServer,
    retry: RetryPolicy,
) -> Result<CreatedServer, ClientError> {
    let resp = s
        .send_with(SERVICE, Method::POST, "/servers", Some(&req.body()), retry)
        .await?;
    let v: Value = resp.json()?;
    let id = v
        .get("server")
        .and_then(|sv| str_field(sv, "id"))
        .ok_or_else(|| ClientError::malformed(&resp.url, "no server.id in the boot answer"))?;
    Ok(CreatedServer {
        id,
        hint: PlacementHint::from(&resp),
    })
}

/// `GET /servers/{id}`. A 404 is `ClientError::Api { status: 404, .. }`.
pub async fn get_server(s: &OpenStackSession, id: &str) -> Result<ServerView, ClientError> {
    get_server_with(s, id, RetryPolicy::NONE).await
}

pub async fn get_server_with(
    s: &OpenStackSession,
    id: &str,
    retry: RetryPolicy,
) -> Result<ServerView, ClientError> {
    let path = format!("/servers/{}", encode(id));
    let resp = s
        .send_with(SERVICE, Method::GET, &path, None, retry)
        .await?;
    // Only the fields read below are decoded (a poll loop does this many
    // times a second; the rest of the ~1.6 KiB view is skipped unparsed).
    let shown: Shown = resp.json()?;
    let server = shown
        .server
        .ok_or_else(|| ClientError::malformed(&resp.url, "no \"server\" object"))?;
    let status = server
        .status
        .ok_or_else(|| ClientError::malformed(&resp.url, "no server.status"))?;
    Ok(ServerView {
        id: server.id.unwrap_or_else(|| id.to_string()),
        name: server.name,
        status,
        task_state: server.task_state,
        fault: server.fault.and_then(|f| f.message),
        host: server.host,
        hint: PlacementHint::from(&resp),
    })
}

/// What [`get_server_with`] reads of `{"server": {...}}`.
#[derive(Deserialize)]
struct Shown {
    server: Option<ShownServer>,
}

#[derive(Deserialize)]
struct ShownServer {
    id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state")]
    task_state: Option<String>,
    fault: Option<ShownFault>,
    #[serde(rename = "OS-EXT-SRV-ATTR:host")]
    host: Option<String>,
}

#[derive(Deserialize)]
struct ShownFault {
    message: Option<String>,
}

/// `DELETE /servers/{id}`.
pub async fn delete_server(s: &OpenStackSession, id: &str) -> Result<(), ClientError> {
    delete_server_with(s, id, RetryPolicy::NONE).await
}

pub async fn delete_server_with(
    s: &OpenStackSession,
    id: &str,
    retry: RetryPolicy,
) -> Result<(), ClientError> {
    let path = format!("/servers/{}", encode(id));
    s.send_with(SERVICE, Method::DELETE, &path, None, retry)
        .await
        .map(|_| ())
}

/// Upper bound on pages followed by [`list_servers`], against a target
/// whose pagination never ends.
pub const MAX_PAGES: usize = 100_000;

/// Every server visible to the session (`GET /servers?limit=N&marker=…`),
/// following pages until one comes back empty or without a next link.
pub async fn list_servers(
    s: &OpenStackSession,
    page_size: u32,
    all_tenants: bool,
) -> Result<Vec<ServerSummary>, ClientError> {
    #[derive(Deserialize)]
    struct Page {
        servers: Vec<ServerSummary>,
        #[serde(default)]
        servers_links: Vec<Link>,
    }
    #[derive(Deserialize)]
    struct Link {
        #[serde(default)]
        rel: String,
    }
    let mut out: Vec<ServerSummary> = Vec::new();
    let mut marker: Option<String> = None;
    let page_size = page_size.max(1);
    for _ in 0..MAX_PAGES {
        let mut path = format!("/servers?limit={page_size}");
        if all_tenants {
            path.push_str("&all_tenants=1");
        }
        if let Some(m) = &marker {
            path.push_str(&format!("&marker={}", encode(m)));
        }
        let resp = s.send(SERVICE, Method::GET, &path, None).await?;
        let page: Page = resp.json()?;
        let has_next = page.servers_links.iter().any(|l| l.rel == "next");
        let full = page.servers.len() >= page_size as usize;
        let last = match page.servers.last() {
            Some(l) => l.id.clone(),
            None => return Ok(out),
        };
        out.extend(page.servers);
        if !(has_next || full) {
            return Ok(out);
        }
        if marker.as_deref() == Some(last.as_str()) {
            return Err(ClientError::malformed(
                &resp.url,
                "pagination did not advance (same marker twice)",
            ));
        }
        marker = Some(last);
    }
    Err(ClientError::Malformed {
        what: "GET /servers".into(),
        detail: format!("more than {MAX_PAGES} pages"),
    })
}

/// A flavor by ID or name: `GET /flavors/{x}`, then the detail list.
pub async fn find_flavor(s: &OpenStackSession, name_or_id: &str) -> Result<Flavor, ClientError> {
    match s
        .get_json(SERVICE, &format!("/flavors/{}", encode(name_or_id)))
        .await
    {
        Ok(v) => {
            if let Some(f) = v.get("flavor") {
                if let (Some(id), Some(name)) = (str_field(f, "id"), str_field(f, "name")) {
                    return Ok(Flavor { id, name });
                }
            }
            Err(ClientError::malformed(
                "GET /flavors/{id}",
                "no flavor.id/name",
            ))
        }
        Err(e) if e.is_not_found() => {
            let v = s
                .get_json(SERVICE, "/flavors/detail?is_public=None")
                .await?;
            let list = v
                .get("flavors")
                .and_then(Value::as_array)
                .ok_or_else(|| ClientError::malformed("GET /flavors/detail", "no flavors list"))?;
            pick(
                "flavor",
                name_or_id,
                list.iter().filter_map(|f| {
                    Some(Flavor {
                        id: str_field(f, "id")?,
                        name: str_field(f, "name")?,
                    })
                }),
                |f| (&f.id, &f.name),
            )
        }
        Err(e) => Err(e),
    }
}

/// Picks the one item whose id or name equals `wanted` (id wins).
pub(crate) fn pick<T>(
    kind: &str,
    wanted: &str,
    items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> (&String, &String),
) -> Result<T, ClientError> {
    let mut by_name = Vec::new();
    for item in items {
        let (id, name) = key(&item);
        if id == wanted {
            return Ok(item);
        }
        if name == wanted {
            by_name.push(item);
        }
    }
    match by_name.len() {
        0 => Err(ClientError::NotFound {
            kind: kind.into(),
            name: wanted.into(),
        }),
        1 => Ok(by_name.remove(0)),
        count => Err(ClientError::Ambiguous {
            kind: kind.into(),
            name: wanted.into(),
            count,
        }),
    }
}

/// `GET /os-hypervisors/statistics`, the raw object.
pub async fn hypervisor_statistics(s: &OpenStackSession) -> Result<Value, ClientError> {
    let v = s.get_json(SERVICE, "/os-hypervisors/statistics").await?;
    v.get("hypervisor_statistics")
        .cloned()
        .ok_or_else(|| ClientError::malformed("GET /os-hypervisors/statistics", "no statistics"))
}

/// `GET /os-hypervisors/detail`: (hostname, state, status) of each hypervisor.
pub async fn hypervisors(s: &OpenStackSession) -> Result<Vec<Value>, ClientError> {
    let v = s.get_json(SERVICE, "/os-hypervisors/detail").await?;
    v.get("hypervisors")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ClientError::malformed("GET /os-hypervisors/detail", "no hypervisors"))
}
