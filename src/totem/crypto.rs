//! The totem packet envelope: every packet between nodes is authenticated
//! and encrypted with AES-256-GCM; replays are rejected.
//!
//! # Format
//!
//! ```text
//! header (authenticated, in clear), 28 bytes:
//!   magic "HT" | version u8 | flags u8 | cluster tag u32 |
//!   sender node id u32 | sender incarnation u64 | counter u64
//! ciphertext (payload length) | GCM tag, 16 bytes
//! ```
//! All integers big-endian. The whole header is the AEAD's associated data,
//! so none of it can be altered without the packet being rejected.
//!
//! # Keys and nonces
//!
//! The cluster key (`authkey`, ≥ 256 bits of randomness) is the HKDF input
//! (HMAC-SHA-256). Each sender *incarnation* (one run of hactld on one node)
//! encrypts with its own key, HKDF-expanded with the cluster name, the node
//! id and the incarnation number. The 96-bit GCM nonce is the packet
//! counter, which starts at 1 and only goes up within the incarnation. A
//! nonce therefore repeats under one key only if an incarnation number
//! repeats for a node: the driver makes incarnations strictly increasing
//! across restarts (a counter persisted with fsync before use, and never
//! below the wall-clock seconds, so even a lost state file cannot bring back
//! an old value). A counter at its maximum refuses to seal rather than wrap.
//!
//! # Replays
//!
//! A receiver keeps, per sender, the highest incarnation it has
//! authenticated and a sliding window over that incarnation's counters
//! ([`REPLAY_WINDOW_PACKETS`]). A packet is accepted once: a counter already
//! seen, one older than the window, or an incarnation older than the
//! current one is rejected. State changes only after authentication, so
//! forged packets cannot move the window. Limit: a receiver that has just
//! restarted knows no incarnations yet, so it accepts the first authentic
//! packets it sees from an older incarnation of a peer (a replay recorded
//! earlier) until that peer's current incarnation speaks; the protocol
//! above discards such stale-ring traffic by ring id and sequence.
//!
//! Corosync, by contrast, uses the key itself as cipher key with a random
//! IV per packet and has no replay protection at all (see
//! shared/research/totem-votequorum.md §3.2).

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::NodeId;

pub const MAGIC: [u8; 2] = *b"HT";
pub const VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 28;
pub const TAG_BYTES: usize = 16;
/// Header plus tag: what the envelope adds to every payload.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + TAG_BYTES;
/// Largest payload sealed or opened: a UDP datagram can carry no more.
pub const PAYLOAD_BYTES_MAX: usize = 65_507 - OVERHEAD_BYTES;
/// How far behind the newest counter a packet may arrive and still be
/// accepted (once). Totem retransmits within a few token rotations; 1024
/// packets is far more reordering than a LAN shows.
pub const REPLAY_WINDOW_PACKETS: u64 = 1024;
/// Senders a receiver tracks: node ids are 1..=32.
pub const PEERS_MAX: usize = 32;
/// Flag bit: payload is in clear (insecure_no_crypto); the tag is absent.
const FLAG_PLAIN: u8 = 0x01;

/// Why a received packet was dropped. Every variant is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenError {
    /// Shorter than a header and tag.
    Truncated,
    /// Not a hactl totem packet (magic) or an unknown version.
    NotTotem,
    /// A hactl packet of another cluster (different name): not an attack,
    /// a misconfiguration — two clusters share a network and port.
    OtherCluster,
    /// Encrypted / in clear, but this node expects the other.
    CryptoMismatch,
    /// A sender id outside 1..=32.
    BadSender,
    /// The tag does not verify: wrong key, corruption or forgery.
    AuthFailed,
    /// This exact packet (sender, incarnation, counter) was seen already,
    /// or is older than the replay window.
    Replayed,
    /// From an incarnation older than the sender's current one.
    StaleIncarnation,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::Truncated => "truncated packet",
            OpenError::NotTotem => "not a hactl totem packet (or another protocol version)",
            OpenError::OtherCluster => "packet of another cluster (different cluster name) on this network and port",
            OpenError::CryptoMismatch => "crypto on one side and off on the other (insecure_no_crypto_i_understand_anyone_can_join differs)",
            OpenError::BadSender => "sender node id out of range",
            OpenError::AuthFailed => "authentication failed: the sender uses another authkey, or the packet was altered",
            OpenError::Replayed => "replayed packet",
            OpenError::StaleIncarnation => "packet from an earlier run of the sender",
        })
    }
}

