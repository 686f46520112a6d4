//! `hactl ra classes|list|info`: the resource agents this machine offers,
//! found without a running daemon (like Pacemaker's `crm_resource
//! --list-agents` and `--show-metadata`).
//!
//! - classes: systemd, ocf, lsb, and the built-ins ipaddr and filesystem;
//! - list ocf [PROVIDER]: `ocf:PROVIDER:TYPE` for every executable agent
//!   under `$OCF_ROOT/resource.d` (OCF_ROOT defaults to /usr/lib/ocf);
//!   list lsb: the scripts in /etc/init.d; list systemd: the unit files in
//!   systemd's unit directories (read from disk, no systemd needed);
//! - info AGENT: description and parameters: an OCF agent's `meta-data`,
//!   an init script's LSB header, a unit's `Description=`, or the built-in
//!   agents' table ([`crate::agents::builtin_info`]).
//!
//! Exit codes: 0 success; 1 the agent, provider or directory was not found,
//! or the agent failed to describe itself; 2 bad usage (an unknown class,
//! an agent name that is not one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::agents::ocf::{self, LsbAgent, OcfAgent};
use crate::agents::{AgentAction, AgentInfo, OcfCode, OpRequest, ResourceAgent, builtin_info};

/// systemd's unit directories, most important first (a unit in /etc
/// overrides the same name in /lib).
pub const SYSTEMD_UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
/// Unit types a resource can be (all can be started and stopped).
const UNIT_SUFFIXES: &[&str] = &[
    ".service", ".socket", ".target", ".mount", ".timer", ".path", ".swap",
];
/// Bound on the time an agent may take to print its meta-data.
const META_DATA_TIMEOUT: Duration = Duration::from_secs(10);

const CLASSES: &[(&str, &str)] = &[
    ("systemd", "systemd units: systemd:UNIT"),
    ("ocf", "OCF resource agents: ocf:PROVIDER:TYPE"),
    ("lsb", "init scripts in /etc/init.d: lsb:NAME"),
    ("ipaddr", "built-in: a virtual IP address"),
    ("filesystem", "built-in: a mounted filesystem"),
];

#[derive(Subcommand, Debug)]
pub enum RaCommand {
    /// List the agent classes.
    Classes,
    /// List the agents of a class (ocf: optionally of one provider).
    List {
        /// systemd, ocf, lsb, ipaddr or filesystem.
        class: String,
        /// For ocf: only this provider's agents.
        provider: Option<String>,
    },
    /// Describe an agent and its parameters.
    Info {
        /// ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT, ipaddr or filesystem.
        agent: String,
    },
}

/// A failure: the message and the exit code.
struct Fail(String, u8);

fn not_found(msg: String) -> Fail {
    Fail(msg, 1)
}

fn usage(msg: String) -> Fail {
    Fail(msg, 2)
}

pub fn run(cmd: &RaCommand) -> ExitCode {
    let r = match cmd {
        RaCommand::Classes => {
            for (c, d) in CLASSES {
                println!("{c:<11} {d}");
            }
            Ok(())
        }
        RaCommand::List { class, provider } => list(class, provider.as_deref()),
        RaCommand::Info { agent } => info(agent),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("hactl ra: {msg}");
            ExitCode::from(code)
        }
    }
}

