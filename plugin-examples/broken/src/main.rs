//! `broken-plugin MODE`: an Outboard plugin that misbehaves in one chosen
//! way, so the host's tests can run every failure as a real subprocess.
//!
//! Apart from its fault, each mode is a correct plugin, written straight
//! against the protocol (`outboard-proto`, tonic, tonic-health) rather than
//! the SDK, so this file also shows what any plugin has to do:
//!
//! 1. refuse to run unless `OUTBOARD_MAGIC_COOKIE` says a host started it;
//! 2. pick a protocol version from `OUTBOARD_PROTOCOL_VERSIONS`;
//! 3. bind `OUTBOARD_SOCKET` (mode 0600);
//! 4. print `outboard|<version>|unix|<socket>|grpc` on stdout;
//! 5. serve `outboard.v1.PluginService` (every call must carry
//!    `authorization: Bearer <OUTBOARD_TOKEN>`), `grpc.health.v1.Health`
//!    (SERVING for `""`) and reflection;
//! 6. exit 0 after answering `Shutdown`, or on SIGTERM.
//!
//! Every mode's manifest is named `broken-<mode>`, version 0.1.0, and
//! subscribes to phase `test` at priority 0. Invoke answers CONTINUE with a
//! patch setting `/seen/broken-<mode>` to the attempt number.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use outboard_proto::handshake::{self, HandshakeLine};
use outboard_proto::v1;
use outboard_proto::v1::plugin_service_server::{PluginService, PluginServiceServer};
use prost_types::value::Kind;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// Exit status for a usage error (unknown or missing mode).
const EXIT_USAGE: u8 = 2;
/// Exit status when the environment is not a host's (no cookie, no socket...).
const EXIT_ENVIRONMENT: u8 = 1;
/// How long in-flight calls get to finish after SIGTERM.
const SIGTERM_DRAIN: Duration = Duration::from_secs(1);
/// The least time given to answer `Shutdown` before exiting, whatever grace
/// the host asked for: the answer must get out first.
const MIN_DRAIN: Duration = Duration::from_millis(100);

/// The fault to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No fault: a reference plugin for tests.
    Ok,
    /// Writes three lines to stderr and exits with status 3 before any
    /// handshake, like a plugin that cannot read its own config.
    ExitEarly,
    /// Binds nothing, prints nothing and sleeps forever (SIGTERM still kills
    /// it): the host must time the handshake out.
    Silent,
    /// Prints non-handshake lines on stdout before the handshake line (the
    /// host must skip and log them), logs a JSON line to stderr, then works.
    JunkThenOk,
    /// Binds, then announces protocol version 99, then sleeps.
    WrongVersion,
    /// Prints the truncated line `outboard|1|unix`, then sleeps.
    Malformed,
    /// Serves, but its manifest has version "not-a-version" and phase
    /// "Pre Container!".
    BadManifest,
    /// Spawns `sleep 300` (same process group, inheriting stdout and stderr)
    /// before the handshake, logs its pid, then works: stopping the plugin
    /// must take the grandchild with it. The pid is also in the manifest's
    /// description as `grandchild_pid=<pid>`.
    ForksGrandchild,
    /// Logs and ignores SIGTERM, answers `Shutdown` but never exits: only
    /// SIGKILL stops it.
    IgnoresSigterm,
    /// Exits with status 101 inside Invoke, after logging "crashing on
    /// purpose".
    CrashOnInvoke,
    /// Invoke never returns.
    HangInvoke,
}

/// Every mode: its argument and what it does, for the usage message.
const MODES: &[(&str, Mode, &str)] = &[
    ("ok", Mode::Ok, "no fault, a reference plugin"),
    (
        "exit-early",
        Mode::ExitEarly,
        "three stderr lines, then exit 3 before the handshake",
    ),
    (
        "silent",
        Mode::Silent,
        "binds nothing, prints nothing, sleeps forever",
    ),
    (
        "junk-then-ok",
        Mode::JunkThenOk,
        "stray stdout lines before the handshake, then works",
    ),
    (
        "wrong-version",
        Mode::WrongVersion,
        "announces protocol version 99, then sleeps",
    ),
    (
        "malformed",
        Mode::Malformed,
        "prints \"outboard|1|unix\", then sleeps",
    ),
    (
        "bad-manifest",
        Mode::BadManifest,
        "serves an invalid manifest",
    ),
    (
        "forks-grandchild",
        Mode::ForksGrandchild,
        "spawns `sleep 300` before the handshake, then works",
    ),
    (
        "ignores-sigterm",
        Mode::IgnoresSigterm,
        "ignores SIGTERM and Shutdown, only SIGKILL stops it",
    ),
    (
        "crash-on-invoke",
        Mode::CrashOnInvoke,
        "exits 101 inside Invoke",
    ),
    ("hang-invoke", Mode::HangInvoke, "Invoke never returns"),
];

