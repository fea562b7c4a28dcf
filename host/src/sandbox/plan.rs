//! How a plugin's sandbox is enforced on this machine, decided without
//! side effects from what the machine offers: each setting's mechanism,
//! its weaker fallback, or a refusal naming the plugin and the setting.
//!
//! [`plan`] gives the rows `describe` and `status` show; [`decide`] gives
//! [`apply`](super::apply) the same decisions in the form it builds from,
//! so that what is shown is what is built.

use std::ffi::CString;

use crate::config::{Network, SandboxSpec};
use crate::sandbox::detect::Offers;
use crate::sandbox::landlock;

/// One wall as enforced on this machine, for `describe`, `status` and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wall {
    /// The setting, as in outboard.toml: "memory", "cpu", "pids", "open_files",
    /// "core_dumps", "network", "filesystem", "no_new_privs", "user", "group".
    pub setting: String,
    /// Its value as the operator wrote it ("256Mi", "0.5", "none", "2 read, 1 write paths").
    pub value: String,
    /// How the kernel enforces it here ("cgroup v2 memory.max", "cgroup v1 memory",
    /// "RLIMIT_AS per process (weaker: ...)", "network namespace", "Landlock ABI 7",
    /// "not enforced: best_effort and no Landlock").
    pub mechanism: String,
}

impl Wall {
    fn new(setting: &str, value: impl Into<String>, mechanism: impl Into<String>) -> Wall {
        Wall {
            setting: setting.to_owned(),
            value: value.into(),
            mechanism: mechanism.into(),
        }
    }
}

/// A setting of a plugin's sandbox that cannot be had: the plugin, the
/// setting, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin:?}: sandbox.{setting} {problem}")]
pub struct SandboxError {
    /// The plugin's name.
    pub plugin: String,
    /// The setting, as in outboard.toml ("memory", "user", ...).
    pub setting: String,
    /// What is wrong, as the end of a sentence naming the setting.
    pub problem: String,
}

impl SandboxError {
    /// `setting` cannot be enforced on this machine, because `why`.
    pub(crate) fn cannot_enforce(plugin: &str, setting: &str, why: &str) -> SandboxError {
        SandboxError {
            plugin: plugin.to_owned(),
            setting: setting.to_owned(),
            problem: format!(
                "cannot be enforced here ({why}); set sandbox.best_effort = true to run the \
                 plugin without this wall"
            ),
        }
    }

    fn invalid(plugin: &str, setting: &str, problem: String) -> SandboxError {
        SandboxError {
            plugin: plugin.to_owned(),
            setting: setting.to_owned(),
            problem,
        }
    }
}

impl From<SandboxError> for std::io::Error {
    fn from(err: SandboxError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, err.to_string())
    }
}

/// Which cgroup hierarchy an instance's cgroup lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CgroupKind {
    /// One directory in the unified hierarchy.
    V2,
    /// One directory per v1 controller.
    V1,
}

/// The cgroup an instance gets: the hierarchy and the controllers limited
/// there (those the spec asks for and the machine offers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupPlan {
    pub kind: CgroupKind,
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
}

/// The uid and gid a plugin runs as when the host drops privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// Every decision [`apply`](super::apply) builds from, with the rows that
/// describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decisions {
    /// The rows, in a fixed order.
    pub walls: Vec<Wall>,
    /// The cgroup, if any limit is enforced by one.
    pub cgroup: Option<CgroupPlan>,
    /// The resource limits set in the child.
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    /// A network namespace of its own: `None` or `Loopback`; `None` here:
    /// the host's network.
    pub network: Option<Network>,
    /// The Landlock ABI to build the filesystem wall at, if it is built.
    pub landlock: Option<u32>,
    /// The ids to drop to, if any.
    pub ids: Option<Ids>,
}

/// Decides, without side effects, how `spec` is enforced here; Err names the plugin and the
/// setting that cannot be enforced (when not best_effort).
pub fn plan(plugin: &str, spec: &SandboxSpec, offers: &Offers) -> Result<Vec<Wall>, SandboxError> {
    decide(plugin, spec, offers).map(|d| d.walls)
}