fn list(class: &str, provider: Option<&str>) -> Result<(), Fail> {
    if provider.is_some() && class != "ocf" {
        return Err(usage(format!(
            "only the ocf class has providers (hactl ra list {class})"
        )));
    }
    let names: Vec<String> = match class {
        "ocf" => {
            let root = ocf::ocf_root();
            let dir = root.join("resource.d");
            let providers = ocf::list_ocf_providers(&root).map_err(|e| {
                not_found(format!(
                    "cannot read {}: {e} (is resource-agents installed? is OCF_ROOT right?)",
                    dir.display()
                ))
            })?;
            let chosen: Vec<String> = match provider {
                Some(p) if providers.iter().any(|x| x == p) => vec![p.to_string()],
                Some(p) => {
                    return Err(not_found(format!(
                        "no OCF provider \"{p}\" under {} (providers: {})",
                        dir.display(),
                        providers.join(", ")
                    )));
                }
                None => providers,
            };
            let mut out = Vec::new();
            for p in chosen {
                let agents = ocf::list_ocf_agents(&root, &p).map_err(|e| {
                    not_found(format!("cannot read {}: {e}", dir.join(&p).display()))
                })?;
                out.extend(agents.into_iter().map(|a| format!("ocf:{p}:{a}")));
            }
            out
        }
        "lsb" => ocf::list_lsb_scripts(Path::new(ocf::LSB_INIT_DIR))
            .map_err(|e| not_found(format!("cannot read {}: {e}", ocf::LSB_INIT_DIR)))?
            .into_iter()
            .map(|n| format!("lsb:{n}"))
            .collect(),
        "systemd" => systemd_units()
            .into_keys()
            .map(|n| format!("systemd:{n}"))
            .collect(),
        "ipaddr" | "filesystem" => vec![class.to_string()],
        _ => {
            return Err(usage(format!(
                "unknown agent class \"{class}\"; classes: {}",
                class_names()
            )));
        }
    };
    for n in names {
        println!("{n}");
    }
    Ok(())
}

fn class_names() -> String {
    CLASSES
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Unit files by name, with the path that wins (first directory first).
/// Templates (`name@.service`) and masked units (links to /dev/null) are
/// left out: neither can be a resource as is.
pub fn systemd_units() -> BTreeMap<String, PathBuf> {
    let mut units = BTreeMap::new();
    for dir in SYSTEMD_UNIT_DIRS {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !UNIT_SUFFIXES.iter().any(|s| name.ends_with(s)) || name.contains("@.") {
                continue;
            }
            let path = e.path();
            if std::fs::canonicalize(&path).is_ok_and(|p| p == Path::new("/dev/null")) {
                continue;
            }
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            units.entry(name).or_insert(path);
        }
    }
    units
}

/// The `Description=` of a unit file's `[Unit]` section.
fn unit_description(text: &str) -> Option<String> {
    let mut in_unit = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_unit = l == "[Unit]";
            continue;
        }
        if in_unit && let Some(v) = l.strip_prefix("Description=") {
            return Some(v.trim().to_string());
        }
    }
    None
}

fn info(agent: &str) -> Result<(), Fail> {
    let info = match agent.split_once(':') {
        None => builtin_info(agent).ok_or_else(|| {
            usage(format!(
                "\"{agent}\" is not an agent: write ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT, ipaddr or filesystem"
            ))
        })?,
        Some(("ocf", rest)) => {
            let Some((provider, kind)) = rest.split_once(':').filter(|(p, k)| {
                !p.is_empty() && !k.is_empty() && !k.contains(':') && !p.contains('/') && !k.contains('/')
            }) else {
                return Err(usage(format!(
                    "\"{agent}\" is not an OCF agent: write ocf:PROVIDER:TYPE, e.g. ocf:heartbeat:IPaddr2"
                )));
            };
            ocf_info(&OcfAgent::new(provider, kind))?
        }
        Some(("lsb", name)) if !name.is_empty() && !name.contains('/') => {
            let a = LsbAgent::new(name);
            let text = std::fs::read(a.path()).map_err(|e| {
                not_found(format!(
                    "{agent} is not installed: cannot read {}: {e} (`hactl ra list lsb` shows the scripts)",
                    a.path().display()
                ))
            })?;
            ocf::parse_lsb_header(name, &String::from_utf8_lossy(&text))
        }
        Some(("systemd", unit)) if !unit.is_empty() && !unit.contains('/') => {
            let name = if UNIT_SUFFIXES.iter().any(|s| unit.ends_with(s)) {
                unit.to_string()
            } else {
                format!("{unit}.service")
            };
            let units = systemd_units();
            let Some(path) = units.get(&name) else {
                return Err(not_found(format!(
                    "{agent}: no unit file {name} in {} (`hactl ra list systemd` shows the units)",
                    SYSTEMD_UNIT_DIRS.join(", ")
                )));
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| not_found(format!("cannot read {}: {e}", path.display())))?;
            AgentInfo {
                name: format!("systemd:{name}"),
                shortdesc: unit_description(&text).unwrap_or_else(|| name.clone()),
                longdesc: format!(
                    "{} ({}). systemd resources take no parameters: configure the unit itself (a drop-in under /etc/systemd/system/{name}.d/).",
                    name,
                    path.display()
                ),
                params: Vec::new(),
                actions: vec![
                    ("start".into(), None),
                    ("stop".into(), None),
                    ("monitor".into(), None),
                ],
            }
        }
        Some((class, _)) => {
            return Err(usage(format!(
                "\"{agent}\" is not an agent name (unknown class \"{class}\" or empty name); classes: {}",
                class_names()
            )));
        }
    };
    print_info(&info);
    Ok(())
}

