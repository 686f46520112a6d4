//! The RMCP+ client for one fence operation, as a sans-I/O state machine.
//!
//! [`Client`] never touches a socket, a clock or the OS random source: the
//! driver (in [`super`]) feeds it datagrams ([`Client::handle_datagram`]),
//! the time ([`Client::handle_timeout`]) and network errors
//! ([`Client::handle_network_error`]), sends what [`Client::poll_transmit`]
//! returns, sleeps until [`Client::poll_timeout`], and stops when
//! [`Client::is_finished`]; [`Client::result`] then holds the outcome.
//! Random bytes (session ID, Rm, IVs) come from an [`Entropy`] the driver
//! supplies, so tests can replay a session byte for byte.
//!
//! One operation = one session: Get Channel Authentication Capabilities →
//! Open Session → RAKP 1/2 (the BMC proves it knows the password) → RAKP 3/4
//! (hactl proves it; the BMC proves it derived the same session key) → Set
//! Session Privilege Level → the chassis commands of the operation → Close
//! Session. Every request is retransmitted with backoff until answered or
//! until the operation's deadline; "off" and "on" are confirmed by polling
//! Get Chassis Status until the chassis reports the target state.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::crypto::{self, CipherSuite, Handshake, SecretBytes, SessionKeys};
use super::wire::{self, ChassisControl};
use crate::fencing::{ErrorKind, PowerState};
use crate::time::Instant;

/// Wait for an answer before the first retransmission. A BMC on the LAN
/// answers in milliseconds; ipmitool waits 1 s, which is long for fencing.
pub const RETRANSMIT_FIRST_MS: u64 = 250;
/// Retransmission backoff doubles up to this interval.
pub const RETRANSMIT_MAX_MS: u64 = 2_000;
/// Hard cap on the datagrams sent for one request: the deadline normally
/// ends an operation long before, this bounds a deadline of "forever".
pub const SENDS_PER_REQUEST_MAX: u32 = 64;
/// First wait between Get Chassis Status polls while waiting for the power
/// to reach its target; fast BMCs (and ipmi_sim) switch in ~100 ms.
pub const POWER_POLL_FIRST_MS: u64 = 50;
/// Power polling backoff doubles up to this interval: real chassis take
/// seconds, and a BMC need not be asked 20 times a second.
pub const POWER_POLL_MAX_MS: u64 = 500;
/// Longest wait for the answer to Close Session once the operation's outcome
/// is known (always within the operation's deadline). Closing frees the
/// BMC's session slot; a lost close only costs the BMC its session timeout.
pub const CLOSE_WAIT_MS: u64 = 500;
/// Width of the window of session sequence numbers accepted below the
/// highest one seen (answers may be reordered; a repeat is a replay).
pub const SEQ_WINDOW: u32 = 32;
/// Status sent in RAKP3 when RAKP2's key exchange code did not verify
/// ("invalid integrity check value"), so that the BMC drops the session.
const RAKP_STATUS_INVALID_ICV: u8 = 0x0F;
/// Message tag of Open Session and RAKP requests. hactl has one exchange in
/// flight at a time, so answers are matched by payload type and session ID.
const MESSAGE_TAG: u8 = 0x00;
/// ROLEm bit 4: look the user up by name only (as ipmitool does); the
/// privilege is then negotiated with Set Session Privilege Level.
const ROLE_NAME_ONLY_LOOKUP: u8 = 0x10;

/// Random bytes for session IDs, Rm and IVs.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The privilege level hactl asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Level 3: enough for chassis control on BMCs that follow the spec.
    Operator,
    /// Level 4.
    Administrator,
}

impl Privilege {
    pub fn level(self) -> u8 {
        match self {
            Privilege::Operator => 3,
            Privilege::Administrator => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Privilege::Operator => "operator",
            Privilege::Administrator => "administrator",
        }
    }
}

/// What the client needs to know, already validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub suite: CipherSuite,
    pub privilege: Privilege,
    /// At most [`wire::USERNAME_BYTES_MAX`] bytes.
    pub username: Vec<u8>,
    /// At most [`wire::PASSWORD_BYTES_MAX`] bytes (Kuid).
    pub password: SecretBytes,
    /// The BMC key Kg, when the BMC has one (at most 20 bytes).
    pub bmc_key: Option<SecretBytes>,
}

/// What one session does once established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read the power state.
    Status,
    /// Power down, then poll until the chassis reports off.
    Off,
    /// Power up, then poll until the chassis reports on.
    On,
    /// Off (confirmed), then on (confirmed). Success means the off part
    /// succeeded; see [`Report::warning`].
    Reboot,
    /// Chassis Control "power cycle", then one status read. Not a confirmed
    /// fence: the BMC gives no point at which power was off.
    PowerCycle,
    /// Chassis Control "hard reset", then one status read.
    HardReset,
}

/// A successful operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The last power state the BMC reported.
    pub power: PowerState,
    /// Set when a reboot's power-on failed after its power-off was
    /// confirmed: the node is fenced (off), but did not come back.
    pub warning: Option<String>,
}

/// A failed operation: what went wrong and what to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub detail: String,
    pub check: String,
}

impl Failure {
    fn new(kind: ErrorKind, detail: impl Into<String>, check: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            check: check.into(),
        }
    }
}