/// Why a packet could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The payload exceeds [`PAYLOAD_BYTES_MAX`].
    TooLarge,
    /// 2^64 − 1 packets sent in this incarnation: restart to get a new one.
    CounterExhausted,
}

/// The first four bytes of SHA-256 of the cluster name: lets a receiver
/// tell "another cluster" from "forged" without trying a key.
fn cluster_tag(cluster_name: &str) -> [u8; 4] {
    let h = Sha256::digest(cluster_name.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

/// The per-incarnation AES-256-GCM key of one sender.
fn sender_cipher(
    hkdf: &Hkdf<Sha256>,
    cluster_name: &str,
    node: NodeId,
    incarnation: u64,
) -> Aes256Gcm {
    let mut info = Vec::with_capacity(32 + cluster_name.len());
    info.extend_from_slice(b"hactl totem v1 aes-256-gcm\0");
    info.extend_from_slice(cluster_name.as_bytes());
    info.push(0);
    info.extend_from_slice(&node.to_be_bytes());
    info.extend_from_slice(&incarnation.to_be_bytes());
    let mut key = [0u8; 32];
    hkdf.expand(&info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))
}

fn master(authkey: &[u8]) -> Hkdf<Sha256> {
    assert!(
        authkey.len() >= crate::config::authkey::KEY_BYTES_MIN,
        "key length is checked when the key is loaded"
    );
    Hkdf::<Sha256>::new(Some(b"hactl totem v1 salt"), authkey)
}

fn nonce(counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

struct Header {
    flags: u8,
    tag: [u8; 4],
    sender: NodeId,
    incarnation: u64,
    counter: u64,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
    }

    fn read(p: &[u8]) -> Result<Header, OpenError> {
        if p.len() < HEADER_BYTES {
            return Err(OpenError::Truncated);
        }
        if p[0..2] != MAGIC || p[2] != VERSION {
            return Err(OpenError::NotTotem);
        }
        let u32_at = |i: usize| u32::from_be_bytes(p[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(p[i..i + 8].try_into().expect("8 bytes"));
        Ok(Header {
            flags: p[3],
            tag: p[4..8].try_into().expect("4 bytes"),
            sender: u32_at(8),
            incarnation: u64_at(12),
            counter: u64_at(20),
        })
    }
}

/// Seals this node's outgoing packets.
pub struct Sealer {
    node: NodeId,
    incarnation: u64,
    tag: [u8; 4],
    /// The counter of the last packet sealed (0: none yet).
    counter: u64,
    /// `None` when crypto is off (insecure_no_crypto).
    cipher: Option<Aes256Gcm>,
}

impl Sealer {
    /// `authkey: None` turns crypto off (the loudly named insecure option).
    pub fn new(
        authkey: Option<&[u8]>,
        cluster_name: &str,
        node: NodeId,
        incarnation: u64,
    ) -> Sealer {
        assert!(
            (1..=PEERS_MAX as NodeId).contains(&node),
            "node ids are validated by the configuration"
        );
        Sealer {
            node,
            incarnation,
            tag: cluster_tag(cluster_name),
            counter: 0,
            cipher: authkey.map(|k| sender_cipher(&master(k), cluster_name, node, incarnation)),
        }
    }

    /// Appends the sealed packet for `payload` to `out`.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(SealError::TooLarge);
        }
        let counter = self
            .counter
            .checked_add(1)
            .filter(|c| *c != u64::MAX)
            .ok_or(SealError::CounterExhausted)?;
        self.counter = counter;
        let start = out.len();
        Header {
            flags: if self.cipher.is_none() { FLAG_PLAIN } else { 0 },
            tag: self.tag,
            sender: self.node,
            incarnation: self.incarnation,
            counter,
        }
        .write(out);
        out.extend_from_slice(payload);
        if let Some(cipher) = &self.cipher {
            let (header, body) = out[start..].split_at_mut(HEADER_BYTES);
            let tag = cipher
                .encrypt_inout_detached(&nonce(counter), header, body.into())
                .expect("payload length is within GCM's limit");
            out.extend_from_slice(&tag);
        }
        Ok(())
    }

    pub fn packets_sealed(&self) -> u64 {
        self.counter
    }
}

/// What a receiver knows about one sender.
struct Peer {
    incarnation: u64,
    cipher: Option<Aes256Gcm>,
    window: ReplayWindow,
}

/// Counts of dropped packets, by reason, for status and rate-limited logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenStats {
    pub accepted: u64,
    pub dropped: HashMap<OpenError, u64>,
}

