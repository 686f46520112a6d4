//! Storage of the replicated state on disk: the only I/O of the module.
//!
//! The file `DIR/state` (`/var/lib/hactl/state` by default):
//!
//! ```text
//! magic "HACTLST\0" (8 bytes) | format version u16 BE | body length u64 BE
//! | body (the snapshot encoding, codec::encode_snapshot) | SHA-256 of everything before (32 bytes)
//! ```
//!
//! Written atomically: the new content goes to `DIR/state.tmp`, which is
//! fsynced, renamed over `DIR/state`, and the directory is fsynced, so a
//! crash at any point leaves either the old file or the new one. The file
//! is mode 0600 (the configuration it holds may carry inline passwords).
//!
//! A file that fails its checks (torn, truncated, corrupted, or from a
//! newer hactl) is reported with its path. [`load_or_recover`] then moves
//! it aside as `DIR/state.corrupt-MILLIS` and starts from an empty state:
//! the node is *fresh* and takes the cluster's state at the first sync
//! (docs/state.md, "Persistence").

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::codec::{self, DecodeError};
use super::{ClusterState, WallMs};

/// Where the daemon keeps its state.
pub const STATE_DIR: &str = "/var/lib/hactl";
/// The state file's name in that directory.
pub const STATE_FILE: &str = "state";
const TEMP_FILE: &str = "state.tmp";
const MAGIC: &[u8; 8] = b"HACTLST\0";
/// Version of the file layout (the body has its own version).
pub const FILE_VERSION: u16 = 1;
const HEADER_BYTES: usize = 8 + 2 + 8;
const DIGEST_BYTES: usize = 32;
/// Largest state file read.
pub const FILE_BYTES_MAX: u64 = 64 << 20;

/// Why the state could not be stored or read.
#[derive(Debug)]
pub enum PersistError {
    Io {
        path: PathBuf,
        doing: &'static str,
        error: std::io::Error,
    },
    /// The file exists but is not a valid state file.
    Corrupt { path: PathBuf, reason: String },
}

impl std::fmt::Display for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersistError::Io { path, doing, error } => write!(
                f,
                "{}: cannot {doing}: {error} (check that the directory exists, is writable by \
                 root and that the file system is not full or read-only)",
                path.display()
            ),
            PersistError::Corrupt { path, reason } => write!(
                f,
                "{}: not a valid hactl state file: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PersistError {}

fn io<'a>(path: &'a Path, doing: &'static str) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |error| PersistError::Io {
        path: path.to_path_buf(),
        doing,
        error,
    }
}

/// The file's bytes for a state.
pub fn to_file_bytes(s: &ClusterState) -> Vec<u8> {
    let body = codec::encode_snapshot(s);
    let mut b = Vec::with_capacity(HEADER_BYTES + body.len() + DIGEST_BYTES);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FILE_VERSION.to_be_bytes());
    b.extend_from_slice(&(body.len() as u64).to_be_bytes());
    b.extend_from_slice(&body);
    let digest = Sha256::digest(&b);
    b.extend_from_slice(&digest);
    b
}

/// Reads a state from the file's bytes; the error says what is wrong.
pub fn from_file_bytes(b: &[u8]) -> Result<ClusterState, String> {
    if b.len() < HEADER_BYTES + DIGEST_BYTES {
        return Err(format!("only {} bytes: the file is truncated", b.len()));
    }
    if &b[..8] != MAGIC {
        return Err("it does not start with the hactl state magic".into());
    }
    let version = u16::from_be_bytes([b[8], b[9]]);
    if version != FILE_VERSION {
        return Err(format!(
            "file format version {version}, this hactl reads version {FILE_VERSION} \
             (written by a newer hactl?)"
        ));
    }
    let len = u64::from_be_bytes(b[10..18].try_into().expect("8"));
    let expected = (HEADER_BYTES + DIGEST_BYTES) as u64 + len;
    if b.len() as u64 != expected {
        return Err(format!(
            "{} bytes where the header announces {expected}: the file is torn or truncated",
            b.len()
        ));
    }
    let (content, digest) = b.split_at(b.len() - DIGEST_BYTES);
    if Sha256::digest(content).as_slice() != digest {
        return Err("its checksum does not match its content: the file is corrupted".into());
    }
    codec::decode_snapshot(&content[HEADER_BYTES..]).map_err(|e: DecodeError| e.to_string())
}