fn ocf_info(agent: &OcfAgent) -> Result<AgentInfo, Fail> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail(format!("cannot start the runtime: {e}"), 1))?;
    let out = rt.block_on(agent.execute(OpRequest {
        resource: agent.kind.clone(),
        action: AgentAction::MetaData,
        params: BTreeMap::new(),
        timeout: META_DATA_TIMEOUT,
        interval: Duration::ZERO,
        check_level: 0,
    }));
    if out.code != OcfCode::Success {
        return Err(not_found(if out.exit_reason.is_empty() {
            format!("{} meta-data failed: {}", agent.name(), out.code)
        } else {
            out.exit_reason
        }));
    }
    ocf::parse_metadata(&agent.name(), &out.output).map_err(not_found)
}

/// Width of a wrapped parameter description (after its indentation).
const DESC_COLUMNS: usize = 72;

/// `text` with its white space folded into single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` (one line) cut into lines of at most `columns` characters at
/// spaces (a longer word stands alone).
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > columns {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn print_info(info: &AgentInfo) {
    println!("{} - {}", info.name, info.shortdesc.trim());
    let long = info.longdesc.trim();
    if !long.is_empty() && long != info.shortdesc.trim() {
        println!();
        for l in long.lines() {
            // Keep the agent's line breaks, wrap what is longer.
            let wrapped = wrap(&one_line(l), DESC_COLUMNS + 6);
            if wrapped.is_empty() {
                println!();
            }
            for w in wrapped {
                println!("{w}");
            }
        }
    }
    println!();
    if info.params.is_empty() {
        println!("Parameters: none");
    } else {
        println!("Parameters (* required):");
        for p in &info.params {
            let mut head = format!(
                "  {}{} ({}",
                p.name,
                if p.required { " *" } else { "" },
                p.content_type
            );
            if let Some(d) = &p.default {
                head.push_str(&format!(", default \"{d}\""));
            }
            head.push(')');
            println!("{head}");
            // The short description, then the long one when it says more
            // (the built-in agents keep ranges and defaults there).
            let short = one_line(&p.shortdesc);
            let long = one_line(&p.longdesc);
            let long = if long == short { String::new() } else { long };
            for desc in [short, long] {
                for l in wrap(&desc, DESC_COLUMNS) {
                    println!("      {l}");
                }
            }
        }
    }
    if !info.actions.is_empty() {
        println!();
        println!("Actions:");
        for (a, t) in &info.actions {
            match t {
                Some(t) => println!("  {a:<30} timeout {} s", t.as_secs_f64()),
                None => println!("  {a}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_descriptions_come_from_the_unit_section() {
        let unit = "[Unit]\nDescription=Web server\nAfter=network.target\n[Service]\nDescription=not this\n";
        assert_eq!(unit_description(unit).as_deref(), Some("Web server"));
        assert_eq!(unit_description("[Service]\nDescription=x\n"), None);
    }

    #[test]
    fn descriptions_wrap_at_spaces_and_keep_every_word() {
        let text = "one two three four five six seven";
        let lines = wrap(text, 9);
        assert_eq!(lines, ["one two", "three", "four five", "six seven"]);
        assert_eq!(wrap("a-very-long-word x", 4), ["a-very-long-word", "x"]);
        assert!(wrap("", 10).is_empty());
    }
}
