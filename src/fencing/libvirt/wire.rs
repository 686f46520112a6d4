//! libvirt RPC wire formats: pure functions from values to bytes and back.
//!
//! A libvirt RPC message on a stream socket is one frame:
//!
//! ```text
//! u32 length (big-endian, counting these 4 bytes too)
//! header: u32 program, u32 version, i32 procedure, i32 type, u32 serial, i32 status
//! payload: XDR (RFC 4506) of the procedure's arguments, reply or error
//! ```
//!
//! XDR puts every item on a 4-byte boundary, big-endian; a string or
//! variable-length opaque is its length then its bytes padded with zeros to
//! a multiple of 4; an optional item (a pointer in libvirt's `.x` files) is
//! a u32 0 or 1 then the item. The layouts of the procedures hactl uses are
//! in `../shared/research/fencing.md` §4.2, from libvirt's
//! `src/rpc/virnetprotocol.x` and `src/remote/remote_protocol.x`, and were
//! checked against libvirtd 9.0.
//!
//! Nothing here holds a socket or a clock. Every decoder refuses a short or
//! inconsistent message with a [`WireError`] instead of reading past it.

use std::fmt;

/// `REMOTE_PROGRAM`: the procedures of the hypervisor connection.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`.
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;

/// Bytes of the length word plus the header.
pub const FRAME_HEADER_BYTES: usize = 4 + 24;
/// The largest frame hactl accepts. Its replies are below 1 KiB (an error
/// message is the longest part); libvirt's own limit is 32 MiB, but a frame
/// that large is nothing hactl asked for.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// The longest string hactl decodes (libvirt's `REMOTE_STRING_MAX` is
/// 4 MiB; an error message or domain name is far shorter).
pub const STRING_BYTES_MAX: usize = 64 * 1024;
/// `REMOTE_AUTH_TYPE_LIST_MAX`.
pub const AUTH_TYPES_MAX: usize = 20;

/// `virNetMessageType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Call,
    Reply,
    /// An asynchronous event (hactl registers for none).
    Message,
    Stream,
    CallWithFds,
    ReplyWithFds,
    StreamHole,
    Other(i32),
}

impl MessageType {
    pub fn from_wire(v: i32) -> MessageType {
        match v {
            0 => MessageType::Call,
            1 => MessageType::Reply,
            2 => MessageType::Message,
            3 => MessageType::Stream,
            4 => MessageType::CallWithFds,
            5 => MessageType::ReplyWithFds,
            6 => MessageType::StreamHole,
            other => MessageType::Other(other),
        }
    }

    pub fn to_wire(self) -> i32 {
        match self {
            MessageType::Call => 0,
            MessageType::Reply => 1,
            MessageType::Message => 2,
            MessageType::Stream => 3,
            MessageType::CallWithFds => 4,
            MessageType::ReplyWithFds => 5,
            MessageType::StreamHole => 6,
            MessageType::Other(v) => v,
        }
    }
}

/// `virNetMessageStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    Continue,
    Other(i32),
}

impl Status {
    pub fn from_wire(v: i32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Continue,
            other => Status::Other(other),
        }
    }

    pub fn to_wire(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Continue => 2,
            Status::Other(v) => v,
        }
    }
}

/// The remote procedures hactl calls (`remote_procedure` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Procedure {
    ConnectOpen,
    ConnectClose,
    DomainCreate,
    DomainDestroy,
    DomainLookupByName,
    DomainLookupByUuid,
    AuthList,
    DomainGetState,
}

impl Procedure {
    pub fn number(self) -> i32 {
        match self {
            Procedure::ConnectOpen => 1,
            Procedure::ConnectClose => 2,
            Procedure::DomainCreate => 9,
            Procedure::DomainDestroy => 12,
            Procedure::DomainLookupByName => 23,
            Procedure::DomainLookupByUuid => 24,
            Procedure::AuthList => 66,
            Procedure::DomainGetState => 212,
        }
    }

