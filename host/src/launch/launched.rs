//! The one launch, used by the host's start and the conformance battery
//! alike: a private runtime directory, the spawn (own process group,
//! scrubbed environment, stderr logged under the plugin's name), and the
//! handshake line read off stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outboard_proto::handshake::{
    self as wire, ENV_FASTPATH_SOCKET, ENV_MAGIC_COOKIE, ENV_PLUGIN_NAME, ENV_PROTOCOL_VERSIONS,
    ENV_SOCKET, ENV_TOKEN, HandshakeLine, MAGIC_COOKIE_VALUE, SUPPORTED_PROTOCOL_VERSIONS,
};
use rand::Rng;
use tokio::io::BufReader;
use tokio::sync::watch;

use crate::config::PluginSpec;
use crate::error::{Error, ErrorKind};
use crate::launch::attach::{Attach, Held};
use crate::launch::call::Guard;
use crate::launch::channel::{self, Clients};
use crate::launch::fastpath::{self, FastPath};
use crate::launch::handshake;
use crate::launch::peer::{self, PeerCheck};
use crate::launch::process::{Launch, PluginProcess};
use crate::launch::runtime_dir::RuntimeDir;
use crate::manifest::Manifest;
use crate::output::{self, Stream, Tail};
use crate::sandbox;

/// How long a killed plugin's leader and then its group get to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How long the output of a plugin that is gone is still read: a process
/// that escaped its group may hold the pipes open for ever, and the host
/// must not keep their read ends for it.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// A plugin that printed a valid handshake line: its process, where it
/// listens and the token it expects. Dropping it kills the process group,
/// then removes the runtime directory.
#[derive(Debug)]
pub struct Launched {
    /// The name the host knows the plugin by, on its log lines.
    name: Arc<str>,
    /// The process, leader of its own group.
    process: PluginProcess,
    /// The last lines it wrote to stderr, for error reports.
    stderr: Tail,
    /// What it announced.
    handshake: HandshakeLine,
    /// Where it listens.
    socket: PathBuf,
    /// The token every call must carry.
    token: String,
    /// The check of every dial to its socket.
    peer: Arc<PeerCheck>,
    /// The check of the connection to its fast path's socket, when the
    /// host offered it one (`PluginSpec::fastpath`).
    fast_peer: Option<PeerCheck>,
    /// How long from spawn to the handshake line.
    handshake_after: Duration,
    /// Dropped with the instance: its output is then read for at most
    /// [`OUTPUT_DRAIN`] more, and its pipes closed.
    _gone: watch::Sender<()>,
    /// What an [`Attach`] gave this launch, let go when the process exits;
    /// declared after `process` so that it outlives no kill on drop.
    attachment: Option<Held>,
    /// Removed when dropped; declared last so that the process is killed
    /// before its directory goes.
    runtime_dir: RuntimeDir,
}

/// Launches the plugin `spec` describes and waits, up to its handshake
/// timeout, for its handshake line. Whatever fails on the way, nothing is
/// left running and the runtime directory is removed.
pub async fn launch(spec: &PluginSpec) -> Result<Launched, Error> {
    launch_attached(spec, None).await
}

