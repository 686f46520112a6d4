//! `ocf:PROVIDER:TYPE` and `lsb:NAME`: the standard agent scripts, run as
//! Pacemaker 2.1's executor runs them, so that the resource-agents package
//! (and any agent written for Pacemaker) works unchanged.
//!
//! OCF: `$OCF_ROOT/resource.d/PROVIDER/TYPE ACTION` (OCF_ROOT defaults to
//! `/usr/lib/ocf`), with the environment Pacemaker gives an agent:
//! `OCF_ROOT`, `OCF_FUNCTIONS_DIR`, `OCF_RA_VERSION_MAJOR`/`_MINOR` (1.1),
//! `OCF_RESOURCE_INSTANCE`, `OCF_RESOURCE_TYPE`, `OCF_RESOURCE_PROVIDER`,
//! `OCF_EXIT_REASON_PREFIX`, `OCF_RESKEY_<name>` for every parameter,
//! `OCF_RESKEY_CRM_meta_timeout` and `OCF_RESKEY_CRM_meta_interval` (both in
//! milliseconds) and, for monitors, `OCF_CHECK_LEVEL`. The exit code is the
//! OCF code; an exit code OCF does not define is a generic error. The exit
//! reason is the last stderr line that starts with `ocf-exit-reason:`
//! (at most [`EXIT_REASON_CHARS_MAX`] characters, as in Pacemaker).
//!
//! LSB: `/etc/init.d/NAME start|stop|status`. start and stop share codes
//! 0–7 with OCF; status has its own (0 running; 1, 2 and 3 not running —
//! "dead with a pid or lock file" counts as not running, as in Pacemaker;
//! 4 unknown, a generic error).
//!
//! A script that is not installed answers [`OcfCode::ErrInstalled`] for
//! every action, stop included: without its script hactl cannot know
//! whether the resource still runs, so a stop must not pretend success.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    AgentAction, AgentFuture, AgentInfo, OcfCode, OpOutcome, OpRequest, ParamInfo, ResourceAgent,
};
use crate::process::{self, Ending, Spec};

/// Where OCF agents live when `OCF_ROOT` is not set.
pub const OCF_ROOT_DEFAULT: &str = "/usr/lib/ocf";
/// Where LSB init scripts live.
pub const LSB_INIT_DIR: &str = "/etc/init.d";
/// The marker of an exit reason on an agent's stderr.
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";
/// Agent exit reasons are cut to this many characters (as Pacemaker does).
pub const EXIT_REASON_CHARS_MAX: usize = 128;
/// The OCF API version announced to agents (Pacemaker 2.1's).
pub const OCF_RA_VERSION: (&str, &str) = ("1", "1");

/// The OCF root: `$OCF_ROOT`, else `/usr/lib/ocf`.
pub fn ocf_root() -> PathBuf {
    match std::env::var_os("OCF_ROOT") {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => PathBuf::from(OCF_ROOT_DEFAULT),
    }
}

/// An `ocf:PROVIDER:TYPE` agent.
#[derive(Clone, Debug)]
pub struct OcfAgent {
    pub root: PathBuf,
    pub provider: String,
    pub kind: String,
}

impl OcfAgent {
    /// The agent under [`ocf_root`].
    pub fn new(provider: &str, kind: &str) -> OcfAgent {
        OcfAgent::with_root(ocf_root(), provider, kind)
    }

    pub fn with_root(root: impl Into<PathBuf>, provider: &str, kind: &str) -> OcfAgent {
        OcfAgent {
            root: root.into(),
            provider: provider.to_string(),
            kind: kind.to_string(),
        }
    }

    /// The script's path.
    pub fn path(&self) -> PathBuf {
        self.root
            .join("resource.d")
            .join(&self.provider)
            .join(&self.kind)
    }

