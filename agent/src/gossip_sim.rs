//! An in-memory gossip network for the `sim` backend: every chitchat
//! message is delivered to its addressee after a fixed one-way delay on
//! the runtime's clock (virtual under the `sim` backend), with no socket.
//!
//! Unlike chitchat's own `ChannelTransport` (instant delivery, a bounded
//! queue that drops when full), a message here costs model time, so the
//! overlay's speed on virtual time matches a real network's order of
//! magnitude instead of being free. Delivery is first-in first-out per
//! addressee (the delay is the same for every message); a message to an
//! address nobody listens at (a stopped member) is lost, like a UDP
//! datagram.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Serializable};
use cp_model::clock::{self, Instant};
use tokio::sync::mpsc;

type Datagram = (Instant, SocketAddr, ChitchatMessage);

/// Counters of the simulated network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimNetStats {
    pub sent: u64,
    /// Bytes of the messages sent, as chitchat's wire encoding counts them
    /// (before any authentication framing); 0 on a network made
    /// [`SimGossipNet::without_byte_count`].
    pub bytes: u64,
    /// Sent to an address with no open socket.
    pub lost: u64,
}

#[derive(Default)]
struct Net {
    sockets: BTreeMap<SocketAddr, mpsc::UnboundedSender<Datagram>>,
    stats: SimNetStats,
}

/// The network: open one socket per agent through it
/// (`agent::start_in_process(.., &net, ..)`).
#[derive(Clone)]
pub struct SimGossipNet {
    net: Arc<Mutex<Net>>,
    delay: Duration,
    /// Whether [`SimNetStats::bytes`] is kept: a message's encoded length
    /// is only known by encoding it (chitchat compresses a delta with zstd
    /// to learn its length), which cost a testbed run ~5 % of its CPU for
    /// a figure it never reads.
    count_bytes: bool,
}

impl SimGossipNet {
    /// A network whose messages take `one_way_delay` to arrive.
    pub fn new(one_way_delay: Duration) -> Self {
        Self {
            net: Arc::new(Mutex::new(Net::default())),
            delay: one_way_delay,
            count_bytes: true,
        }
    }

    /// The same network without the byte count ([`SimNetStats::bytes`]
    /// stays 0; messages and losses are still counted).
    pub fn without_byte_count(mut self) -> Self {
        self.count_bytes = false;
        self
    }

    pub fn one_way_delay(&self) -> Duration {
        self.delay
    }

    pub fn stats(&self) -> SimNetStats {
        self.net.lock().map(|n| n.stats).unwrap_or_default()
    }

    /// Takes `addr` off the network (a stopped member): later messages to it
    /// are lost.
    pub fn close(&self, addr: SocketAddr) {
        if let Ok(mut n) = self.net.lock() {
            n.sockets.remove(&addr);
        }
    }
}

#[async_trait::async_trait]
impl Transport for SimGossipNet {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut n = self
                .net
                .lock()
                .map_err(|_| anyhow::anyhow!("simulated network poisoned"))?;
            if n.sockets.get(&listen_addr).is_some_and(|s| !s.is_closed()) {
                anyhow::bail!("address {listen_addr} already open on the simulated network");
            }
            n.sockets.insert(listen_addr, tx);
        }
        Ok(Box::new(SimSocket {
            addr: listen_addr,
            net: self.clone(),
            rx,
            pending: None,
        }))
    }
}

struct SimSocket {
    addr: SocketAddr,
    net: SimGossipNet,
    rx: mpsc::UnboundedReceiver<Datagram>,
    /// The next datagram, waiting for its arrival time. Kept here so that a
    /// `recv` cancelled mid-wait (chitchat selects over it) loses nothing.
    pending: Option<Datagram>,
}

#[async_trait::async_trait]
impl Socket for SimSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let at = clock::now() + self.net.delay;
        let mut n = self
            .net
            .net
            .lock()
            .map_err(|_| anyhow::anyhow!("simulated network poisoned"))?;
        n.stats.sent += 1;
        if self.net.count_bytes {
            n.stats.bytes += msg.serialized_len() as u64;
        }
        let delivered = n
            .sockets
            .get(&to)
            .is_some_and(|tx| tx.send((at, self.addr, msg)).is_ok());
        if !delivered {
            n.stats.lost += 1;
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        if self.pending.is_none() {
            let d = self
                .rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("simulated network closed"))?;
            self.pending = Some(d);
        }
        if let Some((at, _, _)) = &self.pending {
            tokio::time::sleep_until(*at).await;
        }
        let (_, from, msg) = self
            .pending
            .take()
            .ok_or_else(|| anyhow::anyhow!("no datagram"))?;
        Ok((from, msg))
    }
}

impl Drop for SimSocket {
    fn drop(&mut self) {
        if let Ok(mut n) = self.net.net.lock() {
            // Only our own registration (a re-opened address keeps its new one).
            if n.sockets.get(&self.addr).is_some_and(|s| s.is_closed()) {
                n.sockets.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    fn msg() -> ChitchatMessage {
        ChitchatMessage::BadCluster
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_after_the_delay_in_order_and_loses_to_nobody() {
        let net = SimGossipNet::new(Duration::from_millis(5));
        let mut a = net.open(addr(1)).await.unwrap();
        let mut b = net.open(addr(2)).await.unwrap();
        assert!(net.open(addr(2)).await.is_err(), "address already open");
        let t0 = clock::now();
        a.send(addr(2), msg()).await.unwrap();
        a.send(addr(2), msg()).await.unwrap();
        a.send(addr(9), msg()).await.unwrap();
        let (from, _) = b.recv().await.unwrap();
        assert_eq!(from, addr(1));
        assert_eq!(clock::now() - t0, Duration::from_millis(5));
        b.recv().await.unwrap();
        assert_eq!(
            net.stats(),
            SimNetStats {
                sent: 3,
                bytes: 3 * msg().serialized_len() as u64,
                lost: 1
            }
        );
        // A stopped member's address loses what is sent to it.
        drop(b);
        a.send(addr(2), msg()).await.unwrap();
        assert_eq!(net.stats().lost, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn without_byte_count_counts_messages_only() {
        let net = SimGossipNet::new(Duration::from_millis(5)).without_byte_count();
        let mut a = net.open(addr(1)).await.unwrap();
        let mut b = net.open(addr(2)).await.unwrap();
        a.send(addr(2), msg()).await.unwrap();
        let (from, _) = b.recv().await.unwrap();
        assert_eq!(from, addr(1));
        assert_eq!(
            net.stats(),
            SimNetStats {
                sent: 1,
                bytes: 0,
                lost: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_recv_keeps_its_datagram() {
        let net = SimGossipNet::new(Duration::from_millis(50));
        let mut a = net.open(addr(1)).await.unwrap();
        let mut b = net.open(addr(2)).await.unwrap();
        a.send(addr(2), msg()).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(10), b.recv()).await;
        assert!(early.is_err(), "not arrived yet");
        let (from, _) = b.recv().await.unwrap();
        assert_eq!(from, addr(1));
    }
}
