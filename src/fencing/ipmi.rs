//! IPMI over LAN (RMCP+, IPMI v2.0) fence device, native: no ipmitool, no
//! C library.
//!
//! Layers, bottom up, all pure except the last:
//! - [`wire`]: byte layouts (RMCP, IPMI 1.5/2.0 session headers, IPMI
//!   messages, Open Session / RAKP payloads, chassis commands).
//! - [`crypto`]: cipher suites 3 and 17 (and no other: [`CipherSuite`]
//!   refuses every other number), RAKP codes, session keys, sealing and
//!   opening of session packets.
//! - [`session`]: [`session::Client`], the sans-I/O state machine of one
//!   operation over one session: handshake with both HMACs checked,
//!   retransmission with backoff, the deadline, sequence-number checks,
//!   power polling, Close Session.
//! - [`IpmiDevice`]: the [`FenceDevice`] over a tokio UDP socket: reads the
//!   password at use, resolves the host, drives the client.
//!
//! The cipher suite is checked when the device is built and again before
//! every operation, before the socket is even opened: a refused suite never
//! costs a datagram.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::config::{self, FenceKind, IpmiPrivilege, Secret};
use crate::fencing::{Action, ErrorKind, FenceDevice, FenceError, FenceFuture, PowerState};
use crate::time::Instant;

pub mod crypto;
pub mod session;
pub mod wire;

pub use crypto::CipherSuite;
pub use session::{Operation, Privilege, Report, Stats};

/// How hactl reaches one BMC. (Its `Debug` hides the password and key.)
#[derive(Clone, PartialEq, Eq)]
pub struct IpmiSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// The cipher suite number as configured; only 3 and 17 are accepted.
    pub cipher_suite: u8,
    pub privilege: Privilege,
    /// The BMC key (Kg), for BMCs that have one set. Not in the
    /// configuration language yet: `None` from [`IpmiDevice::from_config`].
    pub bmc_key: Option<Secret>,
}

impl std::fmt::Debug for IpmiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A device gets logged; an inline password must not be.
        let hidden = |s: &Secret| match s {
            Secret::File(p) => format!("file {}", p.display()),
            Secret::Inline(_) => "inline (hidden)".to_string(),
        };
        f.debug_struct("IpmiSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("cipher_suite", &self.cipher_suite)
            .field("privilege", &self.privilege)
            .field("bmc_key", &self.bmc_key.as_ref().map(hidden))
            .finish()
    }
}

/// An IPMI-over-LAN fence device.
#[derive(Clone, Debug)]
pub struct IpmiDevice {
    id: String,
    settings: IpmiSettings,
    timeout: Duration,
}

/// The result of one operation with its counters (for diagnostics and the
/// benchmark).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub report: Report,
    pub stats: Stats,
}

impl IpmiDevice {
    /// Checks what can be checked without the network: the cipher suite
    /// (3 or 17 only) and the length of the user name.
    pub fn new(
        id: &str,
        settings: IpmiSettings,
        timeout: Duration,
    ) -> Result<IpmiDevice, FenceError> {
        let d = IpmiDevice {
            id: id.to_string(),
            settings,
            timeout,
        };
        d.suite()?;
        if d.settings.username.len() > wire::USERNAME_BYTES_MAX {
            return Err(d.error(
                ErrorKind::Configuration,
                format!(
                    "the user name is {} bytes long; IPMI allows at most {}",
                    d.settings.username.len(),
                    wire::USERNAME_BYTES_MAX
                ),
                "the username",
            ));
        }
        Ok(d)
    }

