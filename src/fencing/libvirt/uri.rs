//! libvirt connection URIs, as the fence device uses them. The parser is
//! the configuration's ([`crate::config::libvirt_uri`]), so that
//! `hactl config check` refuses exactly the URIs the device would refuse;
//! what is left here is the part that looks at this machine: which unix
//! socket `qemu:///system` means now.

use std::path::PathBuf;

pub use crate::config::libvirt_uri::{
    LIBVIRTD_SOCKET, LibvirtUri, TCP_PORT_DEFAULT, Transport, UnixSocket, UriError,
    VIRTQEMUD_SOCKET, parse,
};

impl UnixSocket {
    /// The path to connect to; `Auto` looks at the file system.
    pub fn path(&self) -> PathBuf {
        match self {
            UnixSocket::Path(p) => p.clone(),
            UnixSocket::Legacy => LIBVIRTD_SOCKET.into(),
            UnixSocket::Direct => VIRTQEMUD_SOCKET.into(),
            UnixSocket::Auto => {
                let legacy = PathBuf::from(LIBVIRTD_SOCKET);
                let direct = PathBuf::from(VIRTQEMUD_SOCKET);
                if !legacy.exists() && direct.exists() {
                    direct
                } else {
                    legacy
                }
            }
        }
    }
}
