//! `filesystem`: a mount, through mount(2) and umount(2) (nix).
//!
//! Parameters (see [`info`]): `device` (a block device path, `LABEL=...`,
//! `UUID=...`, NFS `host:/export`, a directory for bind mounts, or a name
//! such as `tmpfs` for virtual filesystems), `directory`, `fstype`,
//! `options` (mount(8)'s comma-separated options: the common flags become
//! mount flags, as mount(8) does, the rest go to the filesystem as data),
//! `force_unmount`, `create_directory`.
//!
//! - `LABEL=` and `UUID=` are found through `/dev/disk/by-label|by-uuid`
//!   when udev made them, else through `blkid -L` / `blkid -U` (util-linux),
//!   which also serves containers without `/dev/disk`.
//! - `start` is idempotent (the device already mounted on the directory is
//!   success) and refuses a block device that is mounted somewhere else,
//!   naming both paths; it makes a missing directory only with
//!   `create_directory = true`.
//! - `stop` unmounts; when the mount is busy and `force_unmount = true`, it
//!   sends SIGTERM to the processes that hold files below the mount point
//!   (open files, working directory, root, executable, mapped files), waits,
//!   then SIGKILLs those left, never itself nor PID 1. Without it, a busy
//!   mount fails the stop with the holders named. Stopping an unmounted
//!   filesystem succeeds.
//! - `monitor` reads `/proc/self/mountinfo` ([`OcfCode::NotRunning`] when
//!   the device is not mounted on the directory, [`OcfCode::ErrGeneric`] when
//!   a read-write mount turned read-only); `check_level` 10 also reads the
//!   directory and, for block devices, a block of the device past the page
//!   cache (O_DIRECT); 20 also writes, syncs, reads back and removes a small
//!   file in the mount.
//! - `watch` waits for mount table changes (POLLPRI on mountinfo) and, while
//!   the resource is started, reports an unmount or a read-only turn behind
//!   hactl's back as a [`Notice`] at once.
//!
//! Every blocking call runs on tokio's blocking pool under the operation's
//! timeout, so a hung NFS server ends the operation with an error in time
//! (the hung call itself stays behind in the kernel, as with any program).
//! No fsck runs before mounting.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::AbortHandle;

use super::{
    AgentAction, AgentFuture, AgentInfo, NoticeSender, OcfCode, OpOutcome, OpRequest, ParamInfo,
    ResourceAgent, WatchFuture,
};

/// How long processes get between SIGTERM and SIGKILL on a forced unmount
/// (capped by what is left of the stop's timeout).
pub const FORCE_TERM_WAIT_MS: u64 = 5_000;
/// How long `blkid` may take to find a label or UUID.
const BLKID_TIMEOUT_MS: u64 = 10_000;
/// When blkid finds no device with the label or UUID, ask this many times
/// more, this long apart, before saying there is none.
const BLKID_RETRIES: u32 = 4;
const BLKID_RETRY_MS: u64 = 250;
/// Unmount attempts on a busy mount after killing its users (a process may
/// take a moment to release its files after it died).
const UMOUNT_ATTEMPTS_MAX: u32 = 10;
/// Stacked mounts of the same filesystem on the directory that one stop
/// takes off.
const STACKED_MOUNTS_MAX: u32 = 16;
/// Holders named in a busy-unmount failure.
const HOLDERS_NAMED_MAX: usize = 5;
/// How long the check after a mount change may take.
const WATCH_CHECK_TIMEOUT_MS: u64 = 20_000;
/// Bytes read from the device by a check_level 10 monitor.
const CHECK_READ_BYTES: usize = 4096;

/// The `filesystem` agent for one resource.
pub struct FilesystemAgent {
    resource: String,
    /// The parameters of the last successful start, until the next stop or
    /// start: what [`ResourceAgent::watch`] holds mount changes against.
    started: Arc<Mutex<Option<BTreeMap<String, String>>>>,
    watcher: Mutex<Option<AbortHandle>>,
}

impl FilesystemAgent {
    pub fn new(resource: &str) -> FilesystemAgent {
        FilesystemAgent {
            resource: resource.to_string(),
            started: Arc::new(Mutex::new(None)),
            watcher: Mutex::new(None),
        }
    }
}

impl Drop for FilesystemAgent {
    fn drop(&mut self) {
        if let Some(h) = self.watcher.lock().unwrap().take() {
            h.abort();
        }
    }
}

impl ResourceAgent for FilesystemAgent {
    fn name(&self) -> String {
        "filesystem".to_string()
    }

