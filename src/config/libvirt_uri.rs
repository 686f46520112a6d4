//! libvirt connection URIs: which socket to reach and which name to open
//! there, as libvirt's own remote driver reads them. A pure parser, used by
//! the configuration (`hactl config check` refuses what the libvirt fence
//! device would refuse, at the `uri` key) and by
//! [`crate::fencing::libvirt`] (which connects to what it names).
//!
//! Supported (the rest is refused with what to use instead):
//! - `qemu:///system`: the local daemon's socket, `/var/run/libvirt/libvirt-sock`
//!   (the monolithic libvirtd), or `/var/run/libvirt/virtqemud-sock` when
//!   only the modular daemon runs (`?mode=direct` asks for that one,
//!   `?mode=legacy` for libvirtd's).
//! - `qemu+unix:///system?socket=PATH` (also `qemu:///system?socket=PATH`).
//! - `qemu+tcp://HOST[:PORT]/system`, port 16509 by default; an IPv6
//!   address in brackets.
//! - `test:///default` (and `test+unix`, `test+tcp`): libvirt's test driver
//!   inside the daemon reached the same ways.
//!
//! What is opened on the daemon is the URI without transport, host and
//! the transport's own parameters: `qemu+tcp://10.0.0.1/system` opens
//! `qemu:///system`.

use std::fmt;
use std::path::PathBuf;

/// The monolithic daemon's read-write socket.
pub const LIBVIRTD_SOCKET: &str = "/var/run/libvirt/libvirt-sock";
/// The modular QEMU daemon's socket.
pub const VIRTQEMUD_SOCKET: &str = "/var/run/libvirt/virtqemud-sock";
/// libvirtd's TCP port (`tcp_port`).
pub const TCP_PORT_DEFAULT: u16 = 16509;

/// The forms that work, for hints.
const USE: &str =
    "use qemu:///system, qemu+unix:///system?socket=PATH or qemu+tcp://HOST[:PORT]/system";

/// How to reach the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket, given or the default one.
    Unix(UnixSocket),
    Tcp {
        host: String,
        port: u16,
    },
}

/// Which unix socket. (`UnixSocket::path`, which looks at the file system
/// for `Auto`, is the fence device's: [`crate::fencing::libvirt::uri`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnixSocket {
    /// `?socket=PATH`.
    Path(PathBuf),
    /// libvirtd's socket, or virtqemud's when libvirtd's does not exist.
    Auto,
    /// `?mode=legacy`: libvirtd's.
    Legacy,
    /// `?mode=direct`: virtqemud's.
    Direct,
}

/// A parsed URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtUri {
    pub transport: Transport,
    /// What CONNECT_OPEN asks the daemon for, e.g. `qemu:///system`.
    pub open_name: String,
}

/// Why a URI is refused: what is wrong (without the URI itself, which the
/// caller quotes) and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message, self.hint)
    }
}

impl std::error::Error for UriError {}

fn refuse<T>(message: impl Into<String>, hint: impl Into<String>) -> Result<T, UriError> {
    Err(UriError {
        message: message.into(),
        hint: hint.into(),
    })
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Unix(UnixSocket::Path(p)) => write!(f, "unix socket {}", p.display()),
            Transport::Unix(UnixSocket::Auto) => write!(f, "unix socket {LIBVIRTD_SOCKET}"),
            Transport::Unix(UnixSocket::Legacy) => write!(f, "unix socket {LIBVIRTD_SOCKET}"),
            Transport::Unix(UnixSocket::Direct) => write!(f, "unix socket {VIRTQEMUD_SOCKET}"),
            Transport::Tcp { host, port } if host.contains(':') => write!(f, "tcp [{host}]:{port}"),
            Transport::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
        }
    }
}

/// Decodes `%XX` escapes (a socket path with a space is written `%20`).
fn percent_decode(s: &str) -> Result<String, UriError> {
    const HINT: &str = "write a byte as % and two hex digits (a space is %20)";
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let Some(h) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            else {
                return refuse(format!("a bad %-escape at \"{}\"", &s[i..]), HINT);
            };
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).or_else(|_| refuse("a %-escape that is not UTF-8", HINT))
}

