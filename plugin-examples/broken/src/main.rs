//! `broken-plugin MODE`: an Outboard plugin that misbehaves in one chosen
//! way, so the host's tests can run every failure as a real subprocess.
//!
//! Apart from its fault, each mode is a correct plugin, written straight
//! against the protocol (`outboard-proto`, tonic, tonic-health) rather than
//! the SDK, so this binary also shows what any plugin has to do:
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
//!
//! # Layout
//!
//! - `mode`: the faults, one per mode.
//! - `launch`: the handshake variables the host sets.
//! - `service`: the plugin service, faults included, and the token check.
//! - this file: the process: start, serve, stop.

mod fastpath;
mod launch;
mod mode;
mod service;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use outboard_proto::handshake::{self, HandshakeLine};
use outboard_proto::v1::plugin_service_server::PluginServiceServer;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;

use crate::launch::Launch;
use crate::mode::{MODES, Mode};
use crate::service::{Broken, check_token};

/// Exit status for a usage error (unknown or missing mode).
const EXIT_USAGE: u8 = 2;
/// Exit status when the environment is not a host's (no cookie, no socket...).
const EXIT_ENVIRONMENT: u8 = 1;
/// How long in-flight calls get to finish after SIGTERM.
pub(crate) const SIGTERM_DRAIN: Duration = Duration::from_secs(1);
/// The least time given to answer `Shutdown` before exiting, whatever grace
/// the host asked for: the answer must get out first.
pub(crate) const MIN_DRAIN: Duration = Duration::from_millis(100);

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

/// Serves `mode` on the socket `launch` names: the grandchild first, then
/// bind, the mode's stray output, the services, the handshake line, and
/// serve until asked to stop.
async fn run(mode: Mode, launch: Launch) -> Result<(), String> {
    let mut description = format!("deliberately broken Outboard plugin ({})", mode.name());
    // Kept alive, never waited for: the grandchild must outlive our
    // interest in it, as a careless plugin's children do.
    let _grandchild = match mode {
        Mode::ForksGrandchild => {
            let child = spawn_grandchild(false)?;
            description.push_str(&format!("; grandchild_pid={}", child.id()));
            Some(child)
        }
        Mode::EscapesGroup => {
            let child = spawn_grandchild(true)?;
            description.push_str(&format!("; helper_pid={}", child.id()));
            Some(child)
        }
        _ => None,
    };

    let listener = bind(&launch.socket)?;
    let socket = launch.socket.display().to_string();
    // Bound before the handshake line, as §18 asks, when it binds at all.
    // `fast-never-binds` lists the feature even when not offered it.
    let fast = fastpath::lists_feature(mode)
        && match &launch.fastpath {
            Some(fast) => {
                fastpath::serve(mode, fast)?;
                true
            }
            None => mode == Mode::FastNeverBinds,
        };
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
        fastpath: fast,
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

    // Registered before serving ends: a SIGTERM after it must find a handler.
    let mut term_after =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    serve_until_stopped(router, listener, stop_rx).await?;
    let _ = std::fs::remove_file(&launch.socket);
    if let Some(fast) = launch.fastpath.as_ref().filter(|_| fast) {
        let _ = std::fs::remove_file(fast);
    }
    if mode == Mode::DropsConnection {
        eprintln!("no longer serving; alive until SIGTERM");
        term_after.recv().await;
    }
    Ok(())
}

/// Spawns `sleep 300` in this process group (or, with `own_group`, in a
/// group of its own), inheriting stdout and stderr but none of the
/// `OUTBOARD_*` variables (the token above all, as PROTOCOL.md §2.1 asks),
/// and logs its pid.
fn spawn_grandchild(own_group: bool) -> Result<std::process::Child, String> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sleep");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OUTBOARD_") {
            command.env_remove(name);
        }
    }
    command.arg("300").stdin(std::process::Stdio::null());
    if own_group {
        command.process_group(0);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot spawn `sleep 300`: {e}"))?;
    eprintln!("spawned grandchild pid {} (sleep 300)", child.id());
    Ok(child)
}

/// Binds the socket, readable and writable by its owner only.
pub(crate) fn bind(socket: &Path) -> Result<UnixListener, String> {
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
        // Not HostService, which shares the descriptor set: the host serves it.
        .with_service_name(outboard_proto::SERVICE_NAME)
        .with_service_name("grpc.reflection.v1.ServerReflection")
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
