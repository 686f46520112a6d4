//! IPMI-over-LAN wire formats: pure functions from structs to bytes and back.
//!
//! Nothing here holds a key, a socket or a clock. Session protection
//! (integrity codes, encryption) is in [`super::crypto`]; this module only
//! lays bytes out and checks that what arrives has the shape the IPMI v2.0
//! specification gives it (the layouts, with offsets, are in
//! `../shared/research/fencing.md` §2). Every decoder refuses a short or
//! inconsistent message with a [`WireError`] instead of reading past it.

use std::fmt;

// ------------------------------------------------------------------ RMCP

/// RMCP version 1.0, reserved, sequence 0xFF ("no RMCP ACK"), class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
const RMCP_CLASS_IPMI: u8 = 0x07;

/// Session header "authentication type" byte: none (IPMI 1.5, sessionless).
pub const AUTH_TYPE_NONE: u8 = 0x00;
/// Session header "authentication type" byte: RMCP+ (IPMI 2.0).
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;

/// Payload-type byte bit 7: the payload is encrypted.
pub const PAYLOAD_ENCRYPTED: u8 = 0x80;
/// Payload-type byte bit 6: the packet carries an integrity code.
pub const PAYLOAD_AUTHENTICATED: u8 = 0x40;
const PAYLOAD_TYPE_MASK: u8 = 0x3F;

/// Payload types (IPMI v2.0 table 13-16).
pub const PAYLOAD_IPMI: u8 = 0x00;
pub const PAYLOAD_OPEN_SESSION_REQUEST: u8 = 0x10;
pub const PAYLOAD_OPEN_SESSION_RESPONSE: u8 = 0x11;
pub const PAYLOAD_RAKP1: u8 = 0x12;
pub const PAYLOAD_RAKP2: u8 = 0x13;
pub const PAYLOAD_RAKP3: u8 = 0x14;
pub const PAYLOAD_RAKP4: u8 = 0x15;
/// OEM-explicit payloads carry 6 more header bytes; hactl never asks for
/// one and drops any that arrives.
const PAYLOAD_OEM_EXPLICIT: u8 = 0x02;

/// Bytes of the RMCP+ session header: RMCP (4), auth type, payload type,
/// session ID (4), sequence (4), payload length (2).
pub const V20_HEADER_BYTES: usize = 16;
/// Bytes of the sessionless IPMI 1.5 header: RMCP (4), auth type, sequence
/// (4), session ID (4), message length (1).
pub const V15_HEADER_BYTES: usize = 14;

/// The largest datagram hactl sends or accepts. Fencing messages are below
/// 100 bytes; a BMC answer longer than this is not one hactl asked for.
pub const DATAGRAM_BYTES_MAX: usize = 1024;

// ------------------------------------------------------------------ IPMI messages

/// The BMC's responder address on IPMB.
pub const BMC_SLAVE_ADDRESS: u8 = 0x20;
/// Requester address of remote console software (IPMI spec §5.5, "software ID 40h").
pub const REMOTE_CONSOLE_ADDRESS: u8 = 0x81;

pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

pub const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
pub const CMD_CHASSIS_CONTROL: u8 = 0x02;
pub const CMD_GET_CHANNEL_AUTH_CAPABILITIES: u8 = 0x38;
pub const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
pub const CMD_CLOSE_SESSION: u8 = 0x3C;

/// Completion codes hactl names in its errors (IPMI spec table 5-2 and the
/// command tables).
pub const CC_OK: u8 = 0x00;
pub const CC_INSUFFICIENT_PRIVILEGE: u8 = 0xD4;
pub const CC_INVALID_DATA_FIELD: u8 = 0xCC;

/// rqSeq is 6 bits wide.
pub const RQ_SEQ_MASK: u8 = 0x3F;

/// Longest user name RAKP carries (ULENm is 0..=16).
pub const USERNAME_BYTES_MAX: usize = 16;
/// Longest IPMI v2.0 password (Kuid is 20 bytes, zero-padded).
pub const PASSWORD_BYTES_MAX: usize = 20;

/// A message that is not what the specification says it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for WireError {}

