//! Running a helper program (an agent script, later a fence agent) without
//! letting it hurt the daemon: the program runs in a process group of its
//! own, gets its environment and optional stdin, and is bounded in time and
//! in how much of its output is kept.
//!
//! - Time: when `timeout` passes, the whole process group gets SIGTERM, then
//!   SIGKILL after [`KILL_GRACE_MS`]; grandchildren that the program left
//!   in its group die with it. Dropping the future of [`run`] before it
//!   ends (a caller's own timeout) SIGKILLs the group too.
//! - Output: stdout and stderr are read concurrently to the end, but only
//!   `stdout_bytes_max` of stdout (its head: meta-data is at the start) and
//!   `stderr_bytes_max` of stderr (its tail: exit reasons are printed last)
//!   are kept, so a program that prints megabytes costs a bounded amount of
//!   memory.
//! - A program that exits but leaves a daemon holding its stdout or stderr
//!   open (a start action that forgets to redirect) does not hold the caller:
//!   the pipes are read for at most [`PIPE_DRAIN_MS`] after the exit.
//!   Processes left behind after a normal exit are NOT killed: starting a
//!   daemon is what a start action is for.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Between SIGTERM and SIGKILL of a timed-out process group.
pub const KILL_GRACE_MS: u64 = 1_000;
/// How long output is still read after the program exited.
pub const PIPE_DRAIN_MS: u64 = 200;
/// Default bound of kept stdout.
pub const STDOUT_BYTES_MAX: usize = 1 << 20;
/// Default bound of kept stderr.
pub const STDERR_BYTES_MAX: usize = 64 << 10;

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
    /// Written to the program's stdin, which is then closed; `None`: stdin
    /// is /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
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

/// Runs `spec` to its end or its timeout. `Err` only when the program
/// could not be started at all (not found, not executable).
pub async fn run(spec: Spec) -> Result<Finished, SpawnError> {
    let started = Instant::now();
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
    cmd.stdin(if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    // Its own process group, so that a timeout can kill everything it
    // started, and so that a terminal's signals to the daemon's group do not
    // reach it.
    cmd.process_group(0);

    let mut child = cmd.spawn().map_err(|error| SpawnError {
        program: spec.program.clone(),
        error,
    })?;
    let guard = GroupGuard {
        pgid: child.id().map(|id| Pid::from_raw(id as i32)),
    };

    let stdin_task = match (child.stdin.take(), spec.stdin) {
        (Some(mut w), Some(data)) => Some(tokio::spawn(async move {
            // A program that does not read its stdin closes the pipe: the
            // error is not ours to report.
            let _ = w.write_all(&data).await;
            let _ = w.shutdown().await;
        })),
        _ => None,
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
                let grace = Duration::from_millis(KILL_GRACE_MS);
                let leader_gone = tokio::time::timeout(grace, child.wait()).await.is_ok();
                // SIGKILL the group in any case: the leader may have died of
                // SIGTERM while a grandchild ignores it.
                guard.kill(Signal::SIGKILL);
                if !leader_gone {
                    let _ = child.wait().await;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(PIPE_DRAIN_MS), &mut reading).await;
                ending = Ending::TimedOut;
            }
        }
    }
    if let Some(t) = stdin_task {
        t.abort();
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
