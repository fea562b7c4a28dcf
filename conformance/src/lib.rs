//! `outboard conformance -- CMD`: a battery of checks run against any plugin
//! executable, each reported as passed or failed with the reason.
//!
//! The checks follow PROTOCOL.md: started by hand (§3), the handshake (§6),
//! the socket (§5), the token (§7), `Describe` (§8.2), `Configure` (§8.3),
//! health (§10), `Invoke` (§8.4, §8.5, §13), deadlines (§8.1), `Shutdown`
//! (§8.6) and SIGTERM (§12). A check that cannot run because an earlier one
//! failed is reported as failed, with a detail starting `skipped:`; one that
//! does not apply to this plugin (no schema, no subscription) passes with a
//! detail starting `skipped:`.
//!
//! Every process started is killed (whole group) and every runtime
//! directory removed before [`run`] returns, whatever failed.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outboard_proto::handshake::{
    self as wire, HandshakeLine, SUPPORTED_PROTOCOL_VERSIONS, TOKEN_METADATA_KEY,
};
use outboard_proto::json::json_to_struct;
use outboard_proto::patch;
use outboard_proto::v1;
use outboard_proto::v1::plugin_service_client::PluginServiceClient;
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use outboard_host::Manifest;
use outboard_host::PluginSpec;
use outboard_host::Stream;
use outboard_host::launch::channel::{self as client, Clients};
use outboard_host::launch::forward_output;
use outboard_host::launch::handshake;
use outboard_host::launch::{Launch, PluginProcess, RuntimeDir, describe_exit};

/// How long a plugin started by hand has to exit.
const BY_HAND_LIMIT: Duration = Duration::from_secs(5);
/// The deadline of the `Invoke` calls.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The short deadline of the deadline check.
const SHORT_DEADLINE: Duration = Duration::from_millis(50);
/// How long past the short deadline the plugin may take to answer.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);
/// The grace period sent with `Shutdown`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long past the grace the plugin may take to exit.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(500);
/// How long the plugin has to exit after SIGTERM.
const SIGTERM_LIMIT: Duration = Duration::from_secs(2);
/// The key sent in a config the plugin should reject.
const UNKNOWN_CONFIG_KEY: &str = "outboard_conformance_unknown_key";
/// The protobuf field number of the unknown field sent in check 10.
const UNKNOWN_FIELD_TAG: u32 = 999;

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin as a spec (command, args; name from the file name).
    pub spec: PluginSpec,
    /// How long the plugin may take to print its handshake line.
    pub handshake_timeout: Duration,
    /// A valid config, for a plugin whose schema rejects `{}`.
    pub config: Option<Map<String, Value>>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name, e.g. `handshake`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why, or what was seen.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            passed: true,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_owned(),
            passed: false,
            detail: detail.into(),
        }
    }

    fn of(name: &str, result: Result<String, String>) -> Check {
        match result {
            Ok(detail) => Check::pass(name, detail),
            Err(detail) => Check::fail(name, detail),
        }
    }
}

/// Runs every check against the plugin, in order. Leaves no process and no
/// runtime directory behind.
pub async fn run(options: &Options) -> Vec<Check> {
    let mut checks = vec![run_by_hand(options).await];
    let mut launched = None;
    battery(options, &mut checks, &mut launched).await;
    if let Some(launched) = launched {
        launched.kill().await;
    }
    checks.push(sigterm(options).await);
    checks
}

/// A plugin started as a host would start it.
struct Launched {
    process: PluginProcess,
    line: HandshakeLine,
    socket: PathBuf,
    token: String,
    handshake_ms: f64,
    /// Declared last: removed after the process is killed.
    runtime_dir: RuntimeDir,
}

impl Launched {
    /// Kills the whole process group, waits for it to be gone, and removes
    /// the runtime directory.
    async fn kill(self) {
        let _ = self.process.signal_group(libc::SIGKILL);
        let _ = self.process.exited_within(Duration::from_secs(2)).await;
        let _ = self.process.group_gone_within(Duration::from_secs(2)).await;
        drop(self.process);
        drop(self.runtime_dir);
    }
}

