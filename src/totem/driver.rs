//! The UDP driver: the thin I/O edge around [`Srp`]. It binds one socket
//! per link, seals every outgoing message into the crypto envelope and
//! opens every incoming one, feeds the protocol with the real clock, and
//! sends what the protocol asks for.
//!
//! Transports: `udpu` sends a message for all members as one unicast per
//! configured node; `udp` sends it to the link's multicast group. With two
//! links every datagram goes out on both (active redundancy); the receiver's
//! replay window drops the second copy, so a link that stops carrying
//! traffic costs nothing and needs no switch-over.
//!
//! Link status: the driver remembers, per link, when it last received an
//! authenticated datagram from each node (a second copy counts once its tag
//! verifies). While the ring has other members, a link that has carried
//! nothing from any of them for [`LINK_SILENCE`] (or the token timeout, if
//! longer) is reported down, and up again with the first authentic datagram;
//! each change is logged, and [`Driver::links`] reports the state.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::NodeId;
use super::crypto::{OpenError, OpenStats, Opener, Sealer};
use super::srp::{Backpressure, Dest, Srp, SrpConfig, TotemEvent};
use super::wire::{Message, NodeSet};
use crate::config::{Config, Transport};
use crate::time::{Clock, Instant};

/// Socket buffers: a burst of a full window of 8 KiB messages fits.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// The same kind of dropped packet is logged at most this often.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Largest datagram read.
const DATAGRAM_BYTES_MAX: usize = 65_536;
/// A link with nothing from any ring member for this long (or the token
/// timeout, if longer) is reported down. A running ring passes the token
/// every few milliseconds, so silence this long means a dead link.
pub const LINK_SILENCE: Duration = Duration::from_millis(500);

/// One link's addresses, as this node sees them.
#[derive(Clone, Debug)]
pub struct LinkSetup {
    pub bind: SocketAddr,
    /// Multicast group (transport udp), else None.
    pub mcast: Option<SocketAddr>,
    pub ttl: u8,
    /// Every other node's address on this link.
    pub peers: HashMap<NodeId, SocketAddr>,
}

/// Everything the driver needs, derived from the configuration.
#[derive(Clone, Debug)]
pub struct DriverSetup {
    pub me: NodeId,
    pub cluster_name: String,
    pub srp: SrpConfig,
    pub links: Vec<LinkSetup>,
}

impl DriverSetup {
    pub fn from_config(config: &Config, me: NodeId) -> DriverSetup {
        let mut nodes = NodeSet::EMPTY;
        config.nodes.iter().for_each(|n| nodes.insert(n.id));
        let links = config
            .totem
            .links
            .iter()
            .enumerate()
            .map(|(i, link)| {
                let addr_of = |id: NodeId| {
                    let n = config
                        .nodes
                        .iter()
                        .find(|n| n.id == id)
                        .expect("configured node");
                    SocketAddr::new(n.addresses[i], link.port)
                };
                LinkSetup {
                    bind: addr_of(me),
                    mcast: match config.totem.transport {
                        Transport::Udp => link.mcast_addr.map(|a| SocketAddr::new(a, link.port)),
                        Transport::Udpu => None,
                    },
                    ttl: link.ttl,
                    peers: nodes
                        .iter()
                        .filter(|id| *id != me)
                        .map(|id| (id, addr_of(id)))
                        .collect(),
                }
            })
            .collect();
        DriverSetup {
            me,
            cluster_name: config.cluster.name.clone(),
            srp: SrpConfig::from_config(&config.totem, nodes),
            links,
        }
    }
}

struct Link {
    socket: UdpSocket,
    setup: LinkSetup,
    /// When an authentic datagram last came from each node on this link.
    heard: HashMap<NodeId, Instant>,
    state: LinkState,
}

/// What the driver knows about one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No other node is in the ring: nothing to judge the link by.
    Unknown,
    /// Carries traffic from the ring's members.
    Up,
    /// Nothing from any ring member for longer than the silence limit.
    Down,
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkState::Unknown => "unknown",
            LinkState::Up => "up",
            LinkState::Down => "down",
        })
    }
}

/// One link's state, for status reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// 0 or 1, as in the configuration's `[[totem.link]]` order.
    pub index: usize,
    /// This node's address on the link.
    pub local: SocketAddr,
    pub state: LinkState,
    /// The ring members heard on this link within the silence limit.
    pub heard_from: NodeSet,
}