impl Mode {
    fn parse(arg: &str) -> Option<Mode> {
        MODES.iter().find(|(name, ..)| *name == arg).map(|m| m.1)
    }

    fn name(self) -> &'static str {
        MODES
            .iter()
            .find(|m| m.1 == self)
            .map(|m| m.0)
            .expect("every mode is in MODES")
    }
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let Some(mode) = arg.as_deref().and_then(Mode::parse) else {
        usage(arg.as_deref());
        return ExitCode::from(EXIT_USAGE);
    };

    if std::env::var(handshake::ENV_MAGIC_COOKIE).as_deref() != Ok(handshake::MAGIC_COOKIE_VALUE) {
        eprintln!(
            "broken-plugin is an Outboard plugin: it is started by an Outboard host, \
             e.g. `outboard describe -- broken-plugin {}`",
            mode.name()
        );
        return ExitCode::from(EXIT_ENVIRONMENT);
    }

    match mode {
        Mode::ExitEarly => {
            eprintln!("starting up");
            eprintln!("reading config");
            eprintln!("fatal: cannot open /nonexistent/broken.toml");
            return ExitCode::from(3);
        }
        // No tokio, no signal handlers: SIGTERM's default action kills it.
        Mode::Silent => sleep_forever(),
        _ => {}
    }

    let launch = match Launch::from_env() {
        Ok(launch) => launch,
        Err(why) => {
            eprintln!("broken-plugin: {why}");
            return ExitCode::from(EXIT_ENVIRONMENT);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(mode, launch)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("broken-plugin: {why}");
            ExitCode::FAILURE
        }
    }
}