fn need(bytes: &[u8], len: usize, what: &'static str) -> Result<(), WireError> {
    if bytes.len() < len {
        Err(WireError(what))
    } else {
        Ok(())
    }
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn array16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&b[at..at + 16]);
    out
}

/// IPMB checksum: the two's complement of the byte sum, so that the sum of
/// the bytes and their checksum is zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// An IPMI request in LAN format (IPMI spec §13.8): rsSA, netFn/rsLUN,
/// chk1, rqSA, rqSeq/rqLUN, cmd, data, chk2.
pub fn encode_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    assert!(netfn < 0x40, "netFn is 6 bits");
    assert!(rq_seq <= RQ_SEQ_MASK, "rqSeq is 6 bits");
    let mut m = Vec::with_capacity(7 + data.len());
    m.push(BMC_SLAVE_ADDRESS);
    m.push(netfn << 2);
    m.push(checksum(&m[0..2]));
    m.push(REMOTE_CONSOLE_ADDRESS);
    m.push(rq_seq << 2);
    m.push(cmd);
    m.extend_from_slice(data);
    let c = checksum(&m[3..]);
    m.push(c);
    m
}

/// A decoded IPMI response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The response netFn (the request's netFn + 1).
    pub netfn: u8,
    pub rq_seq: u8,
    pub cmd: u8,
    pub completion_code: u8,
    pub data: Vec<u8>,
}

impl Response {
    /// Whether this answers the request `netfn`/`cmd` sent with `rq_seq`.
    pub fn answers(&self, netfn: u8, cmd: u8, rq_seq: u8) -> bool {
        self.netfn == netfn + 1 && self.cmd == cmd && self.rq_seq == rq_seq
    }
}

/// Decodes an IPMI response in LAN format: rqSA, netFn/rqLUN, chk1, rsSA,
/// rqSeq/rsLUN, cmd, completion code, data, chk2.
pub fn decode_response(m: &[u8]) -> Result<Response, WireError> {
    need(m, 8, "IPMI response shorter than 8 bytes")?;
    if checksum(&m[0..2]) != m[2] {
        return Err(WireError("IPMI response header checksum is wrong"));
    }
    if checksum(&m[3..m.len() - 1]) != m[m.len() - 1] {
        return Err(WireError("IPMI response data checksum is wrong"));
    }
    if m[0] != REMOTE_CONSOLE_ADDRESS {
        return Err(WireError(
            "IPMI response is not addressed to remote console software",
        ));
    }
    Ok(Response {
        netfn: m[1] >> 2,
        rq_seq: m[4] >> 2,
        cmd: m[5],
        completion_code: m[6],
        data: m[7..m.len() - 1].to_vec(),
    })
}

// ------------------------------------------------------------------ IPMI 1.5 sessionless

/// Wraps `message` in RMCP + a sessionless IPMI 1.5 header (auth type none,
/// sequence 0, session ID 0): how Get Channel Authentication Capabilities
/// travels before any session exists.
pub fn encode_v15_sessionless(message: &[u8]) -> Vec<u8> {
    let len = u8::try_from(message.len()).expect("IPMI 1.5 message longer than 255 bytes");
    let mut d = Vec::with_capacity(V15_HEADER_BYTES + message.len());
    d.extend_from_slice(&RMCP_HEADER);
    d.push(AUTH_TYPE_NONE);
    d.extend_from_slice(&0u32.to_le_bytes());
    d.extend_from_slice(&0u32.to_le_bytes());
    d.push(len);
    d.extend_from_slice(message);
    d
}

/// The IPMI message inside a sessionless IPMI 1.5 datagram.
pub fn decode_v15_sessionless(d: &[u8]) -> Result<&[u8], WireError> {
    check_rmcp(d)?;
    need(
        d,
        V15_HEADER_BYTES,
        "IPMI 1.5 datagram shorter than its header",
    )?;
    if d[4] != AUTH_TYPE_NONE {
        return Err(WireError(
            "IPMI 1.5 answer is not sessionless (auth type is not none)",
        ));
    }
    if u32_le(d, 5) != 0 || u32_le(d, 9) != 0 {
        return Err(WireError("sessionless IPMI 1.5 answer carries a session"));
    }
    let len = usize::from(d[13]);
    need(
        d,
        V15_HEADER_BYTES + len,
        "IPMI 1.5 datagram shorter than its length field",
    )?;
    Ok(&d[V15_HEADER_BYTES..V15_HEADER_BYTES + len])
}