/// A network error the driver met while sending or receiving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkError {
    /// ICMP port unreachable: the host is there, nothing listens on the port.
    Refused,
    /// No route to the host or network.
    Unreachable(String),
    Other(String),
}

/// Counters, for diagnostics, tests and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_sent: u32,
    pub datagrams_received: u32,
    /// Received datagrams that were not accepted (stale, duplicate,
    /// malformed, failed integrity).
    pub datagrams_dropped: u32,
    pub retransmissions: u32,
    pub status_polls: u32,
}

/// Session sequence numbers accepted from the BMC: each at most once, and
/// none more than [`SEQ_WINDOW`] below the highest seen (IPsec-style
/// anti-replay window). Updated only after a packet's integrity code
/// verified, so a forged packet cannot move it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqWindow {
    highest: u32,
    /// Bit i set: `highest - i` was accepted.
    seen: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqReject {
    Zero,
    TooOld,
    Duplicate,
}

impl SeqWindow {
    pub fn accept(&mut self, seq: u32) -> Result<(), SeqReject> {
        if seq == 0 {
            // 0 is reserved for pre-session packets.
            return Err(SeqReject::Zero);
        }
        if self.highest == 0 || seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if self.highest == 0 || shift >= 64 {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = seq;
            return Ok(());
        }
        let back = self.highest - seq;
        if back >= SEQ_WINDOW {
            return Err(SeqReject::TooOld);
        }
        if self.seen & (1 << back) != 0 {
            return Err(SeqReject::Duplicate);
        }
        self.seen |= 1 << back;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AuthCapabilities,
    OpenSession,
    Rakp1,
    Rakp3,
    SetPrivilege,
    Work,
    Closing,
    Done,
}

/// One step towards the operation's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// Read the power state.
    Read,
    /// Make the chassis reach this state (check, command, poll).
    Reach(PowerState),
    /// Send one chassis command without confirmation.
    Pulse(ChassisControl),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoalPhase {
    /// Get Chassis Status before acting.
    Check,
    /// Chassis Control sent.
    Command,
    /// Polling Get Chassis Status until the target is reached.
    Poll,
}

/// What a request's datagram is made of.
#[derive(Clone, Debug)]
enum Payload {
    /// Sent as is on every try (sessionless and pre-session messages: the
    /// BMC answers a repeated RAKP message with the same answer).
    Fixed(Vec<u8>),
    /// An IPMI message inside the session: sealed again for every try with
    /// a new sequence number and IV, the same rqSeq.
    Session {
        netfn: u8,
        cmd: u8,
        rq_seq: u8,
        message: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
struct InFlight {
    /// Named in timeout errors ("no answer to Open Session").
    what: &'static str,
    payload: Payload,
    sends: u32,
    interval: Duration,
    retry_at: Instant,
}

/// The state of one fence operation over one RMCP+ session.
pub struct Client {
    settings: Settings,
    operation: Operation,
    entropy: Box<dyn Entropy>,
    started: Instant,
    deadline: Instant,
    stage: Stage,
    out: VecDeque<Vec<u8>>,
    in_flight: Option<InFlight>,
    poll_at: Option<Instant>,
    poll_interval: Duration,
    // Handshake.
    kg_set: bool,
    console_session_id: u32,
    bmc_session_id: u32,
    role: u8,
    rm: [u8; 16],
    rc: [u8; 16],
    guid: [u8; 16],
    sik: Option<SecretBytes>,
    // Session.
    keys: Option<SessionKeys>,
    out_seq: u32,
    in_window: SeqWindow,
    rq_seq: u8,
    // Work.
    goals: VecDeque<Goal>,
    phase: GoalPhase,
    power: Option<PowerState>,
    /// A power-down was confirmed: the node is fenced.
    fenced_off: bool,
    last_completion_code: Option<u8>,
    // Outcome.
    result: Option<Result<Report, Failure>>,
    close_deadline: Instant,
    stats: Stats,
    last_drop: Option<String>,
    last_network_error: Option<NetworkError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("operation", &self.operation)
            .field("stage", &self.stage)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts an operation at `now` that must end by `now + timeout`. The
    /// first datagram is ready in [`Client::poll_transmit`] at once.
    pub fn new(
        settings: Settings,
        operation: Operation,
        entropy: Box<dyn Entropy>,
        now: Instant,
        timeout: Duration,
    ) -> Client {
        assert!(settings.username.len() <= wire::USERNAME_BYTES_MAX);
        assert!(settings.password.len() <= wire::PASSWORD_BYTES_MAX);
        let goals = match operation {
            Operation::Status => vec![Goal::Read],
            Operation::Off => vec![Goal::Reach(PowerState::Off)],
            Operation::On => vec![Goal::Reach(PowerState::On)],
            Operation::Reboot => vec![Goal::Reach(PowerState::Off), Goal::Reach(PowerState::On)],
            Operation::PowerCycle => vec![Goal::Pulse(ChassisControl::PowerCycle), Goal::Read],
            Operation::HardReset => vec![Goal::Pulse(ChassisControl::HardReset), Goal::Read],
        };
        let role = ROLE_NAME_ONLY_LOOKUP | settings.privilege.level();
        let mut c = Client {
            settings,
            operation,
            entropy,
            started: now,
            deadline: now + timeout,
            stage: Stage::AuthCapabilities,
            out: VecDeque::new(),
            in_flight: None,
            poll_at: None,
            poll_interval: Duration::from_millis(POWER_POLL_FIRST_MS),
            kg_set: false,
            console_session_id: 0,
            bmc_session_id: 0,
            role,
            rm: [0; 16],
            rc: [0; 16],
            guid: [0; 16],
            sik: None,
            keys: None,
            out_seq: 0,
            in_window: SeqWindow::default(),
            rq_seq: 0,
            goals: goals.into(),
            phase: GoalPhase::Check,
            power: None,
            fenced_off: false,
            last_completion_code: None,
            result: None,
            close_deadline: now,
            stats: Stats::default(),
            last_drop: None,
            last_network_error: None,
        };
        let message = wire::encode_request(
            wire::NETFN_APP,
            wire::CMD_GET_CHANNEL_AUTH_CAPABILITIES,
            0,
            &wire::auth_capabilities_request_data(c.settings.privilege.level()),
        );
        c.send_fixed(
            now,
            "Get Channel Authentication Capabilities",
            wire::encode_v15_sessionless(&message),
        );
        c
    }

    // ------------------------------------------------------------ outputs

    /// The next datagram to send to the BMC.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let d = self.out.pop_front()?;
        self.stats.datagrams_sent += 1;
        Some(d)
    }

    /// When to call [`Client::handle_timeout`]; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stage == Stage::Done {
            return None;
        }
        let end = if self.stage == Stage::Closing {
            self.close_deadline
        } else {
            self.deadline
        };
        let mut t = end;
        if let Some(f) = &self.in_flight {
            t = t.min(f.retry_at);
        }
        if let Some(p) = self.poll_at {
            t = t.min(p);
        }
        Some(t)
    }

