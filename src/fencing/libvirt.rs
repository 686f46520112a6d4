//! libvirt fence device, native: hactl speaks libvirt's RPC protocol (XDR
//! over a stream socket) itself, with no libvirt.so and no virsh.
//!
//! Layers, bottom up:
//! - [`wire`]: frames, headers and the XDR of the few procedures used
//!   (pure).
//! - [`uri`]: which socket a URI names and what to open there (pure).
//! - [`LibvirtDevice`]: one connection per operation over a unix socket or
//!   TCP: AUTH_LIST, CONNECT_OPEN, the domain by UUID or name, DOMAIN_GET_STATE,
//!   DOMAIN_DESTROY (off), DOMAIN_CREATE (on), CONNECT_CLOSE — all of it
//!   bounded by the operation's one deadline.
//!
//! Power: a domain is off when libvirt reports it "shut off"; every other
//! state (running, paused, crashed but kept, suspended, in shutdown) is on,
//! since its qemu process still exists. Off destroys the domain (libvirt
//! kills its qemu) and then polls the state until libvirt reports it shut
//! off — or no longer knows it: a transient domain (started from XML, never
//! defined) vanishes when it stops, and is off for good. On starts it and
//! polls until it is no longer shut off.
//!
//! Not supported: TLS, SSH and SASL (a daemon that requires SASL is
//! reported as such, with what to configure), keepalive and events (the
//! connection lives for one operation only).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::{self, FenceKind};
use crate::fencing::{Action, ErrorKind, FenceDevice, FenceError, FenceFuture, PowerState};

pub mod uri;
pub mod wire;

use uri::{LibvirtUri, Transport};
use wire::{DomainState, Procedure, RemoteError};

/// How often off and on read the state while waiting for it to change.
/// DOMAIN_DESTROY returns once qemu is gone, so the first read usually
/// confirms; one read costs about a millisecond on a local socket.
pub const STATE_POLL_INTERVAL_MS: u64 = 50;
/// Messages other than our reply (events, keepalives) hactl skips while
/// waiting for it; it asks for none, so more than this is a broken peer.
const UNSOLICITED_MESSAGES_MAX: u32 = 16;
/// How long a successful operation waits for CONNECT_CLOSE's reply (the
/// daemon closes the connection anyway when the socket closes).
const CLOSE_WAIT_MS_MAX: u64 = 200;

/// A libvirt fence device: one domain on one hypervisor.
#[derive(Clone, Debug)]
pub struct LibvirtDevice {
    id: String,
    uri_text: String,
    uri: LibvirtUri,
    domain: String,
    timeout: Duration,
}

/// Counters of one operation (diagnostics and the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Remote procedure calls made (every one answered).
    pub calls: u32,
    /// DOMAIN_GET_STATE calls made while waiting for a change.
    pub state_polls: u32,
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub power: PowerState,
    /// libvirt's state of the domain, as last read.
    pub state: DomainState,
    pub stats: Stats,
}

impl LibvirtDevice {
    /// Checks the URI (no connection is made).
    pub fn new(
        id: &str,
        uri: &str,
        domain: &str,
        timeout: Duration,
    ) -> Result<LibvirtDevice, FenceError> {
        let parsed = uri::parse(uri).map_err(|e| FenceError {
            device: id.to_string(),
            target: format!("libvirt {uri}, domain {domain}"),
            kind: ErrorKind::Configuration,
            detail: format!("unsupported libvirt URI \"{uri}\": {}", e.message),
            check: format!("the device's uri: {}", e.hint),
        })?;
        Ok(LibvirtDevice {
            id: id.to_string(),
            uri_text: uri.to_string(),
            uri: parsed,
            domain: domain.to_string(),
            timeout,
        })
    }

    /// The device a `[[fence_device]]` of kind "libvirt" describes. Panics
    /// on another kind: choosing the constructor is the caller's job
    /// ([`crate::fencing::device_from_config`]).
    pub fn from_config(dev: &config::FenceDevice) -> Result<LibvirtDevice, FenceError> {
        let FenceKind::Libvirt { uri, domain } = &dev.kind else {
            panic!("LibvirtDevice::from_config on a {} device", dev.kind.name());
        };
        LibvirtDevice::new(&dev.id, uri, domain, Duration::from_millis(dev.timeout_ms))
    }