async fn launch(options: &Options) -> Result<Launched, String> {
    let name: Arc<str> = options.spec.name.as_str().into();
    let runtime_dir = outboard_host::launch::runtime_dir_for(&options.spec)
        .map_err(|e| format!("cannot create a runtime directory: {e}"))?;
    let socket = runtime_dir.socket_path();
    let token = outboard_host::launch::new_token();
    let launch = outboard_host::launch::launch_for(&options.spec, &socket, &token);
    let started = Instant::now();
    let (process, mut stdout, stderr) =
        outboard_host::launch::spawn_logged(&name, &launch)
            .await
            .map_err(|e| format!("cannot start {}: {e}", options.spec.command.display()))?;
    let expect = handshake::Expect {
        plugin: &name,
        socket: &socket,
        versions: SUPPORTED_PROTOCOL_VERSIONS,
        timeout: options.handshake_timeout,
    };
    let read = handshake::read(&expect, &mut stdout, process.exit_watch(), &stderr).await;
    let handshake_ms = started.elapsed().as_secs_f64() * 1000.0;
    let line = match read {
        Ok(line) => line,
        Err(e) => {
            let failed = Launched {
                process,
                line: HandshakeLine {
                    protocol_version: 0,
                    socket_path: String::new(),
                },
                socket,
                token,
                handshake_ms,
                runtime_dir,
            };
            failed.kill().await;
            return Err(format!("the plugin {e}"));
        }
    };
    tokio::spawn(forward_output(name, Stream::Stdout, stdout, None));
    Ok(Launched {
        process,
        line,
        socket,
        token,
        handshake_ms,
        runtime_dir,
    })
}

/// Check 1: without any OUTBOARD_* variable, the plugin exits 1 at once,
/// silent on stdout, saying why on stderr.
async fn run_by_hand(options: &Options) -> Check {
    const NAME: &str = "run-by-hand";
    let launch = Launch {
        command: options.spec.command.clone(),
        args: options.spec.args.clone(),
        env: options.spec.env.clone(),
        handshake_env: vec![],
        working_dir: options.spec.working_dir.clone(),
    };
    let (process, pipes) = match PluginProcess::spawn(&launch).await {
        Ok(spawned) => spawned,
        Err(e) => return Check::fail(NAME, format!("cannot start the command: {e}")),
    };
    let mut out = pipes.stdout;
    let mut err = pipes.stderr;
    let stdout = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let stderr = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf).await;
        buf
    });
    let status = process.exited_within(BY_HAND_LIMIT).await;
    // Whatever it left running goes now, so that the pipes close.
    let _ = process.signal_group(libc::SIGKILL);
    let _ = process.group_gone_within(Duration::from_secs(2)).await;
    let collect = |task: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(Duration::from_secs(1), task).await {
            Ok(Ok(buf)) => buf,
            _ => Vec::new(),
        }
    };
    let stdout = collect(stdout).await;
    let stderr = collect(stderr).await;
    let Some(status) = status else {
        return Check::fail(
            NAME,
            format!(
                "still running {} after being started without OUTBOARD_* variables (killed); \
                 it must exit with status 1 (§3)",
                humantime::format_duration(BY_HAND_LIMIT)
            ),
        );
    };
    let first = String::from_utf8_lossy(&stderr)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned);
    let mut problems = Vec::new();
    if status.code() != Some(1) {
        problems.push(format!(
            "exited with {} (expected status 1)",
            describe_exit(status)
        ));
    }
    if !stdout.is_empty() {
        let text = String::from_utf8_lossy(&stdout);
        let line = text.lines().next().unwrap_or_default();
        problems.push(format!(
            "printed {} bytes on stdout (expected nothing), first line {line:?}",
            stdout.len()
        ));
    }
    match (&first, problems.is_empty()) {
        (None, _) => {
            problems.push("wrote nothing on stderr (expected a sentence saying why)".to_owned());
            Check::fail(NAME, problems.join("; "))
        }
        (Some(_), false) => Check::fail(NAME, problems.join("; ")),
        (Some(line), true) => Check::pass(NAME, format!("exited with status 1, stderr: {line:?}")),
    }
}