    fn execute(&self, req: OpRequest) -> AgentFuture<'_> {
        Box::pin(async move {
            let action = req.action;
            if action == AgentAction::MetaData {
                let mut o = OpOutcome::ok();
                o.output = super::metadata::to_xml(&info());
                return o;
            }
            let params = req.params.clone();
            if matches!(action, AgentAction::Start | AgentAction::Stop) {
                // From here on, mount changes are hactl's own.
                *self.started.lock().unwrap() = None;
            }
            let timeout = req.timeout;
            let deadline = Instant::now() + timeout;
            let resource = self.resource.clone();
            let work = tokio::task::spawn_blocking(move || run(&resource, &req, deadline));
            let outcome = match tokio::time::timeout(timeout, work).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!("filesystem {action} of \"{}\" panicked: {e}", self.resource),
                ),
                Err(_) => OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!(
                        "filesystem {action} of \"{}\" did not finish within {} ms (a hung \
                         device or NFS server?)",
                        self.resource,
                        timeout.as_millis()
                    ),
                ),
            };
            if action == AgentAction::Start && outcome.code == OcfCode::Success {
                *self.started.lock().unwrap() = Some(params);
            }
            outcome
        })
    }

    /// Waits for changes of the mount table (the kernel signals them on
    /// `/proc/self/mountinfo` with POLLPRI) and, while the resource is
    /// started, checks the mount after each: unmounted behind hactl's back,
    /// or turned read-only, is noticed at once. One notice per change of
    /// verdict.
    fn watch(&self, resource: &str, notices: NoticeSender) -> WatchFuture<'_> {
        let resource = resource.to_string();
        Box::pin(async move {
            let file = fs::File::open("/proc/self/mountinfo").map_err(|e| {
                format!("filesystem {resource}: cannot open /proc/self/mountinfo: {e}")
            })?;
            // SAFETY: the file owns its descriptor and moves into the
            // AsyncFd, which alone holds it until dropped.
            let changes = unsafe {
                AsyncFd::register_with_interest(file, Interest::PRIORITY | Interest::ERROR)
            }
            .map_err(|e| {
                format!(
                    "filesystem {resource}: cannot wait for mount changes: {}",
                    e.into_parts().1
                )
            })?;
            let started = Arc::clone(&self.started);
            let task = tokio::spawn(async move {
                let mut reported: Option<OcfCode> = None;
                loop {
                    let Ok(mut ready) = changes.ready(Interest::PRIORITY | Interest::ERROR).await
                    else {
                        return;
                    };
                    ready.clear_ready();
                    let Some(params) = started.lock().unwrap().clone() else {
                        reported = None;
                        continue;
                    };
                    let r = resource.clone();
                    let check = tokio::task::spawn_blocking(move || {
                        let req = OpRequest {
                            resource: r.clone(),
                            action: AgentAction::Monitor,
                            params,
                            timeout: Duration::from_millis(WATCH_CHECK_TIMEOUT_MS),
                            interval: Duration::ZERO,
                            check_level: 0,
                        };
                        let deadline = Instant::now() + req.timeout;
                        run(&r, &req, deadline)
                    });
                    let Ok(Ok(verdict)) =
                        tokio::time::timeout(Duration::from_millis(WATCH_CHECK_TIMEOUT_MS), check)
                            .await
                    else {
                        continue;
                    };
                    // A stop or start may have begun during the check.
                    if started.lock().unwrap().is_none() {
                        reported = None;
                        continue;
                    }
                    if !super::notice_on_change(&mut reported, &resource, verdict, &notices) {
                        return;
                    }
                }
            });
            if let Some(old) = self.watcher.lock().unwrap().replace(task.abort_handle()) {
                old.abort();
            }
            Ok(true)
        })
    }
}

/// What `hactl ra info filesystem` shows.
pub fn info() -> AgentInfo {
    let p = |name: &str, required, ty: &str, default: Option<&str>, short: &str, long: &str| {
        ParamInfo {
            name: name.into(),
            required,
            content_type: ty.into(),
            default: default.map(Into::into),
            shortdesc: short.into(),
            longdesc: long.into(),
        }
    };
    AgentInfo {
        name: "filesystem".into(),
        shortdesc: "A mounted filesystem".into(),
        longdesc: "Mounts a block device, a labelled filesystem, an NFS export, a bind \
                   mount or a virtual filesystem on a directory on start (refusing a \
                   double mount), unmounts it on stop (killing the users of the mount \
                   point first when force_unmount is set), and checks on monitor that it \
                   is mounted (/proc/self/mountinfo)."
            .into(),
        params: vec![
            p(
                "device",
                true,
                "string",
                None,
                "What to mount",
                "/dev/..., LABEL=..., UUID=..., host:/export (NFS), a directory (with \
                 options = \"bind\"), or tmpfs and the like.",
            ),
            p(
                "directory",
                true,
                "string",
                None,
                "Mount point",
                "An absolute path.",
            ),
            p(
                "fstype",
                true,
                "string",
                None,
                "Filesystem type",
                "ext4, xfs, nfs, nfs4, tmpfs, none (bind mounts), ...",
            ),
            p(
                "options",
                false,
                "string",
                None,
                "Mount options",
                "Comma-separated, as mount -o takes them: ro, rw, noatime, nodev, nosuid, \
                 noexec, sync, relatime, bind, ... become mount flags; the others go to \
                 the filesystem.",
            ),
            p(
                "force_unmount",
                false,
                "boolean",
                Some("false"),
                "Kill users on stop",
                "When the mount is busy on stop: SIGTERM the processes using it, then \
                 SIGKILL those left after 5 s.",
            ),
            p(
                "create_directory",
                false,
                "boolean",
                Some("false"),
                "Create the mount point",
                "Create the directory (and its parents) on start when it is missing.",
            ),
        ],
        actions: vec![
            ("start".into(), Some(Duration::from_secs(60))),
            ("stop".into(), Some(Duration::from_secs(60))),
            ("monitor".into(), Some(Duration::from_secs(40))),
            ("validate-all".into(), Some(Duration::from_secs(20))),
            ("meta-data".into(), Some(Duration::from_secs(5))),
        ],
    }
}

// ---------------------------------------------------------------- parameters

/// What `device` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Device {
    /// An absolute path: a block device, or a directory for a bind mount.
    Path(PathBuf),
    Label(String),
    Uuid(String),
    /// `host:/export`; `host` without the brackets of an IPv6 literal.
    Nfs {
        host: String,
        export: String,
    },
    /// A source name that is not a path (tmpfs, proc, none, ...).
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub device: Device,
    /// The device as configured, for messages.
    pub device_text: String,
    pub directory: PathBuf,
    pub fstype: String,
    pub options: MountOptions,
    pub force_unmount: bool,
    pub create_directory: bool,
}