/// The uid and gid `plugin` runs as if the host drops it to another user
/// or group (`sandbox.user`, `sandbox.group`, a root host); `None` if it
/// runs as the host.
pub fn runs_as(
    plugin: &str,
    spec: &SandboxSpec,
    offers: &Offers,
) -> Result<Option<(libc::uid_t, libc::gid_t)>, SandboxError> {
    if spec.user.is_none() && spec.group.is_none() {
        return Ok(None);
    }
    decide(plugin, spec, offers).map(|d| d.ids.map(|i| (i.uid, i.gid)))
}

/// The users other than the host's that more than one of `plugins` is
/// dropped to, each with those plugins' names: they can reach each other's
/// runtime directories (the host still refuses a socket not bound by the
/// plugin's own process or a descendant, but they can signal, trace and
/// read each other).
pub fn shared_users<'a>(
    plugins: impl IntoIterator<Item = (&'a str, &'a SandboxSpec)>,
    offers: &Offers,
) -> Vec<(libc::uid_t, Vec<&'a str>)> {
    // SAFETY: geteuid has no preconditions.
    let host = unsafe { libc::geteuid() };
    let mut by_uid: std::collections::BTreeMap<libc::uid_t, Vec<&str>> = Default::default();
    for (name, spec) in plugins {
        if let Ok(Some((uid, _))) = runs_as(name, spec, offers)
            && uid != host
        {
            by_uid.entry(uid).or_default().push(name);
        }
    }
    by_uid
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .collect()
}

/// What a cgroup row of a plugin that runs as the (non-root) host's own
/// uid says after its mechanism: the cgroup directory is that uid's, so the
/// plugin can raise its own limits or move itself out.
pub(crate) const OWN_CGROUP: &str = "(not enforced against the plugin: it runs as the host's uid, \
     which owns its cgroup, so it can raise the limit or leave the cgroup; a limit only holds \
     against a plugin dropped to another user)";

/// Marks every cgroup row with [`OWN_CGROUP`]. Marked, not refused: the
/// limit still holds against a plugin that does not lift it (a runaway
/// rather than a hostile one), and refusing would leave a non-root host
/// with no cgroup limits at all.
fn mark_own_cgroup(walls: &mut [Wall]) {
    for wall in walls
        .iter_mut()
        .filter(|w| w.mechanism.starts_with("cgroup "))
    {
        wall.mechanism = format!("{} {OWN_CGROUP}", wall.mechanism);
    }
}

/// What `RLIMIT_AS` is and is not, for the memory row when it is the
/// fallback.
pub const RLIMIT_AS_MECHANISM: &str = "RLIMIT_AS per process (weaker: caps each process's \
     address space, not the memory its processes use together; an allocation past it fails \
     instead of an out-of-memory kill)";

