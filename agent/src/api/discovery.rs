//! Version discovery documents (Keystone, Nova, Glance, Neutron) and
//! the agent's Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::*;

const UPDATED: &str = "2026-01-01T00:00:00Z";

fn keystone_v3(base: &str) -> Value {
    json!({"id": "v3.14", "status": "stable", "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
}

pub(super) async fn identity_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": {"values": [keystone_v3(&base)]}}),
    )
}

pub(super) async fn identity_v3(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"version": keystone_v3(&base_of(&core, &headers))}),
    )
}

fn nova_v21(base: &str) -> Value {
    json!({"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1", "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")}]})
}

pub(super) async fn compute_versions(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"versions": [nova_v21(&base_of(&core, &headers))]}),
    )
}

pub(super) async fn compute_v21(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"version": nova_v21(&base_of(&core, &headers))}),
    )
}

pub(super) async fn image_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": [{"id": "v2.15", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/image/v2/")}]}]}),
    )
}

pub(super) async fn network_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::OK,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/network/v2.0/")}]}]}),
    )
}

pub(super) async fn metrics(State(core): S) -> Response {
    let hb = core.gossip.heartbeat().await;
    let text = core
        .metrics
        .render(&core.name, core.gossip.members_alive(), hb);
    let mut r = text.into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
