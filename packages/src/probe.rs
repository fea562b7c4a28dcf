//! The one start install makes: the plugin says its own name and version.
//! (`outboard package` starts the author's own plugin the same way, but
//! without network only where the host can do that: see
//! [`describe_folder`].)
//!
//! Install's start is the operator's sandbox, not the package's: the
//! package's `plugin.toml` is not trusted yet. It runs with
//! `network = "none"` (its own network namespace with no interface up)
//! whatever its `plugin.toml` asks for, so code from a package that is not
//! installed yet reaches no network. A host that may not create a network
//! namespace refuses the start rather than run the plugin on the host's
//! network. The package's `user`, `group`, `network` and `best_effort`
//! are ignored: an installer running as root (which a network namespace
//! needs) starts it as an unprivileged user instead, [`PROBE_USER`]
//! (`nobody`) unless the installer names another, so that it holds no
//! capability (it cannot leave its namespace or its cgroup) and cannot
//! write the staged files, which belong to root and are writable by no
//! one else. A probe user
//! that does not exist, or is root, refuses the install.
//!
//! Where the host can give it a cgroup, it gets one, with a `pids` and a
//! `memory` limit (the package's own if smaller): what the plugin leaves
//! behind, even outside its process group (`setsid`), is killed with the
//! cgroup when it stops. The rest of the package's `[sandbox]`
//! (`filesystem`, `cpu`, `open_files`) applies as written: walls it adds
//! only narrow what the probe may do.
use std::path::Path;

use outboard_host::config::{Network, SandboxSpec, load_plugin_folder};
use outboard_host::{Plugin, PluginSpec, sandbox};

use crate::error::PackageError;

/// What a plugin, started once, says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The name in its `Describe`.
    pub name: String,
    /// The version in its `Describe`.
    pub version: String,
}

/// The user install starts a package's plugin as when it runs as root,
/// unless told another (`--probe-user`).
pub const PROBE_USER: &str = "nobody";

/// Starts the plugin `spec` to ready in the probe's sandbox (module
/// docs), as `probe_user` if this process is root, reads its manifest
/// and stops it.
pub async fn describe_once(spec: &PluginSpec, probe_user: &str) -> Result<Described, PackageError> {
    start_once(spec, Some(probe_user)).await
}

/// [`describe_once`] with `probe_user` set (install); without it, the
/// plugin's own sandbox, each wall only where the host can build it (best
/// effort), the network namespace included, instead of the plugin not
/// starting at all (packaging).
async fn start_once(
    spec: &PluginSpec,
    probe_user: Option<&str>,
) -> Result<Described, PackageError> {
    let strict = probe_user.is_some();
    let not_started = |reason: String| PackageError::Start {
        name: spec.name.clone(),
        reason,
    };
    let offline = sandbox::offers().network_namespace;
    if strict && !offline {
        return Err(not_started(
            "install starts it once without network (network = \"none\"), and this process \
             may not create a network namespace (that takes CAP_SYS_ADMIN): install as root"
                .to_owned(),
        ));
    }
    let probe = match probe_user {
        Some(user) => install_probe(spec, user).map_err(not_started)?,
        None => {
            let mut probe = probe_spec(spec, offline);
            probe.sandbox.best_effort = true;
            probe
        }
    };
    let plugin = Plugin::start(&probe).await.map_err(|e| {
        let mut reason = e.to_string();
        if let Some(user) = &probe.sandbox.user
            && let Some(dir) = unsearchable(&probe.command)
        {
            reason.push_str(&format!(
                " ({dir} is not searchable by other users, and install starts the plugin as \
                 {user:?}, who must reach its command and its folder: chmod o+x {dir}, or \
                 name another user with --probe-user)",
                dir = dir.display()
            ));
        }
        not_started(reason)
    })?;
    let described = Described {
        name: plugin.manifest().name.clone(),
        version: plugin.manifest().version.to_string(),
    };
    plugin.stop().await;
    Ok(described)
}

/// The first directory above the file `path` leads to that other users
/// may not search (no `o+x`), if any.
fn unsearchable(path: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // Through symlinks: the user must reach the file they lead to.
    let real = std::fs::canonicalize(path).ok()?;
    real.ancestors()
        .skip(1)
        .find(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_owned)
}

/// The processes and threads the probe may have at most: enough for any
/// plugin's start, and a cgroup to kill whatever it leaves behind.
const PROBE_PIDS: u32 = 4096;