pub(crate) fn parse_params(p: &BTreeMap<String, String>) -> Result<Params, String> {
    let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let device_text = get("device")
        .ok_or("the parameter device is missing: set device = \"/dev/...\" (or LABEL=, UUID=, host:/export)")?
        .to_string();
    let dir = get("directory")
        .ok_or("the parameter directory is missing: set directory = \"/srv/...\"")?;
    if !dir.starts_with('/') {
        return Err(format!("directory \"{dir}\" is not an absolute path"));
    }
    let directory = PathBuf::from(normalize(dir));
    if directory == Path::new("/") {
        return Err("directory \"/\": the root filesystem cannot be a resource".into());
    }
    let fstype = get("fstype")
        .ok_or("the parameter fstype is missing: set fstype = \"ext4\" (or xfs, nfs, tmpfs, ...)")?
        .to_string();
    let is_nfs = fstype == "nfs" || fstype == "nfs4";
    let device = parse_device(&device_text, is_nfs)?;
    let options = parse_options(get("options").unwrap_or(""))?;
    let boolean = |k: &str| match get(k) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(format!("{k} \"{v}\" is not true or false")),
    };
    Ok(Params {
        device,
        device_text,
        directory,
        fstype,
        options,
        force_unmount: boolean("force_unmount")?,
        create_directory: boolean("create_directory")?,
    })
}

fn parse_device(d: &str, is_nfs: bool) -> Result<Device, String> {
    if let Some(l) = d.strip_prefix("LABEL=") {
        let l = l.trim_matches('"');
        return if l.is_empty() {
            Err("device LABEL= names no label".into())
        } else {
            Ok(Device::Label(l.to_string()))
        };
    }
    if let Some(u) = d.strip_prefix("UUID=") {
        let u = u.trim_matches('"');
        return if u.is_empty() || !u.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            Err(format!("device \"{d}\": \"{u}\" is not a filesystem UUID"))
        } else {
            Ok(Device::Uuid(u.to_ascii_lowercase()))
        };
    }
    if is_nfs {
        // host:/export, [v6addr]:/export
        let (host, export) = if let Some(rest) = d.strip_prefix('[') {
            let (h, e) = rest
                .split_once("]:")
                .ok_or_else(|| format!("device \"{d}\" is not [address]:/export"))?;
            (h, e)
        } else {
            d.split_once(':')
                .ok_or_else(|| format!("device \"{d}\" is not host:/export, as NFS needs"))?
        };
        if host.is_empty() || !export.starts_with('/') {
            return Err(format!("device \"{d}\" is not host:/export, as NFS needs"));
        }
        return Ok(Device::Nfs {
            host: host.to_string(),
            export: export.to_string(),
        });
    }
    if d.starts_with('/') {
        return Ok(Device::Path(PathBuf::from(normalize(d))));
    }
    if d.contains(['/', ':']) {
        return Err(format!(
            "device \"{d}\" is neither a path, LABEL=, UUID= nor a filesystem name (for NFS, set \
             fstype = \"nfs\" or \"nfs4\")"
        ));
    }
    Ok(Device::Name(d.to_string()))
}

/// `/a//b/` → `/a/b`.
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Mount options split as mount(8) splits them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountOptions {
    pub flags: MsFlags,
    /// Options for the filesystem itself (`size=64m`, `errors=remount-ro`).
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn read_only(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
}

/// Options that set or clear mount flags.
const FLAG_OPTIONS: &[(&str, bool, MsFlags)] = &[
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("suid", false, MsFlags::MS_NOSUID),
    ("nodev", true, MsFlags::MS_NODEV),
    ("dev", false, MsFlags::MS_NODEV),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("atime", false, MsFlags::MS_NOATIME),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("lazytime", true, MsFlags::MS_LAZYTIME),
    ("nolazytime", false, MsFlags::MS_LAZYTIME),
    ("silent", true, MsFlags::MS_SILENT),
    ("loud", false, MsFlags::MS_SILENT),
    ("bind", true, MsFlags::MS_BIND),
];

/// Options for mount(8) and fstab only, which the kernel never sees.
const USERSPACE_OPTIONS: &[&str] = &[
    "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
];

pub(crate) fn parse_options(s: &str) -> Result<MountOptions, String> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if let Some((_, set, flag)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            if *set {
                flags.insert(*flag);
            } else {
                flags.remove(*flag);
            }
        } else if opt == "rbind" {
            flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
        } else if USERSPACE_OPTIONS.contains(&opt)
            || opt.starts_with("x-")
            || opt.starts_with("comment=")
        {
        } else if opt == "loop" || opt.starts_with("loop=") {
            return Err(
                "option loop is not supported: attach the image with losetup and name the loop \
                 device as device"
                    .into(),
            );
        } else if opt == "remount" || opt == "move" {
            return Err(format!("option {opt} is not a way to mount a resource"));
        } else {
            data.push(opt.to_string());
        }
    }
    Ok(MountOptions { flags, data })
}

/// The data string for mount(2): the filesystem's options, plus, for NFS,
/// the server's address (the kernel takes no host names; mount.nfs adds
/// the same option).
pub(crate) fn mount_data(p: &Params, nfs_addr: Option<std::net::IpAddr>) -> String {
    let mut data = p.options.data.clone();
    if let Some(a) = nfs_addr
        && !data.iter().any(|d| d.starts_with("addr="))
    {
        data.push(format!("addr={a}"));
    }
    if p.fstype == "nfs4" && !data.iter().any(|d| d.starts_with("vers=")) {
        data.push("vers=4".into());
    }
    data.join(",")
}

