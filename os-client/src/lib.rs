//! Every outbound HTTP call of the project goes through [`Transport`], and a
//! small typed OpenStack client is built on it.
//!
//! Domain code (the agent's forwarding, loadgen's workflows) builds an
//! `http::Request<Bytes>` with an absolute URI and hands it to a transport.
//! [`ReqwestTransport`] sends it over the network; [`InProcessTransport`]
//! hands it straight to in-process tower services keyed by authority, so a
//! testbed can wire mocks and agents without sockets and later run them on a
//! simulated clock. No `reqwest` or socket type leaks past this module.
//!
//! On top of the transport:
//! - [`auth`]: Keystone v3 password auth (token + catalog);
//! - [`session`]: [`OpenStackSession`], shared by many tasks, re-authenticating
//!   once on 401 and optionally retrying 413/429/503 after `Retry-After`;
//! - [`compute`], [`image`], [`network`]: the calls of the boot workflow and
//!   lookups by name or ID;
//! - [`cloudsyaml`]: clouds.yaml and `OS_*` resolution, like openstacksdk.

pub mod auth;
pub mod cloudsyaml;
pub mod compute;
pub mod error;
pub mod http_util;
pub mod image;
pub mod network;
pub mod session;
pub mod transport;

pub use auth::{authenticate, Catalog, Credentials, Token};
pub use error::ClientError;
pub use session::{ApiResponse, OpenStackSession, RetryPolicy};
pub use transport::{
    HttpRequest, HttpResponse, InProcessTransport, ReqwestTransport, SharedTransport, Transport,
    TransportError,
};