/// The memory the probe's processes may use together at most (1 GiB),
/// where the host can give it a cgroup.
const PROBE_MEMORY: u64 = 1 << 30;

/// `spec` as install starts it (module docs): the package's `user`,
/// `group`, `network`, `best_effort` and `core_dumps` replaced; as
/// `probe_user` if this process is root; no network; `pids` and `memory`
/// capped where a cgroup enforces them. Err says why it cannot start so.
fn install_probe(spec: &PluginSpec, probe_user: &str) -> Result<PluginSpec, String> {
    let offers = sandbox::offers();
    let mut probe = spec.clone();
    let walls = &mut probe.sandbox;
    walls.best_effort = false;
    walls.network = Network::None;
    walls.core_dumps = Some(false);
    walls.group = None;
    walls.user = offers.root.then(|| probe_user.to_owned());
    if let Some(user) = &walls.user {
        let only_user = SandboxSpec {
            user: Some(user.clone()),
            ..SandboxSpec::default()
        };
        match sandbox::runs_as(&spec.name, &only_user, offers) {
            Ok(Some((uid, _))) if uid != 0 => {}
            Ok(_) => {
                return Err(format!(
                    "install starts it once as the unprivileged user {user:?} (--probe-user), \
                     and {user:?} is root: name an unprivileged user"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "install starts it once as the unprivileged user {user:?} (--probe-user), \
                     which is not usable here ({e}): name an existing unprivileged user \
                     with --probe-user"
                ));
            }
        }
    }
    let capped = |ours: u64, theirs: Option<u64>| Some(theirs.map_or(ours, |t| t.min(ours)));
    let pids = SandboxSpec {
        pids: capped(PROBE_PIDS.into(), walls.pids.map(u64::from))
            .map(|p| u32::try_from(p).unwrap_or(PROBE_PIDS)),
        ..SandboxSpec::default()
    };
    if in_cgroup(&spec.name, &pids, "pids") {
        walls.pids = pids.pids;
    }
    let memory = SandboxSpec {
        memory: capped(PROBE_MEMORY, walls.memory),
        ..SandboxSpec::default()
    };
    // Only a cgroup: RLIMIT_AS, the fallback, caps address space, which
    // some runtimes reserve far beyond what they use.
    if in_cgroup(&spec.name, &memory, "memory") {
        walls.memory = memory.memory;
    }
    Ok(probe)
}

/// True if `setting` of `only` is enforced here by a cgroup.
fn in_cgroup(name: &str, only: &SandboxSpec, setting: &str) -> bool {
    sandbox::plan(name, only, sandbox::offers()).is_ok_and(|walls| {
        walls
            .iter()
            .any(|w| w.setting == setting && w.mechanism.contains("cgroup"))
    })
}

/// `spec` for packaging: no network if `offline`, and a `pids` cgroup if
/// the host can make one.
fn probe_spec(spec: &PluginSpec, offline: bool) -> PluginSpec {
    let mut probe = spec.clone();
    if offline {
        probe.sandbox.network = Network::None;
    }
    let pids_only = SandboxSpec {
        pids: Some(PROBE_PIDS),
        ..SandboxSpec::default()
    };
    if probe.sandbox.pids.is_none() && in_cgroup(&spec.name, &pids_only, "pids") {
        probe.sandbox.pids = pids_only.pids;
    }
    probe
}

/// The plugin the folder `folder` holds, as its `plugin.toml` describes
/// it with built-in defaults; the error says why there is none.
pub(crate) fn spec_of(folder: &Path) -> Result<PluginSpec, String> {
    match load_plugin_folder(folder) {
        Ok(Some(spec)) => Ok(spec),
        Ok(None) => Err("its plugin.toml disables it (enabled = false)".to_owned()),
        Err(e) => Err(format!("its plugin.toml is not usable: {e}")),
    }
}

/// Starts the plugin in `folder` once and says what it says about itself:
/// how `outboard package` learns the name and version to record. The
/// author's own plugin, on the author's machine: without network where
/// the host can do that, each wall only where it can (packaging needs no
/// root).
pub async fn describe_folder(folder: &Path) -> Result<Described, PackageError> {
    let spec = spec_of(folder)
        .map_err(|reason| PackageError::Malformed(format!("{}: {reason}", folder.display())))?;
    start_once(&spec, None).await
}