// ---------------------------------------------------------------- mountinfo

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    /// Per-mount options (ro, nosuid, ...).
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    pub fn read_only(&self) -> bool {
        let has_ro = |s: &str| s.split(',').any(|o| o == "ro");
        has_ro(&self.options) || has_ro(&self.super_options)
    }
}

/// Parses mountinfo (proc(5)); lines that do not parse are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            let (major, minor) = l[2].split_once(':')?;
            Some(MountEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                mount_point: PathBuf::from(unescape(l[4])),
                options: l[5].to_string(),
                fstype: unescape(r[0]),
                source: unescape(r[1]),
                super_options: r[2].to_string(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_mounts() -> Result<Vec<MountEntry>, OpOutcome> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .map_err(|e| {
            OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("cannot read /proc/self/mountinfo: {e} (is /proc mounted?)"),
            )
        })
}

// ---------------------------------------------------------------- devices

/// The device as found on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    /// A block device: its path and device number.
    Block { path: PathBuf, rdev: (u32, u32) },
    /// A directory to bind.
    Dir(PathBuf),
    /// NFS: `host:/export` as the kernel shows the source.
    Nfs(String),
    /// A virtual filesystem: no identity beyond its type.
    Virtual(String),
}

impl Resolved {
    fn source(&self) -> String {
        match self {
            Resolved::Block { path, .. } | Resolved::Dir(path) => path.display().to_string(),
            Resolved::Nfs(s) | Resolved::Virtual(s) => s.clone(),
        }
    }

    /// Whether a mount entry is this device mounted as configured.
    fn is(&self, e: &MountEntry, p: &Params) -> bool {
        match self {
            Resolved::Block { path, rdev } => {
                (e.major, e.minor) == *rdev
                    || Path::new(&e.source) == path
                    || fs::canonicalize(&e.source).is_ok_and(|s| &s == path)
            }
            // A bind mount shows the source filesystem's type and device:
            // the directory itself is not in mountinfo, so the type decides.
            Resolved::Dir(_) => p.options.bind(),
            Resolved::Nfs(s) => {
                e.source.trim_end_matches('/') == s.trim_end_matches('/')
                    && e.fstype.starts_with("nfs")
            }
            Resolved::Virtual(_) => e.fstype == p.fstype,
        }
    }
}

fn resolve(p: &Params, deadline: Instant) -> Result<Resolved, OpOutcome> {
    let path = match &p.device {
        Device::Name(n) => return Ok(Resolved::Virtual(n.clone())),
        Device::Nfs { host, export } => {
            let src = if host.contains(':') {
                format!("[{host}]:{export}")
            } else {
                format!("{host}:{export}")
            };
            return Ok(Resolved::Nfs(src));
        }
        Device::Path(path) => path.clone(),
        Device::Label(l) => by_tag("LABEL", l, "by-label", "-L", deadline)?,
        Device::Uuid(u) => by_tag("UUID", u, "by-uuid", "-U", deadline)?,
    };
    let meta = fs::metadata(&path).map_err(|e| {
        OpOutcome::fail(
            OcfCode::ErrInstalled,
            format!(
                "device {} does not exist on this node ({e}): check that the disk is attached",
                path.display()
            ),
        )
    })?;
    if meta.file_type().is_block_device() {
        let rdev = meta.rdev();
        let canonical = fs::canonicalize(&path).unwrap_or(path);
        Ok(Resolved::Block {
            path: canonical,
            rdev: (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            ),
        })
    } else if meta.is_dir() && p.options.bind() {
        Ok(Resolved::Dir(path))
    } else {
        Err(OpOutcome::fail(
            OcfCode::ErrConfigured,
            format!(
                "device {} is not a block device{}",
                path.display(),
                if meta.is_dir() {
                    " (a directory: add options = \"bind\" to bind-mount it)"
                } else {
                    " (an image file: attach it with losetup and name the loop device)"
                }
            ),
        ))
    }
}