/// The decisions for `spec` on a machine offering `offers`.
pub(crate) fn decide(
    plugin: &str,
    spec: &SandboxSpec,
    offers: &Offers,
) -> Result<Decisions, SandboxError> {
    let mut walls = Vec::new();
    let mut rlimits = Vec::new();
    let cgroup = cgroup_plan(spec, offers);
    let kind = cgroup.as_ref().map(|c| c.kind);
    let by_cgroup = |has: fn(&CgroupPlan) -> bool| cgroup.as_ref().is_some_and(has);
    let version = match kind {
        Some(CgroupKind::V2) => "cgroup v2",
        _ => "cgroup v1",
    };
    let not_enforced = |setting: &str, why: &str| -> Result<String, SandboxError> {
        if spec.best_effort {
            Ok(format!("not enforced: best_effort and {why}"))
        } else {
            Err(SandboxError::cannot_enforce(plugin, setting, why))
        }
    };

    if let Some(bytes) = spec.memory {
        let mechanism = if by_cgroup(|c| c.memory) {
            match kind {
                Some(CgroupKind::V2) => "cgroup v2 memory.max".to_owned(),
                _ => "cgroup v1 memory.limit_in_bytes".to_owned(),
            }
        } else {
            rlimits.push((libc::RLIMIT_AS, bytes));
            RLIMIT_AS_MECHANISM.to_owned()
        };
        walls.push(Wall::new("memory", size(bytes), mechanism));
    }
    if let Some(millis) = spec.cpu_millis {
        let mechanism = if by_cgroup(|c| c.cpu) {
            match kind {
                Some(CgroupKind::V2) => "cgroup v2 cpu.max".to_owned(),
                _ => "cgroup v1 cpu.cfs_quota_us".to_owned(),
            }
        } else {
            not_enforced("cpu", "no writable cgroup with the cpu controller")?
        };
        walls.push(Wall::new("cpu", cores(millis), mechanism));
    }
    if let Some(pids) = spec.pids {
        let mechanism = if by_cgroup(|c| c.pids) {
            format!("{version} pids.max")
        } else {
            not_enforced("pids", "no writable cgroup with the pids controller")?
        };
        walls.push(Wall::new("pids", pids.to_string(), mechanism));
    }
    if let Some(n) = spec.open_files {
        rlimits.push((libc::RLIMIT_NOFILE, libc::rlim_t::from(n)));
        walls.push(Wall::new(
            "open_files",
            n.to_string(),
            "RLIMIT_NOFILE per process",
        ));
    }
    match spec.core_dumps {
        Some(false) => {
            rlimits.push((libc::RLIMIT_CORE, 0));
            walls.push(Wall::new("core_dumps", "false", "RLIMIT_CORE = 0"));
        }
        Some(true) => walls.push(Wall::new("core_dumps", "true", "the host's RLIMIT_CORE")),
        None => {}
    }
    let network = match spec.network {
        Network::Host => None,
        network => {
            let value = match network {
                Network::None => "none",
                _ => "loopback",
            };
            if offers.network_namespace {
                let mechanism = match network {
                    Network::None => "network namespace of its own, no interface up",
                    _ => "network namespace of its own, lo up",
                };
                walls.push(Wall::new("network", value, mechanism));
                Some(network)
            } else {
                let mechanism =
                    not_enforced("network", "this host may not create a network namespace")?;
                walls.push(Wall::new("network", value, mechanism));
                None
            }
        }
    };
    let landlock = landlock::decide(plugin, spec, offers.landlock_abi)?;
    if let (Some(fs), Some(decision)) = (&spec.filesystem, landlock) {
        walls.push(Wall::new(
            "filesystem",
            landlock::value(fs),
            decision.mechanism(),
        ));
    }
    walls.push(Wall::new(
        "no_new_privs",
        "always",
        "prctl PR_SET_NO_NEW_PRIVS",
    ));
    let ids = ids(plugin, spec, offers, &mut walls, &not_enforced)?;
    if !offers.root && ids.is_none() {
        mark_own_cgroup(&mut walls);
    }
    Ok(Decisions {
        walls,
        cgroup,
        rlimits,
        network,
        landlock: landlock.and_then(|d| d.abi()),
        ids,
    })
}

/// The cgroup for the limits `spec` asks for: the unified hierarchy if it
/// is writable and has every controller asked for (and may hand them
/// down), else v1 with each
/// controller it has writable; `None` if neither gives any.
fn cgroup_plan(spec: &SandboxSpec, offers: &Offers) -> Option<CgroupPlan> {
    let asked = [
        ("memory", spec.memory.is_some()),
        ("pids", spec.pids.is_some()),
        ("cpu", spec.cpu_millis.is_some()),
    ];
    if !asked.iter().any(|(_, a)| *a) {
        return None;
    }
    // A v2 cgroup with processes of its own may not hand controllers
    // down (no internal processes), except the root: so the host's own
    // cgroup must be the root or delegate them already.
    let v2 = offers.cgroup_v2.as_ref().is_some_and(|v2| {
        let has = |list: &[String], c: &str| list.iter().any(|have| have == c);
        v2.writable
            && asked.iter().filter(|(_, a)| *a).all(|(c, _)| {
                has(&v2.controllers, c) && (v2.own == v2.mount || has(&v2.delegated, c))
            })
    });
    let plan = if v2 {
        CgroupPlan {
            kind: CgroupKind::V2,
            memory: spec.memory.is_some(),
            pids: spec.pids.is_some(),
            cpu: spec.cpu_millis.is_some(),
        }
    } else {
        let v1 = |c: &str| offers.cgroup_v1(c).is_some();
        CgroupPlan {
            kind: CgroupKind::V1,
            memory: spec.memory.is_some() && v1("memory"),
            pids: spec.pids.is_some() && v1("pids"),
            cpu: spec.cpu_millis.is_some() && v1("cpu"),
        }
    };
    (plan.memory || plan.pids || plan.cpu).then_some(plan)
}

