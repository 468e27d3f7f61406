//! Authenticated UDP gossip: only holders of the cluster key join.
//!
//! chitchat itself only compares a plain `cluster_id` string, so anyone who
//! can reach a member's gossip port could join the overlay, advertise a
//! peer URL and receive users' tokens. This transport wraps every
//! [`ChitchatMessage`] (chitchat's own [`Serializable`] encoding) in a
//! frame carrying an HMAC-SHA256 tag keyed by a key derived from the
//! cluster secret and the cluster id; a datagram whose tag does not verify
//! is dropped before chitchat sees it, and counted
//! (`p2p_gossip_rejected_total` on `/metrics`). Since every member state
//! (and so every peer URL) arrives through gossip, a peer URL can only come
//! from a key holder.
//!
//! Frame (one UDP datagram):
//!
//! ```text
//! version (1 byte, 0xA1) | fragment (1 byte: index << 4 | count) |
//! message id (4 bytes LE) | chunk of the serialized message | tag (32 bytes)
//! tag = HMAC-SHA256(gossip key, every byte before the tag)
//! ```
//!
//! chitchat fills a delta up to the largest UDP payload, so a full message
//! plus the frame overhead may not fit one datagram: such a message goes
//! out as two fragments, each authenticated on its own, and is put back
//! together by the receiver (only authenticated fragments are kept, at
//! most [`MAX_PENDING`] of them, oldest evicted first).
//!
//! What this does not do (as HashiCorp memberlist without encryption):
//! gossip is readable on the wire (it carries capacities and URLs, no
//! secret), and a captured datagram can be replayed by anyone; chitchat's
//! versioned state makes a replayed message stale, never new information.
//! Any key holder is fully trusted (no per-member identity).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{debug, warn};

type HmacSha256 = Hmac<Sha256>;

/// The shortest cluster secret accepted (bytes). A secret is shared by
/// every member and signs tokens: guessable ones (`change-me`) are refused.
pub const MIN_SECRET_LEN: usize = 16;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const VERSION: u8 = 0xA1;
const HEADER_LEN: usize = 6;
const TAG_LEN: usize = 32;
/// Frame bytes around a chunk.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Fragments awaiting their sibling, per socket.
pub const MAX_PENDING: usize = 64;

/// Why a cluster secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no cluster secret: set P2P_CLUSTER_SECRET or --cluster-secret-file \
         (e.g. `openssl rand -hex 32`); there is no default"
    )]
    Missing,
    #[error(
        "the cluster secret is {0} bytes; use at least {MIN_SECRET_LEN} random bytes \
         (e.g. `openssl rand -hex 32`)"
    )]
    TooShort(usize),
}

/// Checks that a cluster secret is present and long enough.
pub fn check_secret(secret: &str) -> Result<(), SecretError> {
    let len = secret.trim().len();
    if len == 0 {
        return Err(SecretError::Missing);
    }
    if len < MIN_SECRET_LEN {
        return Err(SecretError::TooShort(len));
    }
    Ok(())
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The gossip key: derived from the cluster secret (never used as-is, so a
/// gossip tag reveals nothing about token signatures) and bound to the
/// cluster id (two clusters sharing a secret still do not mix).
#[derive(Clone)]
pub struct GossipKey([u8; 32]);

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

impl GossipKey {
    pub fn derive(secret: &[u8], cluster_id: &str) -> Self {
        let mut m = hmac(secret);
        m.update(b"p2pstack gossip key v1\0");
        m.update(cluster_id.as_bytes());
        Self(m.finalize().into_bytes().into())
    }

    fn tag(&self, framed: &[u8]) -> [u8; TAG_LEN] {
        let mut m = hmac(&self.0);
        m.update(framed);
        m.finalize().into_bytes().into()
    }

    fn verify(&self, framed: &[u8], tag: &[u8]) -> bool {
        let mut m = hmac(&self.0);
        m.update(framed);
        m.verify_slice(tag).is_ok()
    }
}

/// Splits a serialized message into authenticated datagrams.
pub fn seal(key: &GossipKey, msg_id: u32, payload: &[u8], max_datagram: usize) -> Vec<Vec<u8>> {
    let room = max_datagram.saturating_sub(OVERHEAD).max(1);
    let count = if payload.len() <= room { 1 } else { 2 };
    let split = if count == 1 {
        payload.len()
    } else {
        payload.len().div_ceil(2)
    };
    let chunks: Vec<&[u8]> = if count == 1 {
        vec![payload]
    } else {
        vec![&payload[..split], &payload[split..]]
    };
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = Vec::with_capacity(chunk.len() + OVERHEAD);
            f.push(VERSION);
            f.push(((i as u8) << 4) | count);
            f.extend_from_slice(&msg_id.to_le_bytes());
            f.extend_from_slice(chunk);
            let tag = key.tag(&f);
            f.extend_from_slice(&tag);
            f
        })
        .collect()
}