/// Finds LABEL=/UUID= through udev's links, else through blkid.
fn by_tag(
    tag: &str,
    value: &str,
    udev_dir: &str,
    blkid_flag: &str,
    deadline: Instant,
) -> Result<PathBuf, OpOutcome> {
    let link = Path::new("/dev/disk").join(udev_dir).join(value);
    // A device that just appeared may not be found at once (seen in CI
    // under load: a loop device made a moment before); ask again a few
    // times before saying there is none.
    let mut out = String::new();
    for attempt in 0..=BLKID_RETRIES {
        if let Ok(p) = fs::canonicalize(&link) {
            return Ok(p);
        }
        out = run_program(
            // Without blkid's cache file: it can miss a device that was just
            // made while other blkid processes rewrite the cache (seen in CI,
            // with tests making loop devices in parallel); a probe of every
            // device is cheap on an appliance.
            Command::new("blkid").args(["-c", "/dev/null", blkid_flag, value]),
            Duration::from_millis(BLKID_TIMEOUT_MS)
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .map_err(|e| {
            OpOutcome::fail(
                OcfCode::ErrInstalled,
                format!("cannot look up {tag}={value}: blkid: {e} (install util-linux)"),
            )
        })?;
        let retry = Duration::from_millis(BLKID_RETRY_MS);
        if out.trim().starts_with('/')
            || attempt == BLKID_RETRIES
            || Instant::now() + retry >= deadline
        {
            break;
        }
        std::thread::sleep(retry);
    }
    let dev = out.trim();
    if dev.is_empty() || !dev.starts_with('/') {
        return Err(OpOutcome::fail(
            OcfCode::ErrInstalled,
            format!(
                "no device with {tag}={value} on this node (neither {} nor `blkid {blkid_flag} \
                 {value}` found one): check that the disk is attached",
                link.display()
            ),
        ));
    }
    Ok(PathBuf::from(dev))
}

/// Runs a program to its end or kills it at `limit`; its stdout, or an
/// error. A non-zero exit with empty output is an empty answer (blkid's
/// "not found").
fn run_program(cmd: &mut Command, limit: Duration) -> io::Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let end = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let mut s = String::new();
            child.stdout.take().expect("piped").read_to_string(&mut s)?;
            return Ok(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} ms", limit.as_millis()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- operations

fn run(resource: &str, req: &OpRequest, deadline: Instant) -> OpOutcome {
    let params = match parse_params(&req.params) {
        Ok(p) => p,
        // What cannot be parsed was never mounted by this agent; a failed
        // stop would get the node fenced.
        Err(_) if req.action == AgentAction::Stop => return OpOutcome::ok(),
        Err(e) => return OpOutcome::fail(OcfCode::ErrConfigured, e),
    };
    match req.action {
        AgentAction::Start => start(&params, deadline),
        AgentAction::Stop => stop(&params, deadline),
        AgentAction::Monitor => monitor(resource, &params, req.check_level, deadline),
        AgentAction::ValidateAll => match resolve(&params, deadline) {
            Ok(_) => {
                if !params.directory.is_dir() && !params.create_directory {
                    missing_directory(&params)
                } else {
                    OpOutcome::ok()
                }
            }
            Err(o) => o,
        },
        AgentAction::Promote | AgentAction::Demote => OpOutcome::fail(
            OcfCode::ErrUnimplemented,
            format!("filesystem has no {} action", req.action),
        ),
        AgentAction::MetaData => unreachable!("answered before"),
    }
}

fn missing_directory(p: &Params) -> OpOutcome {
    OpOutcome::fail(
        OcfCode::ErrInstalled,
        format!(
            "mount point {} does not exist on this node: create it, or set create_directory = true",
            p.directory.display()
        ),
    )
}

/// The directory as mountinfo shows it (symbolic links resolved).
fn mount_point(p: &Params) -> PathBuf {
    fs::canonicalize(&p.directory).unwrap_or_else(|_| p.directory.clone())
}

/// The topmost mount on `dir`.
fn top_mount<'a>(mounts: &'a [MountEntry], dir: &Path) -> Option<&'a MountEntry> {
    mounts.iter().rev().find(|m| m.mount_point == dir)
}

fn start(p: &Params, deadline: Instant) -> OpOutcome {
    match fs::metadata(&p.directory) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return OpOutcome::fail(
                OcfCode::ErrInstalled,
                format!("mount point {} is not a directory", p.directory.display()),
            );
        }
        Err(_) if p.create_directory => {
            if let Err(e) = fs::create_dir_all(&p.directory) {
                return OpOutcome::fail(
                    OcfCode::ErrGeneric,
                    format!("cannot create mount point {}: {e}", p.directory.display()),
                );
            }
        }
        Err(_) => return missing_directory(p),
    }
    let dev = match resolve(p, deadline) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let mounts = match read_mounts() {
        Ok(m) => m,
        Err(o) => return o,
    };
    let dir = mount_point(p);
    if let Some(top) = top_mount(&mounts, &dir) {
        if dev.is(top, p) {
            return OpOutcome::ok();
        }
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{} already has {} ({}) mounted on it, not {}: unmount it first",
                dir.display(),
                top.source,
                top.fstype,
                p.device_text
            ),
        );
    }
    if let Resolved::Block { path, .. } = &dev
        && !p.options.bind()
        && let Some(other) = mounts.iter().find(|m| dev.is(m, p))
    {
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "device {} ({}) is already mounted on {}; refusing to mount it on {} as well: \
                 unmount it there first",
                path.display(),
                p.device_text,
                other.mount_point.display(),
                dir.display()
            ),
        );
    }
    let nfs_addr = match &p.device {
        Device::Nfs { host, .. } => match nfs_address(host) {
            Ok(a) => Some(a),
            Err(o) => return o,
        },
        _ => None,
    };
    let data = mount_data(p, nfs_addr);
    let source = dev.source();
    let mut flags = p.options.flags;
    // A bind mount ignores the other flags; mount(8) applies them with a
    // remount of the bind, and so does this agent.
    let bind_flags = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if p.options.bind() {
        flags &= MsFlags::MS_BIND | MsFlags::MS_REC;
    }
    let fstype = if p.options.bind() {
        None
    } else {
        Some(p.fstype.as_str())
    };
    let data_opt = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    if let Err(e) = nix::mount::mount(Some(source.as_str()), &dir, fstype, flags, data_opt) {
        return mount_failed(p, &source, &dir, e);
    }
    if p.options.bind() && !bind_flags.is_empty() {
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | bind_flags;
        if let Err(e) = nix::mount::mount(None::<&str>, &dir, None::<&str>, remount, None::<&str>) {
            let _ = nix::mount::umount2(&dir, MntFlags::MNT_DETACH);
            return OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!(
                    "bind-mounted {source} on {}, but applying the options' flags with a \
                     remount failed, so it was unmounted again: {e}",
                    dir.display()
                ),
            );
        }
    }
    tracing::info!(device = %source, directory = %dir.display(), fstype = %p.fstype, "mounted");
    OpOutcome::ok()
}

