//! The controller's messages on totem (service byte [`SERVICE_CONTROL`]):
//! the DC asks a node to run an operation. Results do not travel here: the
//! node records them in the replicated state (`Command::OpResult`), where
//! every node, the DC included, sees them in agreed order.
//!
//! ```text
//! [SERVICE_CONTROL = 3][WIRE_VERSION = 1][kind = 1]
//! [dc: u32][transition: u64][action: u32][node: u32][op: u8][interval_ms: u64]
//! [timeout_ms: u64][resource length: u16][resource: UTF-8]
//! ```
//! Integers are big-endian. `op`: 1 start, 2 stop, 3 monitor, 4 promote,
//! 5 demote. Kind 2 (`[3][1][2]`, nothing more): the sender is shutting
//! down cleanly. Kind 3 (`[3][1][3][target: u32]`, nothing more): the
//! sender is about to fence node `target` on an operator's request (`hactl
//! fence`); it starts once this message came back to it in agreed order,
//! so every node has it before the ring can notice `target` gone.

use crate::config::OpName;
use crate::config::{NODE_ID_MAX, NODE_ID_MIN};
use crate::totem::NodeId;

/// The first byte of a controller message (1 is quorum, 2 the state).
pub const SERVICE_CONTROL: u8 = 3;
/// Version of this encoding.
pub const WIRE_VERSION: u8 = 1;
const KIND_EXECUTE: u8 = 1;
const KIND_LEAVING: u8 = 2;
const KIND_FENCING: u8 = 3;
/// Longest resource id carried.
pub const RESOURCE_BYTES_MAX: usize = 256;

/// "Node `node`, run this operation" (from the DC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execute {
    pub dc: NodeId,
    pub transition: u64,
    pub action: u32,
    pub node: NodeId,
    pub resource: String,
    pub op: OpName,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

/// A controller message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Execute(Execute),
    /// The sender is shutting down cleanly: move its resources away.
    Leaving,
    /// The sender fences `target` on an operator's request: a DC that
    /// must fence `target` awaits that outcome (its `Fenced` record)
    /// instead of fencing it a second time.
    Fencing {
        target: NodeId,
    },
}

impl Message {
    /// Decodes a payload that starts with [`SERVICE_CONTROL`].
    pub fn from_bytes(b: &[u8]) -> Result<Message, WireError> {
        if b.len() < 3 {
            return Err(WireError::Short);
        }
        if b[1] != WIRE_VERSION {
            return Err(WireError::Version(b[1]));
        }
        match b[2] {
            KIND_EXECUTE => Execute::from_bytes(b).map(Message::Execute),
            KIND_LEAVING if b.len() == 3 => Ok(Message::Leaving),
            KIND_LEAVING => Err(WireError::Trailing),
            KIND_FENCING if b.len() < 7 => Err(WireError::Short),
            KIND_FENCING if b.len() > 7 => Err(WireError::Trailing),
            KIND_FENCING => {
                let target = u32::from_be_bytes(b[3..7].try_into().expect("4 bytes"));
                if !(NODE_ID_MIN..=NODE_ID_MAX).contains(&target) {
                    return Err(WireError::Node(target));
                }
                Ok(Message::Fencing { target })
            }
            k => Err(WireError::Kind(k)),
        }
    }

    /// The totem payload of [`Message::Leaving`].
    pub fn leaving_bytes() -> Vec<u8> {
        vec![SERVICE_CONTROL, WIRE_VERSION, KIND_LEAVING]
    }

    /// The totem payload of [`Message::Fencing`].
    pub fn fencing_bytes(target: NodeId) -> Vec<u8> {
        assert!(
            (NODE_ID_MIN..=NODE_ID_MAX).contains(&target),
            "node id checked by config"
        );
        let mut b = vec![SERVICE_CONTROL, WIRE_VERSION, KIND_FENCING];
        b.extend_from_slice(&target.to_be_bytes());
        b
    }
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    Short,
    Version(u8),
    Kind(u8),
    Op(u8),
    Resource,
    Trailing,
    /// A node id outside the configurable range.
    Node(u32),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Short => f.write_str("truncated controller message"),
            WireError::Version(v) => write!(
                f,
                "controller message version {v}; this node speaks {WIRE_VERSION} (a node runs another hactl version)"
            ),
            WireError::Kind(k) => write!(f, "unknown controller message kind {k}"),
            WireError::Op(o) => write!(f, "unknown operation code {o}"),
            WireError::Resource => f.write_str("resource id too long or not UTF-8"),
            WireError::Trailing => f.write_str("trailing bytes after a controller message"),
            WireError::Node(n) => write!(
                f,
                "node id {n} out of range (node ids are {NODE_ID_MIN} to {NODE_ID_MAX})"
            ),
        }
    }
}

fn op_code(op: OpName) -> u8 {
    match op {
        OpName::Start => 1,
        OpName::Stop => 2,
        OpName::Monitor => 3,
        OpName::Promote => 4,
        OpName::Demote => 5,
    }
}

fn op_of(code: u8) -> Option<OpName> {
    Some(match code {
        1 => OpName::Start,
        2 => OpName::Stop,
        3 => OpName::Monitor,
        4 => OpName::Promote,
        5 => OpName::Demote,
        _ => return None,
    })
}