/// Checks the RMCP header of any datagram from a BMC.
pub fn check_rmcp(d: &[u8]) -> Result<(), WireError> {
    need(d, 5, "datagram shorter than an RMCP header")?;
    if d.len() > DATAGRAM_BYTES_MAX {
        return Err(WireError(
            "datagram longer than any IPMI answer hactl asks for",
        ));
    }
    if d[0] != RMCP_HEADER[0] || d[3] & 0x7F != RMCP_CLASS_IPMI {
        return Err(WireError("not an RMCP IPMI datagram"));
    }
    if d[3] & 0x80 != 0 {
        return Err(WireError("RMCP ACK, not an IPMI answer"));
    }
    Ok(())
}

// ------------------------------------------------------------------ RMCP+ (IPMI 2.0)

/// The RMCP+ session header fields of a packet (IPMI spec table 13-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V20Header {
    /// The payload-type byte as sent: type in bits 5:0, plus
    /// [`PAYLOAD_ENCRYPTED`] and [`PAYLOAD_AUTHENTICATED`].
    pub payload_type: u8,
    pub session_id: u32,
    pub session_seq: u32,
    pub payload_len: u16,
}

impl V20Header {
    pub fn kind(&self) -> u8 {
        self.payload_type & PAYLOAD_TYPE_MASK
    }
    pub fn encrypted(&self) -> bool {
        self.payload_type & PAYLOAD_ENCRYPTED != 0
    }
    pub fn authenticated(&self) -> bool {
        self.payload_type & PAYLOAD_AUTHENTICATED != 0
    }
}

/// RMCP + RMCP+ session header for a payload of `payload_len` bytes.
pub fn encode_v20_header(h: &V20Header) -> Vec<u8> {
    let mut d = Vec::with_capacity(V20_HEADER_BYTES + usize::from(h.payload_len) + 32);
    d.extend_from_slice(&RMCP_HEADER);
    d.push(AUTH_TYPE_RMCP_PLUS);
    d.push(h.payload_type);
    d.extend_from_slice(&h.session_id.to_le_bytes());
    d.extend_from_slice(&h.session_seq.to_le_bytes());
    d.extend_from_slice(&h.payload_len.to_le_bytes());
    d
}

/// Splits an RMCP+ datagram into header, payload and trailer (integrity
/// pad, pad length, next header and integrity code; empty when the packet
/// is not authenticated).
pub fn decode_v20(d: &[u8]) -> Result<(V20Header, &[u8], &[u8]), WireError> {
    check_rmcp(d)?;
    if d[4] != AUTH_TYPE_RMCP_PLUS {
        return Err(WireError("not an RMCP+ (IPMI 2.0) packet"));
    }
    need(d, V20_HEADER_BYTES, "RMCP+ packet shorter than its header")?;
    if d[5] & PAYLOAD_TYPE_MASK == PAYLOAD_OEM_EXPLICIT {
        return Err(WireError("OEM explicit payload: hactl asked for none"));
    }
    let h = V20Header {
        payload_type: d[5],
        session_id: u32_le(d, 6),
        session_seq: u32_le(d, 10),
        payload_len: u16::from_le_bytes([d[14], d[15]]),
    };
    let end = V20_HEADER_BYTES + usize::from(h.payload_len);
    need(d, end, "RMCP+ packet shorter than its payload length field")?;
    Ok((h, &d[V20_HEADER_BYTES..end], &d[end..]))
}

/// A pre-session RMCP+ packet (Open Session and RAKP): session ID 0,
/// sequence 0, neither encrypted nor authenticated.
pub fn encode_v20_presession(kind: u8, payload: &[u8]) -> Vec<u8> {
    let payload_len = u16::try_from(payload.len()).expect("pre-session payload fits 16 bits");
    let mut d = encode_v20_header(&V20Header {
        payload_type: kind,
        session_id: 0,
        session_seq: 0,
        payload_len,
    });
    d.extend_from_slice(payload);
    d
}