/// Opens packets from every sender; keeps the replay state.
pub struct Opener {
    hkdf: Option<Hkdf<Sha256>>,
    cluster_name: String,
    tag: [u8; 4],
    peers: HashMap<NodeId, Peer>,
    stats: OpenStats,
}

impl Opener {
    /// `authkey: None` expects packets in clear (insecure_no_crypto).
    pub fn new(authkey: Option<&[u8]>, cluster_name: &str) -> Opener {
        Opener {
            hkdf: authkey.map(master),
            cluster_name: cluster_name.to_string(),
            tag: cluster_tag(cluster_name),
            peers: HashMap::new(),
            stats: OpenStats::default(),
        }
    }

    pub fn stats(&self) -> &OpenStats {
        &self.stats
    }

    /// The highest incarnation authenticated from `node` (when it started,
    /// in effect: incarnations follow the wall clock).
    pub fn peer_incarnation(&self, node: NodeId) -> Option<u64> {
        self.peers.get(&node).map(|p| p.incarnation)
    }

    /// Authenticates, decrypts and replay-checks `packet`; returns the
    /// sender and the payload.
    pub fn open(&mut self, packet: &[u8]) -> Result<(NodeId, Vec<u8>), OpenError> {
        let result = self.open_inner(packet);
        match &result {
            Ok(_) => self.stats.accepted += 1,
            Err(e) => *self.stats.dropped.entry(*e).or_default() += 1,
        }
        result
    }

    /// For a packet [`Opener::open`] refused as [`OpenError::Replayed`]: the
    /// sender, if the packet is an authentic copy from the sender's current
    /// incarnation (the second copy of a datagram sent over both links),
    /// and `None` for anything else. Changes no state; the driver uses it
    /// to tell that a link carries traffic, which a forged header must not
    /// be able to fake.
    pub fn authentic_copy(&self, packet: &[u8]) -> Option<NodeId> {
        let h = Header::read(packet).ok()?;
        if h.tag != self.tag {
            return None;
        }
        let peer = self.peers.get(&h.sender)?;
        if peer.incarnation != h.incarnation {
            return None;
        }
        let Some(cipher) = &peer.cipher else {
            // insecure_no_crypto: nothing can be proven, nothing is claimed.
            return (h.flags & FLAG_PLAIN != 0).then_some(h.sender);
        };
        let (header, rest) = packet.split_at(HEADER_BYTES);
        if rest.len() < TAG_BYTES {
            return None;
        }
        let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let tag = Tag::<aes_gcm::aead::consts::U16>::try_from(tag).ok()?;
        let mut buf = body.to_vec();
        cipher
            .decrypt_inout_detached(&nonce(h.counter), header, buf.as_mut_slice().into(), &tag)
            .ok()
            .map(|_| h.sender)
    }

