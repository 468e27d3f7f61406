//! Every outbound HTTP call of the project goes through [`Transport`].
//!
//! Domain code (the agent's forwarding, loadgen's workflows) builds an
//! `http::Request<Bytes>` with an absolute URI and hands it to a transport.
//! [`ReqwestTransport`] sends it over the network; [`InProcessTransport`]
//! hands it straight to in-process tower services keyed by authority, so a
//! testbed can wire mocks and agents without sockets and later run them on a
//! simulated clock. No `reqwest` or socket type leaks past this module.

pub mod transport;

pub use transport::{
    HttpRequest, HttpResponse, InProcessTransport, ReqwestTransport, SharedTransport, Transport,
    TransportError,
};