    /// libvirt's name for it, for messages (`REMOTE_PROC_…`).
    pub fn name(self) -> &'static str {
        match self {
            Procedure::ConnectOpen => "CONNECT_OPEN",
            Procedure::ConnectClose => "CONNECT_CLOSE",
            Procedure::DomainCreate => "DOMAIN_CREATE",
            Procedure::DomainDestroy => "DOMAIN_DESTROY",
            Procedure::DomainLookupByName => "DOMAIN_LOOKUP_BY_NAME",
            Procedure::DomainLookupByUuid => "DOMAIN_LOOKUP_BY_UUID",
            Procedure::AuthList => "AUTH_LIST",
            Procedure::DomainGetState => "DOMAIN_GET_STATE",
        }
    }
}

impl fmt::Display for Procedure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message that does not have the shape the protocol gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn err(s: impl Into<String>) -> WireError {
    WireError(s.into())
}

// ------------------------------------------------------------------ XDR

/// XDR encoder.
#[derive(Clone, Debug, Default)]
pub struct XdrWriter {
    buf: Vec<u8>,
}

impl XdrWriter {
    pub fn new() -> XdrWriter {
        XdrWriter::default()
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Fixed-length opaque: the bytes, padded to 4.
    pub fn opaque_fixed(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.pad(b.len());
        self
    }

    /// Variable-length opaque or string: length, bytes, padding.
    pub fn string(&mut self, s: &str) -> &mut Self {
        let len = u32::try_from(s.len()).expect("an XDR string is shorter than 4 GiB");
        self.u32(len);
        self.opaque_fixed(s.as_bytes())
    }

    /// Optional string (`remote_string`): 0, or 1 and the string.
    pub fn opt_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.u32(0),
            Some(s) => self.u32(1).string(s),
        }
    }

    fn pad(&mut self, len: usize) {
        let n = (4 - len % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..n]);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// XDR decoder over one payload.
#[derive(Clone, Debug)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(buf: &'a [u8]) -> XdrReader<'a> {
        XdrReader { buf, at: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                err(format!(
                    "the payload ends at byte {} in the middle of {what} ({n} bytes needed at byte {})",
                    self.buf.len(),
                    self.at
                ))
            })?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, WireError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Fixed-length opaque of `n` bytes (plus padding, which must be zero:
    /// XDR says so, and a peer that gets it wrong is not speaking XDR).
    pub fn opaque_fixed(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let b = self.take(n, what)?;
        let pad = self.take((4 - n % 4) % 4, what)?;
        if pad.iter().any(|&p| p != 0) {
            return Err(err(format!("{what}: non-zero XDR padding")));
        }
        Ok(b)
    }

    /// A string of at most [`STRING_BYTES_MAX`] bytes of UTF-8.
    pub fn string(&mut self, what: &str) -> Result<String, WireError> {
        let len = self.u32(what)? as usize;
        if len > STRING_BYTES_MAX {
            return Err(err(format!(
                "{what}: a string of {len} bytes (hactl accepts at most {STRING_BYTES_MAX})"
            )));
        }
        let b = self.opaque_fixed(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| err(format!("{what}: not UTF-8")))
    }

    /// Optional item flag: false (absent) or true (present).
    pub fn present(&mut self, what: &str) -> Result<bool, WireError> {
        match self.u32(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(err(format!(
                "{what}: optional-item flag {v} (XDR allows 0 or 1)"
            ))),
        }
    }

    pub fn opt_string(&mut self, what: &str) -> Result<Option<String>, WireError> {
        if self.present(what)? {
            Ok(Some(self.string(what)?))
        } else {
            Ok(None)
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Checks that the whole payload was read.
    pub fn finish(&self, what: &str) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(err(format!(
                "{what}: {} bytes after the end of the reply",
                self.remaining()
            )))
        }
    }
}

// ------------------------------------------------------------------ frames

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub program: u32,
    pub version: u32,
    pub procedure: i32,
    pub kind: MessageType,
    pub serial: u32,
    pub status: Status,
}