fn mount_failed(p: &Params, source: &str, dir: &Path, e: Errno) -> OpOutcome {
    let (code, hint) = match e {
        Errno::ENODEV => (
            OcfCode::ErrInstalled,
            format!(
                "the kernel does not know filesystem type {} (modprobe {0}?)",
                p.fstype
            ),
        ),
        Errno::ENOENT | Errno::ENOTBLK | Errno::ENXIO => (
            OcfCode::ErrInstalled,
            "the device is missing or not a block device".to_string(),
        ),
        Errno::EINVAL => (
            OcfCode::ErrGeneric,
            format!(
                "wrong fstype, bad option or bad superblock: check fstype = \"{}\", options and \
                 dmesg",
                p.fstype
            ),
        ),
        Errno::EBUSY => (
            OcfCode::ErrGeneric,
            "the device or mount point is busy".to_string(),
        ),
        Errno::EACCES | Errno::EROFS => (
            OcfCode::ErrGeneric,
            "the device is write-protected: mount it with options = \"ro\"".to_string(),
        ),
        Errno::EPERM => (
            OcfCode::ErrPerm,
            "hactld needs CAP_SYS_ADMIN to mount".to_string(),
        ),
        _ => (OcfCode::ErrGeneric, "check dmesg".to_string()),
    };
    OpOutcome::fail(
        code,
        format!(
            "mounting {source} ({}) on {} as {} failed: {} ({hint})",
            p.device_text,
            dir.display(),
            p.fstype,
            e.desc()
        ),
    )
}

fn nfs_address(host: &str) -> Result<std::net::IpAddr, OpOutcome> {
    use std::net::ToSocketAddrs;
    (host, 2049)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| {
            OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("cannot resolve NFS server {host}: check its name and the resolver"),
            )
        })
}

fn stop(p: &Params, deadline: Instant) -> OpOutcome {
    // A device that cannot be found now (a disk that vanished) may still be
    // mounted: then the mount on the directory of our type is taken off.
    let dev = resolve(p, deadline).ok();
    let dir = mount_point(p);
    for _ in 0..STACKED_MOUNTS_MAX {
        let mounts = match read_mounts() {
            Ok(m) => m,
            Err(o) => return o,
        };
        let Some(top) = top_mount(&mounts, &dir) else {
            return OpOutcome::ok();
        };
        let ours = match &dev {
            Some(d) => d.is(top, p),
            None => top.fstype == p.fstype || p.options.bind(),
        };
        if !ours {
            // Something else sits on the directory: not ours to take off.
            return OpOutcome::ok();
        }
        if let Err(o) = unmount(p, &dir, (top.major, top.minor), deadline) {
            return o;
        }
        tracing::info!(directory = %dir.display(), "unmounted");
    }
    OpOutcome::fail(
        OcfCode::ErrGeneric,
        format!(
            "{} still has mounts after {STACKED_MOUNTS_MAX} unmounts",
            dir.display()
        ),
    )
}