    /// The device a `[[fence_device]]` of kind "ipmi" describes. Panics on
    /// another kind: choosing the constructor is the caller's job
    /// ([`crate::fencing::device_from_config`]).
    pub fn from_config(dev: &config::FenceDevice) -> Result<IpmiDevice, FenceError> {
        let FenceKind::Ipmi {
            host,
            port,
            username,
            password,
            cipher_suite,
            privilege,
        } = &dev.kind
        else {
            panic!("IpmiDevice::from_config on a {} device", dev.kind.name());
        };
        IpmiDevice::new(
            &dev.id,
            IpmiSettings {
                host: host.clone(),
                port: *port,
                username: username.clone(),
                password: password.clone(),
                cipher_suite: *cipher_suite,
                privilege: match privilege {
                    IpmiPrivilege::Operator => Privilege::Operator,
                    IpmiPrivilege::Administrator => Privilege::Administrator,
                },
                bmc_key: None,
            },
            Duration::from_millis(dev.timeout_ms),
        )
    }

    pub fn settings(&self) -> &IpmiSettings {
        &self.settings
    }

    /// How the device is reached, for messages.
    pub fn target(&self) -> String {
        let host = if self.settings.host.contains(':') {
            format!("[{}]", self.settings.host)
        } else {
            self.settings.host.clone()
        };
        format!(
            "ipmi {}@{}:{}, cipher suite {}",
            self.settings.username, host, self.settings.port, self.settings.cipher_suite
        )
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

    fn suite(&self) -> Result<CipherSuite, FenceError> {
        CipherSuite::from_id(self.settings.cipher_suite).map_err(|refused| {
            self.error(
                ErrorKind::RefusedCipherSuite,
                refused.to_string(),
                "cipher_suite: use 17 (HMAC-SHA256, AES-128) or, for older BMCs, 3 (HMAC-SHA1, AES-128), and disable the weak suites on the BMC",
            )
        })
    }

    fn secret(
        &self,
        secret: &Secret,
        what: &str,
        max: usize,
    ) -> Result<crypto::SecretBytes, FenceError> {
        let bytes = crate::fencing::read_secret(secret).map_err(|e| {
            self.error(
                ErrorKind::Configuration,
                e,
                format!("that the {what} file exists and is readable by root"),
            )
        })?;
        if bytes.len() > max {
            return Err(self.error(
                ErrorKind::Configuration,
                format!(
                    "the {what} is {} bytes long; IPMI v2.0 allows at most {max}",
                    bytes.len()
                ),
                format!("the {what}"),
            ));
        }
        Ok(bytes)
    }

    /// The session settings, with the password (and Kg) read now.
    fn session_settings(&self) -> Result<session::Settings, FenceError> {
        let suite = self.suite()?;
        let password = self.secret(
            &self.settings.password,
            "password",
            wire::PASSWORD_BYTES_MAX,
        )?;
        let bmc_key = match &self.settings.bmc_key {
            Some(k) => Some(self.secret(k, "BMC key", wire::PASSWORD_BYTES_MAX)?),
            None => None,
        };
        Ok(session::Settings {
            suite,
            privilege: self.settings.privilege,
            username: self.settings.username.as_bytes().to_vec(),
            password,
            bmc_key,
        })
    }

    /// Runs one operation, bounded by `timeout`: the settings are checked
    /// and the password is read before the first datagram.
    pub async fn execute(
        &self,
        operation: Operation,
        timeout: Duration,
    ) -> Result<Outcome, FenceError> {
        let origin = tokio::time::Instant::now();
        let now = move || {
            Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX))
        };
        let settings = self.session_settings()?;
        let addr = self.resolve(timeout).await?;
        let bind: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await.map_err(|e| {
            self.error(
                ErrorKind::Unreachable,
                format!("cannot open a UDP socket: {e}"),
                "the host's network configuration",
            )
        })?;
        // Connected: the kernel drops datagrams from any other address, and
        // reports ICMP errors for this one.
        if let Err(e) = socket.connect(addr).await {
            return Err(self.error(
                ErrorKind::Unreachable,
                format!("cannot reach {addr}: {e}"),
                "the route to the BMC's network",
            ));
        }
        let remaining = timeout.saturating_sub(origin.elapsed());
        let mut client =
            session::Client::new(settings, operation, Box::new(OsEntropy), now(), remaining);
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX + 1];
        loop {
            while let Some(d) = client.poll_transmit() {
                if let Err(e) = socket.send(&d).await {
                    client.handle_network_error(now(), network_error(&e));
                }
            }
            let Some(wake) = client.poll_timeout() else {
                break;
            };
            let wake_at = origin + Duration::from_micros(wake.as_micros());
            tokio::select! {
                r = socket.recv(&mut buf) => match r {
                    Ok(n) => client.handle_datagram(now(), &buf[..n]),
                    Err(e) => client.handle_network_error(now(), network_error(&e)),
                },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
            // Also after a datagram: a flood of answers must not hold off
            // retransmissions or the deadline.
            let t = now();
            if client.poll_timeout().is_some_and(|w| t >= w) {
                client.handle_timeout(t);
            }
        }
        let stats = client.stats();
        match client
            .result()
            .cloned()
            .expect("a finished client has a result")
        {
            Ok(report) => {
                if let Some(w) = &report.warning {
                    tracing::warn!(device = %self.id, "{}: {w}", self.target());
                }
                Ok(Outcome { report, stats })
            }
            Err(f) => Err(self.error(f.kind, f.detail, f.check)),
        }
    }

    async fn resolve(&self, timeout: Duration) -> Result<SocketAddr, FenceError> {
        let host = self.settings.host.as_str();
        let lookup = tokio::net::lookup_host((host, self.settings.port));
        let addrs = match tokio::time::timeout(timeout, lookup).await {
            Err(_) => {
                return Err(self.error(
                    ErrorKind::Timeout,
                    format!("resolving \"{host}\" took longer than the timeout"),
                    "the DNS servers, or use the BMC's IP address as host",
                ));
            }
            Ok(Err(e)) => {
                return Err(self.error(
                    ErrorKind::Unreachable,
                    format!("cannot resolve \"{host}\": {e}"),
                    "the host name, or use the BMC's IP address as host",
                ));
            }
            Ok(Ok(a)) => a,
        };
        let addrs: Vec<SocketAddr> = addrs.collect();
        // Prefer IPv4: BMCs commonly have IPv6 disabled while their name resolves to both.
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| {
                self.error(
                    ErrorKind::Unreachable,
                    format!("\"{host}\" resolves to no address"),
                    "the host name, or use the BMC's IP address as host",
                )
            })
    }

    /// Chassis Control "power cycle" (not a confirmed fence: use
    /// [`FenceDevice::reboot`] for fencing). Returns the power state read after it.
    pub async fn power_cycle(&self, timeout: Duration) -> Result<PowerState, FenceError> {
        Ok(self
            .execute(Operation::PowerCycle, timeout)
            .await?
            .report
            .power)
    }

    /// Chassis Control "hard reset" (not a confirmed fence). Returns the
    /// power state read after it.
    pub async fn hard_reset(&self, timeout: Duration) -> Result<PowerState, FenceError> {
        Ok(self
            .execute(Operation::HardReset, timeout)
            .await?
            .report
            .power)
    }
}

impl FenceDevice for IpmiDevice {
    fn id(&self) -> &str {
        &self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self, action: Action, timeout: Duration) -> FenceFuture<'_> {
        let operation = match action {
            Action::Off => Operation::Off,
            Action::On => Operation::On,
            Action::Reboot => Operation::Reboot,
            Action::Status => Operation::Status,
        };
        Box::pin(async move { Ok(self.execute(operation, timeout).await?.report.power) })
    }
}

fn network_error(e: &std::io::Error) -> session::NetworkError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => session::NetworkError::Refused,
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
            session::NetworkError::Unreachable(e.to_string())
        }
        _ => session::NetworkError::Other(e.to_string()),
    }
}

/// The operating system's random source.
struct OsEntropy;

impl session::Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // getrandom only fails on a system without a usable random source,
        // where no session key could be trusted anyway.
        getrandom::fill(buf).expect("the OS random source (getrandom) failed");
    }
}