/// First half of [`save`]: writes and fsyncs `DIR/state.tmp`. A crash
/// after this leaves the previous `DIR/state` in force.
pub fn write_temp(dir: &Path, s: &ClusterState) -> Result<PathBuf, PersistError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir, "create the state directory"))?;
    let tmp = dir.join(TEMP_FILE);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp, "create the temporary state file"))?;
    f.write_all(&to_file_bytes(s))
        .map_err(io(&tmp, "write the temporary state file"))?;
    f.sync_all()
        .map_err(io(&tmp, "fsync the temporary state file"))?;
    Ok(tmp)
}

/// Second half of [`save`]: renames the temporary file over the state
/// file and fsyncs the directory so the rename itself is durable.
pub fn commit_temp(dir: &Path) -> Result<(), PersistError> {
    let tmp = dir.join(TEMP_FILE);
    let dst = dir.join(STATE_FILE);
    fs::rename(&tmp, &dst).map_err(io(&dst, "rename the new state file into place"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync the state directory"))
}

/// Stores the state atomically (write, fsync, rename, fsync the directory).
pub fn save(dir: &Path, s: &ClusterState) -> Result<(), PersistError> {
    write_temp(dir, s)?;
    commit_temp(dir)
}

/// Reads `DIR/state`: `Ok(None)` when there is none (a new node), an error
/// naming the file when it cannot be read or is not valid. A temporary
/// file left by a crash during [`save`] is removed.
pub fn load(dir: &Path) -> Result<Option<ClusterState>, PersistError> {
    let tmp = dir.join(TEMP_FILE);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp, "remove the unfinished temporary state file")(e)),
    }
    let path = dir.join(STATE_FILE);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, "open the state file")(e)),
    };
    let len = f
        .metadata()
        .map_err(io(&path, "read the state file's size"))?
        .len();
    if len > FILE_BYTES_MAX {
        return Err(PersistError::Corrupt {
            path,
            reason: format!("{len} bytes, more than the limit {FILE_BYTES_MAX}"),
        });
    }
    let bytes = fs::read(&path).map_err(io(&path, "read the state file"))?;
    from_file_bytes(&bytes)
        .map(Some)
        .map_err(|reason| PersistError::Corrupt { path, reason })
}

/// What [`load_or_recover`] found.
#[derive(Debug)]
pub struct Recovered {
    pub state: ClusterState,
    /// The state came from disk (false: a new node, or a corrupt file).
    pub from_disk: bool,
    /// Where a corrupt file was moved, and why it was refused.
    pub moved_aside: Option<(PathBuf, String)>,
}

/// [`load`], and when the file is corrupt: moves it aside as
/// `DIR/state.corrupt-MILLIS` (`now` in wall milliseconds) and starts from
/// an empty state, which the node then replaces by the cluster's at the
/// first sync. I/O errors other than corruption are returned: the daemon
/// must not start without its state when the disk fails.
pub fn load_or_recover(dir: &Path, now: WallMs) -> Result<Recovered, PersistError> {
    match load(dir) {
        Ok(state) => Ok(Recovered {
            from_disk: state.is_some(),
            state: state.unwrap_or_default(),
            moved_aside: None,
        }),
        Err(PersistError::Corrupt { path, reason }) => {
            let aside = dir.join(format!("{STATE_FILE}.corrupt-{}", now.0));
            fs::rename(&path, &aside).map_err(io(&aside, "move the corrupt state file aside"))?;
            Ok(Recovered {
                state: ClusterState::default(),
                from_disk: false,
                moved_aside: Some((aside, reason)),
            })
        }
        Err(e) => Err(e),
    }
}