fn unmount(p: &Params, dir: &Path, dev: (u32, u32), deadline: Instant) -> Result<(), OpOutcome> {
    match nix::mount::umount(dir) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EBUSY) => {}
        Err(e) => {
            return Err(OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("unmounting {} failed: {}", dir.display(), e.desc()),
            ));
        }
    }
    if !p.force_unmount {
        let holders = holders(dir, dev);
        return Err(OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "unmounting {} failed: it is busy{}; stop them or set force_unmount = true",
                dir.display(),
                describe_holders(&holders)
            ),
        ));
    }
    let me = std::process::id();
    let victims: Vec<u32> = holders(dir, dev)
        .users
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    for &pid in &victims {
        tracing::warn!(pid, directory = %dir.display(), "sending SIGTERM to a user of the mount");
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let wait = Duration::from_millis(FORCE_TERM_WAIT_MS).min(remaining / 2);
    let until = Instant::now() + wait;
    while Instant::now() < until && victims.iter().any(|&pid| alive(pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (pid, comm) in holders(dir, dev).users {
        debug_assert!(pid != me && pid != 1);
        tracing::warn!(pid, %comm, directory = %dir.display(), "sending SIGKILL to a user of the mount");
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let mut last = Errno::EBUSY;
    for attempt in 0..UMOUNT_ATTEMPTS_MAX {
        match nix::mount::umount(dir) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50 << attempt.min(4)));
    }
    let holders = holders(dir, dev);
    Err(OpOutcome::fail(
        OcfCode::ErrGeneric,
        format!(
            "unmounting {} failed even after killing its users: {}{}",
            dir.display(),
            last.desc(),
            describe_holders(&holders)
        ),
    ))
}

fn alive(pid: u32) -> bool {
    // A zombie has let go of its files; only the living hold the mount.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn describe_holders(h: &Holders) -> String {
    let mut out = String::new();
    if !h.users.is_empty() {
        let named: Vec<String> = h
            .users
            .iter()
            .take(HOLDERS_NAMED_MAX)
            .map(|(pid, comm)| format!("{pid} ({comm})"))
            .collect();
        out.push_str(&format!(", used by process {}", named.join(", ")));
        if h.users.len() > HOLDERS_NAMED_MAX {
            out.push_str(&format!(" and {} more", h.users.len() - HOLDERS_NAMED_MAX));
        }
    }
    if h.hidden > 0 {
        out.push_str(&format!(
            " ({} processes could not be inspected: hactld needs CAP_SYS_PTRACE to see the \
             files of other users' processes)",
            h.hidden
        ));
    }
    out
}

/// Whether `path` (as a /proc link shows it) lies in or below `dir`.
pub(crate) fn is_below(path: &str, dir: &Path) -> bool {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    Path::new(path).starts_with(dir)
}

/// The processes (pid, command name) that use files in or below `dir` on
/// the filesystem with device number `dev`: working directory, root,
/// executable, open files, mapped files. Both the path and the device must
/// match, so that a process in another mount namespace whose paths merely
/// look the same is left alone. Never this process nor PID 1.
fn holders(dir: &Path, dev: (u32, u32)) -> Holders {
    let me = std::process::id();
    let mut out = Holders::default();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    let on_dev = |link: &Path| {
        fs::read_link(link)
            .ok()
            .and_then(|l| l.to_str().map(|s| is_below(s, dir)))
            .unwrap_or(false)
            && fs::metadata(link).is_ok_and(|m| dev_pair(m.dev()) == dev)
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || pid == 1 {
            continue;
        }
        let base = entry.path();
        if fs::read_link(base.join("cwd"))
            .is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
        {
            out.hidden += 1;
            continue;
        }
        let mut uses = ["cwd", "root", "exe"]
            .iter()
            .any(|name| on_dev(&base.join(name)));
        if !uses && let Ok(fds) = fs::read_dir(base.join("fd")) {
            uses = fds.flatten().any(|fd| on_dev(&fd.path()));
        }
        if !uses && let Ok(maps) = fs::read_to_string(base.join("maps")) {
            uses = maps.lines().any(|l| maps_line_uses(l, dir, dev));
        }
        if uses {
            let comm = fs::read_to_string(base.join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            out.users.push((pid, comm));
        }
    }
    out
}

/// What a scan of /proc found.
#[derive(Debug, Default)]
struct Holders {
    /// (pid, command name) of the processes using the mount.
    users: Vec<(u32, String)>,
    /// Processes whose files this process may not inspect (another user's,
    /// without CAP_SYS_PTRACE).
    hidden: usize,
}

fn dev_pair(dev: u64) -> (u32, u32) {
    (
        nix::sys::stat::major(dev) as u32,
        nix::sys::stat::minor(dev) as u32,
    )
}

/// Whether a line of /proc/PID/maps maps a file below `dir` on `dev`
/// (`address perms offset MAJ:MIN inode path`, the device in hex).
pub(crate) fn maps_line_uses(line: &str, dir: &Path, dev: (u32, u32)) -> bool {
    let mut f = line.split_whitespace();
    let Some(d) = f.nth(3) else { return false };
    let Some(path) = f.nth(1) else { return false };
    let Some((ma, mi)) = d.split_once(':') else {
        return false;
    };
    let parsed = (u32::from_str_radix(ma, 16), u32::from_str_radix(mi, 16));
    matches!(parsed, (Ok(a), Ok(b)) if (a, b) == dev)
        && path.starts_with('/')
        && is_below(path, dir)
}

fn monitor(resource: &str, p: &Params, check_level: u32, deadline: Instant) -> OpOutcome {
    let mounts = match read_mounts() {
        Ok(m) => m,
        Err(o) => return o,
    };
    let dir = mount_point(p);
    let Some(top) = top_mount(&mounts, &dir) else {
        return OpOutcome::fail(
            OcfCode::NotRunning,
            format!("nothing is mounted on {}", dir.display()),
        );
    };
    let dev = match resolve(p, deadline) {
        Ok(d) => d,
        // Mounted, but the device cannot be found any more (the disk went
        // away under the mount).
        Err(o) if top.fstype == p.fstype => {
            return OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("{} is mounted, but {}", dir.display(), o.exit_reason),
            );
        }
        Err(_) => return OpOutcome::code(OcfCode::NotRunning),
    };
    if !dev.is(top, p) {
        return OpOutcome::fail(
            OcfCode::NotRunning,
            format!(
                "{} has {} ({}) mounted on it, not {}",
                dir.display(),
                top.source,
                top.fstype,
                p.device_text
            ),
        );
    }
    if top.read_only() && !p.options.read_only() {
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "{} is mounted read-only, but was mounted read-write: the filesystem probably \
                 hit an error (check dmesg)",
                dir.display()
            ),
        );
    }
    if check_level >= 10 {
        if let Err(e) = fs::read_dir(&dir).and_then(|mut d| d.next().transpose().map(drop)) {
            return OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("reading directory {} failed: {e}", dir.display()),
            );
        }
        if let Resolved::Block { path, .. } = &dev
            && let Err(e) = read_block(path)
        {
            return OpOutcome::fail(
                OcfCode::ErrGeneric,
                format!("reading a block of {} failed: {e}", path.display()),
            );
        }
    }
    if check_level >= 20
        && let Err(e) = write_and_read_back(&dir, resource)
    {
        return OpOutcome::fail(
            OcfCode::ErrGeneric,
            format!(
                "writing and reading back a file in {} failed: {e}",
                dir.display()
            ),
        );
    }
    OpOutcome::ok()
}

/// Reads the device's first block with O_DIRECT, so the disk answers and
/// not the page cache.
fn read_block(path: &Path) -> io::Result<()> {
    #[repr(C, align(4096))]
    struct Block([u8; CHECK_READ_BYTES]);
    let mut buf = Box::new(Block([0; CHECK_READ_BYTES]));
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECT)
        .open(path)?;
    let n = f.read(&mut buf.0)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the device is empty",
        ));
    }
    Ok(())
}