/// The uid and gid to drop to, with their rows: `user` alone takes its
/// primary group from the user database; either needs a root host.
fn ids(
    plugin: &str,
    spec: &SandboxSpec,
    offers: &Offers,
    walls: &mut Vec<Wall>,
    not_enforced: &dyn Fn(&str, &str) -> Result<String, SandboxError>,
) -> Result<Option<Ids>, SandboxError> {
    if spec.user.is_none() && spec.group.is_none() {
        return Ok(None);
    }
    let user = match &spec.user {
        Some(name) => Some(lookup_user(name).ok_or_else(|| {
            SandboxError::invalid(
                plugin,
                "user",
                format!("{name:?} is not a user on this machine"),
            )
        })?),
        None => None,
    };
    let gid = match &spec.group {
        Some(name) => lookup_group(name).ok_or_else(|| {
            SandboxError::invalid(
                plugin,
                "group",
                format!("{name:?} is not a group on this machine"),
            )
        })?,
        None => match user {
            Some((_, Some(gid))) => gid,
            _ => {
                return Err(SandboxError::invalid(
                    plugin,
                    "user",
                    format!(
                        "{:?} has no entry in the user database to take its group from; \
                         set sandbox.group",
                        spec.user.as_deref().unwrap_or_default()
                    ),
                ));
            }
        },
    };
    // SAFETY: getuid has no preconditions.
    let uid = user.map_or_else(|| unsafe { libc::getuid() }, |(uid, _)| uid);
    let enforced = offers.root;
    let why = "the host is not running as root";
    if let Some(name) = &spec.user {
        let mechanism = if enforced {
            format!("setuid to uid {uid}")
        } else {
            not_enforced("user", why)?
        };
        walls.push(Wall::new("user", name.clone(), mechanism));
    }
    let group = spec
        .group
        .clone()
        .unwrap_or_else(|| format!("{gid} (the user's group)"));
    let mechanism = if enforced {
        format!("setgid to gid {gid}, supplementary groups dropped")
    } else {
        not_enforced("group", why)?
    };
    walls.push(Wall::new("group", group, mechanism));
    Ok(enforced.then_some(Ids { uid, gid }))
}

/// A user by name or number: its uid, and its primary gid if the user
/// database has it. A number with no entry is taken as it is.
fn lookup_user(name: &str) -> Option<(libc::uid_t, Option<libc::gid_t>)> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of
    // pwd's string fields, which are not read.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Some((pwd.pw_uid, Some(pwd.pw_gid)));
    }
    let uid: libc::uid_t = name.parse().ok()?;
    // SAFETY: as above.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    Some((uid, (rc == 0 && !result.is_null()).then_some(pwd.pw_gid)))
}

/// The name and home directory of the user `uid` in the user database,
/// for the variables of a plugin dropped to it.
pub(crate) fn account_of(uid: libc::uid_t) -> Option<(String, String)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings read below
    // point into buf, which outlives them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: non-null NUL-terminated strings in buf, filled by the call.
    let text = |p: *const libc::c_char| {
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    };
    Some((text(pwd.pw_name), text(pwd.pw_dir)))
}

/// A group by name or number.
fn lookup_group(name: &str) -> Option<libc::gid_t> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: group is plain data; zeroed is a valid value.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Some(grp.gr_gid);
    }
    name.parse().ok()
}

