//! What the workspace's tests repeat, in one place (`publish = false`):
//!
//! - [`openstack_cli`]: the real `openstack` CLI (and any other tool of the
//!   project's `.venv`) against an endpoint, skipped with a message when the
//!   venv is missing unless `CI=true`;
//! - [`slow_client`]: raw-TCP probes of a server's connection limits (half a
//!   request head, a body that never arrives) and the reading of the answer;
//! - [`cloudlet_fake`]: wiremock fakes of a cloudlet's Keystone (token with a
//!   catalog) for clients that talk to one cloudlet;
//! - [`fixtures`]: request bodies with the mock's DevStack defaults;
//! - `federation` (feature `federation`): N mocks with one agent each on
//!   loopback, the agent tests' fixture.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::openstack_cli::Cli;
//! let mock = mock_openstack::start(mock_openstack::MockConfig {
//!     listen: "127.0.0.1:0".into(),
//!     ..Default::default()
//! })
//! .await
//! .expect("mock");
//! let Some(cli) = Cli::for_mock(&mock.auth_url()) else { return };
//! let flavors = cli.ok(&["flavor", "list"]).await;
//! assert!(flavors.contains("m1.tiny"));
//! # }
//! ```

pub mod cloudlet_fake;
#[cfg(feature = "federation")]
pub mod federation;
pub mod fixtures;
pub mod openstack_cli;
pub mod slow_client;
