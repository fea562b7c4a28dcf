//! `filesystem`: the paths a plugin may read and write, enforced with
//! Landlock. The ruleset is made in the host before the fork, each path
//! opened there (so a missing one is an error naming the plugin, the
//! setting and the path); the child only adds its own `/proc/self` and
//! restricts itself, with raw system calls on the prepared descriptor.
//!
//! Besides the operator's `filesystem.read` and `filesystem.write`, a
//! plugin may always:
//!
//! - read and execute its own files: its command; for a script, each
//!   interpreter of its `#!` line (looked up on the plugin's `PATH` behind
//!   `/usr/bin/env`); for an interpreter in a Python virtual environment,
//!   the environment, the prefix of the Python it was made from (`home` in
//!   `pyvenv.cfg`) and the directories its `.pth` files add to the import
//!   path (editable installs); and its working directory, when one is set.
//!   The `#!` line, `pyvenv.cfg` and `.pth` files are the plugin author's:
//!   what they name is a request. An interpreter is granted only as a
//!   regular executable file (file rights, never a directory); a
//!   directory (and the working directory) is refused, failing the start,
//!   when it is `/`, above a system path or the runtime base, in `/proc`,
//!   `/etc` and the like, or a shared directory such as `/home` ([`guarded`]). An `env` line whose options this does not understand
//!   is refused too;
//! - read, write, and create files and sockets in its runtime directory
//!   (where it binds its socket);
//! - read [`SYSTEM_READ`] (the system's programs and libraries, the dynamic
//!   linker's cache, time zone, name resolution and CA certificates, CPU
//!   topology) and `/proc/self`; read and write [`DEVICES_WRITE`], read
//!   [`DEVICES_READ`].
//!
//! A writable path never lets the plugin make a device node (which would
//! reopen a disk it may not read), and from ABI 6 on the domain also keeps
//! the plugin from signalling processes outside it and from connecting to
//! abstract Unix sockets outside it.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, PathFdError, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};

use crate::config::{FilesystemSpec, SandboxSpec};
use crate::sandbox::plan::SandboxError;

/// The lowest ABI that builds the whole wall: before ABI 3 a plugin may
/// truncate any file its user may write, even outside `filesystem.write`.
pub const MIN_FULL_ABI: u32 = 3;

/// The ABI from which the domain is also scoped (signals and abstract Unix
/// sockets stay inside it).
const SCOPE_ABI: u32 = 6;

/// System paths every plugin under a filesystem wall may read and execute,
/// those that exist: programs and shared libraries (`/bin`, `/lib*` and
/// `/sbin` are `/usr`'s on a merged system), the dynamic linker's cache and
/// preloads, the time zone, name resolution, CA certificates (public
/// keys only: not `/etc/ssl/private`), and the CPU topology runtimes size
/// their thread pools by. Not the rest of `/etc` (`shadow`, keys, the
/// host's own config), not `/home`, `/root`, `/tmp`, `/var` or `/run`.
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.preload",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/pki/ca-trust/extracted",
    "/sys/devices/system/cpu",
];

/// Devices every plugin under a filesystem wall may read and write.
pub const DEVICES_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// Devices every plugin under a filesystem wall may read.
pub const DEVICES_READ: &[&str] = &["/dev/urandom", "/dev/random"];

/// How many `#!` interpreters deep a command is followed: the kernel's own
/// limit.
const MAX_INTERPRETERS: usize = 4;

/// How the filesystem wall is built on this machine, decided without side
/// effects from the Landlock ABI the kernel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Landlock at this ABI; below [`MIN_FULL_ABI`] only because the
    /// operator allowed best effort.
    Enforce {
        /// The kernel's Landlock ABI.
        abi: u32,
    },
    /// Not enforced: the kernel has no Landlock and the operator allowed
    /// best effort.
    NotEnforced,
}

impl Decision {
    /// How the kernel enforces it, for `describe`, `status` and logs.
    pub fn mechanism(&self) -> String {
        match self {
            Decision::Enforce { abi } if *abi < MIN_FULL_ABI => format!(
                "Landlock ABI {abi} (weaker: truncating a file is not restricted before ABI {MIN_FULL_ABI})"
            ),
            Decision::Enforce { abi } => format!("Landlock ABI {abi}"),
            Decision::NotEnforced => "not enforced: best_effort and no Landlock".to_owned(),
        }
    }

