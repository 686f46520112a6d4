//! The replicated state on disk: atomic replacement, detection of torn and
//! corrupt files, and the documented recovery (moved aside, start empty).
//! Real files in a temporary directory on the machine's file system.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use hactl::state::persist::{self, PersistError, STATE_FILE};
use hactl::state::{ClusterState, Command, MigrateTarget, WallMs};

fn sample(n: u64) -> ClusterState {
    let mut s = ClusterState::new();
    s.apply(
        1,
        &Command::SetStandby {
            node: 2,
            standby: true,
        },
        WallMs(n),
    )
    .unwrap();
    s.apply(
        1,
        &Command::Migrate {
            resource: format!("rsc{n}"),
            target: MigrateTarget::To(3),
            expires: None,
        },
        WallMs(n),
    )
    .unwrap();
    s
}

#[test]
fn saved_state_loads_back_equal_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("hactl");
    assert!(
        persist::load(&sub).unwrap().is_none(),
        "a new node has none"
    );
    persist::save(&sub, &sample(1)).unwrap();
    assert_eq!(persist::load(&sub).unwrap(), Some(sample(1)));
    let mode = fs::metadata(sub.join(STATE_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}: others must not read it");
    persist::save(&sub, &sample(2)).unwrap();
    assert_eq!(persist::load(&sub).unwrap(), Some(sample(2)));
}

#[test]
fn crash_between_write_and_rename_leaves_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    persist::save(dir.path(), &sample(1)).unwrap();
    // The new state written and fsynced, then the process dies before the
    // rename.
    let tmp = persist::write_temp(dir.path(), &sample(2)).unwrap();
    assert!(tmp.exists());
    assert_eq!(persist::load(dir.path()).unwrap(), Some(sample(1)));
    assert!(!tmp.exists(), "the unfinished file is removed at start");
}

#[test]
fn a_torn_write_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    persist::save(dir.path(), &sample(1)).unwrap();
    let path = dir.path().join(STATE_FILE);
    let bytes = fs::read(&path).unwrap();
    for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        fs::write(&path, &bytes[..cut]).unwrap();
        let err = persist::load(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

#[test]
fn a_flipped_bit_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    persist::save(dir.path(), &sample(1)).unwrap();
    let path = dir.path().join(STATE_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    let text = persist::load(dir.path()).unwrap_err().to_string();
    assert!(text.contains("checksum does not match"), "{text}");
}

#[test]
fn a_newer_file_format_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    persist::save(dir.path(), &sample(1)).unwrap();
    let path = dir.path().join(STATE_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes[9] += 1;
    fs::write(&path, &bytes).unwrap();
    let text = persist::load(dir.path()).unwrap_err().to_string();
    assert!(text.contains("file format version 2"), "{text}");
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_node_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    fs::write(
        &path,
        b"garbage that is not a state file at all, long enough",
    )
    .unwrap();
    let r = persist::load_or_recover(dir.path(), WallMs(1_700_000_000_123)).unwrap();
    assert_eq!(r.state, ClusterState::new());
    assert!(!r.from_disk);
    let (aside, reason) = r.moved_aside.expect("moved aside");
    assert_eq!(aside, dir.path().join("state.corrupt-1700000000123"));
    assert!(reason.contains("magic"), "{reason}");
    assert_eq!(
        fs::read(&aside).unwrap(),
        b"garbage that is not a state file at all, long enough"
    );
    assert!(!path.exists());
    // The next start finds no file: a new node, nothing to move.
    let again = persist::load_or_recover(dir.path(), WallMs(1)).unwrap();
    assert!(again.moved_aside.is_none() && !again.from_disk);
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"").unwrap();
    let err = persist::save(&blocker, &sample(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not-a-dir"), "{text}");
    assert!(matches!(err, PersistError::Io { .. }));
}