/// One authenticated fragment.
#[derive(Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub index: u8,
    pub count: u8,
    pub msg_id: u32,
    pub chunk: &'a [u8],
}

/// Verifies a datagram; `None` for anything not sealed with `key`.
pub fn open<'a>(key: &GossipKey, datagram: &'a [u8]) -> Option<Fragment<'a>> {
    if datagram.len() < OVERHEAD || datagram[0] != VERSION {
        return None;
    }
    let (framed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    if !key.verify(framed, tag) {
        return None;
    }
    let index = framed[1] >> 4;
    let count = framed[1] & 0x0f;
    if !(1..=2).contains(&count) || index >= count {
        return None;
    }
    let msg_id = u32::from_le_bytes([framed[2], framed[3], framed[4], framed[5]]);
    Some(Fragment {
        index,
        count,
        msg_id,
        chunk: &framed[HEADER_LEN..],
    })
}

/// Reassembles two-fragment messages (authenticated fragments only).
#[derive(Default)]
pub struct Reassembly {
    pending: VecDeque<(SocketAddr, u32, u8, Vec<u8>)>,
}

impl Reassembly {
    /// Feeds one fragment from `from`; returns the whole payload once
    /// complete.
    pub fn push(&mut self, from: SocketAddr, f: Fragment<'_>) -> Option<Vec<u8>> {
        if f.count == 1 {
            return Some(f.chunk.to_vec());
        }
        let pos = self
            .pending
            .iter()
            .position(|(a, id, i, _)| *a == from && *id == f.msg_id && *i != f.index);
        if let Some(pos) = pos {
            let (_, _, i, other) = self.pending.remove(pos)?;
            let mut whole = Vec::with_capacity(other.len() + f.chunk.len());
            if i == 0 {
                whole.extend_from_slice(&other);
                whole.extend_from_slice(f.chunk);
            } else {
                whole.extend_from_slice(f.chunk);
                whole.extend_from_slice(&other);
            }
            return Some(whole);
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending
            .push_back((from, f.msg_id, f.index, f.chunk.to_vec()));
        None
    }
}

/// chitchat transport over UDP with authenticated datagrams.
#[derive(Clone)]
pub struct AuthUdpTransport {
    key: GossipKey,
    rejected: Arc<AtomicU64>,
}

impl AuthUdpTransport {
    /// A transport for members of `cluster_id` holding `secret`.
    pub fn new(secret: &str, cluster_id: &str) -> Result<Self, SecretError> {
        check_secret(secret)?;
        Ok(Self {
            key: GossipKey::derive(secret.as_bytes(), cluster_id),
            rejected: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Datagrams dropped because they failed verification (shared by every
    /// socket this transport opens).
    pub fn rejected(&self) -> Arc<AtomicU64> {
        self.rejected.clone()
    }
}

#[async_trait]
impl Transport for AuthUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        Ok(Box::new(AuthUdpSocket {
            key: self.key.clone(),
            rejected: self.rejected.clone(),
            socket,
            buf: vec![0u8; MAX_DATAGRAM],
            next_id: 0,
            reassembly: Reassembly::default(),
        }))
    }
}

struct AuthUdpSocket {
    key: GossipKey,
    rejected: Arc<AtomicU64>,
    socket: tokio::net::UdpSocket,
    buf: Vec<u8>,
    next_id: u32,
    reassembly: Reassembly,
}

fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::OutOfMemory
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    )
}

#[async_trait]
impl Socket for AuthUdpSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let payload = msg.serialize_to_vec();
        self.next_id = self.next_id.wrapping_add(1);
        for datagram in seal(&self.key, self.next_id, &payload, MAX_DATAGRAM) {
            self.socket
                .send_to(&datagram, to)
                .await
                .context("failed to send chitchat message to peer")?;
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(r) => r,
                Err(e) if transient(&e) => {
                    warn!(error = %e, "transient UDP recv error");
                    continue;
                }
                Err(e) => return Err(e).context("fatal UDP recv error"),
            };
            let Some(fragment) = open(&self.key, &self.buf[..len]) else {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                debug!(%from, len, "gossip datagram failed authentication; dropped");
                continue;
            };
            let Some(payload) = self.reassembly.push(from, fragment) else {
                continue;
            };
            let mut slice = payload.as_slice();
            match ChitchatMessage::deserialize(&mut slice) {
                Ok(msg) => return Ok((from, msg)),
                // Authenticated but not a message: a member on another
                // version. Not counted as a stranger.
                Err(e) => warn!(%from, error = %e, "undecodable authenticated gossip message"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> GossipKey {
        GossipKey::derive(s.as_bytes(), "p2pstack")
    }

    #[test]
    fn secrets_must_exist_and_be_long() {
        assert_eq!(check_secret(""), Err(SecretError::Missing));
        assert_eq!(check_secret("   "), Err(SecretError::Missing));
        assert_eq!(check_secret("change-me"), Err(SecretError::TooShort(9)));
        assert!(check_secret("0123456789abcdef").is_ok());
        assert!(AuthUdpTransport::new("change-me", "p2pstack").is_err());
    }

    #[test]
    fn sealed_frames_open_only_with_the_same_key_and_cluster() {
        let k = key("0123456789abcdef0123");
        let frames = seal(&k, 7, b"hello", MAX_DATAGRAM);
        assert_eq!(frames.len(), 1);
        let f = open(&k, &frames[0]).unwrap();
        assert_eq!(
            (f.index, f.count, f.msg_id, f.chunk),
            (0, 1, 7, &b"hello"[..])
        );
        assert!(open(&key("another-secret-of-length"), &frames[0]).is_none());
        let other_cluster = GossipKey::derive(b"0123456789abcdef0123", "other");
        assert!(open(&other_cluster, &frames[0]).is_none());
        // Any flipped bit anywhere is refused.
        for i in 0..frames[0].len() {
            let mut bad = frames[0].clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &bad).is_none(), "bit flip at {i} accepted");
        }
        // Truncations and junk.
        assert!(open(&k, &frames[0][..frames[0].len() - 1]).is_none());
        assert!(open(&k, b"").is_none());
        assert!(open(&k, &[VERSION; OVERHEAD]).is_none());
    }

