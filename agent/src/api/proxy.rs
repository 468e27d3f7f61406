//! Reads forwarded to the own cloudlet with the caller's scope checked
//! ([`policy`](crate::policy)) and endpoint URLs rewritten to this agent's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::Value;

use super::{call_fault, ctx, fault, forbidden, is_own_project, S};
use crate::cloudlet::Svc;
use crate::core::Core;
use crate::policy;

/// One proxied service: the cloudlet's service, the error envelope it
/// answers in, and the path prefix it has on this agent.
struct Upstream {
    svc: Svc,
    service: Service,
    prefix: &'static str,
}

const COMPUTE: Upstream = Upstream {
    svc: Svc::Compute,
    service: Service::Compute,
    prefix: "/compute/v2.1",
};
const IMAGE: Upstream = Upstream {
    svc: Svc::Image,
    service: Service::Image,
    prefix: "/image",
};
const NETWORK: Upstream = Upstream {
    svc: Svc::Network,
    service: Service::Network,
    prefix: "/network",
};

fn not_found(service: Service) -> ApiError {
    fault(service, 404, "The resource could not be found.")
}

/// Forwards a request to the own cloudlet's service, rewriting the
/// cloudlet's endpoint URLs in the answer to this agent's.
async fn proxy(
    core: Arc<Core>,
    up: &Upstream,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let service = up.service;
    let c = ctx(&core, &headers, service)?;
    if !matches!(method, Method::GET | Method::HEAD) {
        return Err(fault(
            service,
            405,
            "Only reads are federated for this resource.",
        ));
    }
    let rest = uri.path().strip_prefix(up.prefix).unwrap_or("");
    // The service account is admin: the caller's own rights decide.
    let admin = c.claims.is_admin();
    let access = match up.svc {
        Svc::Compute => policy::compute_access(rest),
        Svc::Image => policy::image_access(rest),
        Svc::Network => policy::network_access(rest),
        _ => policy::Access::Unknown,
    };
    match access {
        policy::Access::Admin(rule) if !admin => return Err(forbidden(service, rule)),
        policy::Access::OwnProject { rule, segment } if !admin => {
            let id = rest.split('/').filter(|s| !s.is_empty()).nth(segment);
            if !is_own_project(&core, &c, id.unwrap_or("")).await {
                return Err(forbidden(service, rule));
            }
        }
        policy::Access::Unknown if !admin => return Err(not_found(service)),
        _ => {}
    }
    // Glance and Neutron answers are trimmed to what the caller's project
    // may see (the service account would see every project's).
    let own_pid = if !admin && matches!(up.svc, Svc::Image | Svc::Network) {
        let t = core
            .cloudlet
            .token_for(&c.project)
            .await
            .map_err(|e| call_fault(service, e))?;
        Some(t.project_id.clone())
    } else {
        None
    };
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let body = if body.is_empty() { None } else { Some(body) };
    let resp = core
        .cloudlet
        .call(&c.project, up.svc, method, &path, body, &c.rid)
        .await
        .map_err(|e| call_fault(service, e))?;
    let filtered;
    let body: &[u8] = match (&own_pid, resp.status().is_success()) {
        (Some(own), true) => {
            let mut v =
                serde_json::from_slice::<Value>(resp.body()).map_err(|_| not_found(service))?;
            if !policy::filter_owned(&mut v, own) {
                return Err(not_found(service));
            }
            filtered = v.to_string();
            filtered.as_bytes()
        }
        _ => resp.body(),
    };
    // Not UTF-8 (never from OpenStack): replaced as before the rewrite.
    let text = String::from_utf8_lossy(body);
    let text = match core.cloudlet.endpoints().await {
        Ok(eps) => Rewrite::new(&eps, &c.base).apply(&text),
        Err(_) => text.into_owned(),
    };
    let mut r = (resp.status(), text).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for h in ["openstack-api-version", "x-openstack-nova-api-version"] {
        if let Some(v) = resp.headers().get(h) {
            r.headers_mut().insert(h, v.clone());
        }
    }
    Ok(r)
}

/// The cloudlet's endpoint URLs in an answer, rewritten to this agent's
/// in one pass over the body (the answer is copied once, with no string
/// built per endpoint): `{compute}` → `{base}/compute/v2.1`, `{image}` →
/// `{base}/image`, `{network}` → `{base}/network`, `{identity}` →
/// `{base}/identity`, and nova's unversioned bookmark root
/// (`{compute minus /v2.1}/`) → `{base}/compute/`. At each position the
/// first of these that matches wins, in that order: what replacing each in
/// turn over the whole text gave.
struct Rewrite<'a> {
    /// (cloudlet URL prefix, what follows `base` in its place).
    pairs: [(&'a str, &'static str); 5],
    base: &'a str,
}

