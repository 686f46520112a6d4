//! `hactl status` and `hactl quorum`: ask the local hactld over the system
//! bus (org.hactl.Cluster1, see docs/api.md) and render its answer.
//!
//! Exit codes: 0 the daemon answered; 1 it answered with an error, too
//! late, or with something this hactl cannot read; 2 bad usage (clap);
//! 3 hactld is not running on this node (nobody owns the name, or there is
//! no system bus to find it on).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::api::{BUS_NAME, Cluster1ClientProxy, ClusterStatus};
use crate::quorum::QuorumStatus;

/// Exit status when hactld is not running on this node (or there is no
/// system bus).
pub const EXIT_NOT_RUNNING: u8 = 3;
/// How long hactld may take to answer one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// `--watch`: re-render at least this often (link state changes come
/// without a signal).
const WATCH_REFRESH: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct QuorumArgs {
    /// Print the daemon's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the daemon's JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep showing the status, redrawn on every membership or quorum
    /// change (and every 2 s); stop with Ctrl-C.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
}

/// Why a call did not produce an answer.
pub(super) enum Failure {
    /// Exit 3: no system bus, or no owner of the name on it.
    NotRunning(String),
    /// Exit 1.
    Failed(String),
}

impl Failure {
    pub(super) fn report(self) -> ExitCode {
        match self {
            Failure::NotRunning(msg) => {
                eprintln!("hactl: {msg}");
                ExitCode::from(EXIT_NOT_RUNNING)
            }
            Failure::Failed(msg) => {
                eprintln!("hactl: {msg}");
                ExitCode::FAILURE
            }
        }
    }
}

const NOT_RUNNING: &str = "hactld is not running on this node (no owner of org.hactl.Cluster1 on the system bus); start it with systemctl start hactld";

pub(super) async fn connect() -> Result<Cluster1ClientProxy<'static>, Failure> {
    connect_with(CALL_TIMEOUT).await
}

/// [`connect`], with calls that may take up to `method_timeout` (`hactl
/// fence` waits for the devices).
pub(super) async fn connect_with(
    method_timeout: Duration,
) -> Result<Cluster1ClientProxy<'static>, Failure> {
    let built = tokio::time::timeout(
        CALL_TIMEOUT,
        zbus::connection::Builder::system()
            .method_timeout(method_timeout)
            .build(),
    )
    .await;
    let conn = match built {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Err(Failure::NotRunning(format!(
                "cannot connect to the system bus at {} ({e}): {NOT_RUNNING}, and check that dbus is running (systemctl status dbus)",
                crate::api::system_bus_address()
            )));
        }
        Err(_) => {
            return Err(Failure::Failed(format!(
                "the system bus at {} did not answer within {} s; check systemctl status dbus",
                crate::api::system_bus_address(),
                CALL_TIMEOUT.as_secs()
            )));
        }
    };
    Cluster1ClientProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| Failure::Failed(format!("cannot set up a proxy for {BUS_NAME}: {e}")))
}

/// Turns a failed call into what to tell the user.
pub(super) fn call_failure(method: &str, e: zbus::Error) -> Failure {
    use zbus::fdo::Error as Fdo;
    match &e {
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            Fdo::ServiceUnknown(_) | Fdo::NameHasNoOwner(_) => {
                Failure::NotRunning(NOT_RUNNING.to_string())
            }
            Fdo::AccessDenied(m) => Failure::Failed(format!(
                "the system bus refused {BUS_NAME}.{method}: {m}; check that /usr/share/dbus-1/system.d/org.hactl.Cluster1.conf is installed (it allows {method} to everyone)"
            )),
            Fdo::NoReply(_) | Fdo::Timeout(_) => Failure::Failed(format!(
                "hactld did not answer {method} within {} s; check systemctl status hactld and journalctl -u hactld",
                CALL_TIMEOUT.as_secs()
            )),
            other => Failure::Failed(format!("hactld answered {method} with an error: {other}")),
        },
        zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            Failure::Failed(format!(
                "hactld did not answer {method} within {} s; check systemctl status hactld and journalctl -u hactld",
                CALL_TIMEOUT.as_secs()
            ))
        }
        _ => Failure::Failed(format!("calling {BUS_NAME}.{method} failed: {e}")),
    }
}

fn unreadable(method: &str, e: serde_json::Error) -> Failure {
    Failure::Failed(format!(
        "cannot read hactld's answer to {method} ({e}); is hactld the same version as hactl? (hactl --version, hactld --version)"
    ))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the async runtime: {e}")))
}

/// `Status()`, read.
pub(super) async fn fetch_status(
    proxy: &Cluster1ClientProxy<'static>,
) -> Result<ClusterStatus, Failure> {
    let json = proxy
        .status()
        .await
        .map_err(|e| call_failure("Status", e))?;
    serde_json::from_str(&json).map_err(|e| unreadable("Status", e))
}

/// `hactl quorum [--json]`.
pub fn quorum(args: &QuorumArgs) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let proxy = connect().await?;
            proxy.quorum().await.map_err(|e| call_failure("Quorum", e))
        })
    });
    let json = match result {
        Ok(j) => j,
        Err(f) => return f.report(),
    };
    if args.json {
        println!("{}", json.trim_end());
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<QuorumStatus>(&json) {
        Ok(q) => {
            print!("{}", q.render_text());
            ExitCode::SUCCESS
        }
        Err(e) => unreadable("Quorum", e).report(),
    }
}

/// `hactl status [--json] [--watch]`.
pub fn status(args: &StatusArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f.report(),
    };
    let result = rt.block_on(async {
        let proxy = connect().await?;
        if args.watch {
            return watch(&proxy).await;
        }
        let json = proxy
            .status()
            .await
            .map_err(|e| call_failure("Status", e))?;
        if args.json {
            println!("{}", json.trim_end());
        } else {
            let s: ClusterStatus =
                serde_json::from_str(&json).map_err(|e| unreadable("Status", e))?;
            print!("{}", super::show::status_text(&s));
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

/// Redraws the status on every signal and every [`WATCH_REFRESH`]; a
/// daemon that goes away is shown, not fatal (it may be restarting).
async fn watch(proxy: &Cluster1ClientProxy<'static>) -> Result<(), Failure> {
    use futures_lite_shim::next;
    use std::io::IsTerminal;
    let mut membership = proxy
        .receive_membership_changed()
        .await
        .map_err(|e| call_failure("MembershipChanged", e))?;
    let mut quorum = proxy
        .receive_quorum_changed()
        .await
        .map_err(|e| call_failure("QuorumChanged", e))?;
    let tty = std::io::stdout().is_terminal();
    loop {
        let text = match proxy.status().await {
            Ok(json) => match serde_json::from_str::<ClusterStatus>(&json) {
                Ok(s) => super::show::status_text(&s),
                Err(e) => return Err(unreadable("Status", e)),
            },
            Err(e) => match call_failure("Status", e) {
                Failure::NotRunning(m) | Failure::Failed(m) => format!("{m}\n"),
            },
        };
        if tty {
            // Clear the screen and go home, as watch(1) does.
            print!("\x1b[H\x1b[2J");
        } else {
            println!("----");
        }
        print!("{text}");
        tokio::select! {
            _ = next(&mut membership) => {}
            _ = next(&mut quorum) => {}
            _ = tokio::time::sleep(WATCH_REFRESH) => {}
        }
    }
}

/// The one stream combinator `--watch` needs, without a new dependency.
mod futures_lite_shim {
    use std::future::poll_fn;
    use std::pin::Pin;

    pub async fn next<S: zbus::export::futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}