    /// True when nothing more will be sent; [`Client::result`] is then set.
    /// (Datagrams already queued, such as RAKP3 telling the BMC that RAKP2
    /// failed, should still be sent.)
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Done
    }

    pub fn result(&self) -> Option<&Result<Report, Failure>> {
        self.result.as_ref()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ------------------------------------------------------------ inputs

    pub fn handle_network_error(&mut self, _now: Instant, e: NetworkError) {
        // Keep trying until the deadline: an ICMP error can be transient (a
        // BMC rebooting, a route flapping) and is not authenticated.
        self.last_network_error = Some(e);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.stage {
            Stage::Done => return,
            Stage::Closing if now >= self.close_deadline => {
                self.stage = Stage::Done;
                return;
            }
            Stage::Closing => {}
            _ if now >= self.deadline => {
                let f = self.timeout_failure(now);
                self.finish(now, Err(f));
                return;
            }
            _ => {}
        }
        if self.in_flight.as_ref().is_some_and(|f| now >= f.retry_at) {
            self.retransmit(now);
        }
        if self.poll_at.is_some_and(|p| now >= p) && self.in_flight.is_none() {
            self.poll_status(now);
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, d: &[u8]) {
        if now >= self.deadline && !matches!(self.stage, Stage::Closing | Stage::Done) {
            // An answer after the deadline does not count: the operation
            // has timed out, whatever the answer says.
            self.handle_timeout(now);
        }
        self.stats.datagrams_received += 1;
        if let Err(why) = self.accept_datagram(now, d) {
            self.stats.datagrams_dropped += 1;
            self.last_drop = Some(why);
        }
    }

    // ------------------------------------------------------------ sending

    fn send_fixed(&mut self, now: Instant, what: &'static str, d: Vec<u8>) {
        self.out.push_back(d.clone());
        self.in_flight = Some(InFlight {
            what,
            payload: Payload::Fixed(d),
            sends: 1,
            interval: Duration::from_millis(RETRANSMIT_FIRST_MS),
            retry_at: now + Duration::from_millis(RETRANSMIT_FIRST_MS),
        });
    }

    fn next_rq_seq(&mut self) -> u8 {
        self.rq_seq = (self.rq_seq + 1) & wire::RQ_SEQ_MASK;
        self.rq_seq
    }

    fn send_session(&mut self, now: Instant, what: &'static str, netfn: u8, cmd: u8, data: &[u8]) {
        let rq_seq = self.next_rq_seq();
        let message = wire::encode_request(netfn, cmd, rq_seq, data);
        let d = self.seal(&message);
        self.out.push_back(d);
        self.in_flight = Some(InFlight {
            what,
            payload: Payload::Session {
                netfn,
                cmd,
                rq_seq,
                message,
            },
            sends: 1,
            interval: Duration::from_millis(RETRANSMIT_FIRST_MS),
            retry_at: now + Duration::from_millis(RETRANSMIT_FIRST_MS),
        });
    }

    fn seal(&mut self, message: &[u8]) -> Vec<u8> {
        // The BMC accepts each sequence number once; every packet, a
        // retransmission too, takes the next one.
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let mut iv = [0u8; crypto::AES_BLOCK_BYTES];
        self.entropy.fill(&mut iv);
        let keys = self
            .keys
            .as_ref()
            .expect("session established before sealing");
        crypto::seal(keys, self.bmc_session_id, self.out_seq, message, &iv)
    }

    fn retransmit(&mut self, now: Instant) {
        let mut f = self.in_flight.take().expect("checked by caller");
        if f.sends >= SENDS_PER_REQUEST_MAX && self.stage == Stage::Closing {
            self.stage = Stage::Done;
            return;
        }
        if f.sends >= SENDS_PER_REQUEST_MAX {
            self.in_flight = Some(f);
            let failure = self.timeout_failure(now);
            self.finish(now, Err(failure));
            return;
        }
        f.sends += 1;
        f.interval = (f.interval * 2).min(Duration::from_millis(RETRANSMIT_MAX_MS));
        f.retry_at = now + f.interval;
        let d = match &f.payload {
            Payload::Fixed(d) => d.clone(),
            Payload::Session { message, .. } => {
                let message = message.clone();
                self.seal(&message)
            }
        };
        self.out.push_back(d);
        self.stats.retransmissions += 1;
        self.in_flight = Some(f);
    }

    // ------------------------------------------------------------ outcome

    fn finish(&mut self, now: Instant, result: Result<Report, Failure>) {
        debug_assert!(self.result.is_none(), "an operation ends once");
        // A reboot whose power-off was confirmed has fenced the node, even if
        // powering it on again failed (as pacemaker's fencer counts it).
        let result = match result {
            Err(f) if self.operation == Operation::Reboot && self.fenced_off => Ok(Report {
                power: PowerState::Off,
                warning: Some(format!(
                    "power-off confirmed, power-on failed: {}; check {}",
                    f.detail, f.check
                )),
            }),
            other => other,
        };
        self.result = Some(result);
        self.in_flight = None;
        self.poll_at = None;
        let close_by = (now + Duration::from_millis(CLOSE_WAIT_MS)).min(self.deadline);
        if self.keys.is_some() && self.stage != Stage::Closing && now < close_by {
            self.stage = Stage::Closing;
            self.close_deadline = close_by;
            let sid = self.bmc_session_id.to_le_bytes();
            self.send_session(
                now,
                "Close Session",
                wire::NETFN_APP,
                wire::CMD_CLOSE_SESSION,
                &sid,
            );
        } else {
            self.stage = Stage::Done;
        }
    }

    fn fail(&mut self, now: Instant, f: Failure) {
        self.finish(now, Err(f));
    }

    fn timeout_failure(&self, now: Instant) -> Failure {
        let waited_ms = (now.saturating_since(self.started)).as_millis();
        let mut notes = Vec::new();
        match &self.last_network_error {
            Some(NetworkError::Refused) => notes.push(
                "the host answered \"port unreachable\": nothing listens on that UDP port"
                    .to_string(),
            ),
            Some(NetworkError::Unreachable(e)) | Some(NetworkError::Other(e)) => {
                notes.push(format!("network error: {e}"))
            }
            None => {}
        }
        if let Some(why) = &self.last_drop {
            notes.push(format!(
                "{} answer(s) dropped, the last because: {why}",
                self.stats.datagrams_dropped
            ));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        if self.stage == Stage::Work && self.phase == GoalPhase::Poll {
            let target = match self.goals.front() {
                Some(Goal::Reach(t)) => *t,
                _ => unreachable!("only Reach goals poll"),
            };
            let last = match (self.power, self.last_completion_code) {
                (Some(p), _) => format!("last status: {p}"),
                (None, Some(cc)) => format!("last status read failed: {}", cc_text(cc)),
                (None, None) => "no status read".to_string(),
            };
            return Failure::new(
                ErrorKind::Timeout,
                format!(
                    "the chassis did not report power {target} within {waited_ms} ms ({last}){notes}"
                ),
                "the node's power supply and the BMC's event log; a larger timeout if the chassis is slow to switch",
            );
        }
        let what = self.in_flight.as_ref().map_or("the BMC", |f| f.what);
        let sent = self.in_flight.as_ref().map_or(0, |f| f.sends);
        let kind = match self.last_network_error {
            Some(NetworkError::Unreachable(_)) if self.stats.datagrams_received == 0 => {
                ErrorKind::Unreachable
            }
            _ => ErrorKind::Timeout,
        };
        Failure::new(
            kind,
            format!("no answer to {what} within {waited_ms} ms ({sent} datagram(s) sent){notes}"),
            "that the BMC is powered and reachable at this address and UDP port, and that IPMI over LAN is enabled on it",
        )
    }

    // ------------------------------------------------------------ receiving

    fn accept_datagram(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        match self.stage {
            Stage::Done => Err("the operation is over".into()),
            Stage::AuthCapabilities => self.on_auth_capabilities(now, d),
            Stage::OpenSession => self.on_open_session(now, d),
            Stage::Rakp1 => self.on_rakp2(now, d),
            Stage::Rakp3 => self.on_rakp4(now, d),
            Stage::SetPrivilege | Stage::Work | Stage::Closing => self.on_session_packet(now, d),
        }
    }

    fn on_auth_capabilities(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        let message = wire::decode_v15_sessionless(d).map_err(|e| e.to_string())?;
        let r = wire::decode_response(message).map_err(|e| e.to_string())?;
        if !r.answers(wire::NETFN_APP, wire::CMD_GET_CHANNEL_AUTH_CAPABILITIES, 0) {
            return Err("not the answer to Get Channel Authentication Capabilities".into());
        }
        let privilege = self.settings.privilege;
        if r.completion_code == wire::CC_INVALID_DATA_FIELD {
            return self.failed(
                now,
                ErrorKind::InsufficientPrivilege,
                format!(
                    "the BMC refused privilege level {} on this LAN channel (Get Channel Authentication Capabilities: {})",
                    privilege.name(),
                    cc_text(r.completion_code)
                ),
                self.privilege_check("the LAN channel's privilege limit on the BMC, and that it speaks IPMI v2.0"),
            );
        }
        if r.completion_code != wire::CC_OK {
            return self.failed(
                now,
                ErrorKind::DeviceError,
                format!(
                    "Get Channel Authentication Capabilities failed: {}",
                    cc_text(r.completion_code)
                ),
                "that IPMI over LAN is enabled on the BMC",
            );
        }
        let caps = wire::decode_auth_capabilities(&r.data).map_err(|e| e.to_string())?;
        if !caps.ipmi20 {
            return self.failed(
                now,
                ErrorKind::Unsupported,
                "the BMC does not offer IPMI v2.0 (RMCP+) on this channel",
                "the BMC's LAN settings (enable IPMI v2.0 / RMCP+); IPMI v1.5 is not secure enough for fencing and hactl does not speak it",
            );
        }
        self.kg_set = caps.kg_set;
        if caps.kg_set && self.settings.bmc_key.is_none() {
            return self.failed(
                now,
                ErrorKind::AuthenticationFailed,
                "the BMC has a BMC key (Kg) set, and session keys derive from it: hactl has none for this device",
                "the BMC's key (Kg) setting: clear it on the BMC, or give hactl the key",
            );
        }
        self.in_flight = None;
        let mut sid = [0u8; 4];
        while u32::from_le_bytes(sid) == 0 {
            // 0 is "no session": the BMC would refuse it.
            self.entropy.fill(&mut sid);
        }
        self.console_session_id = u32::from_le_bytes(sid);
        let payload = wire::encode_open_session_request(
            MESSAGE_TAG,
            privilege.level(),
            self.console_session_id,
            self.settings.suite.algorithms(),
        );
        self.stage = Stage::OpenSession;
        self.send_fixed(
            now,
            "Open Session",
            wire::encode_v20_presession(wire::PAYLOAD_OPEN_SESSION_REQUEST, &payload),
        );
        Ok(())
    }

    fn on_open_session(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        let p = wire::decode_v20_presession(d, wire::PAYLOAD_OPEN_SESSION_RESPONSE)
            .map_err(|e| e.to_string())?;
        let r = wire::decode_open_session_response(p).map_err(|e| e.to_string())?;
        if r.status == 0 && r.console_session_id != self.console_session_id {
            return Err("Open Session Response for another console session".into());
        }
        let suite = self.settings.suite;
        if r.status != 0 {
            let what = format!(
                "the BMC refused to open a session: RMCP+ status {:#04x} ({})",
                r.status,
                wire::rmcp_status_text(r.status)
            );
            return match r.status {
                0x04..=0x07 | 0x10 | 0x11 => self.failed(
                    now,
                    ErrorKind::Unsupported,
                    format!("the BMC does not support cipher suite {} ({what})", suite.id()),
                    if suite == CipherSuite::Suite17 {
                        "whether this BMC offers cipher suite 17 (ipmitool channel getciphers ipmi); an older BMC may only offer 3: set cipher_suite = 3"
                    } else {
                        "whether this BMC offers cipher suite 3 (ipmitool channel getciphers ipmi); set cipher_suite = 17 if it offers that"
                    },
                ),
                0x09 | 0x0A => self.failed(
                    now,
                    ErrorKind::InsufficientPrivilege,
                    format!("privilege {} not granted ({what})", self.settings.privilege.name()),
                    self.privilege_check("the privilege limit of this user, channel and cipher suite on the BMC"),
                ),
                0x01 | 0x0B => self.failed(
                    now,
                    ErrorKind::DeviceError,
                    what,
                    "whether other tools hold the BMC's sessions (the BMC has a small session limit)",
                ),
                0x0D => self.failed(
                    now,
                    ErrorKind::AuthenticationFailed,
                    what,
                    "the username",
                ),
                _ => self.failed(now, ErrorKind::Protocol, what, "the BMC firmware"),
            };
        }
        if r.algs != suite.algorithms() {
            // A BMC (or a man in the middle) that answers with other
            // algorithms than those offered is downgrading the session.
            return self.failed(
                now,
                ErrorKind::Protocol,
                format!(
                    "the BMC answered Open Session with other algorithms than cipher suite {} (authentication {:#04x}, integrity {:#04x}, confidentiality {:#04x}): refused",
                    suite.id(),
                    r.algs.authentication,
                    r.algs.integrity,
                    r.algs.confidentiality
                ),
                "the BMC firmware and the network path to it",
            );
        }
        if r.bmc_session_id == 0 {
            return self.failed(
                now,
                ErrorKind::Protocol,
                "the BMC opened a session with session ID 0",
                "the BMC firmware",
            );
        }
        if r.privilege != 0 && r.privilege < self.settings.privilege.level() {
            return self.failed(
                now,
                ErrorKind::InsufficientPrivilege,
                format!(
                    "the BMC grants privilege level {} at most, {} ({}) was asked for",
                    r.privilege,
                    self.settings.privilege.level(),
                    self.settings.privilege.name()
                ),
                self.privilege_check("the privilege limit of this user and channel on the BMC"),
            );
        }
        self.bmc_session_id = r.bmc_session_id;
        self.in_flight = None;
        self.entropy.fill(&mut self.rm);
        let payload = wire::encode_rakp1(
            MESSAGE_TAG,
            self.bmc_session_id,
            &self.rm,
            self.role,
            &self.settings.username,
        );
        self.stage = Stage::Rakp1;
        self.send_fixed(
            now,
            "RAKP message 1",
            wire::encode_v20_presession(wire::PAYLOAD_RAKP1, &payload),
        );
        Ok(())
    }

    /// What to check when a privilege was refused.
    fn privilege_check(&self, what: &str) -> String {
        match self.settings.privilege {
            Privilege::Administrator => {
                format!("{what}, or set privilege = \"operator\" (enough for chassis control)")
            }
            Privilege::Operator => format!("{what} (chassis control needs operator)"),
        }
    }

    fn handshake(&self) -> Handshake<'_> {
        Handshake {
            console_session_id: self.console_session_id,
            bmc_session_id: self.bmc_session_id,
            rm: self.rm,
            rc: self.rc,
            guid: self.guid,
            role: self.role,
            username: &self.settings.username,
        }
    }

    fn on_rakp2(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        let p = wire::decode_v20_presession(d, wire::PAYLOAD_RAKP2).map_err(|e| e.to_string())?;
        let r = wire::decode_rakp2(p).map_err(|e| e.to_string())?;
        if r.status == 0 && r.console_session_id != self.console_session_id {
            return Err("RAKP message 2 for another console session".into());
        }
        let user = String::from_utf8_lossy(&self.settings.username).into_owned();
        if r.status != 0 {
            let what = format!(
                "RAKP message 2 status {:#04x} ({})",
                r.status,
                wire::rmcp_status_text(r.status)
            );
            return match r.status {
                0x0D | 0x0C => self.failed(
                    now,
                    ErrorKind::AuthenticationFailed,
                    format!("the BMC does not know user \"{user}\" ({what})"),
                    "the username (and that the user is enabled for IPMI over LAN on the BMC)",
                ),
                0x09 | 0x0A => self.failed(
                    now,
                    ErrorKind::InsufficientPrivilege,
                    format!(
                        "user \"{user}\" may not have privilege {} ({what})",
                        self.settings.privilege.name()
                    ),
                    self.privilege_check("the user's privilege limit on the BMC"),
                ),
                _ => self.failed(now, ErrorKind::Protocol, what, "the BMC firmware"),
            };
        }
        self.rc = r.rc;
        self.guid = r.guid;
        let suite = self.settings.suite;
        if !crypto::rakp2_verify(
            suite,
            self.settings.password.expose(),
            &self.handshake(),
            &r.auth_code,
        ) {
            // Tell the BMC, so that it frees the session at once. Sent once:
            // it is a courtesy, not part of the outcome.
            let rakp3 = wire::encode_rakp3(
                MESSAGE_TAG,
                RAKP_STATUS_INVALID_ICV,
                self.bmc_session_id,
                &[],
            );
            self.out
                .push_back(wire::encode_v20_presession(wire::PAYLOAD_RAKP3, &rakp3));
            return self.failed(
                now,
                ErrorKind::AuthenticationFailed,
                format!(
                    "the BMC's RAKP message 2 key exchange code does not match the password of user \"{user}\": wrong password (or a device that is not this BMC)"
                ),
                "the password (password_file or password) of this user on the BMC",
            );
        }
        let h = self.handshake();
        let code = crypto::rakp3_auth_code(suite, self.settings.password.expose(), &h);
        let sik_key = match &self.settings.bmc_key {
            Some(kg) => kg.expose(),
            None => self.settings.password.expose(),
        };
        self.sik = Some(crypto::session_integrity_key(suite, sik_key, &h));
        self.in_flight = None;
        let payload = wire::encode_rakp3(MESSAGE_TAG, 0, self.bmc_session_id, &code);
        self.stage = Stage::Rakp3;
        self.send_fixed(
            now,
            "RAKP message 3",
            wire::encode_v20_presession(wire::PAYLOAD_RAKP3, &payload),
        );
        Ok(())
    }

    fn on_rakp4(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        let p = wire::decode_v20_presession(d, wire::PAYLOAD_RAKP4).map_err(|e| e.to_string())?;
        let r = wire::decode_rakp4(p).map_err(|e| e.to_string())?;
        if r.status == 0 && r.console_session_id != self.console_session_id {
            return Err("RAKP message 4 for another console session".into());
        }
        if r.status != 0 {
            let what = format!(
                "the BMC refused hactl's RAKP message 3: status {:#04x} ({})",
                r.status,
                wire::rmcp_status_text(r.status)
            );
            return if r.status == RAKP_STATUS_INVALID_ICV {
                self.failed(
                    now,
                    ErrorKind::AuthenticationFailed,
                    what,
                    "the password of this user on the BMC",
                )
            } else {
                self.failed(now, ErrorKind::Protocol, what, "the BMC firmware")
            };
        }
        let suite = self.settings.suite;
        let sik = self.sik.take().expect("SIK derived at RAKP2");
        if !crypto::rakp4_verify(suite, sik.expose(), &self.handshake(), &r.icv) {
            let (detail, check) = match (&self.settings.bmc_key, self.kg_set) {
                (Some(_), true) => (
                    "the BMC's RAKP message 4 integrity check value does not match: the BMC key (Kg) hactl has is not the BMC's",
                    "the BMC key (Kg) configured for this device",
                ),
                (Some(_), false) => (
                    "the BMC's RAKP message 4 integrity check value does not match: a BMC key (Kg) is configured for this device, but the BMC reports none set",
                    "the BMC's key (Kg) setting, or remove the key from hactl's configuration",
                ),
                (None, _) => (
                    "the BMC's RAKP message 4 integrity check value does not match: the BMC derives its session key from a BMC key (Kg) hactl does not have, or is not this BMC",
                    "whether the BMC has a BMC key (Kg) set",
                ),
            };
            return self.failed(now, ErrorKind::AuthenticationFailed, detail, check);
        }
        self.keys = Some(SessionKeys::derive(suite, sik.expose()));
        self.in_flight = None;
        self.stage = Stage::SetPrivilege;
        let level = self.settings.privilege.level();
        self.send_session(
            now,
            "Set Session Privilege Level",
            wire::NETFN_APP,
            wire::CMD_SET_SESSION_PRIVILEGE,
            &[level],
        );
        Ok(())
    }

    /// Integrity, session ID, sequence number, decryption and request
    /// matching for every packet of the established session.
    fn on_session_packet(&mut self, now: Instant, d: &[u8]) -> Result<(), String> {
        let keys = self.keys.as_ref().expect("session established");
        let (h, payload) = crypto::verify_packet(keys, d).map_err(|e| e.to_string())?;
        if h.kind() != wire::PAYLOAD_IPMI {
            return Err("session packet of a payload type hactl did not ask for".into());
        }
        if h.session_id != self.console_session_id {
            return Err("session packet for another console session".into());
        }
        self.in_window
            .accept(h.session_seq)
            .map_err(|e| format!("session sequence number {}: {e:?}", h.session_seq))?;
        let plain = crypto::decrypt_payload(keys, payload).map_err(|e| e.to_string())?;
        let r = wire::decode_response(&plain).map_err(|e| e.to_string())?;
        let Some(InFlight {
            payload: Payload::Session {
                netfn, cmd, rq_seq, ..
            },
            ..
        }) = &self.in_flight
        else {
            return Err("an answer while no request is outstanding".into());
        };
        if !r.answers(*netfn, *cmd, *rq_seq) {
            return Err(
                "the answer to an earlier request (already answered or retransmitted)".into(),
            );
        }
        self.in_flight = None;
        match self.stage {
            Stage::SetPrivilege => self.on_set_privilege(now, &r),
            Stage::Work => self.on_work_answer(now, &r),
            Stage::Closing => {
                self.stage = Stage::Done;
                Ok(())
            }
            _ => unreachable!("only session stages get here"),
        }
    }

    fn on_set_privilege(&mut self, now: Instant, r: &wire::Response) -> Result<(), String> {
        let privilege = self.settings.privilege;
        let granted = r.data.first().map(|b| b & 0x0F);
        if r.completion_code != wire::CC_OK || granted.is_some_and(|g| g < privilege.level()) {
            let how = if r.completion_code == wire::CC_OK {
                format!("granted level {}", granted.unwrap_or(0))
            } else {
                cc_text(r.completion_code)
            };
            return self.failed(
                now,
                ErrorKind::InsufficientPrivilege,
                format!(
                    "Set Session Privilege Level to {} refused: {how}",
                    privilege.name()
                ),
                self.privilege_check("the user's privilege limit on the BMC"),
            );
        }
        self.stage = Stage::Work;
        self.start_goal(now);
        Ok(())
    }

    fn start_goal(&mut self, now: Instant) {
        self.phase = GoalPhase::Check;
        self.poll_interval = Duration::from_millis(POWER_POLL_FIRST_MS);
        match self.goals.front().copied() {
            None => {
                let power = self.power.expect("every operation reads the power state");
                self.finish(
                    now,
                    Ok(Report {
                        power,
                        warning: None,
                    }),
                );
            }
            Some(Goal::Read) | Some(Goal::Reach(_)) => self.send_session(
                now,
                "Get Chassis Status",
                wire::NETFN_CHASSIS,
                wire::CMD_GET_CHASSIS_STATUS,
                &[],
            ),
            Some(Goal::Pulse(control)) => {
                self.phase = GoalPhase::Command;
                self.send_control(now, control);
            }
        }
    }

    fn send_control(&mut self, now: Instant, control: ChassisControl) {
        self.send_session(
            now,
            "Chassis Control",
            wire::NETFN_CHASSIS,
            wire::CMD_CHASSIS_CONTROL,
            &[control as u8],
        );
    }

    fn goal_done(&mut self, now: Instant) {
        if self.goals.pop_front() == Some(Goal::Reach(PowerState::Off)) {
            self.fenced_off = true;
        }
        self.start_goal(now);
    }

    fn on_work_answer(&mut self, now: Instant, r: &wire::Response) -> Result<(), String> {
        let goal = *self.goals.front().expect("work has a goal");
        if r.cmd == wire::CMD_CHASSIS_CONTROL {
            let control = match goal {
                Goal::Reach(PowerState::Off) => ChassisControl::PowerDown,
                Goal::Reach(PowerState::On) => ChassisControl::PowerUp,
                Goal::Pulse(c) => c,
                Goal::Read => unreachable!("Read sends no Chassis Control"),
            };
            if r.completion_code != wire::CC_OK {
                let (kind, check) = if r.completion_code == wire::CC_INSUFFICIENT_PRIVILEGE {
                    (
                        ErrorKind::InsufficientPrivilege,
                        "the user's privilege on the BMC: chassis control needs operator or administrator",
                    )
                } else {
                    (
                        ErrorKind::DeviceError,
                        "the BMC's event log and whether this chassis supports that command",
                    )
                };
                return self.failed(
                    now,
                    kind,
                    format!(
                        "Chassis Control ({}) failed: {}",
                        control.name(),
                        cc_text(r.completion_code)
                    ),
                    check,
                );
            }
            match goal {
                Goal::Pulse(_) => self.goal_done(now),
                _ => {
                    // The BMC may acknowledge before the power has switched
                    // (observed with ipmi_sim and QEMU): confirm by polling,
                    // the first time at once (many BMCs switch before they
                    // answer), then with backoff.
                    self.phase = GoalPhase::Poll;
                    self.poll_status(now);
                }
            }
            return Ok(());
        }
        // Get Chassis Status.
        if r.completion_code != wire::CC_OK {
            self.last_completion_code = Some(r.completion_code);
            if self.phase == GoalPhase::Poll {
                // Some BMCs are busy while switching power: keep polling
                // until the deadline.
                self.schedule_poll(now);
                return Ok(());
            }
            return self.failed(
                now,
                ErrorKind::DeviceError,
                format!("Get Chassis Status failed: {}", cc_text(r.completion_code)),
                "the BMC's event log",
            );
        }
        let on = match wire::decode_chassis_power_on(&r.data) {
            Ok(on) => on,
            // Authentic (its integrity code verified) but unusable.
            Err(e) => {
                return self.failed(now, ErrorKind::Protocol, e.to_string(), "the BMC firmware");
            }
        };
        let power = if on { PowerState::On } else { PowerState::Off };
        self.power = Some(power);
        match (goal, self.phase) {
            (Goal::Read, _) => self.goal_done(now),
            (Goal::Reach(target), _) if power == target => self.goal_done(now),
            (Goal::Reach(target), GoalPhase::Check) => {
                self.phase = GoalPhase::Command;
                let control = if target == PowerState::Off {
                    ChassisControl::PowerDown
                } else {
                    ChassisControl::PowerUp
                };
                self.send_control(now, control);
            }
            (Goal::Reach(_), _) => self.schedule_poll(now),
            (Goal::Pulse(_), _) => unreachable!("Pulse reads no status"),
        }
        Ok(())
    }

    fn poll_status(&mut self, now: Instant) {
        self.poll_at = None;
        self.stats.status_polls += 1;
        self.send_session(
            now,
            "Get Chassis Status",
            wire::NETFN_CHASSIS,
            wire::CMD_GET_CHASSIS_STATUS,
            &[],
        );
    }

    fn schedule_poll(&mut self, now: Instant) {
        self.poll_at = Some(now + self.poll_interval);
        self.poll_interval = (self.poll_interval * 2).min(Duration::from_millis(POWER_POLL_MAX_MS));
    }

    /// Ends the operation with a failure caused by an authentic answer (the
    /// datagram itself was fine, so it does not count as dropped).
    fn failed(
        &mut self,
        now: Instant,
        kind: ErrorKind,
        detail: impl Into<String>,
        check: impl Into<String>,
    ) -> Result<(), String> {
        self.fail(now, Failure::new(kind, detail, check));
        Ok(())
    }
}

/// An IPMI completion code in words (IPMI spec table 5-2).
pub fn cc_text(cc: u8) -> String {
    let text = match cc {
        0x00 => "success",
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC2 => "command invalid for this LUN",
        0xC3 => "timeout while processing the command",
        0xC4 => "out of space",
        0xC5 => "reservation cancelled or invalid",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return the number of requested data bytes",
        0xCB => "requested sensor, data or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for this sensor or record type",
        0xCE => "command response could not be provided",
        0xCF => "cannot execute a duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in the present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        0x80..=0xBE => "command-specific error",
        _ => "unknown completion code",
    };
    format!("completion code {cc:#04x} ({text})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_window_accepts_each_number_once_and_not_too_old() {
        let mut w = SeqWindow::default();
        assert_eq!(w.accept(0), Err(SeqReject::Zero));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(1), Err(SeqReject::Duplicate));
        assert_eq!(w.accept(5), Ok(()));
        // Reordered but new: accepted once.
        assert_eq!(w.accept(3), Ok(()));
        assert_eq!(w.accept(3), Err(SeqReject::Duplicate));
        assert_eq!(w.accept(2), Ok(()));
        assert_eq!(w.accept(5 + SEQ_WINDOW), Ok(()));
        assert_eq!(w.accept(5), Err(SeqReject::TooOld));
        assert_eq!(w.accept(6), Ok(()));
        assert_eq!(w.accept(1000), Ok(()));
        assert_eq!(w.accept(999), Ok(()));
        assert_eq!(w.accept(1000), Err(SeqReject::Duplicate));
    }

    #[test]
    fn completion_codes_are_named() {
        assert_eq!(
            cc_text(0xD4),
            "completion code 0xd4 (insufficient privilege level)"
        );
    }
}
