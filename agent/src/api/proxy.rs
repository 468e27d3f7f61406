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
    let mut text = String::from_utf8_lossy(resp.body()).into_owned();
    if let (Some(own), true) = (&own_pid, resp.status().is_success()) {
        let mut v = serde_json::from_str::<Value>(&text).map_err(|_| not_found(service))?;
        if !policy::filter_owned(&mut v, own) {
            return Err(not_found(service));
        }
        text = v.to_string();
    }
    if let Ok(eps) = core.cloudlet.endpoints().await {
        let mut pairs = vec![
            (eps.compute.clone(), format!("{}/compute/v2.1", c.base)),
            (eps.image.clone(), format!("{}/image", c.base)),
            (eps.network.clone(), format!("{}/network", c.base)),
            (eps.identity.clone(), format!("{}/identity", c.base)),
        ];
        // Nova bookmark links (`.../compute/flavors/1`) use the unversioned root.
        if let Some(root) = eps.compute.strip_suffix("/v2.1") {
            pairs.push((format!("{root}/"), format!("{}/compute/", c.base)));
        }
        for (from, to) in pairs {
            if !from.is_empty() {
                text = text.replace(&from, &to);
            }
        }
    }
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
