//! External fence agents: any `fence_*` program of the ClusterLabs
//! fence-agents family (fence_ipmilan, fence_redfish, fence_apc, …) as a
//! [`FenceDevice`].
//!
//! The protocol is the fence-agents "stdin" convention (their
//! `doc/FenceAgentAPI.md`): the agent reads `key=value` lines on its
//! standard input — `action=off|on|reboot|status|monitor`, then the
//! configured `params` (ip, username, plug, …), then `password=…` read from
//! the device's secret at every use — and answers with its exit code:
//! 0 success (for status: on), 1 failure, 2 (status only) off. The password
//! never appears on a command line (no argument is passed at all), so `ps`
//! cannot show it.
//!
//! How hactl runs an agent (through [`crate::process`], the runner OCF
//! agents use too):
//! - The program is looked up at every use (a name on `PATH`, then in
//!   `/usr/sbin` and `/sbin`, where fence-agents installs; or an absolute
//!   path), so installing the package later needs no restart. Missing: a
//!   [`ErrorKind::Configuration`] error naming the program and the package.
//! - Its standard input is a pipe filled completely and closed *before* the
//!   agent starts: an agent that never reads, or exits early, cannot block
//!   hactl or make it die of SIGPIPE.
//! - It runs in a process group of its own. When the operation's time runs
//!   out, the whole group gets SIGTERM, then SIGKILL once a grace period
//!   has passed (the grace is taken from the end of the timeout, so the
//!   operation still ends within it): the ipmitool, ssh or curl an agent
//!   started die with it. When the agent exits, whatever it left running in
//!   its group is killed too.
//! - Its output is captured up to [`OUTPUT_BYTES_MAX`] per stream, the head
//!   of stdout and the tail of stderr (the rest is read and dropped, so a
//!   chatty agent never blocks on a full pipe). Errors quote its last
//!   non-empty stderr line.
//!
//! Semantics (those of [`crate::fencing`]):
//! - `off`: the agent's off, then `status` again and again until the agent
//!   says off (exit 2), within the same timeout. An agent's "success" alone
//!   is not a fence.
//! - `on`: the agent's on (agents verify it themselves); `Ok(On)` on exit 0.
//! - `reboot`: the agent's reboot, which fence agents report as a success
//!   exactly when its off part succeeded; then one `status` for the state it
//!   left the node in. If that read fails, the reboot still counts (the
//!   agent confirmed off) and `Ok(Off)` is returned with a warning in the log.
//! - `status`: exit 0 → on, 2 → off, 1 → an error; any other exit code, or
//!   death by a signal, is an error that says so.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{self, FenceKind, Secret};
use crate::fencing::{Action, ErrorKind, FenceDevice, FenceError, FenceFuture, PowerState};
use crate::process::{self, Ending, Spec};

/// At most this much of each output stream (stdout, stderr) is kept.
pub const OUTPUT_BYTES_MAX: usize = 64 * 1024;
/// The longest SIGTERM-to-SIGKILL grace; a quarter of the timeout when that
/// is shorter.
pub const TERM_GRACE_MS_MAX: u64 = 1_000;
/// Pause between two status reads while confirming an off.
pub const STATUS_POLL_INTERVAL_MS: u64 = 200;
/// The agent's standard input is written whole before it starts
/// ([`crate::process`]): at most this much.
pub const STDIN_BYTES_MAX: usize = process::STDIN_BYTES_MAX;
/// Where fence-agents installs its programs, searched after `PATH` (a
/// daemon's or a cron job's PATH often lacks the sbin directories).
pub const AGENT_DIRS: &[&str] = &["/usr/sbin", "/sbin"];
/// Quoted stderr lines are cut to this many characters.
const QUOTE_CHARS_MAX: usize = 300;

/// An external fence agent as a fence device.
#[derive(Clone)]
pub struct AgentDevice {
    id: String,
    agent: String,
    params: BTreeMap<String, String>,
    password: Option<Secret>,
    timeout: Duration,
}