fn bind(setup: &LinkSetup) -> io::Result<UdpSocket> {
    let domain = if setup.bind.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // Buffers are a best effort: the kernel caps them at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    match (setup.mcast, setup.bind.ip()) {
        (Some(group), IpAddr::V4(local)) => {
            let IpAddr::V4(g) = group.ip() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "IPv4 node address with an IPv6 multicast group",
                ));
            };
            // Bound to the group's port on any address (group traffic and
            // unicast tokens arrive here); sent from the node's interface.
            s.bind(
                &SocketAddr::new(
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    setup.bind.port(),
                )
                .into(),
            )?;
            s.join_multicast_v4(&g, &local)?;
            s.set_multicast_if_v4(&local)?;
            s.set_multicast_ttl_v4(u32::from(setup.ttl))?;
            s.set_multicast_loop_v4(false)?;
        }
        (Some(group), IpAddr::V6(local)) => {
            let IpAddr::V6(g) = group.ip() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "IPv6 node address with an IPv4 multicast group",
                ));
            };
            // IPv6 names interfaces, not addresses: the group is joined
            // and sent to on the interface that has the node's address.
            let ifindex = interface_of(local)?;
            s.set_only_v6(true)?;
            s.bind(
                &SocketAddr::new(
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                    setup.bind.port(),
                )
                .into(),
            )?;
            s.join_multicast_v6(&g, ifindex)?;
            s.set_multicast_if_v6(ifindex)?;
            s.set_multicast_hops_v6(u32::from(setup.ttl))?;
            s.set_multicast_loop_v6(false)?;
        }
        (None, _) => s.bind(&setup.bind.into())?,
    }
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The index of the interface that has `local`, for IPv6 multicast.
fn interface_of(local: std::net::Ipv6Addr) -> io::Result<u32> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    for a in addrs {
        let Some(v6) = a.address.as_ref().and_then(|s| s.as_sockaddr_in6()) else {
            continue;
        };
        if v6.ip() == local {
            return nix::net::if_::if_nametoindex(a.interface_name.as_str())
                .map_err(io::Error::from);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!(
            "no interface has the address {local}: check the node's address in the configuration and `ip -6 addr`"
        ),
    ))
}

/// Limits logging of dropped packets: one line per reason per interval.
#[derive(Default)]
struct DropLog {
    last: HashMap<OpenError, Instant>,
}

impl DropLog {
    fn should_log(&mut self, now: Instant, e: OpenError) -> bool {
        match self.last.get(&e) {
            Some(t) if now.saturating_since(*t) < DROP_LOG_INTERVAL => false,
            _ => {
                self.last.insert(e, now);
                true
            }
        }
    }
}

pub struct Driver {
    srp: Srp,
    sealer: Sealer,
    opener: Opener,
    links: Vec<Link>,
    clock: Clock,
    drop_log: DropLog,
    me: NodeId,
    link_silence: Duration,
    /// Where the highest ring sequence number is persisted (None: not at
    /// all, for tools and tests), and the value stored there.
    state_dir: Option<std::path::PathBuf>,
    ring_seq_stored: u64,
    /// Receive buffers, one per link, allocated once (a fresh zeroed
    /// 64 KiB pair per datagram cost more than the rest of an idle token
    /// visit).
    rx_bufs: [Vec<u8>; 2],
}

impl Driver {
    /// Binds the links and starts the protocol (it begins by gathering a
    /// membership). `authkey: None` is the insecure no-crypto mode.
    /// `ring_seq_seen`: what the node persisted in `state_dir` before it
    /// stopped ([`super::incarnation::load_ring_seq`]); the driver keeps it
    /// there up to date, before it sends anything that depends on it.
    pub fn start(
        setup: DriverSetup,
        authkey: Option<&[u8]>,
        incarnation: u64,
        ring_seq_seen: u64,
        state_dir: Option<std::path::PathBuf>,
    ) -> io::Result<Driver> {
        let links = setup
            .links
            .iter()
            .map(|l| {
                bind(l)
                    .map(|socket| Link {
                        socket,
                        setup: l.clone(),
                        heard: HashMap::new(),
                        state: LinkState::Unknown,
                    })
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot bind totem link to {}: {e}", l.bind),
                        )
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let clock = Clock::new();
        let link_silence = LINK_SILENCE.max(setup.srp.token);
        let srp = Srp::restart(setup.me, setup.srp, incarnation, ring_seq_seen, clock.now());
        let mut d = Driver {
            srp,
            sealer: Sealer::new(authkey, &setup.cluster_name, setup.me, incarnation),
            opener: Opener::new(authkey, &setup.cluster_name),
            links,
            clock,
            drop_log: DropLog::default(),
            me: setup.me,
            link_silence,
            state_dir,
            ring_seq_stored: ring_seq_seen,
            rx_bufs: [vec![0u8; DATAGRAM_BYTES_MAX], vec![0u8; DATAGRAM_BYTES_MAX]],
        };
        d.flush();
        Ok(d)
    }

    /// The driver's clock, for the cores that run beside totem.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn srp(&self) -> &Srp {
        &self.srp
    }

