//! A small stateful fake OpenStack on wiremock, for behaviours the real mock
//! cannot be asked for (a leaking DELETE, exact error injections).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Default, Clone)]
pub struct FakeOptions {
    /// GETs that answer BUILD before ACTIVE.
    pub build_polls: u32,
    /// Every n-th boot (1-based) goes to ERROR with this fault.
    pub error_every: Option<(u32, String)>,
    /// Every n-th POST answers 403 quota exceeded.
    pub quota_every: Option<u32>,
    /// DELETE answers 204 but the server stays in the list (GET says 404).
    pub leak: bool,
    /// Delay of each POST /servers answer.
    pub post_delay: Duration,
    /// Answer 401 to auth.
    pub wrong_password: bool,
    /// Leave compute out of the catalog.
    pub no_compute: bool,
    /// X-P2P headers: (owner cloudlet, answering agent).
    pub p2p: Option<(String, String)>,
}

struct Srv {
    name: String,
    polls: u32,
    error: Option<String>,
    deleted: bool,
}

pub struct Fake {
    base: String,
    opts: FakeOptions,
    servers: Mutex<BTreeMap<String, Srv>>,
    posts: AtomicU32,
    pub max_concurrent_posts: AtomicU32,
}

fn json_resp(status: u16, v: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(v)
}

fn not_found(what: &str) -> ResponseTemplate {
    json_resp(
        404,
        json!({"itemNotFound": {"code": 404, "message": format!("{what} could not be found.")}}),
    )
}

impl Fake {
    pub fn servers_left(&self) -> usize {
        self.servers
            .lock()
            .unwrap()
            .values()
            .filter(|s| !s.deleted)
            .count()
    }

    fn token(&self) -> ResponseTemplate {
        if self.opts.wrong_password {
            return json_resp(
                401,
                json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
            );
        }
        let ep = |t: &str, path: &str| json!({"type": t, "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": format!("{}{path}", self.base)}]});
        let mut catalog = vec![ep("image", "/image"), ep("network", "/network")];
        if !self.opts.no_compute {
            catalog.push(ep("compute", "/compute/v2.1"));
        }
        ResponseTemplate::new(201)
            .insert_header("X-Subject-Token", "tok")
            .set_body_json(
                json!({"token": {"expires_at": "2099-01-01T00:00:00Z", "catalog": catalog,
                "project": {"id": "p"}, "user": {"id": "u"}, "roles": [{"name": "admin"}]}}),
            )
    }

    fn with_p2p(&self, r: ResponseTemplate) -> ResponseTemplate {
        match &self.opts.p2p {
            Some((c, a)) => r
                .insert_header("X-P2P-Cloudlet", c.as_str())
                .insert_header("X-P2P-Agent", a.as_str()),
            None => r,
        }
    }
}

pub struct Responder(pub Arc<Fake>);