    pub fn uri(&self) -> &LibvirtUri {
        &self.uri
    }

    /// How the device is reached, for messages.
    pub fn target(&self) -> String {
        format!("libvirt {}, domain {}", self.uri_text, self.domain)
    }

    fn error(
        &self,
        kind: ErrorKind,
        detail: impl Into<String>,
        check: impl Into<String>,
    ) -> FenceError {
        FenceError {
            device: self.id.clone(),
            target: self.target(),
            kind,
            detail: detail.into(),
            check: check.into(),
        }
    }

    /// Runs one operation on one connection, bounded by `timeout`.
    pub async fn execute(&self, action: Action, timeout: Duration) -> Result<Outcome, FenceError> {
        let deadline = Instant::now() + timeout;
        let stream = self.connect(deadline, timeout).await?;
        let mut conn = Connection {
            dev: self,
            stream,
            serial: 0,
            deadline,
            timeout,
            stats: Stats::default(),
        };
        let result = conn.run(action).await;
        if result.is_ok() {
            conn.close().await;
        }
        let stats = conn.stats;
        result.map(|(power, state)| Outcome {
            power,
            state,
            stats,
        })
    }

    async fn connect(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, FenceError> {
        match &self.uri.transport {
            Transport::Unix(which) => {
                let path = which.path();
                let shown = path.display();
                let connecting = tokio::net::UnixStream::connect(&path);
                match tokio::time::timeout_at(deadline, connecting).await {
                    Ok(Ok(s)) => Ok(Box::new(s)),
                    Err(_) => Err(self.error(
                        ErrorKind::Timeout,
                        format!("connecting to {shown} took longer than the timeout ({timeout:?})"),
                        "that libvirtd on this host is not hung (virsh list), or raise the device's timeout",
                    )),
                    Ok(Err(e)) => Err(match e.kind() {
                        std::io::ErrorKind::NotFound => self.error(
                            ErrorKind::Unreachable,
                            format!("there is no libvirt socket at {shown}"),
                            "that libvirtd runs on this host (or virtqemud: add ?mode=direct to the uri) and the socket path (?socket= in the uri)",
                        ),
                        std::io::ErrorKind::ConnectionRefused => self.error(
                            ErrorKind::Unreachable,
                            format!("{shown} refused the connection: no daemon listens on it (a socket left behind by a libvirtd that stopped?)"),
                            "that libvirtd runs on this host, and the socket path (?socket= in the uri)",
                        ),
                        std::io::ErrorKind::PermissionDenied => self.error(
                            ErrorKind::InsufficientPrivilege,
                            format!("permission denied on {shown}"),
                            "that hactld runs as root, or the socket's group and mode (unix_sock_group, unix_sock_rw_perms in libvirtd.conf)",
                        ),
                        _ => self.error(
                            ErrorKind::Unreachable,
                            format!("cannot connect to {shown}: {e}"),
                            "the socket path (?socket= in the uri) and that libvirtd runs",
                        ),
                    }),
                }
            }
            Transport::Tcp { host, port } => {
                let addr = self.resolve(host, *port, deadline, timeout).await?;
                let connecting = tokio::net::TcpStream::connect(addr);
                match tokio::time::timeout_at(deadline, connecting).await {
                    Ok(Ok(s)) => {
                        // Small calls, each awaited: no Nagle delay.
                        let _ = s.set_nodelay(true);
                        Ok(Box::new(s))
                    }
                    Err(_) => Err(self.error(
                        ErrorKind::Timeout,
                        format!("no TCP connection to {addr} within the timeout ({timeout:?})"),
                        "the route to the hypervisor and its firewall (libvirtd's TCP port must be open to this node)",
                    )),
                    Ok(Err(e)) => Err(match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => self.error(
                            ErrorKind::Unreachable,
                            format!("{addr} refused the connection: libvirtd does not listen for TCP there"),
                            "on the hypervisor: listen_tcp = 1 and tcp_port in libvirtd.conf with libvirtd --listen (or libvirtd-tcp.socket enabled); here: the port in the uri",
                        ),
                        _ => self.error(
                            ErrorKind::Unreachable,
                            format!("cannot connect to {addr}: {e}"),
                            "the route to the hypervisor and the host in the uri",
                        ),
                    }),
                }
            }
        }
    }

