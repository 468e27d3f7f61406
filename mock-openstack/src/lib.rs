//! One OpenStack deployment (1 controller + K computes) that real clients
//! accept: Keystone, Nova, Glance, Neutron and Placement on one port with
//! the DevStack path layout.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mock_openstack::MockError> {
//! let mock = mock_openstack::start(mock_openstack::MockConfig {
//!     listen: "127.0.0.1:0".into(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("auth_url = {}", mock.auth_url());
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: pure logic in `capacity`, `lifecycle`, `pagination`; state in
//! `state`; `driver` runs the cp-model engine (API stage, build and delete
//! pipelines, capacity) in one task and is the only code that sleeps (on
//! `alarm`'s timer); one module per service for the HTTP handlers.

mod alarm;
pub mod capacity;
mod compute;
pub mod config;
mod control;
pub mod defaults;
pub mod driver;
mod edge;
pub mod error;
mod http;
mod identity;
mod image;
pub mod lifecycle;
mod network;
pub mod pagination;
mod placement;
mod server;
pub mod servers_store;
pub mod state;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;

pub use config::MockConfig;
pub use error::MockError;
pub use server::{start, start_with_limits, ConnLimits, MockHandle};

/// The whole deployment as an in-process service (no socket). Must be
/// called inside a tokio runtime: it spawns the task that owns the cp-model
/// engine (it ends when the router and every clone of it are dropped).
pub fn router(config: MockConfig) -> Result<Router, MockError> {
    Ok(router_with_state(new_state(config)?))
}

/// The deployment's state with its engine task running (inside a tokio
/// runtime).
pub fn new_state(config: MockConfig) -> Result<Arc<state::State>, MockError> {
    config.validate()?;
    let (link, parts) = driver::build(&config)?;
    let st = Arc::new(state::State::new(config, link));
    driver::spawn(&st, parts);
    Ok(st)
}

/// The router over a given state.
pub fn router_with_state(st: Arc<state::State>) -> Router {
    Router::new().fallback_service(edge_with_state(st))
}

/// The routes behind the edge service (what `router_with_state` wraps in a
/// `Router` for in-process callers; the server runs it as it is).
pub(crate) fn edge_with_state(st: Arc<state::State>) -> edge::Edge {
    let routes = Router::new()
        .merge(identity::routes())
        .merge(compute::routes())
        .merge(image::routes())
        .merge(network::routes())
        .merge(placement::routes())
        .merge(control::routes())
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .with_state(st.clone());
    edge::Edge::new(st, routes)
}

/// A clouds.yaml with two clouds: `{cloud}` (admin/admin) and
/// `{cloud}-demo` (demo/demo), usable with `openstack --os-cloud {cloud}`.
pub fn clouds_yaml(cloud: &str, auth_url: &str, region: &str) -> String {
    let demo = format!("{cloud}-demo");
    let entry = |name, user| os_wire::clouds_yaml::Cloud {
        name,
        auth_url,
        username: user,
        password: defaults::PASSWORD,
        project_name: user,
        domain: "Default",
        region,
    };
    os_wire::clouds_yaml::render(&[entry(cloud, "admin"), entry(&demo, "demo")])
}
