//! This node's incarnation number: a new, strictly larger value every time
//! hactld starts, so that the totem envelope never reuses a (key, nonce)
//! pair and peers can tell a restarted node from its old packets.
//!
//! The value is persisted (write to a temporary file, fsync, rename, fsync
//! the directory) *before* it is used. It is never below the wall-clock
//! seconds since 1970, so losing the file (a reinstall) cannot bring back
//! an old value either; the stored counter protects against a clock that
//! went backwards.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The file under the state directory (`/var/lib/hactl`).
pub const FILE_NAME: &str = "incarnation";

/// Reads the last incarnation, stores and returns the next one.
pub fn next(state_dir: &Path, now_unix_s: u64) -> io::Result<u64> {
    let path = state_dir.join(FILE_NAME);
    let last = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a number; remove the file to start a new series",
                    path.display()
                ),
            )
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let next = last
        .checked_add(1)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: exhausted", path.display()),
            )
        })?
        .max(now_unix_s);
    store(state_dir, FILE_NAME, next)?;
    Ok(next)
}

/// Writes `value` to `state_dir/name` so that a crash leaves the old or the
/// new value, never a torn one: a temporary file, fsync, rename, fsync of
/// the directory.
fn store(state_dir: &Path, name: &str, value: u64) -> io::Result<()> {
    let tmp = state_dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{value}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, state_dir.join(name))?;
    fs::File::open(state_dir)?.sync_all()
}

/// The file with the highest ring sequence number this node has seen.
pub const RING_SEQ_FILE_NAME: &str = "ring-seq";

/// The highest ring sequence number stored by [`store_ring_seq`], or 0
/// when there is none (a first start). An unreadable value is an error: a
/// node must not start below ring numbers it may have used.
pub fn load_ring_seq(state_dir: &Path) -> io::Result<u64> {
    let path = state_dir.join(RING_SEQ_FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a number; remove the file only if every other node has been restarted since",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Stores the highest ring sequence number seen (write, fsync, rename,
/// fsync the directory): called before this node takes part in a ring with
/// a higher number, so that after a restart it never re-creates a ring id.
pub fn store_ring_seq(state_dir: &Path, seq: u64) -> io::Result<()> {
    store(state_dir, RING_SEQ_FILE_NAME, seq)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ring_sequence_number_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::load_ring_seq(dir.path()).unwrap(), 0);
        super::store_ring_seq(dir.path(), 7_340_036).unwrap();
        assert_eq!(super::load_ring_seq(dir.path()).unwrap(), 7_340_036);
        std::fs::write(dir.path().join(super::RING_SEQ_FILE_NAME), "x\n").unwrap();
        assert!(super::load_ring_seq(dir.path()).is_err());
    }

    use super::*;

    #[test]
    fn incarnations_only_go_up_even_when_the_clock_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = next(dir.path(), 1_000).unwrap();
        assert_eq!(a, 1_000, "first start: the wall clock");
        let b = next(dir.path(), 1_000).unwrap();
        assert_eq!(b, 1_001, "same second: the stored counter");
        let c = next(dir.path(), 10).unwrap();
        assert_eq!(c, 1_002, "clock went back: still larger");
        let d = next(dir.path(), 5_000).unwrap();
        assert_eq!(d, 5_000);
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME))
                .unwrap()
                .trim(),
            "5000"
        );
    }

    #[test]
    fn a_lost_file_still_gives_a_new_value_from_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        next(dir.path(), 1_000).unwrap();
        fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(next(dir.path(), 2_000).unwrap(), 2_000);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        let e = next(dir.path(), 1).unwrap_err().to_string();
        assert!(e.contains("incarnation: not a number"), "{e}");
    }
}