    fn spec(&self, req: &OpRequest) -> Spec {
        let mut s = Spec::new(self.path(), req.timeout).arg(req.action.as_str());
        s.env_remove_prefixes = vec!["OCF_".to_string()];
        for (k, v) in &req.params {
            s = s.env(format!("OCF_RESKEY_{k}"), v);
        }
        s = s
            .env("OCF_ROOT", &self.root)
            .env("OCF_FUNCTIONS_DIR", self.root.join("lib/heartbeat"))
            .env("OCF_RA_VERSION_MAJOR", OCF_RA_VERSION.0)
            .env("OCF_RA_VERSION_MINOR", OCF_RA_VERSION.1)
            .env("OCF_RESOURCE_INSTANCE", &req.resource)
            .env("OCF_RESOURCE_TYPE", &self.kind)
            .env("OCF_RESOURCE_PROVIDER", &self.provider)
            .env("OCF_EXIT_REASON_PREFIX", EXIT_REASON_PREFIX)
            .env(
                "OCF_RESKEY_CRM_meta_timeout",
                req.timeout.as_millis().to_string(),
            )
            .env(
                "OCF_RESKEY_CRM_meta_interval",
                req.interval.as_millis().to_string(),
            );
        if req.action == AgentAction::Monitor {
            s = s.env("OCF_CHECK_LEVEL", req.check_level.to_string());
        }
        s
    }
}

impl ResourceAgent for OcfAgent {
    fn name(&self) -> String {
        format!("ocf:{}:{}", self.provider, self.kind)
    }

    fn execute(&self, req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async move {
            let name = self.name();
            let path = self.path();
            if let Some(out) = check_installed(&name, &path) {
                return out;
            }
            let finished = match process::run(self.spec(&req)).await {
                Ok(f) => f,
                Err(e) => return spawn_failure(&name, &e),
            };
            log_output(&req, &name, &finished);
            let reason = exit_reason(&finished.stderr);
            let mut out = match finished.ending {
                Ending::Exited(c) => match OcfCode::from_code(c) {
                    Some(code) => OpOutcome::fail(code, reason.unwrap_or_default()),
                    None => OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "{name} {} exited with code {c}, which is not an OCF code{}",
                            req.action,
                            reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ),
                    ),
                },
                Ending::Signaled(sig) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!("{name} {} was killed by signal {sig}", req.action),
                ),
                Ending::TimedOut => timed_out(&name, &req),
            };
            if needs_reason(out.code) && out.exit_reason.is_empty() {
                out.exit_reason = fallback_reason(&name, &req, out.code, &finished.stderr);
            }
            if out.code == OcfCode::Success {
                out.exit_reason.clear();
            }
            if matches!(req.action, AgentAction::MetaData | AgentAction::ValidateAll) {
                out.output = String::from_utf8_lossy(&finished.stdout).into_owned();
            }
            out
        })
    }
}

/// An `lsb:NAME` init script.
#[derive(Clone, Debug)]
pub struct LsbAgent {
    pub dir: PathBuf,
    pub script: String,
}

impl LsbAgent {
    pub fn new(script: &str) -> LsbAgent {
        LsbAgent::with_dir(LSB_INIT_DIR, script)
    }

    pub fn with_dir(dir: impl Into<PathBuf>, script: &str) -> LsbAgent {
        LsbAgent {
            dir: dir.into(),
            script: script.to_string(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.script)
    }
}

/// Maps an LSB exit code to OCF, as Pacemaker does. `status` is true for
/// the status action (monitor), which has codes of its own.
pub fn lsb_to_ocf(status: bool, code: i32) -> Option<OcfCode> {
    if status {
        match code {
            0 => Some(OcfCode::Success),
            // 1: dead, pid file exists; 2: dead, lock file exists;
            // 3: not running. The resource is not running in all three.
            1..=3 => Some(OcfCode::NotRunning),
            _ => None,
        }
    } else {
        match code {
            0..=7 => OcfCode::from_code(code),
            _ => None,
        }
    }
}

impl ResourceAgent for LsbAgent {
    fn name(&self) -> String {
        format!("lsb:{}", self.script)
    }