fn skipped(name: &str, why: &str) -> Check {
    Check::fail(name, format!("skipped: {why}"))
}

/// Checks 2 to 12, on one launch, stored in `launched` so the caller cleans
/// up whatever happens here.
async fn battery(options: &Options, checks: &mut Vec<Check>, launched: &mut Option<Launched>) {
    const LATER: &[&str] = &[
        "socket permissions",
        "token required",
        "describe",
        "configure valid",
        "configure invalid",
        "health",
        "invoke",
        "unknown fields tolerated",
        "deadline honoured",
        "shutdown",
    ];
    let skip_rest = |checks: &mut Vec<Check>, from: usize, why: &str| {
        checks.extend(LATER[from..].iter().map(|name| skipped(name, why)));
    };

    // 2. handshake
    let plugin = match launch(options).await {
        Ok(plugin) => plugin,
        Err(e) => {
            checks.push(Check::fail("handshake", e));
            skip_rest(checks, 0, "no handshake");
            return;
        }
    };
    checks.push(Check::pass(
        "handshake",
        format!(
            "`outboard|{}|unix|<OUTBOARD_SOCKET>|grpc` after {:.0} ms (timeout {})",
            plugin.line.protocol_version,
            plugin.handshake_ms,
            humantime::format_duration(options.handshake_timeout)
        ),
    ));
    let plugin = launched.insert(plugin);

    // 3. socket permissions
    checks.push(Check::of("socket permissions", socket_permissions(plugin)));

    // Connections: one without the token, one through the host's client.
    let raw = match raw_channel(plugin, options.handshake_timeout).await {
        Ok(raw) => raw,
        Err(e) => {
            let why = format!("cannot connect to the socket: {e}");
            checks.push(Check::fail("token required", why));
            skip_rest(checks, 2, "no connection to the socket");
            return;
        }
    };
    let clients =
        match client::connect(&plugin.socket, &plugin.token, options.handshake_timeout).await {
            Ok(clients) => clients,
            Err(e) => {
                checks.push(Check::fail(
                    "token required",
                    format!("cannot connect: {e}"),
                ));
                skip_rest(checks, 2, "no connection to the socket");
                return;
            }
        };

    // 4. token required
    checks.push(Check::of(
        "token required",
        token_required(plugin, &raw, options.handshake_timeout).await,
    ));

    // 5. describe
    let manifest = match describe(plugin, &clients, options.handshake_timeout).await {
        Ok(manifest) => {
            let phases: Vec<String> = manifest
                .subscriptions
                .iter()
                .map(|s| format!("{}:{}", s.phase, s.priority))
                .collect();
            checks.push(Check::pass(
                "describe",
                format!(
                    "{} {} (protocol {}), phases: {}",
                    manifest.name,
                    manifest.version,
                    manifest.protocol_version,
                    if phases.is_empty() {
                        "none".to_owned()
                    } else {
                        phases.join(", ")
                    }
                ),
            ));
            manifest
        }
        Err(e) => {
            checks.push(Check::fail("describe", e));
            skip_rest(checks, 3, "no valid manifest");
            return;
        }
    };

    // 6. configure valid
    let config = options.config.clone().unwrap_or_default();
    if let Err(violations) = manifest.validate_config(&Value::Object(config.clone())) {
        let why = if options.config.is_some() {
            format!("skipped: the config given with --config violates the schema: {violations}")
        } else {
            format!("skipped: the schema requires keys; give --config JSON ({violations})")
        };
        checks.push(Check::fail("configure valid", why));
        skip_rest(checks, 5, "not configured");
        return;
    }
    let timeout = options.handshake_timeout;
    match configure(plugin, &clients, &manifest, &config, timeout).await {
        Ok(()) => checks.push(Check::pass(
            "configure valid",
            format!(
                "accepted {}{}",
                Value::Object(config.clone()),
                granted_note(&manifest)
            ),
        )),
        Err(e) => {
            checks.push(Check::fail("configure valid", e));
            skip_rest(checks, 5, "not configured");
            return;
        }
    }

    // 7. configure invalid
    let invalid = Map::from_iter([(UNKNOWN_CONFIG_KEY.to_owned(), Value::Bool(true))]);
    let check = if manifest.config_schema.is_none() {
        Check::pass("configure invalid", "skipped: no config schema declared")
    } else if manifest
        .validate_config(&Value::Object(invalid.clone()))
        .is_ok()
    {
        Check::pass(
            "configure invalid",
            format!(
                "skipped: the schema accepts {}",
                Value::Object(invalid.clone())
            ),
        )
    } else {
        let rejected = match configure(plugin, &clients, &manifest, &invalid, timeout).await {
            Err(e) if e.starts_with("InvalidArgument") => Ok(format!("refused: {e}")),
            Err(e) => Err(format!(
                "{} violates the schema; expected INVALID_ARGUMENT, got {e}",
                Value::Object(invalid.clone())
            )),
            Ok(()) => Err(format!(
                "accepted {}, which violates its own schema (expected INVALID_ARGUMENT)",
                Value::Object(invalid.clone())
            )),
        };
        // Configured again with the valid config, so that the plugin is
        // usable for the checks that follow.
        match (
            rejected,
            configure(plugin, &clients, &manifest, &config, timeout).await,
        ) {
            (Ok(detail), Ok(())) => Check::pass("configure invalid", detail),
            (Err(e), _) => Check::fail("configure invalid", e),
            (Ok(_), Err(e)) => Check::fail(
                "configure invalid",
                format!("refused the invalid config, then the valid one again: {e}"),
            ),
        }
    };
    checks.push(check);

    // 8. health
    checks.push(Check::of(
        "health",
        health(plugin, &clients, options.handshake_timeout).await,
    ));

    // 9. invoke, per subscribed phase
    let phases: Vec<String> = manifest
        .subscriptions
        .iter()
        .map(|s| s.phase.clone())
        .collect();
    if phases.is_empty() {
        checks.push(Check::pass("invoke", "skipped: no subscriptions"));
        checks.push(Check::pass(
            "unknown fields tolerated",
            "skipped: no subscriptions",
        ));
        checks.push(Check::pass(
            "deadline honoured",
            "skipped: no subscriptions",
        ));
    } else {
        for phase in &phases {
            checks.push(Check::of(
                &format!("invoke {phase}"),
                invoke(plugin, &clients, phase).await,
            ));
        }
        // 10. unknown fields tolerated
        checks.push(Check::of(
            "unknown fields tolerated",
            unknown_field(plugin, &raw, &phases[0]).await,
        ));
        // 11. deadline honoured
        checks.push(Check::of(
            "deadline honoured",
            deadline(plugin, &clients, &phases[0]).await,
        ));
    }

    // 12. shutdown
    checks.push(Check::of("shutdown", shutdown(plugin, &clients).await));
}