impl Header {
    /// The header of a call of `procedure` to the remote program.
    pub fn call(procedure: Procedure, serial: u32) -> Header {
        Header {
            program: REMOTE_PROGRAM,
            version: REMOTE_PROTOCOL_VERSION,
            procedure: procedure.number(),
            kind: MessageType::Call,
            serial,
            status: Status::Ok,
        }
    }
}

/// One whole frame: length, header, payload.
pub fn encode_frame(header: &Header, payload: &[u8]) -> Vec<u8> {
    let len = FRAME_HEADER_BYTES + payload.len();
    assert!(len <= FRAME_BYTES_MAX, "hactl sends only small calls");
    let mut w = XdrWriter::new();
    w.u32(len as u32)
        .u32(header.program)
        .u32(header.version)
        .i32(header.procedure)
        .i32(header.kind.to_wire())
        .u32(header.serial)
        .i32(header.status.to_wire());
    let mut b = w.into_bytes();
    b.extend_from_slice(payload);
    b
}

/// The length of the rest of a frame (header and payload) from its first 4
/// bytes, checked against the protocol's minimum and hactl's maximum.
pub fn frame_rest_bytes(length_word: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(length_word) as usize;
    if len < FRAME_HEADER_BYTES {
        return Err(err(format!(
            "a frame length of {len} bytes (a header alone is {FRAME_HEADER_BYTES})"
        )));
    }
    if len > FRAME_BYTES_MAX {
        return Err(err(format!(
            "a frame of {len} bytes (hactl accepts at most {FRAME_BYTES_MAX})"
        )));
    }
    Ok(len - 4)
}

/// Splits the rest of a frame (after the length word) into header and
/// payload.
pub fn decode_header(rest: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let mut r = XdrReader::new(rest);
    let header = Header {
        program: r.u32("header")?,
        version: r.u32("header")?,
        procedure: r.i32("header")?,
        kind: MessageType::from_wire(r.i32("header")?),
        serial: r.u32("header")?,
        status: Status::from_wire(r.i32("header")?),
    };
    Ok((header, &rest[24..]))
}

// ------------------------------------------------------------------ values

/// `remote_nonnull_domain`: how the daemon names a domain in calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub uuid: [u8; 16],
    /// The running instance's id, -1 when the domain is not running. The
    /// daemon finds the domain by UUID, so a stale id does no harm.
    pub id: i32,
}

impl Domain {
    pub fn encode(&self, w: &mut XdrWriter) {
        w.string(&self.name).opaque_fixed(&self.uuid).i32(self.id);
    }

    pub fn decode(r: &mut XdrReader<'_>) -> Result<Domain, WireError> {
        let name = r.string("domain name")?;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(r.opaque_fixed(16, "domain UUID")?);
        let id = r.i32("domain id")?;
        Ok(Domain { name, uuid, id })
    }
}

/// `virDomainState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    NoState,
    Running,
    Blocked,
    Paused,
    /// Being shut down: still running.
    Shutdown,
    Shutoff,
    Crashed,
    PmSuspended,
    Other(i32),
}

impl DomainState {
    pub fn from_wire(v: i32) -> DomainState {
        match v {
            0 => DomainState::NoState,
            1 => DomainState::Running,
            2 => DomainState::Blocked,
            3 => DomainState::Paused,
            4 => DomainState::Shutdown,
            5 => DomainState::Shutoff,
            6 => DomainState::Crashed,
            7 => DomainState::PmSuspended,
            other => DomainState::Other(other),
        }
    }

    /// virsh's word for it.
    pub fn name(self) -> String {
        match self {
            DomainState::NoState => "no state".into(),
            DomainState::Running => "running".into(),
            DomainState::Blocked => "blocked".into(),
            DomainState::Paused => "paused".into(),
            DomainState::Shutdown => "in shutdown".into(),
            DomainState::Shutoff => "shut off".into(),
            DomainState::Crashed => "crashed".into(),
            DomainState::PmSuspended => "pmsuspended".into(),
            DomainState::Other(v) => format!("state {v}"),
        }
    }
}