fn usage(arg: Option<&str>) {
    match arg {
        Some(arg) => eprintln!("broken-plugin: unknown mode {arg:?}"),
        None => eprintln!("broken-plugin: no mode given"),
    }
    eprintln!("usage: broken-plugin MODE\n\nmodes:");
    for (name, _, what) in MODES {
        eprintln!("  {name:<18}{what}");
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// What the host put in the environment.
#[derive(Debug)]
struct Launch {
    /// Where to bind.
    socket: PathBuf,
    /// What every call must carry.
    token: String,
    /// The newest version both sides speak.
    protocol_version: u32,
}

impl Launch {
    fn from_env() -> Result<Launch, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let socket = PathBuf::from(var(handshake::ENV_SOCKET)?);
        if !socket.is_absolute() {
            return Err(format!(
                "{} {} is not an absolute path",
                handshake::ENV_SOCKET,
                socket.display()
            ));
        }
        let token = var(handshake::ENV_TOKEN)?;
        let offered = var(handshake::ENV_PROTOCOL_VERSIONS)?;
        let host_versions = handshake::parse_versions(&offered)
            .map_err(|e| format!("{}: {e}", handshake::ENV_PROTOCOL_VERSIONS))?;
        let protocol_version = handshake::negotiate(
            &host_versions,
            handshake::SUPPORTED_PROTOCOL_VERSIONS,
        )
        .ok_or_else(|| {
            format!(
                "no protocol version in common: the host speaks {offered}, this plugin speaks {}",
                handshake::format_versions(handshake::SUPPORTED_PROTOCOL_VERSIONS)
            )
        })?;
        Ok(Launch {
            socket,
            token,
            protocol_version,
        })
    }
}

/// Serves `mode` on the socket `launch` names: the grandchild first, then
/// bind, the mode's stray output, the services, the handshake line, and
/// serve until asked to stop.
async fn run(mode: Mode, launch: Launch) -> Result<(), String> {
    let mut description = format!("deliberately broken Outboard plugin ({})", mode.name());
    // Kept alive, never waited for: the grandchild must outlive our
    // interest in it, as a careless plugin's children do.
    let _grandchild = if mode == Mode::ForksGrandchild {
        let child = spawn_grandchild()?;
        description.push_str(&format!("; grandchild_pid={}", child.id()));
        Some(child)
    } else {
        None
    };

    let listener = bind(&launch.socket)?;
    let socket = launch.socket.display().to_string();
    print_before_handshake(mode, &socket).await;

    // `None` while running; `Some(drain)` once asked to stop, with how long
    // in-flight calls may take.
    let (stop_tx, stop_rx) = watch::channel(None::<Duration>);
    let stop_tx = Arc::new(stop_tx);
    let term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    tokio::spawn(on_sigterm(mode, term, stop_tx.clone()));

    let service = Broken {
        mode,
        protocol_version: launch.protocol_version,
        description,
        stop: stop_tx,
    };
    let router = services(service, &launch.token).await?;

    // Print the line only once everything is set up: the host connects as
    // soon as it reads it.
    println!(
        "{}",
        HandshakeLine {
            protocol_version: launch.protocol_version,
            socket_path: socket,
        }
    );

    serve_until_stopped(router, listener, stop_rx).await?;
    let _ = std::fs::remove_file(&launch.socket);
    Ok(())
}

/// Spawns `sleep 300` in this process group, inheriting stdout and stderr,
/// and logs its pid.
fn spawn_grandchild() -> Result<std::process::Child, String> {
    let child = std::process::Command::new("sleep")
        .arg("300")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn `sleep 300`: {e}"))?;
    eprintln!("spawned grandchild pid {} (sleep 300)", child.id());
    Ok(child)
}

/// Binds the socket, readable and writable by its owner only.
fn bind(socket: &Path) -> Result<UnixListener, String> {
    let listener =
        UnixListener::bind(socket).map_err(|e| format!("cannot bind {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", socket.display()))?;
    Ok(listener)
}

/// What the mode prints on stdout instead of, or before, the handshake
/// line; `wrong-version` and `malformed` then wait forever.
async fn print_before_handshake(mode: Mode, socket: &str) {
    match mode {
        Mode::WrongVersion => {
            println!("outboard|99|unix|{socket}|grpc");
            std::future::pending::<()>().await;
        }
        Mode::Malformed => {
            println!("outboard|1|unix");
            std::future::pending::<()>().await;
        }
        Mode::JunkThenOk => {
            println!("Loading plugin...");
            println!();
            println!("outboard is great");
            println!(r#"{{"level":"info","message":"not a handshake"}}"#);
            eprintln!(r#"{{"level":"info","message":"ready","answer":42}}"#);
        }
        _ => {}
    }
}

/// The plugin service behind the token check, health (SERVING for `""`
/// and the plugin service) and reflection.
async fn services(service: Broken, token: &str) -> Result<Router, String> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status(
            outboard_proto::SERVICE_NAME,
            tonic_health::ServingStatus::Serving,
        )
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(outboard_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    Ok(tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(PluginServiceServer::with_interceptor(
            service,
            check_token(token),
        )))
}

/// Serves until asked to stop, then gives in-flight calls the drain time
/// the request to stop carried.
async fn serve_until_stopped(
    router: Router,
    listener: UnixListener,
    stop_rx: watch::Receiver<Option<Duration>>,
) -> Result<(), String> {
    let server = router.serve_with_incoming_shutdown(
        UnixListenerStream::new(listener),
        stop_requested(stop_rx.clone()),
    );
    // Graceful shutdown waits for in-flight calls, and a hung Invoke never
    // finishes: bound the wait by the grace the host gave.
    let drain_limit = async {
        let drain = stop_requested_for(stop_rx).await;
        tokio::time::sleep(drain).await;
        drain
    };
    tokio::select! {
        served = server => served.map_err(|e| format!("server: {e}"))?,
        drain = drain_limit => eprintln!("in-flight calls still running after {drain:?}, exiting anyway"),
    }
    Ok(())
}

/// Stops on SIGTERM (or, in `ignores-sigterm`, logs and carries on).
/// `term` is registered by the caller before the handshake: a SIGTERM that
/// comes right after it must find the handler in place, not the default
/// action.
async fn on_sigterm(
    mode: Mode,
    mut term: tokio::signal::unix::Signal,
    stop: Arc<watch::Sender<Option<Duration>>>,
) {
    while term.recv().await.is_some() {
        if mode == Mode::IgnoresSigterm {
            eprintln!("got SIGTERM, ignoring it");
            continue;
        }
        eprintln!("got SIGTERM, stopping");
        stop.send_replace(Some(SIGTERM_DRAIN));
        return;
    }
}

async fn stop_requested(rx: watch::Receiver<Option<Duration>>) {
    stop_requested_for(rx).await;
}

async fn stop_requested_for(mut rx: watch::Receiver<Option<Duration>>) -> Duration {
    match rx.wait_for(Option::is_some).await {
        Ok(drain) => drain.unwrap_or(MIN_DRAIN),
        // The sender lives as long as the service; if it is gone, never stop
        // from here.
        Err(_) => std::future::pending().await,
    }
}

/// Lets a call through only with `authorization: Bearer <token>`.
fn check_token(
    token: &str,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
    let expected = handshake::bearer(token);
    move |request: Request<()>| match request.metadata().get(handshake::TOKEN_METADATA_KEY) {
        Some(value) if constant_time_eq(value.as_bytes(), expected.as_bytes()) => Ok(request),
        Some(_) => Err(Status::unauthenticated("wrong token")),
        None => Err(Status::unauthenticated(format!(
            "missing {} metadata",
            handshake::TOKEN_METADATA_KEY
        ))),
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `PluginService` implementation, faults included.
#[derive(Debug)]
struct Broken {
    mode: Mode,
    /// The negotiated version, announced in the handshake line.
    protocol_version: u32,
    /// The manifest's description.
    description: String,
    /// Set to ask `run` to stop.
    stop: Arc<watch::Sender<Option<Duration>>>,
}

impl Broken {
    fn plugin_name(&self) -> String {
        format!("broken-{}", self.mode.name())
    }

    fn manifest(&self) -> v1::Manifest {
        let mut manifest = v1::Manifest {
            name: self.plugin_name(),
            version: "0.1.0".into(),
            protocol_version: self.protocol_version,
            description: self.description.clone(),
            features: Vec::new(),
            subscriptions: vec![v1::Subscription {
                phase: "test".into(),
                priority: 0,
                idempotent: false,
            }],
            permissions: Vec::new(),
            dependencies: Vec::new(),
            config_schema: None,
        };
        if self.mode == Mode::BadManifest {
            manifest.version = "not-a-version".into();
            manifest.subscriptions[0].phase = "Pre Container!".into();
            manifest.protocol_version = 1;
        }
        manifest
    }
}

#[tonic::async_trait]
impl PluginService for Broken {
    async fn describe(
        &self,
        _request: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::DescribeResponse>, Status> {
        Ok(Response::new(v1::DescribeResponse {
            manifest: Some(self.manifest()),
        }))
    }

    async fn configure(
        &self,
        request: Request<v1::ConfigureRequest>,
    ) -> Result<Response<v1::ConfigureResponse>, Status> {
        let request = request.into_inner();
        let keys = request.config.map_or(0, |c| c.fields.len());
        eprintln!(
            "configured as {:?} with {keys} config key(s)",
            request.instance_name
        );
        Ok(Response::new(v1::ConfigureResponse {}))
    }

    async fn invoke(
        &self,
        request: Request<v1::InvokeRequest>,
    ) -> Result<Response<v1::InvokeResponse>, Status> {
        let request = request.into_inner();
        match self.mode {
            Mode::CrashOnInvoke => {
                eprintln!("crashing on purpose");
                std::process::exit(101);
            }
            Mode::HangInvoke => {
                eprintln!("invoked for {:?}; never answering", request.phase);
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        Ok(Response::new(v1::InvokeResponse {
            outcome: v1::Outcome::Continue as i32,
            patch: vec![v1::PatchOperation {
                op: v1::PatchOp::Set as i32,
                path: format!("/seen/{}", self.plugin_name()),
                value: Some(prost_types::Value {
                    kind: Some(Kind::NumberValue(f64::from(request.attempt))),
                }),
            }],
            message: String::new(),
        }))
    }

    async fn shutdown(
        &self,
        request: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::ShutdownResponse>, Status> {
        let request = request.into_inner();
        if self.mode == Mode::IgnoresSigterm {
            eprintln!("asked to shut down ({:?}), ignoring it", request.reason);
        } else {
            let grace = request
                .grace
                .and_then(|g| Duration::try_from(g).ok())
                .unwrap_or(SIGTERM_DRAIN)
                .max(MIN_DRAIN);
            eprintln!("shutting down ({:?})", request.reason);
            self.stop.send_replace(Some(grace));
        }
        Ok(Response::new(v1::ShutdownResponse {}))
    }
}