/// Parses a URI. The error says what is wrong and what works instead.
pub fn parse(uri: &str) -> Result<LibvirtUri, UriError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return refuse("it is not a URI (no \"://\")", USE);
    };
    let (driver, transport) = match scheme.split_once('+') {
        Some((d, t)) => (d, Some(t)),
        None => (scheme, None),
    };
    if !matches!(driver, "qemu" | "test") {
        return refuse(
            format!("the hypervisor driver \"{driver}\" is not supported (qemu and test are)"),
            USE,
        );
    }
    let (authority, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    if driver == "qemu" && path != "/system" {
        return refuse(
            format!(
                "the path \"{path}\": hactl fences through the system instance (\"/system\"), whose VMs outlive any login session"
            ),
            USE,
        );
    }
    let mut socket = None;
    let mut mode = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "socket" => socket = Some(v),
            "mode" => mode = Some(v),
            other => {
                return refuse(
                    format!(
                        "the URI parameter \"{other}\" is not supported (only socket= and mode=)"
                    ),
                    format!("remove {other}=; {USE}"),
                );
            }
        }
    }
    let transport = match transport {
        None | Some("unix") => {
            if !authority.is_empty() {
                return refuse(
                    "it names a host without a transport, which libvirt reaches over TLS; hactl does not support TLS",
                    "for a remote hypervisor use qemu+tcp://HOST[:PORT]/system",
                );
            }
            let which = match (socket, mode.as_deref()) {
                (Some(p), _) => UnixSocket::Path(PathBuf::from(p)),
                (None, None | Some("auto")) => UnixSocket::Auto,
                (None, Some("legacy")) => UnixSocket::Legacy,
                (None, Some("direct")) => UnixSocket::Direct,
                (None, Some(m)) => {
                    return refuse(
                        format!("mode=\"{m}\": libvirt knows auto, legacy and direct"),
                        "mode=legacy (libvirtd's socket) or mode=direct (virtqemud's), or leave mode out",
                    );
                }
            };
            Transport::Unix(which)
        }
        Some("tcp") => {
            if socket.is_some() || mode.is_some() {
                return refuse(
                    "socket= and mode= are for unix sockets, not for qemu+tcp",
                    "remove them, or use qemu+unix:///system?socket=PATH",
                );
            }
            if let Some((user, _)) = authority.rsplit_once('@') {
                return refuse(
                    format!("a user name (\"{user}@\"): hactl does not authenticate (SASL)"),
                    "remove the user name; libvirtd's TCP listener must take unauthenticated clients (auth_tcp = \"none\", on a trusted network)",
                );
            }
            let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
                let Some((h, after)) = v6.split_once(']') else {
                    return refuse(
                        "an unclosed \"[\" in the host",
                        "an IPv6 address goes in brackets: qemu+tcp://[fd00::1]:16509/system",
                    );
                };
                (h, after.strip_prefix(':'))
            } else {
                match authority.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (authority, None),
                }
            };
            if host.is_empty() {
                return refuse(
                    "no host",
                    "name the hypervisor: qemu+tcp://HOST[:PORT]/system",
                );
            }
            let port = match port {
                None => TCP_PORT_DEFAULT,
                Some(p) => match p.parse::<u16>().ok().filter(|&p| p != 0) {
                    Some(p) => p,
                    None => {
                        return refuse(
                            format!("the port \"{p}\" is not 1..65535"),
                            format!(
                                "libvirtd's tcp_port ({TCP_PORT_DEFAULT} when the port is left out)"
                            ),
                        );
                    }
                },
            };
            Transport::Tcp {
                host: host.to_string(),
                port,
            }
        }
        Some(t @ ("tls" | "ssh" | "libssh" | "libssh2" | "ext")) => {
            return refuse(
                format!(
                    "the transport \"{t}\" is not supported (hactl speaks libvirt's protocol itself, over unix sockets and plain TCP)"
                ),
                USE,
            );
        }
        Some(t) => return refuse(format!("unknown transport \"{t}\""), USE),
    };
    Ok(LibvirtUri {
        transport,
        open_name: format!("{driver}://{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Transport {
        Transport::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_supported_uris_name_their_socket_and_what_to_open() {
        let u = parse("qemu:///system").unwrap();
        assert_eq!(u.transport, Transport::Unix(UnixSocket::Auto));
        assert_eq!(u.open_name, "qemu:///system");
        let u = parse("qemu+unix:///system?socket=/tmp/a%20b/libvirt-sock").unwrap();
        assert_eq!(
            u.transport,
            Transport::Unix(UnixSocket::Path("/tmp/a b/libvirt-sock".into()))
        );
        assert_eq!(u.open_name, "qemu:///system");
        assert_eq!(
            parse("qemu:///system?socket=/s").unwrap().transport,
            Transport::Unix(UnixSocket::Path("/s".into()))
        );
        assert_eq!(
            parse("qemu:///system?mode=direct")
                .unwrap()
                .transport
                .to_string(),
            "unix socket /var/run/libvirt/virtqemud-sock"
        );
        let u = parse("qemu+tcp://10.0.0.250/system").unwrap();
        assert_eq!(u.transport, tcp("10.0.0.250", 16509));
        assert_eq!(u.open_name, "qemu:///system");
        assert_eq!(
            parse("qemu+tcp://hv1.example:16599/system")
                .unwrap()
                .transport,
            tcp("hv1.example", 16599)
        );
        let u = parse("qemu+tcp://[fd00::1]:1234/system").unwrap();
        assert_eq!(u.transport, tcp("fd00::1", 1234));
        assert_eq!(u.transport.to_string(), "tcp [fd00::1]:1234");
        assert_eq!(
            parse("qemu+tcp://[fd00::1]/system").unwrap().transport,
            tcp("fd00::1", 16509)
        );
        let u = parse("test:///default").unwrap();
        assert_eq!(u.open_name, "test:///default");
    }

    #[test]
    fn unsupported_uris_say_what_works_instead() {
        for (uri, says) in [
            ("qemu://host/system", "TLS"),
            ("qemu+tls://host/system", "not supported"),
            ("qemu+ssh://root@host/system", "not supported"),
            ("xen:///system", "driver \"xen\""),
            ("qemu:///session", "system instance"),
            ("qemu+tcp:///system", "no host"),
            ("qemu+tcp://h:0/system", "not 1..65535"),
            ("qemu+tcp://h:99999/system", "not 1..65535"),
            ("qemu+tcp://u@h/system", "SASL"),
            ("qemu+tcp://h/system?socket=/x", "unix sockets"),
            ("qemu:///system?no_verify=1", "no_verify"),
            ("qemu:///system?mode=magic", "auto, legacy and direct"),
            ("qemu:///system?socket=%zz", "%-escape"),
            ("qemu+tcp://[fd00::1/system", "unclosed"),
            ("libvirt-sock", "no \"://\""),
        ] {
            let e = parse(uri).unwrap_err();
            assert!(e.message.contains(says), "{uri}: {e}");
            assert!(!e.hint.is_empty(), "{uri}: no hint");
        }
    }
}