    fn open_inner(&mut self, packet: &[u8]) -> Result<(NodeId, Vec<u8>), OpenError> {
        let h = Header::read(packet)?;
        if h.tag != self.tag {
            return Err(OpenError::OtherCluster);
        }
        let plain = h.flags & FLAG_PLAIN != 0;
        if plain != self.hkdf.is_none() {
            return Err(OpenError::CryptoMismatch);
        }
        if !(1..=PEERS_MAX as NodeId).contains(&h.sender) {
            return Err(OpenError::BadSender);
        }
        if let Some(peer) = self.peers.get(&h.sender) {
            if h.incarnation < peer.incarnation {
                return Err(OpenError::StaleIncarnation);
            }
            if h.incarnation == peer.incarnation && !peer.window.is_new(h.counter) {
                return Err(OpenError::Replayed);
            }
        }
        let (header, rest) = packet.split_at(HEADER_BYTES);
        let payload = if let Some(hkdf) = &self.hkdf {
            if rest.len() < TAG_BYTES {
                return Err(OpenError::Truncated);
            }
            let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
            let fresh;
            let cipher = match self.peers.get(&h.sender) {
                Some(p) if p.incarnation == h.incarnation => p.cipher.as_ref().expect("crypto on"),
                _ => {
                    fresh = sender_cipher(hkdf, &self.cluster_name, h.sender, h.incarnation);
                    &fresh
                }
            };
            let mut buf = body.to_vec();
            let tag = Tag::<aes_gcm::aead::consts::U16>::try_from(tag)
                .map_err(|_| OpenError::Truncated)?;
            cipher
                .decrypt_inout_detached(&nonce(h.counter), header, buf.as_mut_slice().into(), &tag)
                .map_err(|_| OpenError::AuthFailed)?;
            // Authentic: only now may the replay state change.
            if self
                .peers
                .get(&h.sender)
                .is_none_or(|p| p.incarnation != h.incarnation)
            {
                let cipher = sender_cipher(hkdf, &self.cluster_name, h.sender, h.incarnation);
                self.peers.insert(
                    h.sender,
                    Peer {
                        incarnation: h.incarnation,
                        cipher: Some(cipher),
                        window: ReplayWindow::default(),
                    },
                );
            }
            buf
        } else {
            if self
                .peers
                .get(&h.sender)
                .is_none_or(|p| p.incarnation != h.incarnation)
            {
                self.peers.insert(
                    h.sender,
                    Peer {
                        incarnation: h.incarnation,
                        cipher: None,
                        window: ReplayWindow::default(),
                    },
                );
            }
            rest.to_vec()
        };
        let peer = self.peers.get_mut(&h.sender).expect("inserted above");
        peer.window.accept(h.counter);
        Ok((h.sender, payload))
    }
}

/// A sliding window of accepted counters (RFC 4303-style): the highest
/// counter seen and a bitmap of the [`REPLAY_WINDOW_PACKETS`] below it.
#[derive(Clone, Debug)]
struct ReplayWindow {
    highest: u64,
    /// Bit i set: counter `highest − i` was accepted.
    seen: Vec<u64>,
}

const WINDOW_WORDS: usize = (REPLAY_WINDOW_PACKETS / 64) as usize;

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            highest: 0,
            seen: vec![0; WINDOW_WORDS],
        }
    }
}

impl ReplayWindow {
    fn bit(&self, behind: u64) -> bool {
        self.seen[(behind / 64) as usize] & (1 << (behind % 64)) != 0
    }

    /// Whether `counter` has not been accepted and is not too old.
    fn is_new(&self, counter: u64) -> bool {
        if counter == 0 {
            return false; // counters start at 1
        }
        if counter > self.highest {
            return true;
        }
        let behind = self.highest - counter;
        behind < REPLAY_WINDOW_PACKETS && !self.bit(behind)
    }

    fn accept(&mut self, counter: u64) {
        debug_assert!(self.is_new(counter));
        if counter > self.highest {
            let shift = counter - self.highest;
            self.shift(shift);
            self.highest = counter;
            self.seen[0] |= 1;
        } else {
            let behind = self.highest - counter;
            self.seen[(behind / 64) as usize] |= 1 << (behind % 64);
        }
    }