    fn execute(&self, req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async move {
            let name = self.name();
            let path = self.path();
            let verb = match req.action {
                AgentAction::Start => "start",
                AgentAction::Stop => "stop",
                AgentAction::Monitor => "status",
                AgentAction::Promote | AgentAction::Demote | AgentAction::MetaData => {
                    return OpOutcome::fail(
                        OcfCode::ErrUnimplemented,
                        format!(
                            "{name}: init scripts have no {} action (hactl ra info {name} shows the script's header)",
                            req.action
                        ),
                    );
                }
                AgentAction::ValidateAll => {
                    return check_installed(&name, &path).unwrap_or_else(OpOutcome::ok);
                }
            };
            if let Some(out) = check_installed(&name, &path) {
                return out;
            }
            let mut spec = Spec::new(&path, req.timeout).arg(verb);
            spec.env_remove_prefixes = vec!["OCF_".to_string()];
            let finished = match process::run(spec).await {
                Ok(f) => f,
                Err(e) => return spawn_failure(&name, &e),
            };
            log_output(&req, &name, &finished);
            let status = verb == "status";
            let mut out = match finished.ending {
                Ending::Exited(c) => match lsb_to_ocf(status, c) {
                    Some(code) => OpOutcome::code(code),
                    None if status && c == 4 => OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "{name} status: the script says the state is unknown (exit code 4)"
                        ),
                    ),
                    None => OpOutcome::fail(
                        OcfCode::ErrGeneric,
                        format!(
                            "{name} {verb} exited with code {c}, which LSB does not define for {verb}"
                        ),
                    ),
                },
                Ending::Signaled(sig) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!("{name} {verb} was killed by signal {sig}"),
                ),
                Ending::TimedOut => timed_out(&name, &req),
            };
            if needs_reason(out.code) && out.exit_reason.is_empty() {
                // Init scripts print their complaints on either stream.
                let text = if finished.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
                    &finished.stderr
                } else {
                    &finished.stdout
                };
                out.exit_reason = fallback_reason(&name, &req, out.code, text);
            }
            out
        })
    }
}

fn needs_reason(code: OcfCode) -> bool {
    !matches!(
        code,
        OcfCode::Success
            | OcfCode::NotRunning
            | OcfCode::RunningPromoted
            | OcfCode::Degraded
            | OcfCode::DegradedPromoted
    )
}

/// `Some(outcome)` when the script cannot be run: missing or not a file.
fn check_installed(name: &str, path: &Path) -> Option<OpOutcome> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            if m.permissions().mode() & 0o111 == 0 {
                Some(OpOutcome::fail(
                    OcfCode::ErrPerm,
                    format!(
                        "{name}: {} is not executable (check its mode: chmod +x)",
                        path.display()
                    ),
                ))
            } else {
                None
            }
        }
        Ok(_) => Some(OpOutcome::fail(
            OcfCode::ErrInstalled,
            format!("{name} is not installed: {} is not a file", path.display()),
        )),
        Err(_) => Some(OpOutcome::fail(
            OcfCode::ErrInstalled,
            format!(
                "{name} is not installed: {} not found (install the package that provides it{}; `hactl ra list {}` shows what is installed)",
                path.display(),
                if name.starts_with("ocf:") {
                    ", e.g. resource-agents"
                } else {
                    ""
                },
                name.split(':').next().unwrap_or("ocf"),
            ),
        )),
    }
}

fn spawn_failure(name: &str, e: &process::SpawnError) -> OpOutcome {
    let code = match e.error.kind() {
        std::io::ErrorKind::PermissionDenied => OcfCode::ErrPerm,
        std::io::ErrorKind::NotFound => OcfCode::ErrInstalled,
        _ => match e.error.raw_os_error() {
            // ENOEXEC: no #! line or a foreign binary.
            Some(8) => OcfCode::ErrInstalled,
            _ => OcfCode::ErrGeneric,
        },
    };
    let hint = if e.error.kind() == std::io::ErrorKind::NotFound {
        " (the script exists: check its #! interpreter)"
    } else {
        ""
    };
    OpOutcome::fail(code, format!("{name}: {e}{hint}"))
}

