//! Glance v2: discovery, the seeded cirros image, list with filters and
//! `next` pagination, show, schemas.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, StatusCode};
use os_wire::Service;
use serde_json::{json, Value};

use crate::defaults::{ADMIN_PROJECT_ID, IMAGE_ID, IMAGE_NAME, SEED_TIME};
use crate::error::ApiResult;
use crate::http::{ok, with_status};
use crate::pagination::{paginate, parse_limit, PageError};
use crate::state::{parse_query, q, truthy, State};
use os_wire::ApiError;

const S: Service = Service::Image;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/versions", get(versions_ok))
        .route("/image/v2", get(versions))
        .route("/image/v2/images", get(list))
        .route("/image/v2/images/{id}", get(show))
        .route("/image/v2/schemas/image", get(schema_image))
        .route("/image/v2/schemas/images", get(schema_images))
}

fn versions_body(base: &str) -> Value {
    let v = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": format!("{base}/image/v2/")}]});
    json!({"versions": [v("v2.15", "CURRENT"), v("v2.9", "SUPPORTED"), v("v2.0", "SUPPORTED")]})
}

async fn versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    with_status(
        StatusCode::MULTIPLE_CHOICES,
        versions_body(&st.base_url(&headers)),
    )
}

async fn versions_ok(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    ok(versions_body(&st.base_url(&headers)))
}

/// The one image of a fresh DevStack.
pub fn cirros() -> Value {
    json!({
        "id": IMAGE_ID,
        "name": IMAGE_NAME,
        "status": "active",
        "visibility": "public",
        "container_format": "bare",
        "disk_format": "qcow2",
        "size": 21430272,
        "virtual_size": 117440512,
        "min_disk": 0,
        "min_ram": 0,
        "protected": false,
        "os_hidden": false,
        "owner": ADMIN_PROJECT_ID,
        "tags": [],
        "checksum": "c8fc807773e5354afe61636071771906",
        "os_hash_algo": "sha512",
        "os_hash_value": "1103b92ce8ad966e41235a4de260deb791ff571670c0342666c8582fbb9caefe6af07ebb11d34f44f8414b609b29c1bdf1d72ffa6faa39c88e8721d09847952b",
        "hw_rng_model": "virtio",
        "stores": "file",
        "created_at": SEED_TIME,
        "updated_at": SEED_TIME,
        "self": format!("/v2/images/{IMAGE_ID}"),
        "file": format!("/v2/images/{IMAGE_ID}/file"),
        "schema": "/v2/schemas/image",
    })
}

fn matches(img: &Value, key: &str, want: &str) -> bool {
    match img.get(key) {
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => *b == truthy(want),
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

async fn list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let limit = parse_limit(q(&query, "limit"), 25, 1000)
        .map_err(|e| ApiError::bad_request(S, e.to_string()))?;
    let hidden = q(&query, "os_hidden").is_some_and(truthy);
    let mut images: Vec<Value> = vec![cirros()];
    images.retain(|img| matches(img, "os_hidden", if hidden { "true" } else { "false" }));
    for (k, v) in &query {
        match k.as_str() {
            "name" | "status" | "owner" | "container_format" | "disk_format" => {
                images.retain(|img| matches(img, k, v))
            }
            "visibility" if v != "all" => images.retain(|img| matches(img, k, v)),
            "id" => {
                let ids: Vec<&str> = v.strip_prefix("in:").unwrap_or(v).split(',').collect();
                images.retain(|img| img["id"].as_str().is_some_and(|i| ids.contains(&i)));
            }
            _ => {}
        }
    }
    let page = paginate(
        images,
        |i| i["id"].as_str().unwrap_or(""),
        q(&query, "marker"),
        limit,
    )
    .map_err(|e| match e {
        PageError::MarkerNotFound(m) => {
            ApiError::bad_request(S, format!("Invalid marker. Image {m} could not be found."))
        }
        other => ApiError::bad_request(S, other.to_string()),
    })?;
    let mut body =
        json!({"images": page.items, "first": "/v2/images", "schema": "/v2/schemas/images"});
    if let Some(m) = page.next_marker {
        body["next"] = json!(format!("/v2/images?marker={m}&limit={limit}"));
    }
    Ok(ok(body))
}

async fn show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    if id == IMAGE_ID {
        Ok(ok(cirros()))
    } else {
        Err(ApiError::not_found(
            S,
            format!("No image found with ID {id}"),
        ))
    }
}

/// Glance's image schema, trimmed to what glanceclient uses to validate.
pub fn image_schema() -> Value {
    let s = |t: &str| json!({"type": t});
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {"type": "string", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": {"type": ["null", "string"], "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]},
            "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
            "protected": s("boolean"),
            "os_hidden": s("boolean"),
            "checksum": {"type": ["null", "string"], "readOnly": true},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true},
            "owner": {"type": ["null", "string"]},
            "size": {"type": ["null", "integer"], "readOnly": true},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true},
            "container_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]},
            "disk_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]},
            "created_at": {"type": "string", "readOnly": true},
            "updated_at": {"type": "string", "readOnly": true},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
            "direct_url": {"type": "string", "readOnly": true},
            "min_ram": s("integer"),
            "min_disk": s("integer"),
            "self": {"type": "string", "readOnly": true},
            "file": {"type": "string", "readOnly": true},
            "stores": {"type": "string", "readOnly": true},
            "schema": {"type": "string", "readOnly": true},
            "locations": {"type": "array"},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

async fn schema_image(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(image_schema()))
}

async fn schema_images(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })))
}