fn socket_permissions(plugin: &Launched) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(&plugin.socket)
        .map_err(|e| format!("cannot stat {}: {e}", plugin.socket.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} is not a socket (mode {mode:04o})",
            plugin.socket.display()
        ));
    }
    if mode & !0o600 != 0 {
        return Err(format!(
            "the socket's mode is {mode:04o}; it must be 0600 or stricter, set before the handshake (§5)"
        ));
    }
    Ok(format!("a socket, mode {mode:04o}"))
}

/// A plain channel to the plugin's socket: no token on its calls.
async fn raw_channel(plugin: &Launched, timeout: Duration) -> Result<Channel, String> {
    let path = plugin.socket.clone();
    let endpoint = Endpoint::from_static("http://outboard.plugin").connect_timeout(timeout);
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    tokio::time::timeout(timeout, endpoint.connect_with_connector(connector))
        .await
        .map_err(|_| {
            format!(
                "no connection within {}",
                humantime::format_duration(timeout)
            )
        })?
        .map_err(|e| e.to_string())
}

/// Why a call failed.
enum CallFailure {
    Status(tonic::Status),
    Timeout(Duration),
    Exited(ExitStatus),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Status(s) => write!(f, "{:?}: {}", s.code(), s.message()),
            CallFailure::Timeout(t) => {
                write!(f, "no answer within {}", humantime::format_duration(*t))
            }
            CallFailure::Exited(s) => write!(f, "the plugin exited with {}", describe_exit(*s)),
        }
    }
}