/// [`launch`], giving the launch what `attach` binds in its runtime
/// directory before the spawn, and its variables.
pub async fn launch_attached(
    spec: &PluginSpec,
    attach: Option<&dyn Attach>,
) -> Result<Launched, Error> {
    let name: Arc<str> = spec.name.as_str().into();
    let fail = |kind: ErrorKind| Error::new(&*name, kind);
    spec.check()
        .map_err(|why| fail(ErrorKind::InvalidSpec(why)))?;
    // Refused before anything is made, naming the setting; the spawn
    // builds what this decides.
    let offers = sandbox::offers();
    let walls = sandbox::plan(&name, &spec.sandbox, offers).map_err(|e| {
        fail(ErrorKind::Sandbox {
            setting: e.setting,
            problem: e.problem,
        })
    })?;
    let runtime_dir = runtime_dir_for(spec).map_err(|e| fail(ErrorKind::RuntimeDir(e)))?;
    let socket = runtime_dir.socket_path();
    let fast_socket = spec
        .fastpath
        .then(|| fastpath::socket_in(runtime_dir.path()));
    let token = new_token();
    let attachment = match attach {
        Some(attach) => Some(
            attach
                .attach(&name, runtime_dir.path())
                .map_err(|why| fail(ErrorKind::Attach(why)))?,
        ),
        None => None,
    };
    // The user the plugin runs as, if the host drops it to one: its
    // directory and sockets become that user's.
    let runs_as = sandbox::runs_as(&name, &spec.sandbox, offers)
        .ok()
        .flatten();
    if let Some((uid, gid)) = runs_as {
        runtime_dir
            .hand_to(uid, gid)
            .map_err(|e| fail(ErrorKind::RuntimeDir(e)))?;
    }
    // A walled root plugin loses the capabilities that climb walls, but
    // root owns the cgroup files: without a filesystem wall it can still
    // write itself into another cgroup.
    let in_cgroup = walls.iter().any(|w| w.mechanism.starts_with("cgroup"));
    let in_landlock = walls
        .iter()
        .any(|w| w.setting == "filesystem" && w.mechanism.starts_with("Landlock"));
    if offers.root && in_cgroup && !in_landlock && runs_as.is_none_or(|(uid, _)| uid == 0) {
        tracing::warn!(
            plugin = &*name,
            "runs as root without a filesystem wall: it can move itself out of its cgroups \
             (root owns their files); set sandbox.user or sandbox.filesystem to hold it"
        );
    }
    let mut launch = launch_for(spec, &socket, fast_socket.as_deref(), &token);
    if let Some(attachment) = &attachment {
        launch.handshake_env.extend(attachment.env());
    }
    let started = Instant::now();
    let (gone, gone_rx) = watch::channel(());
    let (process, mut stdout, stderr) =
        spawn_logged(&name, &launch, &gone_rx)
            .await
            .map_err(|source| {
                fail(ErrorKind::Spawn {
                    command: spec.command.clone(),
                    source,
                })
            })?;
    if let Some(attachment) = &attachment {
        attachment.spawned(process.pid());
    }
    let attachment = attachment.map(|a| Held::until_exit(a, process.exit_watch()));
    // From here on, dropping `process` kills the plugin's group and dropping
    // `runtime_dir` removes the directory: an early return cleans up (and
    // the caller of a launch that shook hands can wait for it: `kill`).
    let expect = handshake::Expect {
        plugin: &name,
        socket: &socket,
        versions: SUPPORTED_PROTOCOL_VERSIONS,
        timeout: spec.handshake_timeout,
    };
    let handshake = match handshake::read(&expect, &mut stdout, process.exit_watch(), &stderr).await
    {
        Ok(line) => line,
        Err(kind) => {
            // Gone, group and all, before the error is returned.
            process.kill_group(KILL_WAIT).await;
            return Err(fail(kind));
        }
    };
    let handshake_after = started.elapsed();
    tokio::spawn(until_gone(
        output::forward(name.clone(), Stream::Stdout, stdout, None),
        gone_rx,
    ));
    let uid = runs_as.map_or_else(peer::euid, |(uid, _)| uid);
    let peer = PeerCheck::for_plugin(&socket, uid, process.pid());
    let fast_peer = fast_socket.map(|fast| PeerCheck::for_plugin(&fast, uid, process.pid()));
    Ok(Launched {
        name,
        process,
        stderr,
        handshake,
        peer: Arc::new(peer),
        fast_peer,
        socket,
        token,
        handshake_after,
        _gone: gone,
        attachment,
        runtime_dir,
    })
}

impl Launched {
    /// The name the host knows the plugin by.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its process.
    pub fn process(&self) -> &PluginProcess {
        &self.process
    }

    /// The protocol version it chose in its handshake.
    pub fn protocol_version(&self) -> u32 {
        self.handshake.protocol_version
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The token its calls must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How long it took from spawn to the handshake line.
    pub fn handshake_after(&self) -> Duration {
        self.handshake_after
    }

    /// Its runtime directory.
    pub fn runtime_dir(&self) -> &Path {
        self.runtime_dir.path()
    }

    /// The last lines it wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr.lines()
    }