impl<'a> Rewrite<'a> {
    fn new(eps: &'a crate::cloudlet::Endpoints, base: &'a str) -> Self {
        // The bookmark root keeps its trailing slash (`…/compute/`), so
        // that `…/compute/v2.1` itself is left to the first pair.
        let root = eps
            .compute
            .strip_suffix("/v2.1")
            .and_then(|r| eps.compute.get(..r.len() + 1))
            .unwrap_or("");
        Self {
            pairs: [
                (eps.compute.as_str(), "/compute/v2.1"),
                (eps.image.as_str(), "/image"),
                (eps.network.as_str(), "/network"),
                (eps.identity.as_str(), "/identity"),
                (root, "/compute/"),
            ],
            base,
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 256);
        let bytes = text.as_bytes();
        let (mut done, mut at) = (0, 0);
        // Candidates are the bytes that start a prefix (a prefix is a
        // `str`, so its first byte never continues a character: `at` is
        // always a char boundary).
        while let Some(off) = bytes[at..].iter().position(|b| {
            self.pairs
                .iter()
                .any(|(f, _)| f.as_bytes().first() == Some(b))
        }) {
            let i = at + off;
            let hit = self
                .pairs
                .iter()
                .find(|(from, _)| !from.is_empty() && bytes[i..].starts_with(from.as_bytes()));
            match hit {
                Some((from, to)) => {
                    out.push_str(&text[done..i]);
                    out.push_str(self.base);
                    out.push_str(to);
                    done = i + from.len();
                    at = done;
                }
                None => at = i + 1,
            }
        }
        out.push_str(&text[done..]);
        out
    }
}

pub(super) async fn proxy_compute(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    proxy(core, &COMPUTE, method, headers, uri, body).await
}

pub(super) async fn proxy_image(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    proxy(core, &IMAGE, method, headers, uri, body).await
}

pub(super) async fn proxy_network(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    proxy(core, &NETWORK, method, headers, uri, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudlet::Endpoints;

    /// What the proxy did before the one-pass rewrite: each pair replaced
    /// over the whole text in turn.
    fn chained(eps: &Endpoints, base: &str, text: &str) -> String {
        let mut text = text.to_string();
        let mut pairs = vec![
            (eps.compute.clone(), format!("{base}/compute/v2.1")),
            (eps.image.clone(), format!("{base}/image")),
            (eps.network.clone(), format!("{base}/network")),
            (eps.identity.clone(), format!("{base}/identity")),
        ];
        if let Some(root) = eps.compute.strip_suffix("/v2.1") {
            pairs.push((format!("{root}/"), format!("{base}/compute/")));
        }
        for (from, to) in pairs {
            if !from.is_empty() {
                text = text.replace(&from, &to);
            }
        }
        text
    }

    fn eps(host: &str) -> Endpoints {
        Endpoints {
            identity: format!("{host}/identity"),
            compute: format!("{host}/compute/v2.1"),
            image: format!("{host}/image"),
            network: format!("{host}/network"),
            placement: Some(format!("{host}/placement")),
        }
    }

    #[test]
    fn one_pass_rewrite_gives_what_chained_replaces_gave() {
        let base = "http://127.0.0.1:9000";
        let body = r#"{"server":{"id":"x","links":[{"rel":"self","href":"http://10.0.0.5:8080/compute/v2.1/servers/x"},{"rel":"bookmark","href":"http://10.0.0.5:8080/compute/servers/x"}],"image":{"links":[{"href":"http://10.0.0.5:8080/compute/images/i"}]},"n":"http://10.0.0.5:8080/network/v2.0","g":"http://10.0.0.5:8080/image/v2","k":"http://10.0.0.5:8080/identity/v3","other":"http://10.0.0.5:8081/compute/v2.1","name":"héllo http http://10.0.0.5:8080"}}"#;
        let cases = [
            eps("http://10.0.0.5:8080"),
            // Separate hosts per service, and a compute URL without /v2.1.
            Endpoints {
                identity: "http://keystone:5000/v3".into(),
                compute: "http://10.0.0.5:8080/compute".into(),
                image: "".into(),
                network: "http://10.0.0.5:8080/network".into(),
                placement: None,
            },
        ];
        for e in &cases {
            for text in [
                body,
                "",
                "no urls here",
                "http://10.0.0.5:8080/compute/v2.1",
            ] {
                let got = Rewrite::new(e, base).apply(text);
                assert_eq!(got, chained(e, base, text), "{text}");
            }
        }
        let got = Rewrite::new(&cases[0], base).apply(body);
        assert!(got.contains("http://127.0.0.1:9000/compute/v2.1/servers/x"));
        assert!(got.contains("http://127.0.0.1:9000/compute/servers/x"));
        assert!(
            got.contains("http://10.0.0.5:8081/compute/v2.1"),
            "another port stays"
        );
        assert!(got.contains("héllo"));
    }
}