fn timed_out(name: &str, req: &OpRequest) -> OpOutcome {
    OpOutcome::fail(
        OcfCode::ErrGeneric,
        format!(
            "{name} {} timed out after {} ms (its process group was killed; raise the operation's timeout if it needs longer)",
            req.action,
            req.timeout.as_millis()
        ),
    )
}

/// The agent's exit reason: the last stderr line that starts with
/// [`EXIT_REASON_PREFIX`], cut to [`EXIT_REASON_CHARS_MAX`] characters.
pub fn exit_reason(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(EXIT_REASON_PREFIX))?;
    let reason: String = line.trim().chars().take(EXIT_REASON_CHARS_MAX).collect();
    (!reason.is_empty()).then_some(reason)
}

/// A reason for a failure whose agent gave none: the code, and the last
/// line it printed.
fn fallback_reason(name: &str, req: &OpRequest, code: OcfCode, text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let last: String = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(EXIT_REASON_CHARS_MAX)
        .collect();
    if last.is_empty() {
        format!("{name} {} returned {code}", req.action)
    } else {
        format!("{name} {} returned {code}: {last}", req.action)
    }
}

fn log_output(req: &OpRequest, name: &str, f: &process::Finished) {
    let stderr = String::from_utf8_lossy(&f.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()).take(20) {
        tracing::info!(resource = %req.resource, agent = %name, action = %req.action, "{line}");
    }
    if f.discarded_bytes > 0 {
        tracing::warn!(
            resource = %req.resource, agent = %name, action = %req.action,
            "agent output exceeded the kept bound; {} bytes were discarded", f.discarded_bytes
        );
    }
}

// ---------------------------------------------------------------- listing

/// Entries of `dir` that are not hidden, sorted; `want_file`: executable
/// files only, else directories only.
fn list_dir(dir: &Path, want_file: bool) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Follow symlinks: agents are often links to a shared script.
        let Ok(m) = std::fs::metadata(e.path()) else {
            continue;
        };
        let keep = if want_file {
            m.is_file() && m.permissions().mode() & 0o111 != 0
        } else {
            m.is_dir()
        };
        if keep {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// OCF providers: the directories under `ROOT/resource.d`.
pub fn list_ocf_providers(root: &Path) -> std::io::Result<Vec<String>> {
    list_dir(&root.join("resource.d"), false)
}

/// OCF agents of one provider: executable files under `ROOT/resource.d/P`.
pub fn list_ocf_agents(root: &Path, provider: &str) -> std::io::Result<Vec<String>> {
    list_dir(&root.join("resource.d").join(provider), true)
}

/// Init scripts: executable files in `dir` (except Debian's helpers).
pub fn list_lsb_scripts(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = list_dir(dir, true)?;
    names.retain(|n| !matches!(n.as_str(), "README" | "skeleton" | "rc" | "rcS"));
    Ok(names)
}

// ---------------------------------------------------------------- meta-data

/// Parses an OCF `duration` as meta-data writes it: `20s`, `2m`, `100ms`,
/// `1h`, or a bare number of seconds.
pub fn parse_ocf_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "s" | "sec" => n.checked_mul(1_000)?,
        "ms" | "msec" => n,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" | "hr" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn child_text(node: roxmltree::Node<'_, '_>, tag: &str) -> String {
    // Prefer English when an agent describes itself in several languages.
    let mut found: Option<String> = None;
    for c in node.children().filter(|c| c.has_tag_name(tag)) {
        let text = c.text().unwrap_or("").trim().to_string();
        let lang = c.attribute("lang").unwrap_or("en");
        if lang == "en" {
            return text;
        }
        found.get_or_insert(text);
    }
    found.unwrap_or_default()
}

