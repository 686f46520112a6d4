//! Running a helper program (an OCF or LSB resource agent, an external fence
//! agent) without letting it hurt the daemon: the program runs in a process
//! group of its own, gets its environment and optional stdin, and is bounded
//! in time and in how much of its output is kept. This is the one runner of
//! child processes in hactl ([`crate::agents::ocf`] and
//! [`crate::fencing::agent`] both use it).
//!
//! - Time: when `timeout` passes, the whole process group gets SIGTERM, then
//!   SIGKILL after `kill_grace` ([`KILL_GRACE_MS`] by default); grandchildren
//!   that the program left in its group die with it. Dropping the future of
//!   [`run`] before it ends (a caller's own timeout) SIGKILLs the group too.
//!   A caller that must end within a deadline (fencing) passes
//!   `timeout = deadline - grace`.
//! - Stdin: the bytes of `stdin` (at most [`STDIN_BYTES_MAX`]) are written
//!   into a pipe and its write end closed *before* the program starts: a
//!   program that never reads, or exits at once, can neither block the
//!   caller nor make it die of SIGPIPE, and no task outlives the run.
//! - Output: stdout and stderr are read concurrently to the end, but only
//!   `stdout_bytes_max` of stdout (its head: meta-data is at the start) and
//!   `stderr_bytes_max` of stderr (its tail: exit reasons are printed last)
//!   are kept, so a program that prints megabytes costs a bounded amount of
//!   memory.
//! - A program that exits but leaves a daemon holding its stdout or stderr
//!   open (a start action that forgets to redirect) does not hold the caller:
//!   the pipes are read for at most [`PIPE_DRAIN_MS`] after the exit.
//!   Processes left behind after a normal exit are NOT killed by default:
//!   starting a daemon is what a start action is for. With
//!   `kill_leftovers` (fence agents: nothing they start should outlive
//!   them) the group is SIGKILLed as soon as the program exits.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Between SIGTERM and SIGKILL of a timed-out process group.
pub const KILL_GRACE_MS: u64 = 1_000;
/// How long output is still read after the program exited.
pub const PIPE_DRAIN_MS: u64 = 200;
/// Default bound of kept stdout.
pub const STDOUT_BYTES_MAX: usize = 1 << 20;
/// Default bound of kept stderr.
pub const STDERR_BYTES_MAX: usize = 64 << 10;
/// The most stdin [`run`] passes. It is written whole into the pipe before
/// the program starts, so it must fit into a pipe's buffer: 64 KiB on Linux,
/// but only a page or two once a user exceeds `pipe-user-pages-soft`; a
/// write that does not fit fails instead of blocking.
pub const STDIN_BYTES_MAX: usize = 16 << 10;
/// How long the group leader may take to be reaped after SIGKILL (a
/// process in uninterruptible sleep cannot die at once).
pub const AFTER_KILL_REAP_MS: u64 = 1_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Inherited variables whose names start with one of these are removed
    /// first (for agents: stale `OCF_` variables of the daemon's own
    /// environment must not leak into an agent).
    pub env_remove_prefixes: Vec<String>,
    /// Written to the program's stdin before it starts, which is then
    /// closed (at most [`STDIN_BYTES_MAX`]); `None`: stdin is /dev/null.
    pub stdin: Option<Vec<u8>>,
    /// When the group gets SIGTERM.
    pub timeout: Duration,
    /// From SIGTERM to SIGKILL.
    pub kill_grace: Duration,
    /// SIGKILL what is left in the group once the program exits.
    pub kill_leftovers: bool,
    pub stdout_bytes_max: usize,
    pub stderr_bytes_max: usize,
}

impl Spec {
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Spec {
        Spec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove_prefixes: Vec::new(),
            stdin: None,
            timeout,
            kill_grace: Duration::from_millis(KILL_GRACE_MS),
            kill_leftovers: false,
            stdout_bytes_max: STDOUT_BYTES_MAX,
            stderr_bytes_max: STDERR_BYTES_MAX,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Spec {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Spec {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// How the program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signaled(i32),
    /// Still running at the timeout; its process group was killed.
    TimedOut,
}

/// The result of [`run`].
#[derive(Clone, Debug)]
pub struct Finished {
    pub ending: Ending,
    /// The head of stdout, at most `stdout_bytes_max` bytes.
    pub stdout: Vec<u8>,
    /// The tail of stderr, at most `stderr_bytes_max` bytes.
    pub stderr: Vec<u8>,
    /// Bytes of output read but not kept (stdout + stderr).
    pub discarded_bytes: u64,
    pub elapsed: Duration,
}

/// Why [`run`] could not start the program.
#[derive(Debug)]
pub struct SpawnError {
    pub program: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot run {}: {}", self.program.display(), self.error)
    }
}

impl std::error::Error for SpawnError {}

/// Kills the process group when dropped, unless disarmed: a caller that
/// gives up on [`run`] (drops its future) leaves nothing running.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH: the group is already empty, which is what we want.
            let _ = killpg(pgid, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill(Signal::SIGKILL);
    }
}

/// Keeps the first `max` bytes.
struct Head {
    buf: Vec<u8>,
    max: usize,
    dropped: u64,
}

impl Head {
    fn push(&mut self, data: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
    }
}

/// Keeps the last `max` bytes.
struct Tail {
    buf: VecDeque<u8>,
    max: usize,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend(data.iter().copied());
        let excess = self.buf.len().saturating_sub(self.max);
        if excess > 0 {
            self.buf.drain(..excess);
            self.dropped += excess as u64;
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(mut r: R, mut sink: impl FnMut(&[u8])) {
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => sink(&chunk[..n]),
        }
    }
}

/// A pipe holding `data` with its write end closed: the read end, to be
/// the program's stdin.
fn filled_pipe(data: &[u8]) -> std::io::Result<std::io::PipeReader> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if data.len() > STDIN_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "its input is {} bytes; at most {STDIN_BYTES_MAX} are passed on stdin",
                data.len()
            ),
        ));
    }
    let (reader, mut writer) = std::io::pipe()?;
    // Non-blocking: a pipe shrunk by the user's pipe limits makes the write
    // fail (WouldBlock) rather than hang the caller's thread.
    fcntl(writer.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
    writer.write_all(data)?;
    Ok(reader)
}

