//! Glance v2: image lookup by ID or name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compute::{encode, pick};
use crate::error::ClientError;
use crate::session::OpenStackSession;

pub const SERVICE: &str = "image";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
}

fn image_of(v: &Value) -> Option<Image> {
    Some(Image {
        id: v.get("id")?.as_str()?.to_string(),
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// `GET /v2/images/{x}`, then `GET /v2/images?name=x`.
pub async fn find_image(s: &OpenStackSession, name_or_id: &str) -> Result<Image, ClientError> {
    match s
        .get_json(SERVICE, &format!("/v2/images/{}", encode(name_or_id)))
        .await
    {
        Ok(v) => image_of(&v).ok_or_else(|| ClientError::malformed("GET /v2/images/{id}", "no id")),
        Err(e) if e.is_not_found() || e.status() == Some(400) => {
            let v = s
                .get_json(SERVICE, &format!("/v2/images?name={}", encode(name_or_id)))
                .await?;
            let list = v
                .get("images")
                .and_then(Value::as_array)
                .ok_or_else(|| ClientError::malformed("GET /v2/images", "no images list"))?;
            pick("image", name_or_id, list.iter().filter_map(image_of), |i| {
                (&i.id, &i.name)
            })
        }
        Err(e) => Err(e),
    }
}