    pub fn stats(&self) -> &OpenStats {
        self.opener.stats()
    }

    /// The incarnation a peer's packets carry (see [`Opener::peer_incarnation`]).
    pub fn peer_incarnation(&self, node: NodeId) -> Option<u64> {
        self.opener.peer_incarnation(node)
    }

    /// Every link's state, in configuration order.
    pub fn links(&self) -> Vec<LinkStatus> {
        let now = self.clock.now();
        let (_, members) = self.srp.ring();
        self.links
            .iter()
            .enumerate()
            .map(|(index, l)| {
                let mut heard_from = NodeSet::EMPTY;
                for (id, t) in &l.heard {
                    if members.contains(*id) && now.saturating_since(*t) <= self.link_silence {
                        heard_from.insert(*id);
                    }
                }
                LinkStatus {
                    index,
                    local: l.setup.bind,
                    state: l.state,
                    heard_from,
                }
            })
            .collect()
    }

    /// Re-judges every link after something happened, and logs changes.
    fn judge_links(&mut self) {
        let now = self.clock.now();
        let (_, members) = self.srp.ring();
        let others: Vec<NodeId> = members.iter().filter(|id| *id != self.me).collect();
        let count = self.links.len();
        for i in 0..count {
            let l = &self.links[i];
            let state = if others.is_empty() || !self.srp.is_operational() {
                // Alone, or re-forming the ring: keep what was known, except
                // that a ring of one has nothing to judge by.
                if others.is_empty() {
                    LinkState::Unknown
                } else {
                    l.state
                }
            } else if others.iter().any(|id| {
                l.heard
                    .get(id)
                    .is_some_and(|t| now.saturating_since(*t) <= self.link_silence)
            }) {
                LinkState::Up
            } else {
                LinkState::Down
            };
            if state != l.state {
                let addr = l.setup.bind;
                match state {
                    LinkState::Down if count > 1 => {
                        warn!(link = i, local = %addr, "totem: link {i} ({addr}) stopped carrying traffic for {} ms; traffic goes on over the other link", self.link_silence.as_millis())
                    }
                    LinkState::Down => {
                        warn!(link = i, local = %addr, "totem: link {i} ({addr}) stopped carrying traffic for {} ms", self.link_silence.as_millis())
                    }
                    LinkState::Up if l.state == LinkState::Down => {
                        warn!(link = i, local = %addr, "totem: link {i} ({addr}) carries traffic again")
                    }
                    _ => debug!(link = i, state = %state, "totem: link state"),
                }
                self.links[i].state = state;
            }
        }
    }

    pub fn broadcast(&mut self, payload: Vec<u8>) -> Result<(), Backpressure> {
        let r = self.srp.broadcast(self.clock.now(), payload);
        self.flush();
        r
    }

    pub fn poll_event(&mut self) -> Option<TotemEvent> {
        self.srp.poll_event()
    }