/// The payload of a pre-session RMCP+ answer of type `kind`.
pub fn decode_v20_presession(d: &[u8], kind: u8) -> Result<&[u8], WireError> {
    let (h, payload, _trailer) = decode_v20(d)?;
    if h.kind() != kind {
        return Err(WireError("pre-session answer of another payload type"));
    }
    if h.encrypted() || h.authenticated() {
        return Err(WireError(
            "pre-session answer marked encrypted or authenticated",
        ));
    }
    if h.session_id != 0 || h.session_seq != 0 {
        return Err(WireError(
            "pre-session answer carries a session ID or sequence number",
        ));
    }
    Ok(payload)
}

// ------------------------------------------------------------------ Get Channel Authentication Capabilities

/// Request data: bit 7 asks for the IPMI v2.0 extended data; channel 0x0E
/// means "the channel this request arrives on".
pub fn auth_capabilities_request_data(privilege: u8) -> [u8; 2] {
    [0x80 | 0x0E, privilege]
}

/// The parts of the Get Channel Authentication Capabilities answer hactl
/// uses (IPMI spec §22.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthCapabilities {
    pub channel: u8,
    /// The BMC speaks IPMI v2.0 (RMCP+).
    pub ipmi20: bool,
    /// The BMC has a non-null BMC key (Kg): session keys derive from it, not
    /// from the user's password.
    pub kg_set: bool,
}

pub fn decode_auth_capabilities(data: &[u8]) -> Result<AuthCapabilities, WireError> {
    need(
        data,
        8,
        "Get Channel Authentication Capabilities answer shorter than 8 bytes",
    )?;
    let extended = data[1] & 0x80 != 0;
    Ok(AuthCapabilities {
        channel: data[0],
        ipmi20: extended && data[3] & 0x02 != 0,
        kg_set: data[2] & 0x20 != 0,
    })
}

// ------------------------------------------------------------------ Open Session

/// Algorithm numbers of one cipher suite (IPMI spec tables 13-17..13-19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Algorithms {
    pub authentication: u8,
    pub integrity: u8,
    pub confidentiality: u8,
}

/// Bytes of an Open Session Request payload.
pub const OPEN_SESSION_REQUEST_BYTES: usize = 32;
/// Bytes of a successful Open Session Response payload.
pub const OPEN_SESSION_RESPONSE_BYTES: usize = 36;

pub fn encode_open_session_request(
    tag: u8,
    privilege: u8,
    console_session_id: u32,
    algs: Algorithms,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(OPEN_SESSION_REQUEST_BYTES);
    p.extend_from_slice(&[tag, privilege, 0, 0]);
    p.extend_from_slice(&console_session_id.to_le_bytes());
    // Each algorithm record: payload type, 2 reserved, length 8, algorithm, 3 reserved.
    for (record, alg) in [
        (0u8, algs.authentication),
        (1, algs.integrity),
        (2, algs.confidentiality),
    ] {
        p.extend_from_slice(&[record, 0, 0, 8, alg, 0, 0, 0]);
    }
    debug_assert_eq!(p.len(), OPEN_SESSION_REQUEST_BYTES);
    p
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    /// RMCP+ status code; 0 is success, and then the other fields are set.
    pub status: u8,
    pub privilege: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub algs: Algorithms,
}

pub fn decode_open_session_response(p: &[u8]) -> Result<OpenSessionResponse, WireError> {
    need(p, 2, "Open Session Response shorter than 2 bytes")?;
    let mut r = OpenSessionResponse {
        tag: p[0],
        status: p[1],
        privilege: 0,
        console_session_id: 0,
        bmc_session_id: 0,
        algs: Algorithms {
            authentication: 0,
            integrity: 0,
            confidentiality: 0,
        },
    };
    if r.status != 0 {
        // A failed open carries the tag and status only (some BMCs add the
        // console session ID); nothing else is meaningful.
        if p.len() >= 8 {
            r.console_session_id = u32_le(p, 4);
        }
        return Ok(r);
    }
    need(
        p,
        OPEN_SESSION_RESPONSE_BYTES,
        "Open Session Response shorter than 36 bytes",
    )?;
    for (at, record) in [(12, 0u8), (20, 1), (28, 2)] {
        if p[at] != record || p[at + 3] != 8 {
            return Err(WireError(
                "Open Session Response algorithm record is malformed",
            ));
        }
    }
    r.privilege = p[2] & 0x0F;
    r.console_session_id = u32_le(p, 4);
    r.bmc_session_id = u32_le(p, 8);
    r.algs = Algorithms {
        authentication: p[16] & 0x3F,
        integrity: p[24] & 0x3F,
        confidentiality: p[32] & 0x3F,
    };
    Ok(r)
}

