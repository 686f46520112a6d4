//! The cluster key: `hactl keygen` creates it, the daemon checks it.
//!
//! The file holds raw random bytes (like corosync's authkey). It must belong
//! to root and be unreadable by group and others; the daemon refuses to start
//! otherwise, because anyone who can read it can join the cluster.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Size of a key written by `hactl keygen`: 256 bytes (2048 bits), as
/// corosync 3 writes; the crypto derives its keys from all of them.
pub const KEY_BYTES_DEFAULT: usize = 256;
/// Shortest key accepted: 256 bits.
pub const KEY_BYTES_MIN: usize = 32;
/// Longest key accepted, to bound what the daemon reads.
pub const KEY_BYTES_MAX: usize = 4096;

#[derive(Debug)]
pub enum KeyError {
    Exists(PathBuf),
    Io(PathBuf, std::io::Error),
    Random(String),
    NotRootOwned(PathBuf, u32),
    TooOpen(PathBuf, u32),
    BadLength(PathBuf, usize),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Exists(p) => write!(
                f,
                "{}: a key already exists; replacing it locks this node out until every node has the new key. Use --force to replace it",
                p.display()
            ),
            KeyError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            KeyError::Random(e) => write!(f, "cannot get random bytes from the kernel: {e}"),
            KeyError::NotRootOwned(p, uid) => write!(
                f,
                "{}: the key file belongs to uid {uid}, not root; run: chown root:root {}",
                p.display(),
                p.display()
            ),
            KeyError::TooOpen(p, mode) => write!(
                f,
                "{}: the key file has mode {mode:04o}: group or others have access to it; run: chmod 0400 {}",
                p.display(),
                p.display()
            ),
            KeyError::BadLength(p, n) => write!(
                f,
                "{}: the key is {n} bytes; it must be {KEY_BYTES_MIN} to {KEY_BYTES_MAX} bytes. Create one with `hactl keygen`",
                p.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// Writes a new random key of `bytes` bytes to `path` with mode 0400.
/// Never replaces an existing file unless `force`; a replacement is written
/// to a temporary file first and renamed, so a crash leaves the old key or
/// the new one, never half of one.
pub fn generate(path: &Path, bytes: usize, force: bool) -> Result<(), KeyError> {
    assert!(
        (KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&bytes),
        "key size checked by the caller"
    );
    let mut key = vec![0u8; bytes];
    getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
    let io = |e| KeyError::Io(path.to_path_buf(), e);
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(KeyError::Exists(path.to_path_buf()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("authkey"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)?;
        // The umask cannot widen 0400, but make the mode exact regardless.
        f.set_permissions(fs::Permissions::from_mode(0o400))?;
        f.write_all(&key)?;
        f.sync_all()?;
        if force {
            fs::rename(&tmp, path)?;
        } else {
            // hard_link fails if the target appeared meanwhile: no overwrite.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(KeyError::Exists(path.to_path_buf()))
        }
        other => other.map_err(io),
    }
}

/// Reads the key, refusing a file that others could read or that root does
/// not own.
pub fn load(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |e| KeyError::Io(path.to_path_buf(), e);
    let meta = fs::metadata(path).map_err(io)?;
    if meta.uid() != 0 {
        return Err(KeyError::NotRootOwned(path.to_path_buf(), meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen(path.to_path_buf(), mode));
    }
    let len = meta.len() as usize;
    if !(KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&len) {
        return Err(KeyError::BadLength(path.to_path_buf(), len));
    }
    let key = fs::read(path).map_err(io)?;
    if !(KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&key.len()) {
        return Err(KeyError::BadLength(path.to_path_buf(), key.len()));
    }
    Ok(key)
}
