//! The mock's own endpoints: `/mock/v1/info` (no auth) and `/metrics`
//! (Prometheus text).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};
use serde_json::json;

use crate::http::ok;
use crate::state::State;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/mock/v1/info", get(info))
        .route("/metrics", get(metrics))
}

async fn info(AxState(st): AxState<Arc<State>>) -> Response {
    let c = &st.cfg;
    let (vcpus, ram_mb, disk_gb) = c.capacity();
    ok(json!({
        "name": c.name, "region": c.region, "profile": c.profile,
        "time_scale": c.time_scale, "computes": c.computes,
        "capacity": {
            "vcpus": vcpus, "ram_mb": ram_mb, "disk_gb": disk_gb,
            "after_allocation_ratios": true,
            "allocation_ratios": {"cpu": c.cpu_allocation_ratio, "ram": c.ram_allocation_ratio, "disk": c.disk_allocation_ratio},
        },
        "seed": c.seed,
        "boot_delay_s": c.boot_delay_s, "delete_delay_s": c.delete_delay_s,
    }))
}

/// Prometheus text exposition (the one non-JSON body, as scrapers expect).
async fn metrics(AxState(st): AxState<Arc<State>>) -> Response {
    let mut out = String::new();
    let reqs = st.metrics.snapshot();
    let _ = writeln!(
        out,
        "# HELP mock_openstack_requests_total HTTP requests by service and status."
    );
    let _ = writeln!(out, "# TYPE mock_openstack_requests_total counter");
    for (svc, code, n) in reqs {
        let _ = writeln!(
            out,
            "mock_openstack_requests_total{{service=\"{svc}\",code=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# TYPE mock_openstack_requests_in_flight gauge");
    let _ = writeln!(
        out,
        "mock_openstack_requests_in_flight {}",
        st.metrics.in_flight.load(Ordering::Relaxed)
    );
    let g = st.lock();
    let mut by_status: BTreeMap<&str, u64> = ["BUILD", "ACTIVE", "ERROR"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let mut deleting = 0u64;
    for s in g.servers.values() {
        *by_status.entry(s.lc.status()).or_insert(0) += 1;
        deleting += u64::from(s.lc.is_deleting());
    }
    let _ = writeln!(out, "# HELP mock_openstack_servers Servers by API status.");
    let _ = writeln!(out, "# TYPE mock_openstack_servers gauge");
    for (s, n) in by_status {
        let _ = writeln!(out, "mock_openstack_servers{{status=\"{s}\"}} {n}");
    }
    let _ = writeln!(out, "# TYPE mock_openstack_servers_deleting gauge");
    let _ = writeln!(out, "mock_openstack_servers_deleting {deleting}");
    let _ = writeln!(out, "# TYPE mock_openstack_boots_total counter");
    let _ = writeln!(
        out,
        "mock_openstack_boots_total{{result=\"active\"}} {}",
        g.boots_active
    );
    let _ = writeln!(
        out,
        "mock_openstack_boots_total{{result=\"error\"}} {}",
        g.boots_error
    );
    let _ = writeln!(out, "# TYPE mock_openstack_deletes_total counter");
    let _ = writeln!(out, "mock_openstack_deletes_total {}", g.deletes_done);
    let used = g.capacity.used();
    let _ = writeln!(out, "# TYPE mock_openstack_capacity_used gauge");
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"vcpus\"}} {}",
        used.vcpus
    );
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"ram_mb\"}} {}",
        used.ram_mb
    );
    let _ = writeln!(
        out,
        "mock_openstack_capacity_used{{resource=\"disk_gb\"}} {}",
        used.disk_gb
    );
    drop(g);
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
