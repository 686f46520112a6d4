//! `hactl ra classes|list|info` against the agents really installed here
//! (resource-agents' OCF agents, dbus's init script and unit, all from
//! scripts/setup.sh) and against a private OCF root given by OCF_ROOT.
//! No daemon runs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const HACTL: &str = env!("CARGO_BIN_EXE_hactl");

fn hactl(args: &[&str]) -> Output {
    Command::new(HACTL)
        .args(args)
        .env_remove("OCF_ROOT")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install {package} (scripts/setup.sh does)"
    );
}

#[test]
fn classes_are_systemd_ocf_lsb_and_the_built_ins() {
    let (out, _, code) = text(&hactl(&["ra", "classes"]));
    assert_eq!(code, 0);
    let classes: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(classes, ["systemd", "ocf", "lsb", "ipaddr", "filesystem"]);
}

#[test]
fn list_ocf_shows_the_installed_agents_by_provider() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy", "resource-agents");
    let (out, _, code) = text(&hactl(&["ra", "list", "ocf", "heartbeat"]));
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"ocf:heartbeat:Dummy"), "{out}");
    assert!(lines.contains(&"ocf:heartbeat:IPaddr2"), "{out}");
    assert!(lines.iter().all(|l| l.starts_with("ocf:heartbeat:")));
    // As many as the directory holds executable files.
    let on_disk = std::fs::read_dir("/usr/lib/ocf/resource.d/heartbeat")
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| {
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .count();
    assert_eq!(lines.len(), on_disk);
    let (all, _, code) = text(&hactl(&["ra", "list", "ocf"]));
    assert_eq!(code, 0);
    assert!(all.lines().count() >= lines.len());
    assert!(all.contains("ocf:heartbeat:Dummy\n"));
}

#[test]
fn list_ocf_follows_ocf_root_and_skips_what_cannot_run() {
    let root = tempfile::tempdir().unwrap();
    let p = root.path().join("resource.d/acme");
    std::fs::create_dir_all(&p).unwrap();
    for (name, mode) in [("App", 0o755), ("README", 0o644), (".hidden", 0o755)] {
        std::fs::write(p.join(name), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = Command::new(HACTL)
        .args(["ra", "list", "ocf"])
        .env("OCF_ROOT", root.path())
        .output()
        .unwrap();
    let (out, err, code) = text(&o);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ocf:acme:App\n");
}

#[test]
fn list_lsb_and_systemd_read_the_disk() {
    require("/etc/init.d/dbus", "dbus");
    let (out, _, code) = text(&hactl(&["ra", "list", "lsb"]));
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "lsb:dbus"), "{out}");
    for l in out.lines() {
        let name = l.strip_prefix("lsb:").unwrap();
        assert!(Path::new("/etc/init.d").join(name).is_file(), "{l}");
    }
    let (out, _, code) = text(&hactl(&["ra", "list", "systemd"]));
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "systemd:dbus.service"), "{out}");
    assert!(
        !out.contains("@."),
        "templates cannot be resources as they are"
    );
}

