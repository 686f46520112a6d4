//! `hactl generate completions SHELL` and `hactl generate man DIR`, run as
//! a packager does: the bash completion offers every subcommand, and the
//! man pages are hactl.1 plus one page per (visible) subcommand, each a
//! roff page naming its command.

use std::process::Command;

use clap::CommandFactory;

/// The visible subcommands, from the CLI definition itself.
fn subcommands() -> Vec<String> {
    hactl::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn the_bash_completion_offers_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["generate", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("complete -F _hactl"),
        "not a bash completion"
    );
    let subs = subcommands();
    for verb in [
        "status",
        "standby",
        "online",
        "migrate",
        "unmigrate",
        "cleanup",
        "resource",
        "config",
        "fence",
    ] {
        assert!(subs.iter().any(|s| s == verb), "{verb} is not a subcommand");
    }
    // The words offered after `hactl`.
    let top = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("opts=\"-h -V --config"))
        .expect("the top-level word list");
    let words: Vec<&str> = top
        .trim_start_matches("opts=\"")
        .trim_end_matches('"')
        .split(' ')
        .collect();
    for sub in &subs {
        assert!(
            words.contains(&sub.as_str()),
            "the completion does not offer {sub}: {top}"
        );
        assert!(
            script.contains(&format!("hactl,{sub})")),
            "the completion has no case for {sub}'s arguments"
        );
    }
    // Nested verbs and options are there too.
    assert!(
        script.contains("hactl__subcmd__config,apply)"),
        "config apply"
    );
    assert!(script.contains("--lifetime"), "migrate --lifetime");
}

#[test]
fn the_man_pages_are_hactl_1_and_one_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["generate", "man"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = |name: &str| {
        std::fs::read_to_string(out_dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"))
    };
    let main = page("hactl");
    assert!(main.starts_with(".ie \\n(.g .ds Aq"), "roff: {main:.80}");
    assert!(main.contains(".TH hactl 1"), "{main:.200}");
    for sub in subcommands() {
        let p = page(&format!("hactl-{sub}"));
        assert!(p.contains(&format!(".TH hactl-{sub} 1")), "hactl-{sub}.1");
    }
    assert!(page("hactl-config-apply").contains("haclient"));
    assert!(
        page("hactl-fence").contains("\\-\\-timeout"),
        "hactl fence --timeout"
    );
    assert!(!out_dir.join("hactl-generate.1").exists());
}