    /// The ABI to build the wall at; `None` if it is not built.
    pub fn abi(&self) -> Option<u32> {
        match self {
            Decision::Enforce { abi } => Some(*abi),
            Decision::NotEnforced => None,
        }
    }
}

/// The setting's value as the operator wrote it, counted: "2 read, 1 write
/// paths".
pub fn value(filesystem: &FilesystemSpec) -> String {
    format!(
        "{} read, {} write paths",
        filesystem.read.len(),
        filesystem.write.len()
    )
}

/// Decides how `spec`'s filesystem wall is built given the kernel's
/// Landlock ABI (`None`: no Landlock); `Ok(None)` if it asks for none. A
/// kernel without Landlock, or with an ABI below [`MIN_FULL_ABI`], is
/// refused unless `best_effort`, with an error naming the plugin; so is a
/// wall naming a path that does not exist (looked up, nothing opened:
/// [`prepare`] opens them).
pub fn decide(
    plugin: &str,
    spec: &SandboxSpec,
    landlock_abi: Option<u32>,
) -> Result<Option<Decision>, SandboxError> {
    if spec.filesystem.is_none() {
        return Ok(None);
    }
    let refuse = |why: &str| SandboxError::cannot_enforce(plugin, "filesystem", why);
    match landlock_abi {
        None if spec.best_effort => Ok(Some(Decision::NotEnforced)),
        None => Err(refuse(
            "the kernel has no Landlock, or it is disabled at boot",
        )),
        Some(abi) if abi < MIN_FULL_ABI && !spec.best_effort => Err(refuse(&format!(
            "the kernel's Landlock ABI is {abi}, and truncating a file is restricted only \
             from ABI {MIN_FULL_ABI} on"
        ))),
        Some(abi) => {
            if let Some(filesystem) = &spec.filesystem {
                for (setting, path) in listed(filesystem) {
                    if let Err(why) = std::fs::metadata(path) {
                        return Err(unopenable(plugin, setting, path, &why));
                    }
                }
            }
            Ok(Some(Decision::Enforce { abi }))
        }
    }
}

/// The operator's paths, each with its setting.
fn listed(filesystem: &FilesystemSpec) -> impl Iterator<Item = (&'static str, &Path)> {
    let read = filesystem
        .read
        .iter()
        .map(|p| ("filesystem.read", p.as_path()));
    let write = filesystem
        .write
        .iter()
        .map(|p| ("filesystem.write", p.as_path()));
    read.chain(write)
}

/// The error for a listed `path` of `setting` that cannot be opened.
fn unopenable(plugin: &str, setting: &str, path: &Path, why: &io::Error) -> SandboxError {
    SandboxError {
        plugin: plugin.to_owned(),
        setting: setting.to_owned(),
        problem: format!("names {}, which cannot be opened: {why}", path.display()),
    }
}

/// A Landlock ruleset made in the host for one spawn, applied in the child
/// by [`Prepared::restrict`].
#[derive(Debug)]
pub struct Prepared {
    /// The ruleset (close-on-exec: the plugin never holds it).
    ruleset: OwnedFd,
    /// What the child's `/proc/self` is allowed, in the kernel's bits.
    proc_self: u64,
}

/// Why a path is in the ruleset, for the error when it cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `filesystem.read`.
    Read,
    /// `filesystem.write`.
    Write,
    /// The plugin's command.
    Own,
    /// An interpreter of the command's `#!` line: an executable file
    /// (checked by [`interpreters`]), given file rights only.
    Interpreter,
    /// A directory the plugin's files or its working directory ask for,
    /// with every link resolved, checked by [`guarded`].
    Derived,
    /// Added automatically when it exists.
    Automatic,
}

/// One path and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    path: PathBuf,
    write: bool,
    source: Source,
}