/// Reads an agent's meta-data XML (OCF 1.0/1.1) into [`AgentInfo`].
pub fn parse_metadata(name: &str, xml: &str) -> Result<AgentInfo, String> {
    // Agents declare `<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">`; the
    // DTD is only named, never fetched.
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts)
        .map_err(|e| format!("{name}: its meta-data is not valid XML: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("resource-agent") {
        return Err(format!(
            "{name}: its meta-data starts with <{}>, not <resource-agent>",
            root.tag_name().name()
        ));
    }
    let mut params = Vec::new();
    if let Some(ps) = root.children().find(|c| c.has_tag_name("parameters")) {
        for p in ps.children().filter(|c| c.has_tag_name("parameter")) {
            let content = p.children().find(|c| c.has_tag_name("content"));
            params.push(ParamInfo {
                name: p.attribute("name").unwrap_or("").to_string(),
                required: matches!(p.attribute("required"), Some("1" | "true")),
                content_type: content
                    .and_then(|c| c.attribute("type"))
                    .unwrap_or("string")
                    .to_string(),
                // Many agents write default="" for "no default".
                default: content
                    .and_then(|c| c.attribute("default"))
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                shortdesc: child_text(p, "shortdesc"),
                longdesc: child_text(p, "longdesc"),
            });
        }
    }
    let mut actions = Vec::new();
    if let Some(acts) = root.children().find(|c| c.has_tag_name("actions")) {
        for a in acts.children().filter(|c| c.has_tag_name("action")) {
            let Some(n) = a.attribute("name") else {
                continue;
            };
            let mut label = n.to_string();
            if let Some(role) = a.attribute("role") {
                label = format!("{label} (role {role})");
            }
            if let Some(d) = a.attribute("depth").filter(|d| *d != "0") {
                label = format!("{label} (depth {d})");
            }
            if let Some(i) = a.attribute("interval").filter(|i| *i != "0") {
                label = format!("{label} (interval {i})");
            }
            actions.push((label, a.attribute("timeout").and_then(parse_ocf_duration)));
        }
    }
    Ok(AgentInfo {
        name: name.to_string(),
        shortdesc: child_text(root, "shortdesc"),
        longdesc: child_text(root, "longdesc"),
        params,
        actions,
    })
}