    /// Waits for the next datagram or timer and handles it. Cancel-safe:
    /// the state only changes after an await has completed.
    pub async fn turn(&mut self) {
        // Events already waiting (a broadcast in a ring of one is delivered
        // at once): the caller polls them now, not at the next datagram or
        // timer (which made every message of a lone node wait ~200 ms).
        if self.srp.has_events() {
            tokio::task::yield_now().await;
            return;
        }
        enum Woke {
            Packet(usize, io::Result<(usize, SocketAddr)>),
            Timer,
        }
        let deadline = self.srp.poll_timeout();
        let wait = deadline.map(|t| t.saturating_since(self.clock.now()));
        let woke = {
            let [buf0, buf1] = &mut self.rx_bufs;
            let link0 = &self.links[0].socket;
            let link1 = self.links.get(1).map(|l| &l.socket);
            tokio::select! {
                r = link0.recv_from(buf0) => Woke::Packet(0, r),
                r = async {
                    match link1 {
                        Some(s) => s.recv_from(buf1).await,
                        None => std::future::pending().await,
                    }
                } => Woke::Packet(1, r),
                _ = async {
                    match wait {
                        Some(w) => tokio::time::sleep(w).await,
                        None => std::future::pending().await,
                    }
                } => Woke::Timer,
            }
        };
        match woke {
            Woke::Timer => self.srp.handle_timeout(self.clock.now()),
            Woke::Packet(link, Ok((n, from))) => {
                let buf = std::mem::take(&mut self.rx_bufs[link]);
                self.receive(link, &buf[..n], from);
                self.rx_bufs[link] = buf;
            }
            Woke::Packet(_, Err(e)) => warn!(error = %e, "totem: receive failed"),
        }
        // A busy socket must not starve the timers.
        let now = self.clock.now();
        if self.srp.poll_timeout().is_some_and(|t| t <= now) {
            self.srp.handle_timeout(now);
        }
        self.flush();
        self.judge_links();
    }

    fn receive(&mut self, link: usize, packet: &[u8], from: SocketAddr) {
        let now = self.clock.now();
        match self.opener.open(packet) {
            Ok((sender, _)) if sender == self.me => {}
            Ok((sender, payload)) => match Message::decode(&payload) {
                Ok(msg) => {
                    self.links[link].heard.insert(sender, now);
                    self.srp.handle_message(now, msg)
                }
                Err(e) => {
                    warn!(sender, error = %e, "totem: malformed message from an authenticated member")
                }
            },
            // A second copy over the other link is expected, not news; if
            // it is authentic, that link carries traffic.
            Err(OpenError::Replayed) => {
                if self.links.len() > 1
                    && let Some(sender) = self.opener.authentic_copy(packet)
                    && sender != self.me
                {
                    self.links[link].heard.insert(sender, now);
                }
            }
            Err(e) => {
                if self.drop_log.should_log(now, e) {
                    let count = self.opener.stats().dropped.get(&e).copied().unwrap_or(0);
                    warn!(from = %from, reason = %e, dropped_so_far = count, "totem: packet dropped (logged once per 10 s per reason)");
                }
            }
        }
    }

    /// Sends everything the protocol asked for, on every link; first
    /// persists a higher ring sequence number (a few milliseconds of fsync
    /// at a membership change), so that a crash right after cannot make the
    /// restarted node re-create a ring id.
    fn flush(&mut self) {
        let seen = self.srp.ring_seq_seen();
        if seen > self.ring_seq_stored
            && let Some(dir) = &self.state_dir
        {
            match super::incarnation::store_ring_seq(dir, seen) {
                Ok(()) => self.ring_seq_stored = seen,
                Err(e) => {
                    warn!(
                        error = %e,
                        dir = %dir.display(),
                        "totem: cannot persist the ring sequence number {seen}; after a crash this node could re-create a ring id"
                    );
                    // Said once per value; the next higher one tries again.
                    self.ring_seq_stored = seen;
                }
            }
        }
        while let Some(t) = self.srp.poll_transmit() {
            let mut packet = Vec::new();
            if let Err(e) = self.sealer.seal(&t.message.encode(), &mut packet) {
                warn!(error = ?e, "totem: cannot seal a message");
                continue;
            }
            for link in &self.links {
                let targets: Vec<SocketAddr> = match (t.dest, link.setup.mcast) {
                    (Dest::All, Some(group)) => vec![group],
                    (Dest::All, None) => link.setup.peers.values().copied().collect(),
                    (Dest::Node(id), _) => link.setup.peers.get(&id).copied().into_iter().collect(),
                };
                for to in targets {
                    // UDP: a full buffer or an unreachable peer is a lost
                    // datagram, which the protocol repairs.
                    if let Err(e) = link.socket.try_send_to(&packet, to) {
                        debug!(to = %to, error = %e, "totem: send failed");
                    }
                }
            }
        }
    }
}