// ------------------------------------------------------------------ RAKP

/// RAKP message 1: BMC session ID, the console's random number Rm, the
/// requested role and the user name.
pub fn encode_rakp1(
    tag: u8,
    bmc_session_id: u32,
    rm: &[u8; 16],
    role: u8,
    username: &[u8],
) -> Vec<u8> {
    assert!(
        username.len() <= USERNAME_BYTES_MAX,
        "user name checked at construction"
    );
    let mut p = Vec::with_capacity(28 + username.len());
    p.extend_from_slice(&[tag, 0, 0, 0]);
    p.extend_from_slice(&bmc_session_id.to_le_bytes());
    p.extend_from_slice(rm);
    p.extend_from_slice(&[role, 0, 0, username.len() as u8]);
    p.extend_from_slice(username);
    p
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    /// The key exchange authentication code (its length depends on the suite).
    pub auth_code: Vec<u8>,
}

pub fn decode_rakp2(p: &[u8]) -> Result<Rakp2, WireError> {
    need(p, 2, "RAKP message 2 shorter than 2 bytes")?;
    let mut r = Rakp2 {
        tag: p[0],
        status: p[1],
        console_session_id: 0,
        rc: [0; 16],
        guid: [0; 16],
        auth_code: Vec::new(),
    };
    if r.status != 0 {
        return Ok(r);
    }
    need(p, 40, "RAKP message 2 shorter than 40 bytes")?;
    r.console_session_id = u32_le(p, 4);
    r.rc = array16(p, 8);
    r.guid = array16(p, 24);
    r.auth_code = p[40..].to_vec();
    Ok(r)
}

/// RAKP message 3: status and (on success) the console's key exchange
/// authentication code.
pub fn encode_rakp3(tag: u8, status: u8, bmc_session_id: u32, auth_code: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + auth_code.len());
    p.extend_from_slice(&[tag, status, 0, 0]);
    p.extend_from_slice(&bmc_session_id.to_le_bytes());
    p.extend_from_slice(auth_code);
    p
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    /// The integrity check value (its length depends on the suite).
    pub icv: Vec<u8>,
}

pub fn decode_rakp4(p: &[u8]) -> Result<Rakp4, WireError> {
    need(p, 2, "RAKP message 4 shorter than 2 bytes")?;
    let mut r = Rakp4 {
        tag: p[0],
        status: p[1],
        console_session_id: 0,
        icv: Vec::new(),
    };
    if r.status != 0 {
        return Ok(r);
    }
    need(p, 8, "RAKP message 4 shorter than 8 bytes")?;
    r.console_session_id = u32_le(p, 4);
    r.icv = p[8..].to_vec();
    Ok(r)
}

/// RMCP+ status codes (IPMI spec table 13-15), for error messages.
pub fn rmcp_status_text(status: u8) -> &'static str {
    match status {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

// ------------------------------------------------------------------ Chassis

/// Chassis Control request byte 1 (IPMI spec §28.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChassisControl {
    PowerDown = 0,
    PowerUp = 1,
    PowerCycle = 2,
    HardReset = 3,
}

impl ChassisControl {
    pub fn name(self) -> &'static str {
        match self {
            ChassisControl::PowerDown => "power down",
            ChassisControl::PowerUp => "power up",
            ChassisControl::PowerCycle => "power cycle",
            ChassisControl::HardReset => "hard reset",
        }
    }
}

