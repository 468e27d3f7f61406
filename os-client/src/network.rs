//! Neutron v2.0: network lookup by ID or name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compute::{encode, pick};
use crate::error::ClientError;
use crate::session::OpenStackSession;

pub const SERVICE: &str = "network";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
}

fn network_of(v: &Value) -> Option<Network> {
    Some(Network {
        id: v.get("id")?.as_str()?.to_string(),
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// `GET /v2.0/networks/{x}`, then `GET /v2.0/networks?name=x`.
pub async fn find_network(s: &OpenStackSession, name_or_id: &str) -> Result<Network, ClientError> {
    match s
        .get_json(SERVICE, &format!("/v2.0/networks/{}", encode(name_or_id)))
        .await
    {
        Ok(v) => v
            .get("network")
            .and_then(network_of)
            .ok_or_else(|| ClientError::malformed("GET /v2.0/networks/{id}", "no network.id")),
        Err(e) if e.is_not_found() => {
            let v = s
                .get_json(
                    SERVICE,
                    &format!("/v2.0/networks?name={}", encode(name_or_id)),
                )
                .await?;
            let list = v
                .get("networks")
                .and_then(Value::as_array)
                .ok_or_else(|| ClientError::malformed("GET /v2.0/networks", "no networks list"))?;
            pick(
                "network",
                name_or_id,
                list.iter().filter_map(network_of),
                |n| (&n.id, &n.name),
            )
        }
        Err(e) => Err(e),
    }
}