fn write_and_read_back(dir: &Path, resource: &str) -> io::Result<()> {
    let safe: String = resource
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!(".hactl-check-{safe}"));
    let content = format!(
        "hactl monitor of {resource}, pid {}, {:?}\n",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let result = (|| {
        let mut f = fs::File::create(&path)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        let back = fs::read_to_string(&path)?;
        if back != content {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file read back differs from what was written",
            ));
        }
        Ok(())
    })();
    let removed = fs::remove_file(&path);
    result.and(removed.or_else(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_become_flags_and_data_as_mount_8_splits_them() {
        let o = parse_options("defaults,ro,noatime,nodev,nosuid,noexec,sync,errors=remount-ro,_netdev,x-systemd.automount").unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_RDONLY
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_SYNCHRONOUS
        );
        assert_eq!(o.data, vec!["errors=remount-ro"]);
        // Later options win, as in mount(8).
        let o = parse_options("ro,rw,relatime,size=64m,mode=0755").unwrap();
        assert_eq!(o.flags, MsFlags::MS_RELATIME);
        assert_eq!(o.data, vec!["size=64m", "mode=0755"]);
        let o = parse_options("rbind").unwrap();
        assert!(o.bind() && o.flags.contains(MsFlags::MS_REC));
        assert!(parse_options("loop").unwrap_err().contains("losetup"));
        assert_eq!(parse_options("").unwrap().flags, MsFlags::empty());
    }

    #[test]
    fn devices_parse_by_kind() {
        assert_eq!(
            parse_device("LABEL=data", false).unwrap(),
            Device::Label("data".into())
        );
        assert_eq!(
            parse_device("UUID=3E6B-1A2C", false).unwrap(),
            Device::Uuid("3e6b-1a2c".into())
        );
        assert!(parse_device("UUID=not a uuid", false).is_err());
        assert_eq!(
            parse_device("nfs.example.com:/export/www", true).unwrap(),
            Device::Nfs {
                host: "nfs.example.com".into(),
                export: "/export/www".into()
            }
        );
        assert_eq!(
            parse_device("[fd00::5]:/srv", true).unwrap(),
            Device::Nfs {
                host: "fd00::5".into(),
                export: "/srv".into()
            }
        );
        assert!(
            parse_device("/dev/sdb1", true).is_err(),
            "NFS needs host:/export"
        );
        assert!(
            parse_device("host:/export", false)
                .unwrap_err()
                .contains("fstype")
        );
        assert_eq!(
            parse_device("/dev//sdb1/", false).unwrap(),
            Device::Path("/dev/sdb1".into())
        );
        assert_eq!(
            parse_device("tmpfs", false).unwrap(),
            Device::Name("tmpfs".into())
        );
    }

    #[test]
    fn nfs_data_carries_the_server_address() {
        let p = parse_params(&params(&[
            ("device", "nfs.example.com:/export"),
            ("directory", "/srv/www/"),
            ("fstype", "nfs4"),
            ("options", "rw,hard,timeo=600"),
        ]))
        .unwrap();
        assert_eq!(p.directory, PathBuf::from("/srv/www"));
        assert_eq!(
            mount_data(&p, Some("192.0.2.7".parse().unwrap())),
            "hard,timeo=600,addr=192.0.2.7,vers=4"
        );
        let p = parse_params(&params(&[
            ("device", "h:/e"),
            ("directory", "/mnt"),
            ("fstype", "nfs"),
            ("options", "vers=3,addr=10.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(
            mount_data(&p, Some("10.9.9.9".parse().unwrap())),
            "vers=3,addr=10.0.0.1"
        );
    }

    #[test]
    fn malformed_parameters_are_refused_with_the_value_named() {
        let base = [
            ("device", "/dev/sdb1"),
            ("directory", "/srv"),
            ("fstype", "ext4"),
        ];
        assert!(parse_params(&params(&base)).is_ok());
        let with = |k: &'static str, v: &'static str| {
            let mut m = params(&base);
            m.insert(k.into(), v.into());
            parse_params(&m).unwrap_err()
        };
        assert!(with("directory", "srv").contains("not an absolute path"));
        assert!(with("directory", "/").contains("root filesystem"));
        assert!(with("force_unmount", "yes").contains("force_unmount \"yes\""));
        assert!(with("options", "loop").contains("losetup"));
        let mut m = params(&base);
        m.remove("fstype");
        assert!(parse_params(&m).unwrap_err().contains("fstype is missing"));
    }

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let text = "\
36 35 98:0 /mnt1 /mnt/parent\\040dir rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 27 7:3 / /srv/data ro,relatime shared:5 - ext4 /dev/loop3 ro
41 27 0:55 / /srv/nfs rw,relatime - nfs4 server:/export rw,vers=4.2,addr=10.0.0.9
garbage
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/parent dir"));
        assert_eq!((m[0].major, m[0].minor), (98, 0));
        assert!(!m[0].read_only());
        assert_eq!(m[1].source, "/dev/loop3");
        assert!(m[1].read_only());
        assert_eq!(m[2].fstype, "nfs4");
        assert_eq!(m[2].source, "server:/export");
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("end\\04"), "end\\04");
    }

    #[test]
    fn holder_paths_match_whole_components() {
        let d = Path::new("/srv/data");
        assert!(is_below("/srv/data", d));
        assert!(is_below("/srv/data/x/y", d));
        assert!(is_below("/srv/data/gone (deleted)", d));
        assert!(!is_below("/srv/database", d));
        assert!(!is_below("socket:[1234]", d));
    }

    #[test]
    fn maps_lines_match_on_device_and_path() {
        let d = Path::new("/srv/data");
        let line = "7f1c2e400000-7f1c2e428000 r--p 00000000 07:03 131 /srv/data/lib.so";
        assert!(maps_line_uses(line, d, (7, 3)));
        assert!(
            !maps_line_uses(line, d, (7, 4)),
            "same path, other filesystem"
        );
        let hex = "7f1c2e400000-7f1c2e428000 r--p 00000000 fd:1a 131 /srv/data/x (deleted)";
        assert!(maps_line_uses(hex, d, (0xfd, 0x1a)));
        let anon = "7ffd1a2b3000-7ffd1a2d4000 rw-p 00000000 00:00 0 [stack]";
        assert!(!maps_line_uses(anon, d, (0, 0)));
    }
}