impl std::ops::Deref for Responder {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_string();
        let m = req.method.as_str();
        let q: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match (m, path.as_str()) {
            ("POST", "/identity/v3/auth/tokens") => self.token(),
            ("GET", "/compute/v2.1/flavors/detail") => {
                json_resp(200, json!({"flavors": [{"id": "1", "name": "m1.tiny"}]}))
            }
            ("GET", p) if p.starts_with("/compute/v2.1/flavors/") => {
                if p.ends_with("/1") {
                    json_resp(200, json!({"flavor": {"id": "1", "name": "m1.tiny"}}))
                } else {
                    not_found("Flavor")
                }
            }
            ("GET", "/image/v2/images") => {
                let imgs: Vec<Value> = if q.get("name").map(String::as_str) == Some("cirros") {
                    vec![json!({"id": "img-1", "name": "cirros"})]
                } else {
                    vec![]
                };
                json_resp(200, json!({"images": imgs}))
            }
            ("GET", p) if p.starts_with("/image/v2/images/") => json_resp(
                404,
                json!({"code": 404, "title": "Not Found", "message": "No image found"}),
            ),
            ("GET", "/network/v2.0/networks") => {
                let n: Vec<Value> = if q.get("name").map(String::as_str) == Some("private") {
                    vec![json!({"id": "net-1", "name": "private"})]
                } else {
                    vec![]
                };
                json_resp(200, json!({"networks": n}))
            }
            ("GET", p) if p.starts_with("/network/v2.0/networks/") => json_resp(
                404,
                json!({"NeutronError": {"type": "NetworkNotFound", "message": "Network could not be found.", "detail": ""}}),
            ),
            ("POST", "/compute/v2.1/servers") => {
                let n = self.posts.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(every) = self.opts.quota_every {
                    if n.is_multiple_of(every) {
                        return json_resp(403, json!({"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}))
                            .set_delay(self.opts.post_delay);
                    }
                }
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let name = body["server"]["name"].as_str().unwrap_or("").to_string();
                let id = uuid::Uuid::new_v4().to_string();
                let error = match &self.opts.error_every {
                    Some((every, msg)) if n.is_multiple_of(*every) => Some(msg.clone()),
                    _ => None,
                };
                self.servers.lock().unwrap().insert(
                    id.clone(),
                    Srv {
                        name,
                        polls: 0,
                        error,
                        deleted: false,
                    },
                );
                self.with_p2p(json_resp(202, json!({"server": {"id": id}})))
                    .set_delay(self.opts.post_delay)
            }
            ("GET", "/compute/v2.1/servers") => {
                let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
                let servers = self.servers.lock().unwrap();
                let mut rows: Vec<Value> = Vec::new();
                let mut started = !q.contains_key("marker");
                for (id, s) in servers.iter() {
                    if s.deleted && !self.opts.leak {
                        continue;
                    }
                    if !started {
                        if Some(id) == q.get("marker") {
                            started = true;
                        }
                        continue;
                    }
                    rows.push(json!({"id": id, "name": s.name}));
                    if rows.len() == limit {
                        break;
                    }
                }
                let mut body = json!({"servers": rows});
                if rows.len() == limit {
                    body["servers_links"] = json!([{"rel": "next", "href": "x"}]);
                }
                json_resp(200, body)
            }
            (m, p) if p.starts_with("/compute/v2.1/servers/") => {
                let id = p.trim_start_matches("/compute/v2.1/servers/").to_string();
                let mut servers = self.servers.lock().unwrap();
                let Some(s) = servers.get_mut(&id) else {
                    return not_found(&format!("Instance {id}"));
                };
                if s.deleted {
                    return not_found(&format!("Instance {id}"));
                }
                if m == "DELETE" {
                    s.deleted = true;
                    return ResponseTemplate::new(204);
                }
                s.polls += 1;
                let status = if s.polls <= self.opts.build_polls {
                    "BUILD"
                } else if s.error.is_some() {
                    "ERROR"
                } else {
                    "ACTIVE"
                };
                let mut v = json!({"server": {"id": id, "status": status, "OS-EXT-SRV-ATTR:host": "compute-1"}});
                if status == "ERROR" {
                    v["server"]["fault"] =
                        json!({"code": 500, "message": s.error.clone().unwrap_or_default()});
                }
                self.with_p2p(json_resp(200, v))
            }
            _ => json_resp(
                404,
                json!({"error": {"code": 404, "message": format!("no route {m} {path}")}}),
            ),
        }
    }
}

pub async fn start(opts: FakeOptions) -> (MockServer, Arc<Fake>) {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    let fake = Arc::new(Fake {
        base: server.uri(),
        opts,
        servers: Mutex::new(BTreeMap::new()),
        posts: AtomicU32::new(0),
        max_concurrent_posts: AtomicU32::new(0),
    });
    Mock::given(any())
        .respond_with(Responder(fake.clone()))
        .mount(&server)
        .await;
    (server, fake)
}