impl std::fmt::Debug for AgentDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Devices get logged: no password, not even from params.
        let params: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|(k, v)| {
                let v = if is_password_key(k) { "(hidden)" } else { v };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("AgentDevice")
            .field("id", &self.id)
            .field("agent", &self.agent)
            .field("params", &params)
            .field(
                "password",
                &self.password.as_ref().map(|s| match s {
                    Secret::File(p) => format!("file {}", p.display()),
                    Secret::Inline(_) => "inline (hidden)".to_string(),
                }),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How one run of the agent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentExit {
    Code(i32),
    Signal(i32),
    /// It ran out of time; its process group was killed.
    TimedOut,
}

/// One run of the agent: how it ended and what it said.
#[derive(Clone, Debug)]
pub struct AgentRun {
    pub exit: AgentExit,
    /// Lossy UTF-8, at most [`OUTPUT_BYTES_MAX`] bytes of it.
    pub stdout: String,
    pub stderr: String,
    /// More output came than was kept.
    pub truncated: bool,
    pub elapsed: Duration,
    /// The time it was given (what was left of the operation's timeout).
    pub allowed: Duration,
}

impl AgentRun {
    /// The last non-empty stderr line, without the agent's timestamp,
    /// printable and bounded: what an error message quotes.
    pub fn last_stderr_line(&self) -> Option<String> {
        last_line(&self.stderr)
    }
}

impl AgentDevice {
    /// Checks the parameters (what can go on the agent's stdin); the
    /// program itself is looked up at every use.
    pub fn new(
        id: &str,
        agent: &str,
        params: BTreeMap<String, String>,
        password: Option<Secret>,
        timeout: Duration,
    ) -> Result<AgentDevice, FenceError> {
        let d = AgentDevice {
            id: id.to_string(),
            agent: agent.to_string(),
            params,
            password,
            timeout,
        };
        let base = agent.rsplit('/').next().unwrap_or("");
        if !base.starts_with("fence_") || (agent.contains('/') && !agent.starts_with('/')) {
            return Err(d.error(
                ErrorKind::Configuration,
                format!("\"{agent}\" is not a fence agent"),
                "agent: name a fence_* program on PATH, e.g. \"fence_ipmilan\", or give its absolute path",
            ));
        }
        for (k, v) in &d.params {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(d.error(
                    ErrorKind::Configuration,
                    format!("parameter name {k:?} cannot be passed to a fence agent"),
                    "params: names are letters, digits, '_' and '-' (as in the agent's metadata)",
                ));
            }
            if k == "action" {
                return Err(d.error(
                    ErrorKind::Configuration,
                    "`action` is chosen by hactl for each operation",
                    "params: remove action",
                ));
            }
            if v.contains(['\n', '\r', '\0']) {
                return Err(d.error(
                    ErrorKind::Configuration,
                    format!("the value of parameter {k} contains a line break or NUL"),
                    format!("params.{k}: the stdin protocol is one key=value per line"),
                ));
            }
        }
        Ok(d)
    }

    /// The device a `[[fence_device]]` of kind "agent" describes. Panics on
    /// another kind: choosing the constructor is the caller's job
    /// ([`crate::fencing::device_from_config`]).
    pub fn from_config(dev: &config::FenceDevice) -> Result<AgentDevice, FenceError> {
        let FenceKind::Agent {
            agent,
            params,
            password,
        } = &dev.kind
        else {
            panic!("AgentDevice::from_config on a {} device", dev.kind.name());
        };
        AgentDevice::new(
            &dev.id,
            agent,
            params.clone(),
            password.clone(),
            Duration::from_millis(dev.timeout_ms),
        )
    }

    /// How the device is reached, for messages: the agent and its address
    /// parameters, e.g. `agent fence_ipmilan ip=10.0.0.12 plug=node2`.
    pub fn target(&self) -> String {
        target_of(&self.agent, &self.params)
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

    /// The program that would run now: the configured absolute path, or the
    /// first executable of that name on `PATH`, then in [`AGENT_DIRS`].
    pub fn program_path(&self) -> Result<PathBuf, FenceError> {
        let executable = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        let package = "that the agent is installed (Debian/Ubuntu: apt-get install fence-agents; RHEL/Fedora: fence-agents-all or the agent's own fence-agents-* package), or set agent to the program's absolute path";
        if self.agent.starts_with('/') {
            let p = PathBuf::from(&self.agent);
            return match std::fs::metadata(&p) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p),
                Ok(_) => Err(self.error(
                    ErrorKind::Configuration,
                    format!("the fence agent {} is not an executable file", p.display()),
                    format!(
                        "agent, and the file's type and mode (chmod +x {})",
                        p.display()
                    ),
                )),
                Err(e) => Err(self.error(
                    ErrorKind::Configuration,
                    format!("the fence agent {} is missing: {e}", p.display()),
                    package,
                )),
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = Vec::new();
        let candidates = std::env::split_paths(&path).chain(AGENT_DIRS.iter().map(PathBuf::from));
        for d in candidates {
            if d.is_absolute() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        for d in &dirs {
            let p = d.join(&self.agent);
            if executable(&p) {
                return Ok(p);
            }
        }
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Err(self.error(
            ErrorKind::Configuration,
            format!(
                "the fence agent \"{}\" is not installed: no such program in {}",
                self.agent,
                searched.join(":")
            ),
            package,
        ))
    }

    /// The agent's standard input for `action`, password (read now) last.
    fn stdin_for(&self, action: &str) -> Result<Vec<u8>, FenceError> {
        let mut input = format!("action={action}\n").into_bytes();
        for (k, v) in &self.params {
            // The configured secret wins over a password in params: it
            // comes last, and for fence agents the last duplicate wins.
            if self.password.is_some() && is_password_key(k) {
                continue;
            }
            input.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        if let Some(secret) = &self.password {
            let pw = crate::fencing::read_secret(secret).map_err(|e| {
                self.error(
                    ErrorKind::Configuration,
                    e,
                    "that the password file exists and is readable by root",
                )
            })?;
            if pw.expose().iter().any(|b| matches!(b, b'\n' | b'\r' | 0)) {
                return Err(self.error(
                    ErrorKind::Configuration,
                    "the password contains a line break or NUL inside it",
                    "the password file: one line, the password only",
                ));
            }
            input.extend_from_slice(b"password=");
            input.extend_from_slice(pw.expose());
            input.push(b'\n');
        }
        if input.len() > STDIN_BYTES_MAX {
            return Err(self.error(
                ErrorKind::Configuration,
                format!(
                    "the agent's input is {} bytes; at most {STDIN_BYTES_MAX} are passed",
                    input.len()
                ),
                "params: the values are too long",
            ));
        }
        Ok(input)
    }

    /// Runs the agent once with `action` (any of the agent's actions, e.g.
    /// "monitor" or "list"), bounded by `timeout`. Errors only when the
    /// agent cannot be started; how it ended is in the [`AgentRun`].
    pub async fn call(&self, action: &str, timeout: Duration) -> Result<AgentRun, FenceError> {
        let deadline = Instant::now() + timeout;
        self.call_until(action, deadline).await
    }

    async fn call_until(&self, action: &str, deadline: Instant) -> Result<AgentRun, FenceError> {
        let started = Instant::now();
        let program = self.program_path()?;
        let left = deadline.saturating_duration_since(started);
        // The grace comes out of the time left, so the run ends by the
        // deadline: SIGTERM at deadline - grace, SIGKILL at the deadline.
        let grace = Duration::from_millis(TERM_GRACE_MS_MAX).min(left / 4);
        let mut spec = Spec::new(&program, left - grace);
        spec.stdin = Some(self.stdin_for(action)?);
        spec.kill_grace = grace;
        // Nothing an agent starts (ipmitool, ssh, curl) may outlive it.
        spec.kill_leftovers = true;
        spec.stdout_bytes_max = OUTPUT_BYTES_MAX;
        spec.stderr_bytes_max = OUTPUT_BYTES_MAX;
        // Debian 12's fence agents import Python's deprecated `pipes`;
        // the warning would hide the agent's real last stderr line.
        if std::env::var_os("PYTHONWARNINGS").is_none() {
            spec = spec.env("PYTHONWARNINGS", "ignore::DeprecationWarning");
        }
        let finished = process::run(spec).await.map_err(|e| {
            let hint = if e.error.kind() == std::io::ErrorKind::NotFound {
                " (the file exists: its interpreter, e.g. python3, is probably missing)"
            } else {
                ""
            };
            self.error(
                ErrorKind::Configuration,
                format!("cannot start {}: {}{hint}", program.display(), e.error),
                "that the agent runs by hand: echo action=metadata | AGENT",
            )
        })?;
        let exit = match finished.ending {
            Ending::Exited(c) => AgentExit::Code(c),
            Ending::Signaled(sig) => AgentExit::Signal(sig),
            Ending::TimedOut => AgentExit::TimedOut,
        };
        Ok(AgentRun {
            exit,
            stdout: String::from_utf8_lossy(&finished.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&finished.stderr).into_owned(),
            truncated: finished.discarded_bytes > 0,
            elapsed: started.elapsed(),
            allowed: left,
        })
    }

    /// The error for a run that did not end as the protocol wants.
    fn run_error(&self, action: &str, run: &AgentRun) -> FenceError {
        let quoted = match run.last_stderr_line() {
            Some(l) => format!(": \"{l}\""),
            None => match last_line(&run.stdout) {
                Some(l) => format!(" (no error output; last output line: \"{l}\")"),
                None => " (no output)".to_string(),
            },
        };
        let verbose = format!(
            "run it by hand to see its dialogue: printf 'action={action}\\nverbose=1\\n...' | {}",
            self.agent
        );
        match run.exit {
            AgentExit::TimedOut => self.error(
                ErrorKind::Timeout,
                format!(
                    "{} action={action} did not finish in the {:.1} s it had; its process group was killed (SIGTERM, then SIGKILL){quoted}",
                    self.agent,
                    run.allowed.as_secs_f64()
                ),
                format!(
                    "that the device answers at its address, and the device's timeout (more than the agent's own login_timeout + power_timeout + power_wait); {verbose}"
                ),
            ),
            AgentExit::Signal(sig) => self.error(
                ErrorKind::DeviceError,
                format!(
                    "{} action={action} was killed by signal {sig}{quoted}",
                    self.agent
                ),
                "what else kills processes on this host (OOM killer, an administrator)",
            ),
            AgentExit::Code(1) => {
                let lower = quoted.to_ascii_lowercase();
                let (kind, check) = if lower.contains("timed out") || lower.contains("timeout") {
                    (
                        ErrorKind::Timeout,
                        "that the device is reachable at its ip/ipport and answers in time",
                    )
                } else if lower.contains("login") || lower.contains("authenticat") || lower.contains("password") {
                    (
                        ErrorKind::AuthenticationFailed,
                        "username and password (password_file) of this device, and its address",
                    )
                } else {
                    (
                        ErrorKind::DeviceError,
                        "the agent's parameters (ip, ipport, username, password, plug, ...): a wrong password or an unreachable device look alike to many agents",
                    )
                };
                self.error(
                    kind,
                    format!("{} action={action} failed (exit 1){quoted}", self.agent),
                    format!("{check}; {verbose}"),
                )
            }
            AgentExit::Code(c) => self.error(
                ErrorKind::Protocol,
                format!(
                    "{} action={action} exited with code {c}, which the fence agent protocol does not define for {action} (0 success{}, 1 failure){quoted}",
                    self.agent,
                    if matches!(action, "status") { ", 2 off" } else { "" }
                ),
                format!("that {} is a fence agent of the fence-agents family (it must follow their exit codes); {verbose}", self.agent),
            ),
        }
    }

    /// One status read: on (exit 0), off (exit 2), or the error.
    async fn status_until(&self, deadline: Instant) -> Result<PowerState, FenceError> {
        let run = self.call_until("status", deadline).await?;
        match run.exit {
            AgentExit::Code(0) => Ok(PowerState::On),
            AgentExit::Code(2) => Ok(PowerState::Off),
            _ => Err(self.run_error("status", &run)),
        }
    }

    /// Whether the device itself is reachable (the agent's `monitor`).
    pub async fn monitor(&self, timeout: Duration) -> Result<(), FenceError> {
        let run = self.call("monitor", timeout).await?;
        match run.exit {
            AgentExit::Code(0) => Ok(()),
            _ => Err(self.run_error("monitor", &run)),
        }
    }

    async fn execute(&self, action: Action, timeout: Duration) -> Result<PowerState, FenceError> {
        let deadline = Instant::now() + timeout;
        match action {
            Action::Status => self.status_until(deadline).await,
            Action::On => {
                let run = self.call_until("on", deadline).await?;
                match run.exit {
                    AgentExit::Code(0) => Ok(PowerState::On),
                    _ => Err(self.run_error("on", &run)),
                }
            }
            Action::Off => {
                let run = self.call_until("off", deadline).await?;
                if run.exit != AgentExit::Code(0) {
                    return Err(self.run_error("off", &run));
                }
                self.confirm_off(deadline).await
            }
            Action::Reboot => {
                let run = self.call_until("reboot", deadline).await?;
                if run.exit != AgentExit::Code(0) {
                    return Err(self.run_error("reboot", &run));
                }
                match self.status_until(deadline).await {
                    Ok(p) => Ok(p),
                    Err(e) => {
                        tracing::warn!(device = %self.id, "reboot succeeded, but the status read after it failed: {e}");
                        Ok(PowerState::Off)
                    }
                }
            }
        }
    }

    /// Reads the status until it says off, within the deadline.
    async fn confirm_off(&self, deadline: Instant) -> Result<PowerState, FenceError> {
        let mut reads = 0u32;
        let mut last_error: Option<FenceError> = None;
        loop {
            if Instant::now() >= deadline {
                let why = match &last_error {
                    Some(e) => format!("the last status read failed: {}", e.detail),
                    None => format!("it still said on after {reads} status read(s)"),
                };
                return Err(self.error(
                    ErrorKind::Timeout,
                    format!(
                        "{} reported action=off done, but the timeout ran out before its status said off: {why}",
                        self.agent
                    ),
                    "whether the node really lost power, and the device's timeout (a slow device needs more)",
                ));
            }
            reads += 1;
            match self.status_until(deadline).await {
                Ok(PowerState::Off) => return Ok(PowerState::Off),
                Ok(PowerState::On) => last_error = None,
                Err(e) => last_error = Some(e),
            }
            let pause = Instant::now() + Duration::from_millis(STATUS_POLL_INTERVAL_MS);
            tokio::time::sleep_until(pause.min(deadline)).await;
        }
    }
}

impl FenceDevice for AgentDevice {
    fn id(&self) -> &str {
        &self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self, action: Action, timeout: Duration) -> FenceFuture<'_> {
        Box::pin(self.execute(action, timeout))
    }
}

/// `agent fence_ipmilan ip=10.0.0.12 plug=node2`: the agent and the
/// parameters that say where the device is.
pub fn target_of(agent: &str, params: &BTreeMap<String, String>) -> String {
    let mut s = format!("agent {agent}");
    for k in [
        "ip", "ipaddr", "ipport", "username", "login", "plug", "port", "nodename",
    ] {
        if let Some(v) = params.get(k) {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    s
}

fn is_password_key(k: &str) -> bool {
    matches!(k, "password" | "passwd")
}

/// The last non-empty line of `text`, without a leading fence-agents
/// timestamp ("2026-11-26 22:14:23,637 "), control characters replaced,
/// at most [`QUOTE_CHARS_MAX`] characters.
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let b = line.as_bytes();
    let stamped = b.len() > 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[19] == b','
        && b[23] == b' ';
    let line = if stamped { &line[24..] } else { line };
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(QUOTE_CHARS_MAX)
        .collect();
    if line.chars().count() > QUOTE_CHARS_MAX {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(params: &[(&str, &str)]) -> Result<AgentDevice, FenceError> {
        AgentDevice::new(
            "pdu",
            "fence_test",
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(Secret::Inline("pw".into())),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn stdin_has_action_params_and_the_secret_last_overriding_params() {
        let d = dev(&[("ip", "10.0.0.1"), ("password", "old"), ("plug", "n2")]).unwrap();
        assert_eq!(
            String::from_utf8(d.stdin_for("off").unwrap()).unwrap(),
            "action=off\nip=10.0.0.1\nplug=n2\npassword=pw\n"
        );
        assert_eq!(d.target(), "agent fence_test ip=10.0.0.1 plug=n2");
        assert!(!format!("{d:?}").contains("old"));
        assert!(!format!("{d:?}").contains("\"pw\""));
    }

    #[test]
    fn parameters_that_would_break_the_stdin_protocol_are_refused() {
        let e = dev(&[("ip", "1.2.3.4\naction=on")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Configuration);
        assert!(e.to_string().contains("line break"), "{e}");
        assert!(dev(&[("a=b", "x")]).is_err());
        assert!(dev(&[("action", "on")]).is_err());
        let e = AgentDevice::new("x", "ipmitool", BTreeMap::new(), None, Duration::ZERO);
        assert!(e.unwrap_err().to_string().contains("not a fence agent"));
    }

    #[test]
    fn the_quoted_line_is_the_last_nonempty_one_without_timestamp() {
        let err = "warning\n2026-11-26 22:14:23,637 ERROR: Failed: Unable to obtain correct plug status\n\n\n";
        assert_eq!(
            last_line(err).as_deref(),
            Some("ERROR: Failed: Unable to obtain correct plug status")
        );
        assert_eq!(last_line("a\x1b[31mred\n").as_deref(), Some("a?[31mred"));
        assert_eq!(last_line(" \n\n"), None);
        let long = "x".repeat(1000);
        assert_eq!(
            last_line(&long).unwrap().chars().count(),
            QUOTE_CHARS_MAX + 1
        );
    }
}