/// Makes the ruleset of `filesystem` for the plugin `cmd` runs, at `abi`:
/// the operator's paths, the plugin's own files and runtime directory (its
/// socket's directory), and the automatic ones. Every descriptor it opens
/// is closed before it returns, but the ruleset's.
pub fn prepare(
    plugin: &str,
    filesystem: &FilesystemSpec,
    abi: u32,
    cmd: &Command,
) -> io::Result<Prepared> {
    let rules = rules(filesystem, cmd).map_err(|why| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("plugin {plugin:?}: sandbox.filesystem {why}"),
        )
    })?;
    for rule in rules
        .iter()
        .filter(|r| !matches!(r.source, Source::Read | Source::Write))
    {
        tracing::debug!(plugin, path = %rule.path.display(), write = rule.write, "sandbox.filesystem: automatic path");
    }
    let landlock_abi = ABI::from(i32::try_from(abi).unwrap_or(i32::MAX));
    let handled = AccessFs::from_all(landlock_abi);
    let read = AccessFs::from_read(landlock_abi);
    // A device node made in a writable directory would reopen a disk or a
    // terminal the plugin may not read.
    let write = handled & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let failed = |what: String, e: &dyn std::fmt::Display| {
        io::Error::other(format!(
            "plugin {plugin:?}: cannot build sandbox.filesystem ({what}): {e}"
        ))
    };
    // A hard requirement: the kernel must handle every right of the ABI
    // that detection found, or the wall would be weaker than it says.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .map_err(|e| failed(format!("Landlock ABI {abi}"), &e))?;
    if abi >= SCOPE_ABI {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| failed(format!("Landlock ABI {abi} scopes"), &e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| failed(format!("Landlock ABI {abi}"), &e))?;
    for rule in &rules {
        let fd = match PathFd::new(&rule.path) {
            Ok(fd) => fd,
            Err(_) if matches!(rule.source, Source::Automatic | Source::Interpreter) => continue,
            Err(e) => {
                let why = match e {
                    PathFdError::OpenCall { source, .. } => source,
                    other => io::Error::other(other.to_string()),
                };
                let message = match rule.source {
                    Source::Read => unopenable(plugin, "filesystem.read", &rule.path, &why),
                    Source::Write => unopenable(plugin, "filesystem.write", &rule.path, &why),
                    _ => {
                        return Err(io::Error::new(
                            why.kind(),
                            format!(
                                "plugin {plugin:?}: its command {} cannot be opened: {why}",
                                rule.path.display()
                            ),
                        ));
                    }
                };
                return Err(io::Error::new(why.kind(), message.to_string()));
            }
        };
        let mode = mode_of(fd.as_fd());
        let directory = mode.is_some_and(|m| m & libc::S_IFMT == libc::S_IFDIR);
        // What the plugin's files asked for was checked by path; the
        // descriptor must still be what was checked, or a link or rename
        // put in between would widen the wall.
        let changed = match rule.source {
            Source::Interpreter => {
                !mode.is_some_and(|m| m & libc::S_IFMT == libc::S_IFREG && m & 0o111 != 0)
            }
            Source::Derived => {
                let opened =
                    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()));
                !directory || opened.ok().as_deref() != Some(rule.path.as_path())
            }
            _ => false,
        };
        if changed {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "plugin {plugin:?}: sandbox.filesystem refuses {}: it changed while the \
                     wall was built",
                    rule.path.display()
                ),
            ));
        }
        let mut access = if rule.write { write } else { read };
        if !directory {
            access &= AccessFs::from_file(landlock_abi);
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| failed(rule.path.display().to_string(), &e))?;
    }
    let ruleset: Option<OwnedFd> = created.into();
    let ruleset = ruleset.ok_or_else(|| {
        io::Error::other(format!(
            "plugin {plugin:?}: cannot build sandbox.filesystem: the kernel made no ruleset"
        ))
    })?;
    Ok(Prepared {
        ruleset,
        proc_self: read.bits(),
    })
}

/// The kernel's `struct landlock_path_beneath_attr` (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: libc::c_long = 1;