    async fn resolve(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<std::net::SocketAddr, FenceError> {
        let lookup = tokio::net::lookup_host((host, port));
        let addrs: Vec<_> = match tokio::time::timeout_at(deadline, lookup).await {
            Err(_) => {
                return Err(self.error(
                    ErrorKind::Timeout,
                    format!("resolving \"{host}\" took longer than the timeout ({timeout:?})"),
                    "the DNS servers, or use the hypervisor's IP address in the uri",
                ));
            }
            Ok(Err(e)) => {
                return Err(self.error(
                    ErrorKind::Unreachable,
                    format!("cannot resolve \"{host}\": {e}"),
                    "the host name in the uri, or use the hypervisor's IP address",
                ));
            }
            Ok(Ok(a)) => a.collect(),
        };
        addrs.first().copied().ok_or_else(|| {
            self.error(
                ErrorKind::Unreachable,
                format!("\"{host}\" resolves to no address"),
                "the host name in the uri, or use the hypervisor's IP address",
            )
        })
    }
}

/// A byte stream to the daemon: a unix socket or a TCP connection.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection to the daemon, for one operation.
struct Connection<'a> {
    dev: &'a LibvirtDevice,
    stream: Box<dyn Stream>,
    serial: u32,
    deadline: Instant,
    timeout: Duration,
    stats: Stats,
}