    #[test]
    fn a_message_too_large_for_one_datagram_goes_as_two_fragments() {
        let k = key("0123456789abcdef0123");
        let payload: Vec<u8> = (0..MAX_DATAGRAM).map(|i| (i % 251) as u8).collect();
        let frames = seal(&k, 9, &payload, MAX_DATAGRAM);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.len() <= MAX_DATAGRAM));
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // Out of order, with an unrelated fragment in between.
        let mut r = Reassembly::default();
        let other = seal(&k, 10, &payload, MAX_DATAGRAM);
        assert!(r.push(from, open(&k, &frames[1]).unwrap()).is_none());
        assert!(r.push(from, open(&k, &other[0]).unwrap()).is_none());
        let whole = r.push(from, open(&k, &frames[0]).unwrap()).unwrap();
        assert_eq!(whole, payload);
        // The same id from another sender does not complete it.
        let elsewhere: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert!(r.push(elsewhere, open(&k, &other[1]).unwrap()).is_none());
    }

    #[test]
    fn pending_fragments_are_bounded() {
        let k = key("0123456789abcdef0123");
        let payload = vec![1u8; 300];
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut r = Reassembly::default();
        for id in 0..(MAX_PENDING as u32 * 3) {
            let frames = seal(&k, id, &payload, 200);
            assert!(r.push(from, open(&k, &frames[0]).unwrap()).is_none());
        }
        assert_eq!(r.pending.len(), MAX_PENDING);
    }

    #[tokio::test]
    async fn strangers_datagrams_are_dropped_and_counted() {
        let good = AuthUdpTransport::new("0123456789abcdef-good", "p2pstack").unwrap();
        let bad = AuthUdpTransport::new("0123456789abcdef-bad!", "p2pstack").unwrap();
        let mut a = good.open("127.0.0.1:0".parse().unwrap()).await.unwrap();
        // The receiver's address: bind a member socket on a known port.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut b = good.open(addr).await.unwrap();
        let mut stranger = bad.open("127.0.0.1:0".parse().unwrap()).await.unwrap();
        stranger
            .send(addr, ChitchatMessage::BadCluster)
            .await
            .unwrap();
        // Raw junk and a plain (unauthenticated) chitchat message.
        let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        raw.send_to(b"junk", addr).await.unwrap();
        raw.send_to(&ChitchatMessage::BadCluster.serialize_to_vec(), addr)
            .await
            .unwrap();
        a.send(addr, ChitchatMessage::BadCluster).await.unwrap();
        let (_, got) = tokio::time::timeout(std::time::Duration::from_secs(5), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, ChitchatMessage::BadCluster);
        assert_eq!(good.rejected().load(Ordering::Relaxed), 3);
    }
}
