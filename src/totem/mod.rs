//! Totem: membership and ordered, encrypted messaging between the nodes.
//!
//! - [`crypto`]: the packet envelope: AES-256-GCM with per-sender keys
//!   derived by HKDF from the cluster key, nonces that are never reused, and
//!   replay rejection.
//! - [`incarnation`]: a strictly increasing number per start of hactld,
//!   persisted before use (the envelope's nonce safety rests on it).
//! - [`wire`]: the totem messages (token, multicast, join, commit token,
//!   merge detect) and their bounded byte format.
//! - [`driver`]: the UDP edge: sockets per link, seal/open, the real clock.
//! - [`srp`]: the single-ring protocol's ordering half as a pure state
//!   machine (token, agreed order, retransmission, flow control).
//!
//! The single-ring ordering and membership protocol (SRP) and its UDP
//! driver build on this envelope.

pub mod crypto;
pub mod driver;
pub mod incarnation;
pub mod srp;
pub mod wire;

/// A node's id, 1..=32 (configuration `[[node]] id`).
pub type NodeId = u32;
