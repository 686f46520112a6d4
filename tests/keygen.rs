//! `hactl keygen` writes a random key readable by its owner only, never
//! overwrites without --force, and the daemon's key check accepts exactly
//! what it writes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use hactl::config::authkey;

fn keygen(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("keygen")
        .args(args)
        .output()
        .expect("run hactl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn keygen_writes_a_2048_bit_key_with_mode_0400() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    let (code, out) = keygen(&["--output", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o400);
    assert_eq!(meta.len(), 256);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    // Random, not a constant: two keys differ, and a key is not all one byte.
    let a = std::fs::read(&key).unwrap();
    let other = dir.path().join("other");
    assert_eq!(
        keygen(&["--output", other.to_str().unwrap(), "--bytes", "32"]).0,
        0
    );
    let b = std::fs::read(&other).unwrap();
    assert_eq!(b.len(), 32);
    assert_ne!(&a[..32], &b[..]);
    assert!(a.iter().any(|x| *x != a[0]));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn keygen_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    assert_eq!(keygen(&["--output", key.to_str().unwrap()]).0, 0);
    let before = std::fs::read(&key).unwrap();
    let (code, out) = keygen(&["--output", key.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("a key already exists") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the old key must be untouched"
    );

    let (code, out) = keygen(&["--output", key.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{out}");
    let after = std::fs::read(&key).unwrap();
    assert_ne!(after, before);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o400
    );
}

#[test]
fn keygen_refuses_keys_shorter_than_256_bits() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    let (code, out) = keygen(&["--output", key.to_str().unwrap(), "--bytes", "16"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("32..=4096") || out.contains("32"), "{out}");
    assert!(!key.exists());
}

#[test]
fn keygen_into_a_missing_directory_says_so() {
    let (code, out) = keygen(&["--output", "/nonexistent-dir/authkey"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("/nonexistent-dir/authkey") && out.contains("No such file"),
        "{out}"
    );
}

#[test]
fn the_daemon_key_check_accepts_keygen_keys_and_refuses_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("authkey");
    authkey::generate(&key, 64, false).unwrap();
    if is_root() {
        assert_eq!(authkey::load(&key).unwrap().len(), 64);
    } else {
        // Only root-owned keys are accepted.
        assert!(
            authkey::load(&key)
                .unwrap_err()
                .to_string()
                .contains("not root")
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = authkey::load(&key).unwrap_err().to_string();
    assert!(e.contains("chmod 0400") || e.contains("chown root"), "{e}");

    let short = dir.path().join("short");
    std::fs::write(&short, [1u8; 8]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o400)).unwrap();
    if is_root() {
        let e = authkey::load(&short).unwrap_err().to_string();
        assert!(e.contains("the key is 8 bytes"), "{e}");
    }
}