#[test]
fn info_ocf_shows_the_meta_data_parameters() {
    require(
        "/usr/lib/ocf/resource.d/heartbeat/IPaddr2",
        "resource-agents",
    );
    let (out, err, code) = text(&hactl(&["ra", "info", "ocf:heartbeat:Dummy"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ocf:heartbeat:Dummy - "), "{out}");
    assert!(out.contains("\n  state (string, default \""), "{out}");
    assert!(out.contains("\n  start "), "{out}");
    let (out, err, code) = text(&hactl(&["ra", "info", "ocf:heartbeat:IPaddr2"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\n  ip * (string)"), "{out}");
    assert!(out.contains("\n  cidr_netmask (string)"), "{out}");
}

#[test]
fn info_lsb_and_systemd_show_their_descriptions() {
    require("/etc/init.d/dbus", "dbus");
    require("/lib/systemd/system/dbus.service", "dbus");
    let header = std::fs::read_to_string("/etc/init.d/dbus").unwrap();
    let short = header
        .lines()
        .find_map(|l| l.strip_prefix("# Short-Description:"))
        .unwrap()
        .trim()
        .to_string();
    let (out, _, code) = text(&hactl(&["ra", "info", "lsb:dbus"]));
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("lsb:dbus - {short}\n")), "{out}");
    assert!(out.contains("Parameters: none"));

    let unit = std::fs::read_to_string("/lib/systemd/system/dbus.service").unwrap();
    let desc = unit
        .lines()
        .find_map(|l| l.strip_prefix("Description="))
        .unwrap()
        .trim()
        .to_string();
    for name in ["systemd:dbus.service", "systemd:dbus"] {
        let (out, _, code) = text(&hactl(&["ra", "info", name]));
        assert_eq!(code, 0);
        assert!(
            out.starts_with(&format!("systemd:dbus.service - {desc}\n")),
            "{out}"
        );
        // Descriptions are wrapped: compare with white space folded.
        let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(folded.contains("take no parameters"), "{out}");
    }
}

#[test]
fn info_of_the_built_ins_lists_every_parameter() {
    for (agent, params) in [
        ("ipaddr", hactl::config::IPADDR_PARAMS),
        ("filesystem", hactl::config::FILESYSTEM_PARAMS),
    ] {
        let (out, _, code) = text(&hactl(&["ra", "info", agent]));
        assert_eq!(code, 0);
        for (p, required) in params {
            let head = format!("\n  {p}{} (", if *required { " *" } else { "" });
            assert!(out.contains(&head), "{agent}: no {head:?} in\n{out}");
        }
    }
}

#[test]
fn errors_say_what_is_missing_with_exit_codes_1_and_2() {
    let (_, err, code) = text(&hactl(&["ra", "info", "ocf:heartbeat:NoSuchAgent"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("/usr/lib/ocf/resource.d/heartbeat/NoSuchAgent not found"),
        "{err}"
    );
    let (_, err, code) = text(&hactl(&["ra", "info", "lsb:no-such-script"]));
    assert_eq!(code, 1);
    assert!(err.contains("/etc/init.d/no-such-script"), "{err}");
    let (_, err, code) = text(&hactl(&["ra", "info", "systemd:no-such-unit"]));
    assert_eq!(code, 1);
    assert!(err.contains("no unit file no-such-unit.service"), "{err}");
    let (_, err, code) = text(&hactl(&["ra", "list", "ocf", "no-such-provider"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("no OCF provider \"no-such-provider\""),
        "{err}"
    );

    let (_, err, code) = text(&hactl(&["ra", "info", "nonsense"]));
    assert_eq!(code, 2);
    assert!(err.contains("is not an agent"), "{err}");
    let (_, err, code) = text(&hactl(&["ra", "info", "ocf:heartbeat"]));
    assert_eq!(code, 2);
    assert!(err.contains("ocf:PROVIDER:TYPE"), "{err}");
    let (_, err, code) = text(&hactl(&["ra", "list", "nonsense"]));
    assert_eq!(code, 2);
    assert!(err.contains("unknown agent class \"nonsense\""), "{err}");
    let (_, _, code) = text(&hactl(&["ra", "list"]));
    assert_eq!(code, 2, "clap's usage error");
}

#[test]
fn info_of_an_agent_whose_meta_data_fails_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let p = root.path().join("resource.d/acme");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("Broken"),
        "#!/bin/sh\necho 'ocf-exit-reason:cannot describe myself' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(p.join("Broken"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(p.join("Garbled"), "#!/bin/sh\necho '<not-xml'\nexit 0\n").unwrap();
    std::fs::set_permissions(p.join("Garbled"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (agent, want) in [
        ("ocf:acme:Broken", "cannot describe myself"),
        ("ocf:acme:Garbled", "meta-data is not valid XML"),
    ] {
        let o = Command::new(HACTL)
            .args(["ra", "info", agent])
            .env("OCF_ROOT", root.path())
            .output()
            .unwrap();
        let (_, err, code) = text(&o);
        assert_eq!(code, 1, "{agent}");
        assert!(err.contains(want), "{agent}: {err}");
    }
}

/// What a built-in agent's own `meta-data` action prints, parsed.
fn meta_data_of(agent: &dyn hactl::agents::ResourceAgent) -> hactl::agents::AgentInfo {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(agent.execute(hactl::agents::OpRequest {
        resource: "r".into(),
        action: hactl::agents::AgentAction::MetaData,
        params: Default::default(),
        timeout: std::time::Duration::from_secs(5),
        interval: std::time::Duration::ZERO,
        check_level: 0,
    }));
    assert_eq!(out.code, hactl::agents::OcfCode::Success, "{out:?}");
    hactl::agents::ocf::parse_metadata(&agent.name(), &out.output).unwrap()
}

#[test]
fn ra_info_and_the_meta_data_action_of_the_built_ins_agree() {
    use hactl::agents::{filesystem::FilesystemAgent, ipaddr::IpAddrAgent};
    let agents: [(&str, Box<dyn hactl::agents::ResourceAgent>); 2] = [
        ("ipaddr", Box::new(IpAddrAgent::new("r"))),
        ("filesystem", Box::new(FilesystemAgent::new("r"))),
    ];
    for (name, agent) in agents {
        let meta = meta_data_of(agent.as_ref());
        // One source: the table `hactl ra info` uses is what meta-data says.
        let table = hactl::agents::builtin_info(name).unwrap();
        assert_eq!(meta.params, table.params, "{name}");
        assert_eq!(meta.actions, table.actions, "{name}");
        assert_eq!(meta.shortdesc, table.shortdesc, "{name}");
        // And the command shows it: every parameter with its type, its
        // default and its description, every action with its timeout.
        let (out, err, code) = text(&hactl(&["ra", "info", name]));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("{name} - {}\n", meta.shortdesc)),
            "{out}"
        );
        let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
        for p in &meta.params {
            let mut head = format!(
                "{}{} ({}",
                p.name,
                if p.required { " *" } else { "" },
                p.content_type
            );
            if let Some(d) = &p.default {
                head.push_str(&format!(", default \"{d}\""));
            }
            let shown = format!(
                "{head}) {} {}",
                p.shortdesc.split_whitespace().collect::<Vec<_>>().join(" "),
                p.longdesc.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            assert!(folded.contains(&shown), "{name}: no {shown:?} in\n{out}");
        }
        for (a, t) in &meta.actions {
            let t = t.expect("built-in actions have timeouts").as_secs_f64();
            let line = format!("{a} timeout {t} s");
            assert!(folded.contains(&line), "{name}: no {line:?} in\n{out}");
        }
    }
}