/// `remote_auth_type`.
pub const AUTH_NONE: i32 = 0;
pub const AUTH_SASL: i32 = 1;
pub const AUTH_POLKIT: i32 = 2;

/// `virErrorNumber` values hactl tells apart.
pub const ERR_AUTH_FAILED: i32 = 45;
pub const ERR_OPERATION_DENIED: i32 = 29;
pub const ERR_NO_DOMAIN: i32 = 42;
pub const ERR_OPERATION_INVALID: i32 = 55;
pub const ERR_AUTH_CANCELLED: i32 = 79;
pub const ERR_ACCESS_DENIED: i32 = 88;
pub const ERR_AUTH_UNAVAILABLE: i32 = 94;

/// The start of `remote_error` (the payload of a reply with status ERROR):
/// `int code; int domain; remote_string message; …` — the rest (level,
/// objects, extra strings) says nothing a fencer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// `virErrorNumber`.
    pub code: i32,
    /// `virErrorDomain`: which part of libvirt raised it.
    pub domain: i32,
    pub message: Option<String>,
}

impl RemoteError {
    pub fn decode(payload: &[u8]) -> Result<RemoteError, WireError> {
        let mut r = XdrReader::new(payload);
        Ok(RemoteError {
            code: r.i32("error code")?,
            domain: r.i32("error domain")?,
            message: r.opt_string("error message")?,
        })
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "\"{m}\" (libvirt error {})", self.code),
            None => write!(f, "libvirt error {} without a message", self.code),
        }
    }
}

// ------------------------------------------------------------------ calls

/// `remote_connect_open_args { remote_string name; unsigned int flags; }`.
pub fn connect_open_args(name: &str) -> Vec<u8> {
    let mut w = XdrWriter::new();
    w.opt_string(Some(name)).u32(0);
    w.into_bytes()
}

pub fn lookup_by_name_args(name: &str) -> Vec<u8> {
    let mut w = XdrWriter::new();
    w.string(name);
    w.into_bytes()
}

pub fn lookup_by_uuid_args(uuid: &[u8; 16]) -> Vec<u8> {
    let mut w = XdrWriter::new();
    w.opaque_fixed(uuid);
    w.into_bytes()
}

/// The arguments of DOMAIN_CREATE and DOMAIN_DESTROY: the domain alone.
pub fn domain_args(d: &Domain) -> Vec<u8> {
    let mut w = XdrWriter::new();
    d.encode(&mut w);
    w.into_bytes()
}

/// `remote_domain_get_state_args { dom; unsigned int flags; }`.
pub fn get_state_args(d: &Domain) -> Vec<u8> {
    let mut w = XdrWriter::new();
    d.encode(&mut w);
    w.u32(0);
    w.into_bytes()
}