impl Connection<'_> {
    fn timed_out(&self, what: String) -> FenceError {
        self.dev.error(
            ErrorKind::Timeout,
            format!("{what} within the timeout ({:?})", self.timeout),
            "that libvirtd is not hung or overloaded (virsh -c URI list on a node that can reach it), or raise the device's timeout",
        )
    }

    fn protocol(&self, detail: String) -> FenceError {
        self.dev.error(
            ErrorKind::Protocol,
            detail,
            "that the uri names a libvirt daemon (libvirtd or virtqemud), not another service",
        )
    }

    fn io_error(&self, procedure: Procedure, e: std::io::Error) -> FenceError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.dev.error(
                ErrorKind::Protocol,
                format!("the daemon closed the connection instead of answering {procedure}"),
                "libvirtd's log on the hypervisor (a client limit, max_clients, or a daemon that is stopping)",
            )
        } else {
            self.dev.error(
                ErrorKind::Unreachable,
                format!("the connection failed during {procedure}: {e}"),
                "the network to the hypervisor and that libvirtd still runs",
            )
        }
    }

    /// Calls a procedure: the reply's payload, or libvirt's error.
    async fn call(
        &mut self,
        procedure: Procedure,
        args: &[u8],
    ) -> Result<Result<Vec<u8>, RemoteError>, FenceError> {
        self.serial = self.serial.wrapping_add(1);
        let frame = wire::encode_frame(&wire::Header::call(procedure, self.serial), args);
        match tokio::time::timeout_at(self.deadline, self.stream.write_all(&frame)).await {
            Err(_) => return Err(self.timed_out(format!("could not send {procedure}"))),
            Ok(Err(e)) => return Err(self.io_error(procedure, e)),
            Ok(Ok(())) => {}
        }
        for _ in 0..=UNSOLICITED_MESSAGES_MAX {
            let rest = match tokio::time::timeout_at(self.deadline, self.read_frame()).await {
                Err(_) => {
                    return Err(self.timed_out(format!("libvirtd did not answer {procedure}")));
                }
                Ok(Err(FrameError::Io(e))) => return Err(self.io_error(procedure, e)),
                Ok(Err(FrameError::Wire(e))) => {
                    return Err(
                        self.protocol(format!("answering {procedure}, the daemon sent {e}"))
                    );
                }
                Ok(Ok(rest)) => rest,
            };
            let (h, payload) = wire::decode_header(&rest)
                .map_err(|e| self.protocol(format!("a bad header answering {procedure}: {e}")))?;
            if h.kind != wire::MessageType::Reply || h.program != wire::REMOTE_PROGRAM {
                // An event or a keepalive: not asked for, not ours.
                continue;
            }
            if h.serial != self.serial || h.procedure != procedure.number() {
                return Err(self.protocol(format!(
                    "a reply to call {} (procedure {}) while waiting for call {} ({procedure})",
                    h.serial, h.procedure, self.serial
                )));
            }
            if h.version != wire::REMOTE_PROTOCOL_VERSION {
                return Err(self.protocol(format!(
                    "protocol version {} (hactl speaks {})",
                    h.version,
                    wire::REMOTE_PROTOCOL_VERSION
                )));
            }
            self.stats.calls += 1;
            return match h.status {
                wire::Status::Ok => Ok(Ok(payload.to_vec())),
                wire::Status::Error => {
                    match RemoteError::decode(payload) {
                        Ok(e) => Ok(Err(e)),
                        Err(e) => Err(self
                            .protocol(format!("an unreadable error answering {procedure}: {e}"))),
                    }
                }
                other => Err(self.protocol(format!(
                    "status {other:?} answering {procedure} (hactl expects OK or ERROR)"
                ))),
            };
        }
        Err(self.protocol(format!(
            "more than {UNSOLICITED_MESSAGES_MAX} unsolicited messages while waiting for the answer to {procedure}"
        )))
    }

    /// Reads one frame: everything after the length word.
    async fn read_frame(&mut self) -> Result<Vec<u8>, FrameError> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .await
            .map_err(FrameError::Io)?;
        let n = wire::frame_rest_bytes(len).map_err(FrameError::Wire)?;
        let mut rest = vec![0u8; n];
        self.stream
            .read_exact(&mut rest)
            .await
            .map_err(FrameError::Io)?;
        Ok(rest)
    }

    /// A call whose libvirt error is a failure of the operation.
    async fn call_ok(&mut self, procedure: Procedure, args: &[u8]) -> Result<Vec<u8>, FenceError> {
        match self.call(procedure, args).await? {
            Ok(payload) => Ok(payload),
            Err(e) => Err(self.remote_failure(procedure, &e)),
        }
    }

    fn remote_failure(&self, procedure: Procedure, e: &RemoteError) -> FenceError {
        match e.code {
            wire::ERR_NO_DOMAIN => self.dev.error(
                ErrorKind::Configuration,
                format!("libvirt has no domain \"{}\": {e}", self.dev.domain),
                "the domain (its name or UUID as virsh list --all shows it on the hypervisor) and that the uri names the hypervisor that runs it",
            ),
            wire::ERR_AUTH_FAILED | wire::ERR_AUTH_CANCELLED | wire::ERR_AUTH_UNAVAILABLE => {
                self.dev.error(
                    ErrorKind::AuthenticationFailed,
                    format!("libvirtd refused {procedure}: {e}"),
                    AUTH_CHECK,
                )
            }
            wire::ERR_ACCESS_DENIED | wire::ERR_OPERATION_DENIED => self.dev.error(
                ErrorKind::InsufficientPrivilege,
                format!("libvirtd denied {procedure}: {e}"),
                "that the uri names the read-write socket (libvirt-sock, not libvirt-sock-ro), and libvirt's access control on the hypervisor (access_drivers, polkit rules): hactl needs connect:getattr and domain getattr, read, stop and start",
            ),
            _ => self.dev.error(
                ErrorKind::DeviceError,
                format!("{procedure} failed: {e}"),
                "libvirtd's log on the hypervisor, and the domain's state (virsh domstate --reason)",
            ),
        }
    }

    fn bad_reply(&self, procedure: Procedure, e: wire::WireError) -> FenceError {
        self.protocol(format!("a malformed reply to {procedure}: {e}"))
    }

    async fn authenticate(&mut self) -> Result<(), FenceError> {
        let payload = self.call_ok(Procedure::AuthList, &[]).await?;
        let types =
            wire::decode_auth_list(&payload).map_err(|e| self.bad_reply(Procedure::AuthList, e))?;
        if types.is_empty() || types.contains(&wire::AUTH_NONE) {
            return Ok(());
        }
        if types == [wire::AUTH_POLKIT] {
            // libvirtd lets root through a polkit-guarded socket without
            // asking polkit (seen with libvirtd 9.0: AUTH_LIST offers
            // "none" to uid 0); it asks only for other users.
            return Err(self.dev.error(
                ErrorKind::AuthenticationFailed,
                format!(
                    "libvirtd requires polkit authorization on {}, which it asks of clients other than root; hactl does not do polkit",
                    self.dev.uri.transport
                ),
                POLKIT_CHECK,
            ));
        }
        let names: Vec<String> = types
            .iter()
            .map(|t| match *t {
                wire::AUTH_SASL => "SASL".to_string(),
                other => format!("type {other}"),
            })
            .collect();
        Err(self.dev.error(
            ErrorKind::AuthenticationFailed,
            format!(
                "libvirtd requires {} authentication on {}, which hactl does not support",
                names.join(" or "),
                self.dev.uri.transport
            ),
            AUTH_CHECK,
        ))
    }

    async fn lookup(&mut self) -> Result<wire::Domain, FenceError> {
        let domain = self.dev.domain.clone();
        if let Some(uuid) = wire::parse_uuid(&domain) {
            match self
                .call(
                    Procedure::DomainLookupByUuid,
                    &wire::lookup_by_uuid_args(&uuid),
                )
                .await?
            {
                Ok(p) => {
                    return wire::decode_domain(&p)
                        .map_err(|e| self.bad_reply(Procedure::DomainLookupByUuid, e));
                }
                // A name may look like a UUID: virsh tries the name next too.
                Err(e) if e.code == wire::ERR_NO_DOMAIN => {
                    return match self
                        .call(
                            Procedure::DomainLookupByName,
                            &wire::lookup_by_name_args(&domain),
                        )
                        .await?
                    {
                        Ok(p) => wire::decode_domain(&p)
                            .map_err(|e| self.bad_reply(Procedure::DomainLookupByName, e)),
                        // Neither: libvirt's answer about the UUID says more.
                        Err(by_name) if by_name.code == wire::ERR_NO_DOMAIN => {
                            Err(self.remote_failure(Procedure::DomainLookupByUuid, &e))
                        }
                        Err(by_name) => {
                            Err(self.remote_failure(Procedure::DomainLookupByName, &by_name))
                        }
                    };
                }
                Err(e) => return Err(self.remote_failure(Procedure::DomainLookupByUuid, &e)),
            }
        }
        let p = self
            .call_ok(
                Procedure::DomainLookupByName,
                &wire::lookup_by_name_args(&domain),
            )
            .await?;
        wire::decode_domain(&p).map_err(|e| self.bad_reply(Procedure::DomainLookupByName, e))
    }

    async fn state(&mut self, d: &wire::Domain) -> Result<DomainState, FenceError> {
        let p = self
            .call_ok(Procedure::DomainGetState, &wire::get_state_args(d))
            .await?;
        let (state, _reason) =
            wire::decode_state(&p).map_err(|e| self.bad_reply(Procedure::DomainGetState, e))?;
        Ok(state)
    }

    /// The state, or `None` once the domain no longer exists: a transient
    /// domain (started from XML, never defined) disappears when it stops.
    async fn state_unless_gone(
        &mut self,
        d: &wire::Domain,
    ) -> Result<Option<DomainState>, FenceError> {
        match self
            .call(Procedure::DomainGetState, &wire::get_state_args(d))
            .await?
        {
            Ok(p) => {
                let (state, _reason) = wire::decode_state(&p)
                    .map_err(|e| self.bad_reply(Procedure::DomainGetState, e))?;
                Ok(Some(state))
            }
            Err(e) if e.code == wire::ERR_NO_DOMAIN => Ok(None),
            Err(e) => Err(self.remote_failure(Procedure::DomainGetState, &e)),
        }
    }

    /// Polls the state until `done` says so, within the deadline. A domain
    /// that disappears is off for good (after a destroy, that is success).
    async fn wait_for(
        &mut self,
        d: &wire::Domain,
        done: fn(DomainState) -> bool,
        after: Procedure,
    ) -> Result<DomainState, FenceError> {
        let interval = Duration::from_millis(STATE_POLL_INTERVAL_MS);
        loop {
            self.stats.state_polls += 1;
            let s = self
                .state_unless_gone(d)
                .await?
                .unwrap_or(DomainState::Shutoff);
            if done(s) {
                return Ok(s);
            }
            if Instant::now() + interval >= self.deadline {
                return Err(self.dev.error(
                    ErrorKind::Timeout,
                    format!(
                        "after {after} the domain is still {} when the timeout ({:?}) ends",
                        s.name(),
                        self.timeout
                    ),
                    "the domain's state on the hypervisor (virsh domstate --reason) and libvirtd's log, or raise the device's timeout",
                ));
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn off(&mut self, d: &wire::Domain) -> Result<DomainState, FenceError> {
        match self.state_unless_gone(d).await? {
            None | Some(DomainState::Shutoff) => return Ok(DomainState::Shutoff),
            Some(_) => {}
        }
        match self
            .call(Procedure::DomainDestroy, &wire::domain_args(d))
            .await?
        {
            Ok(p) => wire::decode_void(&p, Procedure::DomainDestroy)
                .map_err(|e| self.bad_reply(Procedure::DomainDestroy, e))?,
            // It stopped (or, transient, vanished) between our read and
            // the destroy: the poll shows it.
            Err(e) if e.code == wire::ERR_OPERATION_INVALID || e.code == wire::ERR_NO_DOMAIN => {}
            Err(e) => return Err(self.remote_failure(Procedure::DomainDestroy, &e)),
        }
        self.wait_for(d, |s| s == DomainState::Shutoff, Procedure::DomainDestroy)
            .await
    }

    async fn on(&mut self, d: &wire::Domain) -> Result<DomainState, FenceError> {
        let s = self.state(d).await?;
        if s != DomainState::Shutoff {
            return Ok(s);
        }
        match self
            .call(Procedure::DomainCreate, &wire::domain_args(d))
            .await?
        {
            Ok(p) => wire::decode_void(&p, Procedure::DomainCreate)
                .map_err(|e| self.bad_reply(Procedure::DomainCreate, e))?,
            // Started by someone else meanwhile: the poll shows it.
            Err(e) if e.code == wire::ERR_OPERATION_INVALID => {}
            Err(e) => return Err(self.remote_failure(Procedure::DomainCreate, &e)),
        }
        self.wait_for(d, |s| s != DomainState::Shutoff, Procedure::DomainCreate)
            .await
    }

    async fn run(&mut self, action: Action) -> Result<(PowerState, DomainState), FenceError> {
        self.authenticate().await?;
        let open = wire::connect_open_args(&self.dev.uri.open_name);
        self.call_ok(Procedure::ConnectOpen, &open).await?;
        let d = self.lookup().await?;
        let state = match action {
            Action::Status => self.state(&d).await?,
            Action::Off => self.off(&d).await?,
            Action::On => self.on(&d).await?,
            Action::Reboot => {
                let off = self.off(&d).await?;
                match self.on(&d).await {
                    Ok(s) => s,
                    Err(e) => {
                        // Fenced all the same: the off was confirmed.
                        tracing::warn!(device = %self.dev.id, "reboot: the domain was powered off but did not come back on: {e}");
                        off
                    }
                }
            }
        };
        Ok((power_of(state), state))
    }

    async fn close(&mut self) {
        let wait = Instant::now() + Duration::from_millis(CLOSE_WAIT_MS_MAX);
        let until = wait.min(self.deadline);
        let _ = tokio::time::timeout_at(until, self.call(Procedure::ConnectClose, &[])).await;
    }
}

enum FrameError {
    Io(std::io::Error),
    Wire(wire::WireError),
}

const AUTH_CHECK: &str = "libvirtd.conf on the hypervisor: hactl supports no SASL, TLS or SSH, so its listener must not require them: auth_tcp = \"none\" (acceptable only on a dedicated fencing network that nothing else reaches) or, on the same host, the unix socket with auth_unix_rw = \"none\" and a root-only socket (unix_sock_rw_perms = \"0700\"); otherwise use a fence agent (kind = \"agent\", e.g. fence_virsh)";
const POLKIT_CHECK: &str = "that hactld runs as root (root needs no polkit), or set auth_unix_rw = \"none\" with a root-only socket (unix_sock_rw_perms = \"0700\") in libvirtd.conf";

/// Off only when libvirt reports the domain shut off: in every other state
/// its qemu process exists.
pub fn power_of(state: DomainState) -> PowerState {
    if state == DomainState::Shutoff {
        PowerState::Off
    } else {
        PowerState::On
    }
}

impl FenceDevice for LibvirtDevice {
    fn id(&self) -> &str {
        &self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self, action: Action, timeout: Duration) -> FenceFuture<'_> {
        Box::pin(async move { Ok(self.execute(action, timeout).await?.power) })
    }
}