/// A size as an operator would write it: the largest binary suffix that
/// divides it, else bytes.
pub fn size(bytes: u64) -> String {
    for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Thousandths of a core as a fraction ("0.5", "2").
fn cores(millis: u32) -> String {
    let text = format!("{}.{:03}", millis / 1000, millis % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::FilesystemSpec;
    use crate::sandbox::detect::{CgroupV1, CgroupV2};

    /// A machine offering nothing: no cgroup, no namespace, not root.
    fn bare() -> Offers {
        Offers {
            cgroup_v2: None,
            cgroup_v1: Vec::new(),
            landlock_abi: None,
            network_namespace: false,
            privileged: false,
            root: false,
            unprivileged_user_namespaces: false,
        }
    }

    /// This project's kind of machine: v1 controllers writable, a hybrid
    /// v2 mount with none of them, root.
    fn hybrid() -> Offers {
        let v1 = |c: &str| CgroupV1 {
            controller: c.to_owned(),
            mount: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
            own: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
            writable: true,
        };
        Offers {
            cgroup_v2: Some(CgroupV2 {
                mount: "/sys/fs/cgroup/unified".into(),
                own: "/sys/fs/cgroup/unified".into(),
                controllers: vec!["hugetlb".into()],
                delegated: vec![],
                writable: true,
            }),
            cgroup_v1: vec![v1("memory"), v1("pids"), v1("cpu")],
            network_namespace: true,
            privileged: true,
            root: true,
            ..bare()
        }
    }

    /// A unified machine: v2 with every controller, the host in a cgroup
    /// below the root that delegates them.
    fn unified() -> Offers {
        let all = vec!["cpu".to_owned(), "memory".into(), "pids".into()];
        Offers {
            cgroup_v2: Some(CgroupV2 {
                mount: "/sys/fs/cgroup".into(),
                own: "/sys/fs/cgroup/outboard.service".into(),
                controllers: all.clone(),
                delegated: all,
                writable: true,
            }),
            ..hybrid()
        }
    }

    fn limits() -> SandboxSpec {
        SandboxSpec {
            memory: Some(256 << 20),
            cpu_millis: Some(500),
            pids: Some(64),
            ..SandboxSpec::default()
        }
    }

    fn row<'a>(walls: &'a [Wall], setting: &str) -> &'a Wall {
        walls
            .iter()
            .find(|w| w.setting == setting)
            .unwrap_or_else(|| panic!("no {setting} row in {walls:?}"))
    }

    #[test]
    fn no_sandbox_is_no_new_privs_alone() {
        let walls = plan("p", &SandboxSpec::default(), &bare()).expect("plan");
        assert_eq!(
            walls,
            [Wall::new(
                "no_new_privs",
                "always",
                "prctl PR_SET_NO_NEW_PRIVS"
            )]
        );
        let d = decide("p", &SandboxSpec::default(), &bare()).expect("plan");
        assert_eq!((d.cgroup, d.network, d.ids), (None, None, None));
        assert!(d.rlimits.is_empty());
    }

    #[test]
    fn v1_controllers_are_used_when_v2_lacks_them() {
        let d = decide("p", &limits(), &hybrid()).expect("plan");
        assert_eq!(
            d.cgroup,
            Some(CgroupPlan {
                kind: CgroupKind::V1,
                memory: true,
                pids: true,
                cpu: true
            })
        );
        assert_eq!(row(&d.walls, "memory").value, "256Mi");
        assert_eq!(
            row(&d.walls, "memory").mechanism,
            "cgroup v1 memory.limit_in_bytes"
        );
        assert_eq!(row(&d.walls, "cpu").value, "0.5");
        assert_eq!(row(&d.walls, "cpu").mechanism, "cgroup v1 cpu.cfs_quota_us");
        assert_eq!(row(&d.walls, "pids").mechanism, "cgroup v1 pids.max");
        assert!(d.rlimits.is_empty(), "no RLIMIT_AS under a cgroup");
    }

    #[test]
    fn v2_is_used_where_it_has_and_hands_down_every_controller() {
        let d = decide("p", &limits(), &unified()).expect("plan");
        assert_eq!(d.cgroup.map(|c| c.kind), Some(CgroupKind::V2));
        assert_eq!(row(&d.walls, "memory").mechanism, "cgroup v2 memory.max");
        assert_eq!(row(&d.walls, "cpu").mechanism, "cgroup v2 cpu.max");
        assert_eq!(row(&d.walls, "pids").mechanism, "cgroup v2 pids.max");
        // Not handed down by a cgroup that is not the root: v1 instead.
        let mut offers = unified();
        if let Some(v2) = offers.cgroup_v2.as_mut() {
            v2.delegated.clear();
        }
        let d = decide("p", &limits(), &offers).expect("plan");
        assert_eq!(d.cgroup.map(|c| c.kind), Some(CgroupKind::V1));
    }

    #[test]
    fn a_non_root_hosts_own_cgroup_is_not_enforced_against_its_plugin() {
        // A user's delegated v2 tree (a systemd user slice): the plugin runs
        // as the host's uid, which owns the cgroup it is placed in.
        let offers = Offers {
            root: false,
            privileged: false,
            ..unified()
        };
        let d = decide("p", &limits(), &offers).expect("marked, not refused");
        assert_eq!(d.cgroup.map(|c| c.kind), Some(CgroupKind::V2));
        assert_eq!(
            row(&d.walls, "memory").mechanism,
            format!("cgroup v2 memory.max {OWN_CGROUP}")
        );
        assert_eq!(
            row(&d.walls, "pids").mechanism,
            format!("cgroup v2 pids.max {OWN_CGROUP}")
        );
        // A root host's root plugin is warned about at each start instead
        // (it can leave any wall), one dropped to another user is held.
        let d = decide("p", &limits(), &unified()).expect("plan");
        assert!(d.walls.iter().all(|w| !w.mechanism.contains(OWN_CGROUP)));
    }

    #[test]
    fn memory_falls_back_to_rlimit_as_without_a_cgroup() {
        let spec = SandboxSpec {
            memory: Some(100 << 20),
            ..SandboxSpec::default()
        };
        let d = decide("p", &spec, &bare()).expect("memory always has a fallback");
        assert_eq!(d.cgroup, None);
        assert_eq!(row(&d.walls, "memory").mechanism, RLIMIT_AS_MECHANISM);
        assert_eq!(d.rlimits, [(libc::RLIMIT_AS, 100 << 20)]);
    }

    #[test]
    fn pids_and_cpu_without_a_cgroup_are_refused_or_not_enforced() {
        for (setting, spec) in [
            (
                "pids",
                SandboxSpec {
                    pids: Some(10),
                    ..SandboxSpec::default()
                },
            ),
            (
                "cpu",
                SandboxSpec {
                    cpu_millis: Some(250),
                    ..SandboxSpec::default()
                },
            ),
        ] {
            let err = plan("worker", &spec, &bare()).expect_err("refused");
            assert_eq!(
                (err.plugin.as_str(), err.setting.as_str()),
                ("worker", setting)
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "plugin \"worker\": sandbox.{setting} cannot be enforced here (no writable \
                     cgroup with the {setting} controller); set sandbox.best_effort = true to \
                     run the plugin without this wall"
                )
            );
            let lenient = SandboxSpec {
                best_effort: true,
                ..spec
            };
            let walls = plan("worker", &lenient, &bare()).expect("best effort");
            assert_eq!(
                row(&walls, setting).mechanism,
                format!(
                    "not enforced: best_effort and no writable cgroup with the {setting} controller"
                )
            );
        }
    }

    #[test]
    fn a_controller_missing_from_v1_alone_falls_back() {
        let mut offers = hybrid();
        offers.cgroup_v1.retain(|c| c.controller != "memory");
        let d = decide("p", &limits(), &offers).expect("plan");
        assert_eq!(
            d.cgroup,
            Some(CgroupPlan {
                kind: CgroupKind::V1,
                memory: false,
                pids: true,
                cpu: true
            })
        );
        assert_eq!(row(&d.walls, "memory").mechanism, RLIMIT_AS_MECHANISM);
        // Not writable counts as missing.
        let mut offers = hybrid();
        offers.cgroup_v1.iter_mut().for_each(|c| c.writable = false);
        let err = plan("p", &limits(), &offers).expect_err("cpu refused");
        assert_eq!(err.setting, "cpu");
    }

    #[test]
    fn rlimits_and_core_dumps() {
        let spec = SandboxSpec {
            open_files: Some(128),
            core_dumps: Some(false),
            ..SandboxSpec::default()
        };
        let d = decide("p", &spec, &bare()).expect("plan");
        assert_eq!(
            d.rlimits,
            [(libc::RLIMIT_NOFILE, 128), (libc::RLIMIT_CORE, 0)]
        );
        assert_eq!(row(&d.walls, "open_files").value, "128");
        assert_eq!(row(&d.walls, "core_dumps").mechanism, "RLIMIT_CORE = 0");
        let spec = SandboxSpec {
            core_dumps: Some(true),
            ..SandboxSpec::default()
        };
        let d = decide("p", &spec, &bare()).expect("plan");
        assert!(d.rlimits.is_empty());
        assert_eq!(
            row(&d.walls, "core_dumps").mechanism,
            "the host's RLIMIT_CORE"
        );
    }

    #[test]
    fn network_namespaces_or_refusal() {
        for (network, value, mechanism) in [
            (
                Network::None,
                "none",
                "network namespace of its own, no interface up",
            ),
            (
                Network::Loopback,
                "loopback",
                "network namespace of its own, lo up",
            ),
        ] {
            let spec = SandboxSpec {
                network,
                ..SandboxSpec::default()
            };
            let d = decide("p", &spec, &hybrid()).expect("plan");
            assert_eq!(d.network, Some(network));
            assert_eq!(
                row(&d.walls, "network"),
                &Wall::new("network", value, mechanism)
            );
            let err = plan("net", &spec, &bare()).expect_err("refused");
            assert_eq!(
                (err.plugin.as_str(), err.setting.as_str()),
                ("net", "network")
            );
            assert!(
                err.problem.contains("may not create a network namespace"),
                "{err}"
            );
            let lenient = SandboxSpec {
                best_effort: true,
                ..spec
            };
            let d = decide("p", &lenient, &bare()).expect("best effort");
            assert_eq!(d.network, None);
            assert!(
                row(&d.walls, "network")
                    .mechanism
                    .starts_with("not enforced")
            );
        }
        let d = decide("p", &SandboxSpec::default(), &hybrid()).expect("plan");
        assert!(
            d.walls.iter().all(|w| w.setting != "network"),
            "host: no row"
        );
    }

    #[test]
    fn filesystem_is_landlock_or_refused_without_it() {
        let spec = SandboxSpec {
            filesystem: Some(FilesystemSpec {
                read: vec!["/".into()],
                write: vec![],
            }),
            ..SandboxSpec::default()
        };
        let offers = Offers {
            landlock_abi: Some(7),
            ..hybrid()
        };
        let d = decide("fs", &spec, &offers).expect("plan");
        assert_eq!(d.landlock, Some(7));
        assert_eq!(
            row(&d.walls, "filesystem"),
            &Wall::new("filesystem", "1 read, 0 write paths", "Landlock ABI 7")
        );
        let err = plan("fs", &spec, &hybrid()).expect_err("refused");
        assert_eq!(err.setting, "filesystem");
        let lenient = SandboxSpec {
            best_effort: true,
            ..spec
        };
        let d = decide("fs", &lenient, &hybrid()).expect("best effort");
        assert_eq!(d.landlock, None);
        assert_eq!(
            row(&d.walls, "filesystem").mechanism,
            "not enforced: best_effort and no Landlock"
        );
    }

    #[test]
    fn plugins_dropped_to_one_user_are_found() {
        let nobody = SandboxSpec {
            user: Some("nobody".into()),
            ..SandboxSpec::default()
        };
        let other = SandboxSpec {
            user: Some("4321".into()),
            ..SandboxSpec::default()
        };
        let Some((uid, _)) = lookup_user("nobody") else {
            eprintln!("skipped: no user nobody here");
            return;
        };
        let none = SandboxSpec::default();
        let plugins = [("a", &nobody), ("b", &other), ("c", &nobody), ("d", &none)];
        assert_eq!(
            shared_users(plugins, &hybrid()),
            vec![(uid, vec!["a", "c"])]
        );
    }

    #[test]
    fn user_and_group_drop_when_root() {
        let spec = SandboxSpec {
            user: Some("nobody".into()),
            ..SandboxSpec::default()
        };
        let Some((uid, Some(gid))) = lookup_user("nobody") else {
            eprintln!("skipped: no user nobody here");
            return;
        };
        let d = decide("p", &spec, &hybrid()).expect("plan");
        assert_eq!(d.ids, Some(Ids { uid, gid }));
        assert_eq!(
            row(&d.walls, "user").mechanism,
            format!("setuid to uid {uid}")
        );
        assert_eq!(
            row(&d.walls, "group").value,
            format!("{gid} (the user's group)")
        );
        // By number, and a group given by number.
        let spec = SandboxSpec {
            user: Some("4321".into()),
            group: Some("4322".into()),
            ..SandboxSpec::default()
        };
        let d = decide("p", &spec, &hybrid()).expect("plan");
        assert_eq!(
            d.ids,
            Some(Ids {
                uid: 4321,
                gid: 4322
            })
        );
        // A number with no entry and no group: refused, naming the setting.
        let spec = SandboxSpec {
            user: Some("4321".into()),
            ..SandboxSpec::default()
        };
        let err = plan("p", &spec, &hybrid()).expect_err("no group");
        assert!(err.problem.contains("set sandbox.group"), "{err}");
        // Not root: refused unless best effort.
        let spec = SandboxSpec {
            user: Some("nobody".into()),
            ..SandboxSpec::default()
        };
        let err = plan("drop", &spec, &bare()).expect_err("not root");
        assert_eq!(
            (err.plugin.as_str(), err.setting.as_str()),
            ("drop", "user")
        );
        assert!(err.problem.contains("not running as root"), "{err}");
        let lenient = SandboxSpec {
            best_effort: true,
            ..spec
        };
        let d = decide("p", &lenient, &bare()).expect("best effort");
        assert_eq!(d.ids, None);
        assert!(row(&d.walls, "user").mechanism.starts_with("not enforced"));
    }

    #[test]
    fn unknown_users_and_groups_are_refused_even_with_best_effort() {
        let spec = SandboxSpec {
            user: Some("no-such-user-here".into()),
            best_effort: true,
            ..SandboxSpec::default()
        };
        let err = plan("p", &spec, &hybrid()).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "plugin \"p\": sandbox.user \"no-such-user-here\" is not a user on this machine"
        );
        let spec = SandboxSpec {
            group: Some("no-such-group-here".into()),
            best_effort: true,
            ..SandboxSpec::default()
        };
        assert_eq!(
            plan("p", &spec, &hybrid()).expect_err("unknown").setting,
            "group"
        );
    }

    /// Prints how this machine enforces a sandbox with every limit
    /// (`cargo test -p outboard-host --lib sandbox::plan::tests::prints --
    /// --nocapture`), as docs/SECURITY.md records, and checks what holds
    /// everywhere: memory always has a wall, no_new_privs is always there.
    #[test]
    fn prints_the_plan_on_this_machine() {
        let spec = SandboxSpec {
            open_files: Some(256),
            core_dumps: Some(false),
            network: Network::Loopback,
            best_effort: true,
            user: Some("nobody".into()),
            ..limits()
        };
        let walls = plan("example", &spec, &crate::sandbox::detect()).expect("best effort");
        for wall in &walls {
            println!("{:<13} {:<9} {}", wall.setting, wall.value, wall.mechanism);
        }
        assert!(!row(&walls, "memory").mechanism.starts_with("not enforced"));
        assert_eq!(
            row(&walls, "no_new_privs").mechanism,
            "prctl PR_SET_NO_NEW_PRIVS"
        );
    }

    #[test]
    fn values_read_as_written() {
        assert_eq!(size(256 << 20), "256Mi");
        assert_eq!(size(1 << 30), "1Gi");
        assert_eq!(size(100_000_000), "100000000");
        assert_eq!(cores(500), "0.5");
        assert_eq!(cores(2000), "2");
        assert_eq!(cores(1250), "1.25");
        assert_eq!(cores(10), "0.01");
    }
}