/// Get Chassis Status answer byte 1 ("current power state"), bit 0: power
/// is on.
pub fn decode_chassis_power_on(data: &[u8]) -> Result<bool, WireError> {
    need(data, 3, "Get Chassis Status answer shorter than 3 bytes")?;
    Ok(data[0] & 0x01 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_capabilities_request_matches_the_bytes_ipmitool_sends() {
        // From the ipmi_sim trace in research/fencing.md §2.3.
        let m = encode_request(
            NETFN_APP,
            CMD_GET_CHANNEL_AUTH_CAPABILITIES,
            0,
            &auth_capabilities_request_data(4),
        );
        assert_eq!(m, [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]);
    }

    #[test]
    fn responses_with_a_bad_checksum_are_refused() {
        // A Get Chassis Status answer: power on.
        let mut m = vec![0x81, 0x04, 0, 0x20, 0x05 << 2, 0x01, 0x00, 0x01, 0, 0];
        m[2] = checksum(&m[0..2]);
        let c = checksum(&m[3..]);
        m.push(c);
        let r = decode_response(&m).unwrap();
        assert!(r.answers(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS, 5));
        assert!(!r.answers(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS, 6));
        assert!(decode_chassis_power_on(&r.data).unwrap());
        let mut bad = m.clone();
        bad[7] ^= 1;
        assert!(decode_response(&bad).is_err());
        let mut bad = m;
        bad[1] ^= 4;
        assert!(decode_response(&bad).is_err());
    }

    #[test]
    fn sessionless_datagrams_round_trip_and_truncation_is_refused() {
        let d = encode_v15_sessionless(&[1, 2, 3]);
        assert_eq!(d.len(), V15_HEADER_BYTES + 3);
        assert_eq!(decode_v15_sessionless(&d).unwrap(), &[1, 2, 3]);
        assert!(decode_v15_sessionless(&d[..d.len() - 1]).is_err());
        let mut with_session = d.clone();
        with_session[9] = 1;
        assert!(decode_v15_sessionless(&with_session).is_err());
    }

    #[test]
    fn open_session_request_layout_matches_the_ipmi_sim_trace() {
        // research/fencing.md §2.8: suite 3, SIDm e3cae3ad (LE on the wire).
        let p = encode_open_session_request(
            0,
            0,
            u32::from_le_bytes([0xe3, 0xca, 0xe3, 0xad]),
            Algorithms {
                authentication: 1,
                integrity: 1,
                confidentiality: 1,
            },
        );
        let want = "00000000e3cae3ad000000080100000001000008010000000200000801000000";
        assert_eq!(hex::encode(&p), want);
        let d = encode_v20_presession(PAYLOAD_OPEN_SESSION_REQUEST, &p);
        assert_eq!(
            hex::encode(&d[..V20_HEADER_BYTES]),
            "0600ff07061000000000000000002000"
        );
    }

    #[test]
    fn a_failed_open_session_response_of_two_bytes_decodes() {
        // ipmi_sim answers an unsupported suite with tag and status only.
        let r = decode_open_session_response(&[7, 0x04]).unwrap();
        assert_eq!((r.tag, r.status), (7, 0x04));
        assert!(decode_open_session_response(&[7]).is_err());
        let mut ok = vec![0u8; 36];
        assert!(
            decode_open_session_response(&ok).is_err(),
            "records missing"
        );
        for (at, record) in [(12, 0u8), (20, 1), (28, 2)] {
            ok[at] = record;
            ok[at + 3] = 8;
        }
        ok[16] = 3;
        ok[24] = 4;
        ok[32] = 1;
        let r = decode_open_session_response(&ok).unwrap();
        assert_eq!(
            r.algs,
            Algorithms {
                authentication: 3,
                integrity: 4,
                confidentiality: 1
            }
        );
    }

    #[test]
    fn rmcp_acks_and_oversized_datagrams_are_refused() {
        let mut d = encode_v20_presession(PAYLOAD_RAKP2, &[0, 0]);
        assert!(decode_v20_presession(&d, PAYLOAD_RAKP2).is_ok());
        assert!(decode_v20_presession(&d, PAYLOAD_RAKP4).is_err());
        d[3] |= 0x80;
        assert!(decode_v20(&d).is_err());
        let big = vec![0x06; DATAGRAM_BYTES_MAX + 1];
        assert!(check_rmcp(&big).is_err());
    }
}