impl Prepared {
    /// Restricts the calling process: adds its own `/proc/self` (which,
    /// opened in the host, would be the host's) and enters the domain. For
    /// the child between fork and exec: system calls only, nothing
    /// allocated. `no_new_privs` must be set already (or the caller be
    /// privileged), as the kernel requires.
    pub fn restrict(&self) -> io::Result<()> {
        let ruleset: RawFd = self.ruleset.as_raw_fd();
        // SAFETY: a NUL-terminated static path; the descriptor is closed
        // below on every path.
        let proc_self = unsafe {
            libc::open(
                c"/proc/self".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if proc_self < 0 {
            return Err(io::Error::last_os_error());
        }
        let attr = PathBeneathAttr {
            allowed_access: self.proc_self,
            parent_fd: proc_self,
        };
        // SAFETY: the ruleset descriptor is owned by `self`; `attr` is the
        // packed structure the kernel reads for this rule type.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                RULE_PATH_BENEATH,
                &raw const attr,
                0u32,
            )
        };
        let add_error = (added != 0).then(io::Error::last_os_error);
        // SAFETY: `proc_self` was opened above and is closed once.
        unsafe { libc::close(proc_self) };
        if let Some(error) = add_error {
            return Err(error);
        }
        // SAFETY: restricts only the calling process (and its future
        // children) with the ruleset `self` owns.
        let restricted = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
        if restricted != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Every path of the ruleset for `filesystem` and the plugin `cmd` runs;
/// `Err` (the reason, to follow "plugin NAME: sandbox.filesystem ") when a
/// path derived from the plugin's own files, or its working directory,
/// would open more than its own files (see [`protected`]).
fn rules(filesystem: &FilesystemSpec, cmd: &Command) -> Result<Vec<Rule>, String> {
    let rule = |path: &Path, write, source| Rule {
        path: path.to_path_buf(),
        write,
        source,
    };
    let mut rules: Vec<Rule> = Vec::new();
    rules.extend(filesystem.read.iter().map(|p| rule(p, false, Source::Read)));
    rules.extend(
        filesystem
            .write
            .iter()
            .map(|p| rule(p, true, Source::Write)),
    );
    // The runtime directory is the socket's: the handshake variable, which
    // a plugin's configured `env` cannot set.
    let socket = env_of(cmd, outboard_proto::handshake::ENV_SOCKET);
    let runtime_dir = socket.as_deref().and_then(|s| Path::new(s).parent());
    // What the plugin may write must not widen its wall at its next start:
    // a `#!` line, `pyvenv.cfg` or `.pth` file beneath a writable path is
    // not followed.
    let writable: Vec<PathBuf> = filesystem
        .write
        .iter()
        .map(PathBuf::as_path)
        .chain(runtime_dir)
        .map(canonical)
        .collect();
    let trusted = |path: &Path| {
        let path = canonical(path);
        !writable.iter().any(|w| path.starts_with(w))
    };
    let runtime_base = runtime_dir.and_then(Path::parent);
    let program = Path::new(cmd.get_program());
    let path_var = env_of(cmd, "PATH");
    let chain = interpreters(program, path_var.as_deref(), &trusted)?;
    if let Some((command, interpreters)) = chain.split_first() {
        rules.push(rule(command, false, Source::Own));
        for interpreter in interpreters {
            rules.push(rule(interpreter, false, Source::Interpreter));
        }
    }
    for interpreter in &chain {
        // One that does not exist (a base Python since removed) is left
        // out, as the automatic paths are.
        let asked = python_environment(interpreter, &trusted);
        for (dir, asker) in asked.into_iter().filter(|(dir, _)| dir.exists()) {
            let dir = guarded(&dir, runtime_base).map_err(|why| {
                format!("refuses {}, which {asker} asks for: {why}", dir.display())
            })?;
            rules.push(rule(&dir, false, Source::Derived));
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        let dir = guarded(dir, runtime_base).map_err(|why| {
            format!(
                "refuses its working_dir {}: {why}; run it in a directory of its own",
                dir.display()
            )
        })?;
        rules.push(rule(&dir, false, Source::Derived));
    }
    if let Some(dir) = runtime_dir {
        rules.push(rule(dir, true, Source::Automatic));
    }
    for path in SYSTEM_READ.iter().chain(DEVICES_READ) {
        rules.push(rule(Path::new(path), false, Source::Automatic));
    }
    for path in DEVICES_WRITE {
        rules.push(rule(Path::new(path), true, Source::Automatic));
    }
    Ok(rules)
}

/// Directories nothing a plugin's files ask for may be in: other
/// processes' `/proc` entries (the host's `environ`), `/sys`, devices,
/// `/etc` (`/etc/ssl/private`, `shadow`), `/run` and `/boot`.
const KERNEL_AND_CONFIG: &[&str] = &["/proc", "/sys", "/dev", "/etc", "/run", "/boot"];

/// Directories shared by users and programs: what a plugin's files ask for
/// may be beneath them (`/root/.pyenv/versions/3.11`, `/opt/python`), not
/// one of them or above.
const SHARED: &[&str] = &[
    "/home", "/root", "/var", "/tmp", "/srv", "/mnt", "/media", "/opt",
];

/// `dir` with every link resolved, if a plugin may read beneath it: a
/// directory, not `/`, not above a system path ([`SYSTEM_READ`], the
/// devices), not in [`KERNEL_AND_CONFIG`], not one of [`SHARED`] nor above
/// one, and not the runtime base (where every plugin's runtime directory
/// is) nor above it. A system path itself is fine: it is readable anyway.
fn guarded(dir: &Path, runtime_base: Option<&Path>) -> Result<PathBuf, String> {
    let resolved = canonical(dir);
    if !resolved.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    if resolved == Path::new("/") {
        return Err("it is the root directory, which holds every file".to_owned());
    }
    let system = SYSTEM_READ.iter().chain(DEVICES_READ).chain(DEVICES_WRITE);
    if let Some(path) = system
        .map(Path::new)
        .find(|p| p.starts_with(&resolved) && *p != resolved)
    {
        return Err(format!(
            "it holds {} and more than the plugin's own files",
            path.display()
        ));
    }
    if let Some(base) = runtime_base.map(canonical)
        && base.starts_with(&resolved)
    {
        return Err(format!(
            "it holds the runtime directories of every plugin ({})",
            base.display()
        ));
    }
    if let Some(top) = KERNEL_AND_CONFIG
        .iter()
        .map(Path::new)
        .find(|top| resolved.starts_with(top))
    {
        return Err(format!(
            "it is beneath {}, which holds other processes' state, keys or devices",
            top.display()
        ));
    }
    if let Some(top) = SHARED
        .iter()
        .map(Path::new)
        .find(|top| top.starts_with(&resolved))
    {
        return Err(format!(
            "it holds {}, which holds other users' and programs' files",
            top.display()
        ));
    }
    Ok(resolved)
}

/// The value `cmd` gives the variable `name`, if it sets one (the launch
/// clears the environment and sets every variable the plugin gets).
fn env_of(cmd: &Command, name: &str) -> Option<String> {
    cmd.get_envs()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v)
        .map(|v| v.to_string_lossy().into_owned())
}

/// The path with every link resolved, or as it is if it cannot be.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The search path `execvp` uses when `PATH` is not set (glibc's).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// `program`, then each interpreter its `#!` line runs it with, in turn
/// (at most [`MAX_INTERPRETERS`]); `/usr/bin/env`'s command is followed
/// (see [`env_command`]) to the file it names, looked up on `path_var`.
/// The `#!` line of a file that is not `trusted` is not read. The line is
/// the plugin author's: an interpreter is a request, followed only to a
/// regular executable file (a missing one ends the chain: the start fails
/// by itself); anything else, and an `env` line this does not understand,
/// is an `Err` naming the file and what it asks for.
fn interpreters(
    program: &Path,
    path_var: Option<&str>,
    trusted: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, String> {
    let mut chain = vec![program.to_path_buf()];
    while chain.len() <= MAX_INTERPRETERS {
        let Some(script) = chain.last().filter(|p| trusted(p)).cloned() else {
            break;
        };
        let Some((interpreter, arg)) = shebang(&script) else {
            break;
        };
        let asker = format!("the #! line of {}", script.display());
        if !executable_file(&interpreter, &asker)? {
            break;
        }
        chain.push(interpreter.clone());
        if interpreter.file_name().is_some_and(|n| n == "env") {
            let target = env_command(arg.as_deref(), path_var)
                .map_err(|why| format!("cannot follow {asker} (#!{} {}): {why}; name the interpreter by its absolute path", interpreter.display(), arg.as_deref().unwrap_or_default()))?;
            let Some((name, search)) = target else {
                break;
            };
            let Some(found) = lookup(&name, search.as_deref()) else {
                break;
            };
            if !executable_file(&found, &asker)? {
                break;
            }
            chain.push(found);
        }
    }
    Ok(chain)
}

/// Whether `path`, which `asker` names as an interpreter, may be granted:
/// `Ok(true)` for a regular file someone may execute, `Ok(false)` if it
/// does not exist, `Err` for anything else (a directory above all).
fn executable_file(path: &Path, asker: &str) -> Result<bool, String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(true),
        Ok(meta) => {
            let what = if meta.is_dir() {
                "a directory"
            } else if meta.is_file() {
                "a file nobody may execute"
            } else {
                "not a regular file"
            };
            Err(format!(
                "refuses {}, which {asker} asks for as an interpreter: it is {what}, and only \
                 an executable file is granted",
                path.display()
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!(
            "refuses {}, which {asker} asks for as an interpreter: {e}",
            path.display()
        )),
    }
}

/// What `/usr/bin/env` runs, given the argument of a `#!` line (the kernel
/// passes everything after the interpreter as one argument): the command's
/// name and the `PATH` it is looked up on (`path_var` unless the line
/// changes it), or `None` if the line runs no command. GNU `env`'s options
/// are understood as far as they matter to which file runs: `-S` (split the
/// rest on blanks: no quotes, escapes or `${VAR}`), `-i`/`-`, `-u NAME`,
/// `-C DIR`, `-v`, `--debug`, the signal options, `--`, and `NAME=VALUE`;
/// anything else is an `Err`, as is a name that is a relative path.
fn env_command(
    arg: Option<&str>,
    path_var: Option<&str>,
) -> Result<Option<(String, Option<String>)>, String> {
    let Some(arg) = arg else {
        return Ok(None);
    };
    let split = arg
        .strip_prefix("-S")
        .or_else(|| arg.strip_prefix("--split-string="));
    let words: Vec<&str> = match split {
        Some(rest) => {
            if let Some(c) = rest.chars().find(|c| "\\'\"$#".contains(*c)) {
                return Err(format!("env -S with {c:?} is not handled"));
            }
            rest.split_whitespace().collect()
        }
        None if arg.starts_with('-') => {
            return Err(
                "env options without -S are not handled (the kernel passes them as one word)"
                    .to_owned(),
            );
        }
        None if arg.contains(char::is_whitespace) => {
            return Err("without -S, env takes the whole line as one command name".to_owned());
        }
        None => vec![arg],
    };
    let mut search = path_var.map(str::to_owned);
    let mut words = words.into_iter();
    let mut options = true;
    while let Some(word) = words.next() {
        if options {
            let mut operand = |inline: &str, option: &str| match inline {
                "" => words
                    .next()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("env {option} without its value")),
                value => Ok(value.to_owned()),
            };
            match word {
                "--" => {
                    options = false;
                    continue;
                }
                "-" | "-i" | "--ignore-environment" => {
                    search = None;
                    continue;
                }
                "-v" | "--debug" | "-0" | "--null" => continue,
                _ if ["--default-signal", "--ignore-signal", "--block-signal"]
                    .iter()
                    .any(|o| word == *o || word.starts_with(&format!("{o}="))) =>
                {
                    continue;
                }
                _ if word.starts_with("-u") || word.starts_with("--unset") => {
                    let inline = word
                        .strip_prefix("--unset=")
                        .or_else(|| word.strip_prefix("--unset"))
                        .or_else(|| word.strip_prefix("-u"))
                        .unwrap_or_default();
                    if operand(inline, "-u")? == "PATH" {
                        search = None;
                    }
                    continue;
                }
                _ if word.starts_with("-C") || word.starts_with("--chdir") => {
                    let inline = word
                        .strip_prefix("--chdir=")
                        .or_else(|| word.strip_prefix("--chdir"))
                        .or_else(|| word.strip_prefix("-C"))
                        .unwrap_or_default();
                    operand(inline, "-C")?;
                    continue;
                }
                _ if word.starts_with('-') => {
                    return Err(format!("env option {word} is not handled"));
                }
                _ => options = false,
            }
        }
        if let Some((name, value)) = word.split_once('=') {
            if name == "PATH" {
                search = Some(value.to_owned());
            }
            continue;
        }
        if word.contains('/') && !word.starts_with('/') {
            return Err(format!("the relative command {word} is not handled"));
        }
        let search = search.or_else(|| Some(DEFAULT_PATH.to_owned()));
        return Ok(Some((word.to_owned(), search)));
    }
    Ok(None)
}

/// The interpreter and its optional argument on `file`'s `#!` line.
fn shebang(file: &Path) -> Option<(PathBuf, Option<String>)> {
    let mut head = [0u8; 256];
    let mut opened = std::fs::File::open(file).ok()?;
    let mut len = 0;
    while len < head.len() {
        match opened.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let line = head[..len].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    let (interpreter, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, Some(a.trim().to_owned()).filter(|a| !a.is_empty())),
        None => (line, None),
    };
    Path::new(interpreter)
        .is_absolute()
        .then(|| (PathBuf::from(interpreter), arg))
}

/// `name` looked up on `path_var` (a `:` list; relative entries are
/// skipped), or itself if it has a `/`.
fn lookup(name: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    path_var?
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// For an interpreter inside a Python virtual environment (`BIN/../pyvenv.cfg`
/// exists): the environment, the prefix of the Python it was made from,
/// and the directories its `.pth` files add to the import path, each with
/// the file that asks for it; files that are not `trusted` are not read.
/// These are requests: [`rules`] grants only those [`guarded`] lets
/// through.
fn python_environment(
    interpreter: &Path,
    trusted: &dyn Fn(&Path) -> bool,
) -> Vec<(PathBuf, String)> {
    let Some(venv) = interpreter.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    let config_file = venv.join("pyvenv.cfg");
    if !trusted(&config_file) {
        return Vec::new();
    }
    let Ok(config) = std::fs::read_to_string(&config_file) else {
        return Vec::new();
    };
    let asker = config_file.display().to_string();
    let mut dirs = vec![(venv.to_path_buf(), asker.clone())];
    let home = config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    });
    if let Some(home) = home {
        // `home` is the base Python's `bin`; its prefix holds the standard
        // library.
        let prefix = match home.file_name() {
            Some(name) if name == "bin" => home.parent().map(Path::to_path_buf),
            _ => Some(home),
        };
        dirs.extend(prefix.map(|p| (p, format!("{asker} (home)"))));
    }
    let lib = venv.join("lib");
    let site_packages = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages"))
        .filter(|dir| dir.is_dir());
    for site in site_packages {
        let pth_files = std::fs::read_dir(&site)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pth") && trusted(p));
        for pth in pth_files {
            let text = std::fs::read_to_string(&pth).unwrap_or_default();
            let asker = pth.display().to_string();
            dirs.extend(
                pth_dirs(&site, &text)
                    .into_iter()
                    .map(|d| (d, asker.clone())),
            );
        }
    }
    dirs
}

/// The directories a `.pth` file in `site` adds to the import path: its
/// lines that are neither comments nor `import` statements, relative to
/// `site`, when they are directories outside it.
fn pth_dirs(site: &Path, text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("import"))
        .map(|line| site.join(line))
        .filter(|dir| dir.is_dir() && !dir.starts_with(site))
        .collect()
}

/// The mode of `fd` (`fstat`: its type and permissions); `None` if the
/// call fails, which counts as neither a directory nor an executable file.
fn mode_of(fd: std::os::fd::BorrowedFd<'_>) -> Option<u32> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `stat` on success, which is checked before it is
    // read.
    let ok = unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } == 0;
    // SAFETY: initialized by the successful fstat.
    ok.then(|| unsafe { stat.assume_init() }.st_mode)
}

#[cfg(test)]
mod tests;