/// `remote_auth_list_ret { remote_auth_type types<20>; }`.
pub fn decode_auth_list(payload: &[u8]) -> Result<Vec<i32>, WireError> {
    let mut r = XdrReader::new(payload);
    let n = r.u32("auth type count")? as usize;
    if n > AUTH_TYPES_MAX {
        return Err(err(format!(
            "{n} authentication types (the protocol allows at most {AUTH_TYPES_MAX})"
        )));
    }
    let types = (0..n)
        .map(|_| r.i32("auth type"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish("AUTH_LIST reply")?;
    Ok(types)
}

/// `remote_domain_lookup_by_*_ret { remote_nonnull_domain dom; }`.
pub fn decode_domain(payload: &[u8]) -> Result<Domain, WireError> {
    let mut r = XdrReader::new(payload);
    let d = Domain::decode(&mut r)?;
    r.finish("domain lookup reply")?;
    Ok(d)
}

/// `remote_domain_get_state_ret { int state; int reason; }`.
pub fn decode_state(payload: &[u8]) -> Result<(DomainState, i32), WireError> {
    let mut r = XdrReader::new(payload);
    let state = DomainState::from_wire(r.i32("state")?);
    let reason = r.i32("state reason")?;
    r.finish("DOMAIN_GET_STATE reply")?;
    Ok((state, reason))
}

/// An empty reply (CONNECT_OPEN, DOMAIN_CREATE, DOMAIN_DESTROY, CONNECT_CLOSE).
pub fn decode_void(payload: &[u8], procedure: Procedure) -> Result<(), WireError> {
    XdrReader::new(payload).finish(&format!("{procedure} reply"))
}

// ------------------------------------------------------------------ UUIDs

/// Parses a UUID as libvirt writes it (`6f1e2c3a-0000-4000-8000-00000000f0f0`)
/// or as 32 hex digits. `None` for anything else (then it is a name).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = if s.len() == 36 {
        let dashes = [8, 13, 18, 23];
        for (i, c) in s.char_indices() {
            if dashes.contains(&i) != (c == '-') {
                return None;
            }
        }
        s.chars().filter(|&c| c != '-').collect()
    } else if s.len() == 32 {
        s.to_string()
    } else {
        return None;
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdr_strings_are_length_prefixed_and_padded_to_four_bytes() {
        let mut w = XdrWriter::new();
        w.string("fxvm").string("abcde").string("");
        assert_eq!(
            w.into_bytes(),
            [
                0, 0, 0, 4, b'f', b'x', b'v', b'm', //
                0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0, //
                0, 0, 0, 0,
            ]
        );
        let mut w = XdrWriter::new();
        w.opt_string(None).opt_string(Some("ab")).i32(-1);
        let b = w.into_bytes();
        assert_eq!(
            b,
            [
                0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b', 0, 0, 255, 255, 255, 255
            ]
        );
        let mut r = XdrReader::new(&b);
        assert_eq!(r.opt_string("a").unwrap(), None);
        assert_eq!(r.opt_string("b").unwrap().as_deref(), Some("ab"));
        assert_eq!(r.i32("c").unwrap(), -1);
        r.finish("x").unwrap();
    }

    #[test]
    fn the_reader_refuses_truncation_bad_padding_bad_flags_and_huge_strings() {
        let e = XdrReader::new(&[0, 0, 0, 5, b'a'])
            .string("name")
            .unwrap_err();
        assert!(e.0.contains("in the middle of name"), "{e}");
        let e = XdrReader::new(&[0, 0, 0, 1, b'a', 1, 0, 0])
            .string("name")
            .unwrap_err();
        assert!(e.0.contains("padding"), "{e}");
        let e = XdrReader::new(&[0, 0, 0, 2])
            .present("message")
            .unwrap_err();
        assert!(e.0.contains("flag 2"), "{e}");
        let e = XdrReader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0])
            .string("message")
            .unwrap_err();
        assert!(e.0.contains("at most"), "{e}");
        let e = XdrReader::new(&[0, 0, 0, 1, 0xff, 0, 0, 0])
            .string("name")
            .unwrap_err();
        assert!(e.0.contains("UTF-8"), "{e}");
        assert!(XdrReader::new(&[0, 0, 0, 0, 9]).finish("reply").is_err());
    }

    #[test]
    fn a_call_frame_has_the_length_the_header_and_the_payload() {
        let d = Domain {
            name: "vm1".into(),
            uuid: [0x11; 16],
            id: 3,
        };
        let f = encode_frame(
            &Header::call(Procedure::DomainGetState, 7),
            &get_state_args(&d),
        );
        let mut expected = vec![
            0, 0, 0, 60, // length: 4 + 24 + 32
            0x20, 0x00, 0x80, 0x86, // REMOTE_PROGRAM
            0, 0, 0, 1, // version
            0, 0, 0, 212, // DOMAIN_GET_STATE
            0, 0, 0, 0, // CALL
            0, 0, 0, 7, // serial
            0, 0, 0, 0, // OK
            0, 0, 0, 3, b'v', b'm', b'1', 0, // name
        ];
        expected.extend_from_slice(&[0x11; 16]);
        expected.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0]); // id, flags
        assert_eq!(f, expected);

        let rest = frame_rest_bytes(f[..4].try_into().unwrap()).unwrap();
        assert_eq!(rest, f.len() - 4);
        let (h, payload) = decode_header(&f[4..]).unwrap();
        assert_eq!(h, Header::call(Procedure::DomainGetState, 7));
        let mut r = XdrReader::new(payload);
        assert_eq!(Domain::decode(&mut r).unwrap(), d);
        assert_eq!(r.u32("flags").unwrap(), 0);
        r.finish("args").unwrap();
    }

    #[test]
    fn frame_lengths_below_a_header_or_above_the_limit_are_refused() {
        assert!(frame_rest_bytes(27u32.to_be_bytes()).is_err());
        assert_eq!(frame_rest_bytes(28u32.to_be_bytes()).unwrap(), 24);
        assert!(frame_rest_bytes((FRAME_BYTES_MAX as u32 + 1).to_be_bytes()).is_err());
        assert!(frame_rest_bytes(u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn connect_open_sends_the_name_as_an_optional_string_and_zero_flags() {
        assert_eq!(
            connect_open_args("qemu:///system"),
            [
                0, 0, 0, 1, 0, 0, 0, 14, b'q', b'e', b'm', b'u', b':', b'/', b'/', b'/', b's',
                b'y', b's', b't', b'e', b'm', 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn a_remote_error_yields_code_and_message() {
        // As libvirtd 9.0 sent it for an unknown domain (research §4.2).
        let msg = "Domain not found: no domain with matching name 'nosuchvm'";
        let mut w = XdrWriter::new();
        w.i32(ERR_NO_DOMAIN).i32(10).opt_string(Some(msg)).i32(2);
        w.u32(0).opt_string(Some("nosuchvm")).opt_string(None);
        w.opt_string(None).i32(0).i32(0).u32(0);
        let e = RemoteError::decode(&w.into_bytes()).unwrap();
        assert_eq!(e.code, 42);
        assert_eq!(e.domain, 10);
        assert_eq!(e.message.as_deref(), Some(msg));
        assert_eq!(e.to_string(), format!("\"{msg}\" (libvirt error 42)"));
    }

    #[test]
    fn replies_decode_and_trailing_bytes_are_refused() {
        let mut w = XdrWriter::new();
        w.u32(2).i32(AUTH_NONE).i32(AUTH_POLKIT);
        assert_eq!(decode_auth_list(&w.into_bytes()).unwrap(), [0, 2]);
        let mut w = XdrWriter::new();
        w.u32(21);
        assert!(decode_auth_list(&w.into_bytes()).is_err());

        let mut w = XdrWriter::new();
        w.i32(5).i32(2);
        assert_eq!(
            decode_state(&w.into_bytes()).unwrap(),
            (DomainState::Shutoff, 2)
        );
        let mut w = XdrWriter::new();
        w.i32(1).i32(1).i32(0);
        assert!(decode_state(&w.into_bytes()).is_err());
        assert!(decode_void(&[], Procedure::DomainDestroy).is_ok());
        assert!(decode_void(&[0, 0, 0, 0], Procedure::DomainDestroy).is_err());
    }

    #[test]
    fn uuids_parse_in_both_spellings_and_names_do_not() {
        let u = parse_uuid("6f1e2c3a-0000-4000-8000-00000000f0f0").unwrap();
        assert_eq!(u[0], 0x6f);
        assert_eq!(u[15], 0xf0);
        assert_eq!(format_uuid(&u), "6f1e2c3a-0000-4000-8000-00000000f0f0");
        assert_eq!(parse_uuid("6f1e2c3a000040008000000000000f0f0"), None);
        assert_eq!(parse_uuid("6f1e2c3a00004000800000000000f0f0"), Some(u));
        assert_eq!(parse_uuid("node1"), None);
        assert_eq!(parse_uuid("6f1e2c3a-0000-4000-8000_00000000f0f0"), None);
        assert_eq!(parse_uuid("6f1e2c3a-0000-4000-8000-00000000f0fg"), None);
    }
}