/// Runs `spec` to its end or its timeout. `Err` only when the program
/// could not be started at all (not found, not executable, stdin too long).
pub async fn run(spec: Spec) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let spawn_error = |error| SpawnError {
        program: spec.program.clone(),
        error,
    };
    let stdin = match &spec.stdin {
        Some(data) => Stdio::from(filled_pipe(data).map_err(spawn_error)?),
        None => Stdio::null(),
    };
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args);
    if !spec.env_remove_prefixes.is_empty() {
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if spec
                .env_remove_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
            {
                cmd.env_remove(&k);
            }
        }
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.stdin(stdin);
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    // Its own process group, so that a timeout can kill everything it
    // started, and so that a terminal's signals to the daemon's group do not
    // reach it.
    cmd.process_group(0);

    let mut child = cmd.spawn().map_err(spawn_error)?;
    // The parent's copy of the stdin pipe's read end is closed now (the
    // Command owned it), so the program sees end-of-file after the data.
    drop(cmd);
    let guard = GroupGuard {
        pgid: child.id().map(|id| Pid::from_raw(id as i32)),
    };

    let mut out = Head {
        buf: Vec::new(),
        max: spec.stdout_bytes_max,
        dropped: 0,
    };
    let mut err = Tail {
        buf: VecDeque::new(),
        max: spec.stderr_bytes_max,
        dropped: 0,
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let ending;
    {
        let reading = async {
            tokio::join!(pump(stdout, |d| out.push(d)), pump(stderr, |d| err.push(d)));
        };
        tokio::pin!(reading);
        let mut reading_done = false;
        let deadline = tokio::time::Instant::now() + spec.timeout;

        // Phase 1: the program runs; read its output while waiting.
        let status: Option<std::io::Result<ExitStatus>> = loop {
            tokio::select! {
                s = child.wait() => break Some(s),
                () = &mut reading, if !reading_done => reading_done = true,
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        match status {
            Some(s) => {
                ending = ending_of(s);
                if spec.kill_leftovers {
                    guard.kill(Signal::SIGKILL);
                }
                // Phase 2: read what is left, briefly (a daemon it started
                // may hold the pipes open forever).
                if !reading_done {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(PIPE_DRAIN_MS), &mut reading)
                            .await;
                }
            }
            None => {
                guard.kill(Signal::SIGTERM);
                let leader_gone = tokio::time::timeout(spec.kill_grace, child.wait())
                    .await
                    .is_ok();
                // SIGKILL the group in any case: the leader may have died of
                // SIGTERM while a grandchild ignores it.
                guard.kill(Signal::SIGKILL);
                if !leader_gone {
                    // Bounded: a leader stuck in uninterruptible sleep must
                    // not hold the caller (tokio reaps it later).
                    let _ = tokio::time::timeout(
                        Duration::from_millis(AFTER_KILL_REAP_MS),
                        child.wait(),
                    )
                    .await;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(PIPE_DRAIN_MS), &mut reading).await;
                ending = Ending::TimedOut;
            }
        }
    }
    // Finished normally: do not kill what the program left running.
    let mut guard = guard;
    guard.pgid = None;

    Ok(Finished {
        ending,
        discarded_bytes: out.dropped + err.dropped,
        stdout: out.buf,
        stderr: err.buf.into_iter().collect(),
        elapsed: started.elapsed(),
    })
}

fn ending_of(s: std::io::Result<ExitStatus>) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    match s {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => Ending::Exited(c),
            (None, Some(sig)) => Ending::Signaled(sig),
            // Neither code nor signal: treat as a generic failure.
            (None, None) => Ending::Exited(-1),
        },
        Err(_) => Ending::Exited(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keeps_the_start_and_counts_the_rest() {
        let mut h = Head {
            buf: Vec::new(),
            max: 4,
            dropped: 0,
        };
        h.push(b"abc");
        h.push(b"def");
        assert_eq!(h.buf, b"abcd");
        assert_eq!(h.dropped, 2);
    }

    #[test]
    fn tail_keeps_the_end_and_counts_the_rest() {
        let mut t = Tail {
            buf: VecDeque::new(),
            max: 4,
            dropped: 0,
        };
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.buf.iter().copied().collect::<Vec<u8>>(), b"defg");
        assert_eq!(t.dropped, 3);
    }
}