impl Execute {
    /// The totem payload, service byte included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let r = self.resource.as_bytes();
        assert!(
            r.len() <= RESOURCE_BYTES_MAX,
            "resource id checked by config"
        );
        let mut b = Vec::with_capacity(44 + r.len());
        b.extend_from_slice(&[SERVICE_CONTROL, WIRE_VERSION, KIND_EXECUTE]);
        b.extend_from_slice(&self.dc.to_be_bytes());
        b.extend_from_slice(&self.transition.to_be_bytes());
        b.extend_from_slice(&self.action.to_be_bytes());
        b.extend_from_slice(&self.node.to_be_bytes());
        b.push(op_code(self.op));
        b.extend_from_slice(&self.interval_ms.to_be_bytes());
        b.extend_from_slice(&self.timeout_ms.to_be_bytes());
        b.extend_from_slice(&(r.len() as u16).to_be_bytes());
        b.extend_from_slice(r);
        b
    }

    /// Decodes a payload that starts with [`SERVICE_CONTROL`].
    pub fn from_bytes(b: &[u8]) -> Result<Execute, WireError> {
        const FIXED: usize = 3 + 4 + 8 + 4 + 4 + 1 + 8 + 8 + 2;
        if b.len() < 3 {
            return Err(WireError::Short);
        }
        if b[1] != WIRE_VERSION {
            return Err(WireError::Version(b[1]));
        }
        if b[2] != KIND_EXECUTE {
            return Err(WireError::Kind(b[2]));
        }
        if b.len() < FIXED {
            return Err(WireError::Short);
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let op = op_of(b[23]).ok_or(WireError::Op(b[23]))?;
        let len = u16::from_be_bytes([b[40], b[41]]) as usize;
        if len > RESOURCE_BYTES_MAX {
            return Err(WireError::Resource);
        }
        if b.len() < FIXED + len {
            return Err(WireError::Short);
        }
        if b.len() > FIXED + len {
            return Err(WireError::Trailing);
        }
        let resource = std::str::from_utf8(&b[FIXED..FIXED + len])
            .map_err(|_| WireError::Resource)?
            .to_string();
        Ok(Execute {
            dc: u32_at(3),
            transition: u64_at(7),
            action: u32_at(15),
            node: u32_at(19),
            op,
            interval_ms: u64_at(24),
            timeout_ms: u64_at(32),
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_round_trips_and_refuses_damage() {
        let e = Execute {
            dc: 1,
            transition: 7,
            action: 3,
            node: 2,
            resource: "web-ip".into(),
            op: OpName::Start,
            interval_ms: 0,
            timeout_ms: 20_000,
        };
        let b = e.to_bytes();
        assert_eq!(Execute::from_bytes(&b), Ok(e.clone()));
        assert_eq!(
            Execute::from_bytes(&b[..b.len() - 1]),
            Err(WireError::Short)
        );
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Execute::from_bytes(&long), Err(WireError::Trailing));
        let mut v = b.clone();
        v[1] = 9;
        assert_eq!(Execute::from_bytes(&v), Err(WireError::Version(9)));
        let mut o = b.clone();
        o[23] = 77;
        assert_eq!(Execute::from_bytes(&o), Err(WireError::Op(77)));
        for cut in 0..b.len() {
            assert!(Execute::from_bytes(&b[..cut]).is_err());
            assert!(Message::from_bytes(&b[..cut]).is_err());
        }
        assert_eq!(Message::from_bytes(&b), Ok(Message::Execute(e)));
        assert_eq!(
            Message::from_bytes(&Message::leaving_bytes()),
            Ok(Message::Leaving)
        );
    }

    #[test]
    fn fencing_round_trips_and_refuses_damage() {
        let b = Message::fencing_bytes(3);
        assert_eq!(b, [SERVICE_CONTROL, WIRE_VERSION, 3, 0, 0, 0, 3]);
        assert_eq!(Message::from_bytes(&b), Ok(Message::Fencing { target: 3 }));
        let last = Message::fencing_bytes(NODE_ID_MAX);
        assert_eq!(
            Message::from_bytes(&last),
            Ok(Message::Fencing {
                target: NODE_ID_MAX
            })
        );
        for cut in 0..b.len() {
            assert!(Message::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Message::from_bytes(&b[..5]), Err(WireError::Short));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Message::from_bytes(&long), Err(WireError::Trailing));
        let mut v = b.clone();
        v[1] = 2;
        assert_eq!(Message::from_bytes(&v), Err(WireError::Version(2)));
        for bad in [0, NODE_ID_MAX + 1, u32::MAX] {
            let mut n = b.clone();
            n[3..7].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(Message::from_bytes(&n), Err(WireError::Node(bad)));
        }
        // Neither of the other kinds.
        assert!(Execute::from_bytes(&b).is_err());
        let mut leaving = Message::leaving_bytes();
        leaving.extend_from_slice(&3u32.to_be_bytes());
        assert_eq!(Message::from_bytes(&leaving), Err(WireError::Trailing));
        let mut unknown = b.clone();
        unknown[2] = 4;
        assert_eq!(Message::from_bytes(&unknown), Err(WireError::Kind(4)));
    }
}