/// Runs a call, bounded by `timeout` and by the plugin's exit.
async fn call<T>(
    plugin: &Launched,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallFailure> {
    let started = Instant::now();
    tokio::select! {
        result = tokio::time::timeout(timeout, call) => match result {
            Ok(Ok(response)) => Ok(response.into_inner()),
            // The client's own expiry of the gRPC deadline.
            Ok(Err(status))
                if matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
                    && started.elapsed() >= timeout =>
            {
                Err(CallFailure::Timeout(timeout))
            }
            Ok(Err(status)) => {
                match plugin.process.exited_within(Duration::from_millis(100)).await {
                    Some(exit) => Err(CallFailure::Exited(exit)),
                    None => Err(CallFailure::Status(status)),
                }
            }
            Err(_) => Err(CallFailure::Timeout(timeout)),
        },
        exit = plugin.process.exited() => Err(CallFailure::Exited(exit)),
    }
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn describe_request() -> v1::DescribeRequest {
    v1::DescribeRequest {
        host_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS.to_vec(),
        host_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

async fn token_required(
    plugin: &Launched,
    raw: &Channel,
    timeout: Duration,
) -> Result<String, String> {
    let mut client = PluginServiceClient::new(raw.clone());
    let expect_unauthenticated =
        |what: &str, result: Result<v1::DescribeResponse, CallFailure>| match result {
            Err(CallFailure::Status(s)) if s.code() == tonic::Code::Unauthenticated => Ok(()),
            Ok(_) => Err(format!(
                "Describe {what} succeeded; it must fail with UNAUTHENTICATED (§7)"
            )),
            Err(e) => Err(format!(
                "Describe {what} failed with {e}; expected UNAUTHENTICATED (§7)"
            )),
        };
    let result = call(
        plugin,
        timeout,
        client.describe(with_timeout(describe_request(), timeout)),
    )
    .await;
    expect_unauthenticated("without a token", result)?;

    let mut request = with_timeout(describe_request(), timeout);
    let wrong = wire::bearer(&format!("{}x", plugin.token));
    let value: AsciiMetadataValue = wrong
        .parse()
        .map_err(|_| "cannot build the wrong token".to_owned())?;
    request
        .metadata_mut()
        .insert(MetadataKey::from_static(TOKEN_METADATA_KEY), value);
    let result = call(plugin, timeout, client.describe(request)).await;
    expect_unauthenticated("with a wrong token", result)?;
    Ok("UNAUTHENTICATED without a token and with a wrong one".to_owned())
}

async fn describe(
    plugin: &Launched,
    clients: &Clients,
    timeout: Duration,
) -> Result<Manifest, String> {
    let mut client = clients.plugin.clone();
    let response = call(
        plugin,
        timeout,
        client.describe(with_timeout(describe_request(), timeout)),
    )
    .await
    .map_err(|e| format!("Describe failed: {e}"))?;
    let manifest = response
        .manifest
        .ok_or_else(|| "DescribeResponse has no manifest".to_owned())?;
    Manifest::from_proto(manifest, plugin.line.protocol_version)
        .map_err(|e| format!("invalid manifest: {e}"))
}

fn granted_note(manifest: &Manifest) -> String {
    if manifest.permissions.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = manifest
            .permissions
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        format!(" (granted every permission asked: {})", names.join(", "))
    }
}

/// `Configure` with `config`, granting every permission the manifest asks
/// for. The error starts with the status code's name.
async fn configure(
    plugin: &Launched,
    clients: &Clients,
    manifest: &Manifest,
    config: &Map<String, Value>,
    timeout: Duration,
) -> Result<(), String> {
    let request = v1::ConfigureRequest {
        config: Some(json_to_struct(config)),
        granted_permissions: manifest
            .permissions
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        protocol_version: plugin.line.protocol_version,
        instance_name: manifest.name.clone(),
    };
    let mut client = clients.plugin.clone();
    call(
        plugin,
        timeout,
        client.configure(with_timeout(request, timeout)),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn health(plugin: &Launched, clients: &Clients, timeout: Duration) -> Result<String, String> {
    let mut health = clients.health.clone();
    let request = with_timeout(
        HealthCheckRequest {
            service: String::new(),
        },
        timeout,
    );
    let response = call(plugin, timeout, health.check(request))
        .await
        .map_err(|e| format!("health check for \"\" failed: {e}"))?;
    match ServingStatus::try_from(response.status) {
        Ok(ServingStatus::Serving) => Ok("SERVING".to_owned()),
        Ok(other) => Err(format!(
            "health status is {} (expected SERVING)",
            other.as_str_name()
        )),
        Err(_) => Err(format!("unknown health status {}", response.status)),
    }
}

/// A small job-like context.
fn job_context() -> Map<String, Value> {
    match json!({
        "job_id": format!("conformance-{}", uuid::Uuid::new_v4()),
        "command": ["true"],
        "env": {},
        "metadata": {},
        "dry_run": true,
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn invoke_request(
    phase: &str,
    context: &Map<String, Value>,
    timeout: Duration,
) -> v1::InvokeRequest {
    v1::InvokeRequest {
        phase: phase.to_owned(),
        invocation_id: uuid::Uuid::new_v4().to_string(),
        attempt: 1,
        deadline: Some(prost_types::Timestamp::from(
            std::time::SystemTime::now() + timeout,
        )),
        trace_context: Default::default(),
        context: Some(json_to_struct(context)),
    }
}

/// Checks an `InvokeResponse` against the context it answered: a known
/// outcome, and a patch that reads and applies.
fn check_response(
    response: &v1::InvokeResponse,
    context: &Map<String, Value>,
) -> Result<String, String> {
    let outcome = v1::Outcome::try_from(response.outcome).map_err(|_| {
        format!(
            "unknown outcome {} (expected OUTCOME_CONTINUE or OUTCOME_ABORT)",
            response.outcome
        )
    })?;
    if outcome == v1::Outcome::Abort {
        if response.message.is_empty() {
            return Err("OUTCOME_ABORT without a message (§8.4 requires one)".to_owned());
        }
        return Ok(format!("abort: {:?}", response.message));
    }
    let ops = patch::from_proto(&response.patch).map_err(|e| format!("invalid patch: {e}"))?;
    let mut target = Value::Object(context.clone());
    patch::apply(&mut target, &ops).map_err(|e| format!("the patch does not apply: {e}"))?;
    let paths: Vec<String> = ops.iter().map(|op| op.path().to_string()).collect();
    Ok(format!(
        "continue, {} op(s){}",
        ops.len(),
        if paths.is_empty() {
            String::new()
        } else {
            format!(" on {}", paths.join(", "))
        }
    ))
}

/// A failed Invoke that is still a well-formed answer: INVALID_ARGUMENT with
/// a message is how the protocol says "I cannot use this context" (a phase
/// that needs what an earlier phase records, say), and conformance checks
/// the protocol, not the plugin's business. Anything else is a failure.
fn refusal(failure: CallFailure) -> Result<String, CallFailure> {
    match failure {
        CallFailure::Status(status)
            if status.code() == tonic::Code::InvalidArgument
                && !status.message().trim().is_empty() =>
        {
            Ok(format!(
                "refused the synthetic context with INVALID_ARGUMENT: {}",
                status.message()
            ))
        }
        other => Err(other),
    }
}

async fn invoke(plugin: &Launched, clients: &Clients, phase: &str) -> Result<String, String> {
    let context = job_context();
    let request = invoke_request(phase, &context, INVOKE_TIMEOUT);
    let mut client = clients.plugin.clone();
    let started = Instant::now();
    let response = match call(
        plugin,
        INVOKE_TIMEOUT,
        client.invoke(with_timeout(request, INVOKE_TIMEOUT)),
    )
    .await
    {
        Ok(response) => response,
        Err(failure) => return refusal(failure).map_err(|e| format!("Invoke failed: {e}")),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    check_response(&response, &context).map(|detail| format!("{detail} in {ms:.0} ms"))
}

/// Check 10: an `InvokeRequest` carrying a field this protocol version does
/// not define (number 999, a varint), sent as raw bytes.
async fn unknown_field(plugin: &Launched, raw: &Channel, phase: &str) -> Result<String, String> {
    let context = job_context();
    let mut bytes = invoke_request(phase, &context, INVOKE_TIMEOUT).encode_to_vec();
    prost::encoding::encode_key(
        UNKNOWN_FIELD_TAG,
        prost::encoding::WireType::Varint,
        &mut bytes,
    );
    prost::encoding::encode_varint(1, &mut bytes);

    let mut grpc = tonic::client::Grpc::new(raw.clone());
    let mut request = with_timeout(bytes, INVOKE_TIMEOUT);
    let token: AsciiMetadataValue = wire::bearer(&plugin.token)
        .parse()
        .map_err(|_| "the token is not printable ASCII".to_owned())?;
    request
        .metadata_mut()
        .insert(MetadataKey::from_static(TOKEN_METADATA_KEY), token);
    let path = PathAndQuery::from_static("/outboard.v1.PluginService/Invoke");
    let sent = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        grpc.unary(request, path, RawCodec).await
    };
    let response = match call(plugin, INVOKE_TIMEOUT, sent).await {
        Ok(response) => response,
        Err(failure) => {
            return refusal(failure)
                .map(|detail| {
                    format!(
                        "{phase}: {detail} (unknown field {UNKNOWN_FIELD_TAG} in the request bytes)"
                    )
                })
                .map_err(|e| format!("Invoke with unknown field {UNKNOWN_FIELD_TAG} failed: {e}"));
        }
    };
    check_response(&response, &context).map(|detail| {
        format!("{phase}: {detail} (unknown field {UNKNOWN_FIELD_TAG} in the request bytes)")
    })
}

/// Check 11: an `Invoke` with a 50 ms deadline is answered, one way or
/// another, within a second of it, and the plugin then still answers.
async fn deadline(plugin: &Launched, clients: &Clients, phase: &str) -> Result<String, String> {
    let context = job_context();
    let request = invoke_request(phase, &context, SHORT_DEADLINE);
    let mut client = clients.plugin.clone();
    let started = Instant::now();
    let limit = SHORT_DEADLINE + DEADLINE_SLACK;
    let result = call(
        plugin,
        limit,
        client.invoke(with_timeout(request, SHORT_DEADLINE)),
    )
    .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer = match result {
        Ok(_) => "OK".to_owned(),
        // Timing is what this check is about: any status is an answer
        // (the plugin's verdict on the context is the invoke check's
        // business); only silence past the deadline or an exit fails.
        Err(CallFailure::Status(s)) => format!("{:?}", s.code()),
        Err(e) => return Err(format!("Invoke with a 50 ms deadline: {e}")),
    };
    // A plugin still busy with the expired call (e.g. holding a lock for
    // it) shows it by failing the next one.
    invoke(plugin, clients, phase).await.map_err(|e| {
        format!("after a 50 ms deadline ({answer} in {ms:.0} ms), the next Invoke: {e}")
    })?;
    Ok(format!(
        "{answer} after {ms:.0} ms; the next Invoke was answered normally"
    ))
}

/// Check 12: `Shutdown` is answered, then the plugin exits within the
/// grace (plus slack) with status 0.
async fn shutdown(plugin: &Launched, clients: &Clients) -> Result<String, String> {
    let started = Instant::now();
    let request = v1::ShutdownRequest {
        grace: prost_types::Duration::try_from(SHUTDOWN_GRACE).ok(),
        reason: "host stopping".to_owned(),
    };
    let mut client = clients.plugin.clone();
    let answered = tokio::time::timeout(
        SHUTDOWN_GRACE,
        client.shutdown(with_timeout(request, SHUTDOWN_GRACE)),
    )
    .await;
    let answer = match answered {
        Ok(Ok(_)) => "answered".to_owned(),
        // Answering and exiting at once may break the connection first.
        Ok(Err(_))
            if plugin
                .process
                .exited_within(Duration::from_millis(100))
                .await
                .is_some() =>
        {
            "exited while answering".to_owned()
        }
        Ok(Err(status)) => {
            return Err(format!(
                "Shutdown failed: {:?}: {}",
                status.code(),
                status.message()
            ));
        }
        Err(_) => {
            return Err(format!(
                "Shutdown not answered within {}",
                humantime::format_duration(SHUTDOWN_GRACE)
            ));
        }
    };
    let limit = SHUTDOWN_GRACE + SHUTDOWN_SLACK;
    let remaining = limit.saturating_sub(started.elapsed());
    let Some(status) = plugin.process.exited_within(remaining).await else {
        return Err(format!(
            "{answer}, but still running {} after Shutdown (killed)",
            humantime::format_duration(limit)
        ));
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let socket = if plugin.socket.exists() {
        "; it left its socket file (removed with the runtime directory)"
    } else {
        "; socket removed"
    };
    if !status.success() {
        return Err(format!(
            "{answer}, then exited with {} after {ms:.0} ms (expected status 0){socket}",
            describe_exit(status)
        ));
    }
    Ok(format!(
        "{answer}, exited with {} after {ms:.0} ms{socket}",
        describe_exit(status)
    ))
}

/// Check 13: a fresh instance exits within 2 s of SIGTERM to its group.
async fn sigterm(options: &Options) -> Check {
    const NAME: &str = "sigterm";
    let plugin = match launch(options).await {
        Ok(plugin) => plugin,
        Err(e) => return skipped(NAME, &format!("a fresh instance did not start: {e}")),
    };
    let result = match plugin.process.signal_group(libc::SIGTERM) {
        Err(e) => Err(format!("cannot send SIGTERM: {e}")),
        Ok(()) => {
            let started = Instant::now();
            match plugin.process.exited_within(SIGTERM_LIMIT).await {
                Some(status) => Ok(format!(
                    "exited with {} {:.0} ms after SIGTERM",
                    describe_exit(status),
                    started.elapsed().as_secs_f64() * 1000.0
                )),
                None => Err(format!(
                    "still running {} after SIGTERM (killed)",
                    humantime::format_duration(SIGTERM_LIMIT)
                )),
            }
        }
    };
    plugin.kill().await;
    Check::of(NAME, result)
}

/// Sends the request as bytes already encoded; decodes an `InvokeResponse`.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::InvokeResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = v1::InvokeResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<v1::InvokeResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        v1::InvokeResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("cannot decode InvokeResponse: {e}")))
    }
}