    /// The bound for calls to it: their deadline and its exit.
    pub fn guard(&self) -> Guard<'_> {
        Guard::new(&self.process, &self.stderr).with_peer(&self.peer)
    }

    /// Connects to its socket with its token, within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Clients, Error> {
        channel::connect_checked(self.peer.clone(), &self.token, timeout)
            .await
            .map_err(|reason| {
                Error::new(
                    &*self.name,
                    ErrorKind::Connect {
                        socket: self.socket.clone(),
                        reason,
                    },
                )
            })
    }

    /// The fast path's socket, if the host offered it one.
    pub fn fastpath_socket(&self) -> Option<&Path> {
        self.fast_peer.as_ref().map(PeerCheck::socket)
    }

    /// Connects to its fast path's socket and says HELLO, within
    /// `timeout`: for a plugin that was offered the fast path and lists
    /// its feature. `None` if it was not offered one.
    pub(crate) async fn connect_fastpath(
        &self,
        timeout: Duration,
    ) -> Option<Result<FastPath, ErrorKind>> {
        let check = self.fast_peer.as_ref()?;
        Some(
            FastPath::connect(check, &self.token, timeout)
                .await
                .map_err(|reason| ErrorKind::Fastpath {
                    socket: check.socket().to_owned(),
                    reason,
                }),
        )
    }

    /// A plain channel to its socket, no token on its calls (conformance
    /// checks that the plugin demands one), every dial checked as
    /// [`Launched::connect`]'s are: against the user it runs as.
    pub async fn dial(&self, timeout: Duration) -> Result<tonic::transport::Channel, String> {
        channel::dial_checked(self.peer.clone(), timeout).await
    }

    /// Tells its attachment, if it has one, what `Describe` said and what
    /// was granted.
    pub fn described(&self, manifest: &Manifest, granted: &[String]) {
        if let Some(attachment) = &self.attachment {
            attachment.described(manifest, granted);
        }
    }

    /// Kills its whole process group at once and waits for it to be gone.
    pub async fn kill(&self) {
        self.process.kill_group(KILL_WAIT).await;
    }
}

/// Spawns `launch` and starts logging its stderr under `name`, remembering
/// the last lines; returns the process, its stdout (where the handshake
/// comes next) and the stderr tail.
async fn spawn_logged(
    name: &Arc<str>,
    launch: &Launch,
    gone: &watch::Receiver<()>,
) -> std::io::Result<(PluginProcess, BufReader<tokio::process::ChildStdout>, Tail)> {
    let (process, pipes) = PluginProcess::spawn(launch).await?;
    let stderr = Tail::default();
    tokio::spawn(until_gone(
        output::forward(
            name.clone(),
            Stream::Stderr,
            BufReader::new(pipes.stderr),
            Some(stderr.clone()),
        ),
        gone.clone(),
    ));
    Ok((process, BufReader::new(pipes.stdout), stderr))
}

/// Runs `forward` until its stream ends or, once the instance is gone
/// (`gone`'s sender dropped; nothing is ever sent), for at most [`OUTPUT_DRAIN`] more: its last words still
/// reach the log, and the pipe's read end is closed even if a process that
/// left the plugin's group still holds the write end.
async fn until_gone(forward: impl Future<Output = ()>, mut gone: watch::Receiver<()>) {
    let mut forward = std::pin::pin!(forward);
    tokio::select! {
        () = &mut forward => return,
        _ = gone.changed() => {}
    }
    let _ = tokio::time::timeout(OUTPUT_DRAIN, forward).await;
}

/// A fresh random token: 32 bytes as hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh runtime directory for `spec`: under its `runtime_base`, else
/// under `$OUTBOARD_RUNTIME_DIR` or `/tmp`.
fn runtime_dir_for(spec: &PluginSpec) -> std::io::Result<RuntimeDir> {
    match &spec.runtime_base {
        Some(base) => RuntimeDir::create_in(base),
        None => RuntimeDir::create(),
    }
}

/// What to spawn for `spec`, with the handshake variables for a launch on
/// `socket` with `token`, offering the fast path on `fast` if given (set
/// last, so configuration cannot override them).
fn launch_for(spec: &PluginSpec, socket: &Path, fast: Option<&Path>, token: &str) -> Launch {
    let mut launch = Launch {
        handshake_env: vec![
            (ENV_MAGIC_COOKIE.into(), MAGIC_COOKIE_VALUE.into()),
            (
                ENV_PROTOCOL_VERSIONS.into(),
                wire::format_versions(SUPPORTED_PROTOCOL_VERSIONS),
            ),
            (ENV_SOCKET.into(), socket.display().to_string()),
            (ENV_TOKEN.into(), token.to_owned()),
            (ENV_PLUGIN_NAME.into(), spec.name.clone()),
        ],
        ..Launch::by_hand(spec)
    };
    if let Some(fast) = fast {
        launch
            .handshake_env
            .push((ENV_FASTPATH_SOCKET.into(), fast.display().to_string()));
    }
    launch
}