/// Reads the description out of an init script's LSB header
/// (`### BEGIN INIT INFO` ... `### END INIT INFO`).
pub fn parse_lsb_header(name: &str, script: &str) -> AgentInfo {
    let mut short = String::new();
    let mut long = String::new();
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut inside = false;
    let mut in_description = false;
    for line in script.lines() {
        if line.starts_with("### BEGIN INIT INFO") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with("### END INIT INFO") || !line.starts_with('#') {
            break;
        }
        // `#` then a tab or at least two spaces continues the description.
        if in_description && (line.starts_with("#\t") || line.starts_with("#  ")) {
            long.push(' ');
            long.push_str(line[1..].trim());
            continue;
        }
        in_description = false;
        let body = line[1..].trim_start();
        if let Some((key, value)) = body.split_once(':') {
            let value = value.trim().to_string();
            match key {
                "Short-Description" => short = value,
                "Description" => {
                    long = value;
                    in_description = true;
                }
                "Provides" | "Required-Start" | "Required-Stop" | "Default-Start"
                | "Default-Stop" | "Should-Start" | "Should-Stop" => {
                    fields.insert(
                        match key {
                            "Provides" => "provides",
                            "Required-Start" => "required-start",
                            "Required-Stop" => "required-stop",
                            "Default-Start" => "default-start",
                            "Default-Stop" => "default-stop",
                            "Should-Start" => "should-start",
                            _ => "should-stop",
                        },
                        value,
                    );
                }
                _ => {}
            }
        }
    }
    if short.is_empty() {
        short = name.to_string();
    }
    if long.is_empty() {
        long = short.clone();
    }
    let extra: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !extra.is_empty() {
        long = format!("{long}\n{}", extra.join("\n"));
    }
    AgentInfo {
        name: format!("lsb:{name}"),
        shortdesc: short,
        longdesc: long,
        params: Vec::new(),
        actions: vec![
            ("start".to_string(), None),
            ("stop".to_string(), None),
            ("status (monitor)".to_string(), None),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsb_status_codes_map_as_pacemaker_maps_them() {
        assert_eq!(lsb_to_ocf(true, 0), Some(OcfCode::Success));
        for c in 1..=3 {
            assert_eq!(lsb_to_ocf(true, c), Some(OcfCode::NotRunning));
        }
        assert_eq!(lsb_to_ocf(true, 4), None);
        assert_eq!(lsb_to_ocf(true, 150), None);
        for c in 0..=7 {
            assert_eq!(lsb_to_ocf(false, c).map(OcfCode::code), Some(c));
        }
        assert_eq!(lsb_to_ocf(false, 8), None);
        assert_eq!(lsb_to_ocf(false, -1), None);
    }

    #[test]
    fn exit_reason_is_the_last_marked_line_cut_to_the_limit() {
        let err = b"noise\nocf-exit-reason:first\nmore noise\nocf-exit-reason: second one \nx";
        assert_eq!(exit_reason(err).as_deref(), Some("second one"));
        assert_eq!(exit_reason(b"no reason here\n"), None);
        assert_eq!(exit_reason(b"ocf-exit-reason:\n"), None);
        let long = format!("ocf-exit-reason:{}\n", "x".repeat(500));
        assert_eq!(
            exit_reason(long.as_bytes()).unwrap().len(),
            EXIT_REASON_CHARS_MAX
        );
    }

    #[test]
    fn ocf_durations() {
        assert_eq!(parse_ocf_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_ocf_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_ocf_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_ocf_duration("150ms"),
            Some(Duration::from_millis(150))
        );
        assert_eq!(parse_ocf_duration("soon"), None);
        assert_eq!(parse_ocf_duration(""), None);
    }

    #[test]
    fn metadata_parameters_and_actions() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="T" version="1.0">
<version>1.1</version>
<longdesc lang="en">Long text.</longdesc>
<shortdesc lang="en">Short text</shortdesc>
<parameters>
<parameter name="state" unique-group="state" required="1">
<longdesc lang="en">Where the state lives.</longdesc>
<shortdesc lang="en">State file</shortdesc>
<content type="string" default="/run/t.state" />
</parameter>
<parameter name="delay">
<shortdesc lang="de">Verzoegerung</shortdesc>
<shortdesc lang="en">Delay</shortdesc>
<content type="integer"/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="20s" />
<action name="monitor" timeout="20" interval="10s" depth="0"/>
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>"#;
        let info = parse_metadata("ocf:x:T", xml).unwrap();
        assert_eq!(info.shortdesc, "Short text");
        assert_eq!(info.params.len(), 2);
        assert!(info.params[0].required);
        assert_eq!(info.params[0].default.as_deref(), Some("/run/t.state"));
        assert_eq!(info.params[1].shortdesc, "Delay");
        assert_eq!(info.params[1].content_type, "integer");
        assert!(!info.params[1].required);
        assert_eq!(
            info.actions[1],
            (
                "monitor (interval 10s)".to_string(),
                Some(Duration::from_secs(20))
            )
        );
        assert!(parse_metadata("x", "<other/>").is_err());
        assert!(parse_metadata("x", "not xml").is_err());
    }

    #[test]
    fn lsb_header_descriptions() {
        let script = "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          food\n# Required-Start:    $network\n# Short-Description: Food daemon\n# Description:       Serves food\n#                    to everyone.\n### END INIT INFO\necho\n";
        let info = parse_lsb_header("food", script);
        assert_eq!(info.name, "lsb:food");
        assert_eq!(info.shortdesc, "Food daemon");
        assert!(info.longdesc.starts_with("Serves food to everyone."));
        assert!(info.longdesc.contains("provides: food"));
        let bare = parse_lsb_header("bare", "#!/bin/sh\nexit 0\n");
        assert_eq!(bare.shortdesc, "bare");
    }
}