    /// Moves the window up by `n` counters.
    fn shift(&mut self, n: u64) {
        if n >= REPLAY_WINDOW_PACKETS {
            self.seen.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let words = (n / 64) as usize;
        let bits = (n % 64) as u32;
        for i in (0..WINDOW_WORDS).rev() {
            let from = i.checked_sub(words);
            let hi = from.map_or(0, |f| self.seen[f]);
            let lo = from
                .and_then(|f| f.checked_sub(1))
                .map_or(0, |f| self.seen[f]);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn pair(incarnation: u64) -> (Sealer, Opener) {
        (
            Sealer::new(Some(&KEY), "web", 2, incarnation),
            Opener::new(Some(&KEY), "web"),
        )
    }

    fn seal(s: &mut Sealer, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(payload, &mut out).unwrap();
        out
    }

    #[test]
    fn a_sealed_packet_opens_to_its_payload_and_hides_it() {
        let (mut s, mut o) = pair(1);
        let p = seal(&mut s, b"hello totem");
        assert_eq!(p.len(), b"hello totem".len() + OVERHEAD_BYTES);
        assert!(
            !p.windows(5).any(|w| w == b"hello"),
            "payload must not be in clear"
        );
        assert_eq!(o.open(&p), Ok((2, b"hello totem".to_vec())));
    }

    #[test]
    fn any_altered_byte_is_rejected() {
        let (mut s, _) = pair(1);
        let p = seal(&mut s, b"payload");
        for i in 0..p.len() {
            let mut o = Opener::new(Some(&KEY), "web");
            let mut bad = p.clone();
            bad[i] ^= 0x40;
            let r = o.open(&bad);
            assert!(r.is_err(), "byte {i} altered but accepted");
        }
    }

    #[test]
    fn another_key_fails_authentication() {
        let (mut s, _) = pair(1);
        let p = seal(&mut s, b"x");
        let mut o = Opener::new(Some(&[8; 32]), "web");
        assert_eq!(o.open(&p), Err(OpenError::AuthFailed));
        assert_eq!(o.stats().dropped[&OpenError::AuthFailed], 1);
    }

    #[test]
    fn another_cluster_and_crypto_mismatch_are_told_apart() {
        let (mut s, _) = pair(1);
        let p = seal(&mut s, b"x");
        assert_eq!(
            Opener::new(Some(&KEY), "db").open(&p),
            Err(OpenError::OtherCluster)
        );
        assert_eq!(
            Opener::new(None, "web").open(&p),
            Err(OpenError::CryptoMismatch)
        );
        let mut plain = Sealer::new(None, "web", 2, 1);
        let q = seal(&mut plain, b"x");
        assert_eq!(
            Opener::new(Some(&KEY), "web").open(&q),
            Err(OpenError::CryptoMismatch)
        );
        assert_eq!(Opener::new(None, "web").open(&q), Ok((2, b"x".to_vec())));
    }

    #[test]
    fn each_packet_is_accepted_once() {
        let (mut s, mut o) = pair(1);
        let p = seal(&mut s, b"x");
        assert!(o.open(&p).is_ok());
        assert_eq!(o.open(&p), Err(OpenError::Replayed));
    }

    #[test]
    fn a_second_copy_is_recognised_as_authentic_but_a_forged_one_is_not() {
        let (mut s, mut o) = pair(1);
        let p = seal(&mut s, b"x");
        assert!(o.open(&p).is_ok());
        assert_eq!(o.open(&p), Err(OpenError::Replayed));
        assert_eq!(o.authentic_copy(&p), Some(2), "the sealer is node 2");
        // Same header (so the window calls it a replay), altered body.
        let mut forged = p.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(o.open(&forged), Err(OpenError::Replayed));
        assert_eq!(o.authentic_copy(&forged), None);
    }

    #[test]
    fn reordering_within_the_window_is_fine_but_older_is_refused() {
        let (mut s, mut o) = pair(1);
        let packets: Vec<Vec<u8>> = (0..REPLAY_WINDOW_PACKETS + 10)
            .map(|_| seal(&mut s, b"x"))
            .collect();
        // Newest first, then some older ones in reverse.
        assert!(o.open(packets.last().unwrap()).is_ok());
        let n = packets.len();
        assert!(o.open(&packets[n - 2]).is_ok());
        assert!(
            o.open(&packets[n - (REPLAY_WINDOW_PACKETS as usize)])
                .is_ok(),
            "oldest inside the window"
        );
        assert_eq!(
            o.open(&packets[n - 1 - REPLAY_WINDOW_PACKETS as usize]),
            Err(OpenError::Replayed),
            "just outside"
        );
        assert_eq!(o.open(&packets[n - 2]), Err(OpenError::Replayed));
    }

    #[test]
    fn a_restarted_sender_is_accepted_and_its_old_life_is_not() {
        let (mut old, mut o) = pair(5);
        let old_packet = seal(&mut old, b"old");
        let old_later = seal(&mut old, b"old2");
        assert!(o.open(&old_packet).is_ok());
        let mut new = Sealer::new(Some(&KEY), "web", 2, 6);
        let new_packet = seal(&mut new, b"new");
        assert_eq!(
            o.open(&new_packet),
            Ok((2, b"new".to_vec())),
            "counter 1 again, but a new incarnation"
        );
        assert_eq!(o.open(&old_later), Err(OpenError::StaleIncarnation));
    }

    #[test]
    fn forged_packets_do_not_move_the_replay_state() {
        let (mut s, mut o) = pair(1);
        let genuine: Vec<Vec<u8>> = (0..3).map(|_| seal(&mut s, b"x")).collect();
        // A forgery claiming a far higher counter and a newer incarnation.
        let mut forged = genuine[2].clone();
        forged[20..28].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(o.open(&forged), Err(OpenError::AuthFailed));
        forged[12..20].copy_from_slice(&99u64.to_be_bytes());
        assert_eq!(o.open(&forged), Err(OpenError::AuthFailed));
        for p in &genuine {
            assert!(
                o.open(p).is_ok(),
                "genuine packets still accepted after forgeries"
            );
        }
    }

    #[test]
    fn nonces_differ_per_packet_and_keys_per_incarnation() {
        let (mut a, _) = pair(1);
        let p1 = seal(&mut a, b"same");
        let p2 = seal(&mut a, b"same");
        assert_ne!(
            p1[HEADER_BYTES..],
            p2[HEADER_BYTES..],
            "same payload, different ciphertext"
        );
        let mut b = Sealer::new(Some(&KEY), "web", 2, 2);
        let q1 = seal(&mut b, b"same");
        assert_ne!(
            p1[HEADER_BYTES..],
            q1[HEADER_BYTES..],
            "same counter, other incarnation: other key"
        );
    }

    #[test]
    fn garbage_and_truncation_are_rejected_without_panic() {
        let mut o = Opener::new(Some(&KEY), "web");
        assert_eq!(o.open(b""), Err(OpenError::Truncated));
        assert_eq!(o.open(&[0u8; 60]), Err(OpenError::NotTotem));
        let (mut s, _) = pair(1);
        let p = seal(&mut s, b"payload");
        for cut in 0..p.len() {
            assert!(o.open(&p[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_sender = p.clone();
        bad_sender[8..12].copy_from_slice(&99u32.to_be_bytes());
        assert_eq!(o.open(&bad_sender), Err(OpenError::BadSender));
    }

    #[test]
    fn oversized_payloads_are_refused() {
        let (mut s, _) = pair(1);
        let mut out = Vec::new();
        assert_eq!(
            s.seal(&vec![0; PAYLOAD_BYTES_MAX + 1], &mut out),
            Err(SealError::TooLarge)
        );
        assert!(s.seal(&vec![0; PAYLOAD_BYTES_MAX], &mut out).is_ok());
    }

    #[test]
    fn the_replay_window_matches_a_model_under_random_arrivals() {
        // A simple model: the set of accepted counters, and "too old".
        let mut w = ReplayWindow::default();
        let mut accepted = std::collections::HashSet::new();
        let mut highest = 0u64;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly near the top, sometimes far jumps.
            let c = if x.is_multiple_of(50) {
                highest + 1 + x % 5000
            } else {
                (highest + 3).saturating_sub(x % 1100).max(1)
            };
            let model_new =
                !accepted.contains(&c) && (c > highest || highest - c < REPLAY_WINDOW_PACKETS);
            assert_eq!(w.is_new(c), model_new, "counter {c}, highest {highest}");
            if model_new {
                w.accept(c);
                accepted.insert(c);
                highest = highest.max(c);
            }
        }
    }
}
