//! What wraps every request, as one tower service in front of the routes:
//! path normalisation, the control plane's API stage, body checks, the
//! service's error envelope for errors raised outside the handlers
//! (404/405/413 …), request ids, microversion headers, metrics.
//!
//! One hand-written service instead of a stack of `from_fn` middlewares:
//! each of those boxes and clones the rest of the stack for every request,
//! which `perf` showed as a visible share of the mock's CPU per call.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use cp_model::ApiKind;
use http::uri::PathAndQuery;
use http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use os_wire::{ApiError, Service};
use tower::Service as _;

use crate::error::service_for_path;
use crate::http::{content_type_refusal, BODY_READ_TIMEOUT, MAX_BODY, RESPONSE_HEADERS};
use crate::state::State;

const X_OPENSTACK_REQUEST_ID: HeaderName = HeaderName::from_static("x-openstack-request-id");
const X_COMPUTE_REQUEST_ID: HeaderName = HeaderName::from_static("x-compute-request-id");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The routes behind the per-request behaviour above.
#[derive(Clone)]
pub struct Edge {
    st: Arc<State>,
    routes: Router,
}

impl Edge {
    pub fn new(st: Arc<State>, routes: Router) -> Self {
        Self { st, routes }
    }
}

/// Any request body hyper or an in-process caller hands in (as `Router`
/// accepts), so the server can run the edge without a router around it.
impl<B> tower::Service<http::Request<B>> for Edge
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A `Router` is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let st = self.st.clone();
        let routes = self.routes.clone();
        let req = req.map(axum::body::Body::new);
        Box::pin(async move { Ok(handle(&st, routes, req).await) })
    }
}

/// Index of a service in `state::SERVICE_LABELS`.
pub fn service_index(s: Service) -> usize {
    match s {
        Service::Identity => 0,
        Service::Compute => 1,
        Service::Image => 2,
        Service::Network => 3,
        Service::Placement => 4,
        Service::Control => 5,
    }
}

async fn handle(st: &State, routes: Router, req: Request) -> Response {
    let req = normalize(req);
    let service = service_for_path(req.uri().path());
    st.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    // Every OpenStack API call (token issue/validation included) first
    // passes the control plane's API stage.
    let admitted = match service {
        // The mock's own endpoints skip the API stage; they still see the
        // model as of now.
        Service::Control => {
            st.engine.sync(st);
            Ok(())
        }
        _ => {
            let kind = match *req.method() {
                Method::GET | Method::HEAD | Method::OPTIONS => ApiKind::Get,
                Method::DELETE => ApiKind::Delete,
                _ => ApiKind::Post,
            };
            st.engine.api_call(st, kind).await
        }
    };
    let mut resp = match admitted {
        Ok(()) => match body_checks(service, req).await {
            Ok(req) => route(routes, req).await,
            Err(e) => e.into_response(),
        },
        Err((code, message)) => api_rejected(service, code, message),
    };
    st.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        rewrap_bare_error(service, &mut resp);
    }
    let h = resp.headers_mut();
    // One growth at most (none for `json_response`'s presized maps).
    let _ = h.try_reserve(RESPONSE_HEADERS.saturating_sub(h.len()));
    let rid = st.metrics.request_id();
    if service == Service::Compute {
        h.insert(X_OPENSTACK_REQUEST_ID, rid.clone());
        h.insert(X_COMPUTE_REQUEST_ID, rid);
        crate::compute::microversion_headers(h);
    } else {
        h.insert(X_OPENSTACK_REQUEST_ID, rid);
    }
    if status != StatusCode::NO_CONTENT && !h.contains_key(header::CONTENT_TYPE) {
        h.insert(header::CONTENT_TYPE, APPLICATION_JSON);
    }
    st.metrics.count(service_index(service), status.as_u16());
    resp
}

async fn route(mut routes: Router, req: Request) -> Response {
    match routes.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// axum's own rejections (no route, wrong method, body too large, bad
/// path) come as text: re-wrap them in the service's envelope.
fn rewrap_bare_error(service: Service, resp: &mut Response) {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return;
    }
    let status = resp.status();
    let msg = match status.as_u16() {
        404 => "The resource could not be found.".to_string(),
        405 => "The method is not allowed for the requested URL.".to_string(),
        413 => format!("Request body is larger than {MAX_BODY} bytes."),
        _ => status.canonical_reason().unwrap_or("Error").to_string(),
    };
    let allow = resp.headers().get(header::ALLOW).cloned();
    *resp = ApiError::new(service, status, msg).into_response();
    if let Some(a) = allow {
        resp.headers_mut().insert(header::ALLOW, a);
    }
}

/// The API stage refused the call: 503 (backlog full, API unavailable;
/// `Retry-After: 1`) or 504 (waited past the API timeout), in the service's
/// envelope (Nova: `serviceUnavailable` / `computeFault`).
fn api_rejected(service: Service, code: u16, message: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut e = ApiError::new(service, status, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        e = e.with_retry_after(1);
    }
    e.into_response()
}

/// Reads the body within [`BODY_READ_TIMEOUT`] (408 otherwise; 413 beyond
/// [`MAX_BODY`]) and refuses a body whose Content-Type the real service
/// would refuse, before any handler runs.
async fn body_checks(service: Service, req: Request) -> Result<Request, ApiError> {
    // Most calls (GET, DELETE) carry no body: nothing to read or time.
    if axum::body::HttpBody::is_end_stream(req.body()) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return Err(ApiError::new(
                    service,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body is larger than {MAX_BODY} bytes."),
                ))
            }
            Err(_) => {
                return Err(ApiError::new(
                    service,
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body did not arrive in time.",
                ))
            }
        };
    if !bytes.is_empty() {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some((status, msg)) = content_type_refusal(service, ct) {
            return Err(ApiError::new(service, status, msg));
        }
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Strips trailing slashes so `/compute/v2.1/` and `/compute/v2.1` route alike.
fn normalize(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && (path.ends_with('/') || path.contains("//")) {
        let mut p = path.to_string();
        while p.contains("//") {
            p = p.replace("//", "/");
        }
        let trimmed = p.trim_end_matches('/');
        let new = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match req.uri().query() {
            Some(q) => format!("{new}?{q}"),
            None => new.to_string(),
        };
        if let Ok(pq) = PathAndQuery::try_from(pq) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}
