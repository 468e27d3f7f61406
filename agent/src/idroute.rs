//! Global server IDs that name their coordinating agent.
//!
//! The agent that accepts a boot (the *coordinator*) gives the user a global
//! ID: a UUID (version 8, RFC 9562 custom) whose first 6 bytes are a tag of
//! the coordinator's cloudlet name (`SHA-256(name)[..6]`) and whose other
//! bits are random. Any agent can therefore route `GET`/`DELETE
//! /servers/{id}` to the coordinator in one hop without asking every peer;
//! the coordinator's directory maps the ID to the cloudlet that currently
//! owns the instance (it may change when a failed boot is retried
//! elsewhere, while the user keeps the same ID). The global ID is also
//! stored in the instance's metadata under [`METADATA_KEY`], so a lost
//! directory can always be rebuilt by listing the cloudlets.

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Instance metadata key holding the global ID.
pub const METADATA_KEY: &str = "p2p_global_id";
/// Instance metadata key holding the coordinator's cloudlet name.
pub const COORDINATOR_KEY: &str = "p2p_coordinator";

pub type Tag = [u8; 6];

/// The routing tag of a cloudlet name.
pub fn tag_of(cloudlet: &str) -> Tag {
    let digest = Sha256::digest(cloudlet.as_bytes());
    let mut tag = [0u8; 6];
    tag.copy_from_slice(&digest[..6]);
    tag
}

/// A fresh global ID coordinated by `coordinator`.
pub fn new_global_id(coordinator: &str, rng: &mut impl RngCore) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[..6].copy_from_slice(&tag_of(coordinator));
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC variant
    Uuid::from_bytes(bytes)
}

/// The coordinator tag of an ID, if it is one of ours (version 8).
pub fn coordinator_tag(id: &Uuid) -> Option<Tag> {
    if id.get_version_num() != 8 {
        return None;
    }
    let mut tag = [0u8; 6];
    tag.copy_from_slice(&id.as_bytes()[..6]);
    Some(tag)
}

/// Which of `members` coordinates `id`, if any.
pub fn coordinator_of<'a>(
    id: &Uuid,
    members: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let tag = coordinator_tag(id)?;
    members.into_iter().find(|m| tag_of(m) == tag)
}

/// Parses a user-supplied server ID; `None` for anything that is not a UUID
/// (the caller answers 404, as Nova does).
pub fn parse(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_name_their_coordinator() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let members = ["cloudlet-1", "cloudlet-2", "cloudlet-3", "cloudlet-4"];
        for m in members {
            for _ in 0..50 {
                let id = new_global_id(m, &mut rng);
                assert_eq!(id.get_version_num(), 8);
                let parsed = parse(&id.to_string()).unwrap();
                assert_eq!(coordinator_of(&parsed, members), Some(m));
            }
        }
    }

    #[test]
    fn ids_are_unique_and_foreign_ids_route_nowhere() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = new_global_id("c", &mut rng);
        let b = new_global_id("c", &mut rng);
        assert_ne!(a, b);
        let v4 = Uuid::new_v4();
        assert_eq!(coordinator_of(&v4, ["c"]), None);
        assert_eq!(coordinator_of(&a, ["other"]), None);
        assert!(parse("not-a-uuid").is_none());
        assert!(parse("").is_none());
    }
}
