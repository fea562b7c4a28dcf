//! A real daemon for the end-to-end tests: `outboard up --config FILE
//! --control-socket SOCKET` as a subprocess, its plugins' runtime
//! directories in a [`Sandbox`], driven by `outboard` CLI processes and by
//! control-API clients over the socket. [`Daemon::stop`] SIGTERMs it and
//! proves that nothing is left behind (no process, no socket, no runtime
//! directory); dropping a daemon that was not stopped kills it.
//!
//! Include it beside `common` with
//! `#[path = "common/daemon.rs"] mod daemon;`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use outboard_proto::control::v1::control_service_client::ControlServiceClient;
use outboard_proto::control::v1::{
    DispatchReport, GetStatusRequest, GetStatusResponse, InvokeRequest, PluginState,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::common::{
    Lines, Sandbox, alive, bin, child_pids, children_of, sigterm, text, wait_until,
};

/// How long a daemon may take to start its plugins and serve.
const START: Duration = Duration::from_secs(30);

/// A control-API client.
pub type Client = ControlServiceClient<Channel>;

/// A running `outboard up`.
pub struct Daemon {
    /// The plugins' runtime directories (`OUTBOARD_RUNTIME_DIR`).
    sandbox: Sandbox,
    /// Config files and anything else a test writes (fixture scripts).
    work: tempfile::TempDir,
    /// The config file it reads at start and on every reload.
    config: PathBuf,
    /// Its control socket.
    socket: PathBuf,
    /// The daemon process; `None` once stopped.
    child: Option<Child>,
    /// Its stderr, line by line.
    stderr: Lines,
}

impl Daemon {
    /// Writes `config` (TOML) to a file and starts a daemon on it; returns
    /// once it said it is ready and its control socket answers.
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with(|_| (config.to_owned(), Vec::new()))
    }

    /// Like [`Daemon::start`], with a config that refers to files in the
    /// work directory: `write(work_dir)` writes them and returns the
    /// config's text and more arguments for `outboard up` (such as
    /// `--plugin-dir`).
    pub fn start_with(write: impl FnOnce(&Path) -> (String, Vec<String>)) -> Daemon {
        Daemon::launch(write, &[])
    }

    /// Like [`Daemon::start`], with `env` added to the daemon's environment.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(|_| (config.to_owned(), Vec::new()), env)
    }

    /// Like [`Daemon::start_with`], with `env` added to the daemon's
    /// environment.
    pub fn launch(
        write: impl FnOnce(&Path) -> (String, Vec<String>),
        env: &[(&str, &str)],
    ) -> Daemon {
        let work = tempfile::Builder::new()
            .prefix("obd-")
            .tempdir_in("/tmp")
            .unwrap();
        let config_path = work.path().join("outboard.toml");
        let (config, args) = write(work.path());
        std::fs::write(&config_path, config).unwrap();
        Daemon::start_on(work, config_path, &args, env)
    }

    /// Starts a daemon on a config file the test keeps (so that daemons
    /// started one after the other on it are one configuration: the same
    /// events scope), with `args` added to `outboard up`'s.
    pub fn start_on_file(config: &Path, args: &[String]) -> Daemon {
        let work = tempfile::Builder::new()
            .prefix("obd-")
            .tempdir_in("/tmp")
            .unwrap();
        Daemon::start_on(work, config.to_owned(), args, &[])
    }

    fn start_on(
        work: tempfile::TempDir,
        config: PathBuf,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Daemon {
        let sandbox = Sandbox::new();
        let socket = work.path().join("ctl").join("control.sock");
        // Its own state directory unless the test names one (to keep it
        // across daemons).
        let state = if args.iter().any(|a| a == "--state-dir") {
            Vec::new()
        } else {
            vec![
                "--state-dir".to_owned(),
                work.path().join("state").display().to_string(),
            ]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_outboard"))
            .arg("up")
            .arg("--config")
            .arg(&config)
            .arg("--control-socket")
            .arg(&socket)
            .args(state)
            .args(args)
            .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .env_remove("OUTBOARD_CONTROL_SOCKET")
            // A test run under a service manager must not notify it.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn outboard up");
        let stderr = Lines::read(child.stderr.take().unwrap());
        let mut daemon = Daemon {
            sandbox,
            work,
            config,
            socket,
            child: Some(child),
            stderr,
        };
        daemon.stderr.expect("outboard: ready", START);
        let socket = daemon.socket.clone();
        assert!(
            wait_until(START, || std::os::unix::net::UnixStream::connect(&socket)
                .is_ok()),
            "the control socket {} does not answer",
            socket.display()
        );
        daemon
    }

    /// Where its plugins' runtime directories are (`OUTBOARD_RUNTIME_DIR`).
    pub fn runtime_base(&self) -> &Path {
        self.sandbox.path()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The work directory (config files, fixture scripts).
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// The config file it reads.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its HTTP listener's base URL (`http://127.0.0.1:PORT`), from the
    /// line it printed before it was ready.
    pub fn http_url(&self) -> String {
        let prefix = "outboard: http ";
        self.stderr
            .seen()
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {:?}", self.stderr.seen()))
            .to_owned()
    }

    /// Its stderr, to wait for a line.
    pub fn stderr(&mut self) -> &mut Lines {
        &mut self.stderr
    }

    /// Replaces the config file at once (written aside, then renamed), as
    /// an operator's editor or deployment would.
    pub fn write_config(&self, config: &str) {
        let aside = self.work.path().join("outboard.toml.new");
        std::fs::write(&aside, config).unwrap();
        std::fs::rename(&aside, &self.config).unwrap();
    }

    /// Runs `outboard ARGS --control-socket SOCKET`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run outboard")
    }

    /// The command [`Daemon::cli`] runs, to spawn it instead.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_outboard"));
        command
            .args(args)
            .arg("--control-socket")
            .arg(&self.socket)
            .env_remove("OUTBOARD_CONTROL_SOCKET")
            .stdin(Stdio::null());
        command
    }

    /// Runs `outboard ARGS --json --control-socket SOCKET`, which must
    /// succeed, and parses its stdout.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "outboard {}: {}\nstdout: {}\nstderr: {}",
            all.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "outboard {}: stdout is not JSON ({e}): {}",
                all.join(" "),
                text(&out.stdout)
            )
        })
    }

    /// Polls `status --json` until `done` holds for it, or fails the test
    /// after `timeout` saying it never became `what`, with the last answer.
    pub fn status_when(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.cli_json(&["status"]);
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "never {what}: {status:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A control-API client on the socket.
    pub async fn client(&self) -> Client {
        let path = self.socket.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        });
        let channel = Endpoint::from_static("http://outboard.daemon")
            .connect_with_connector(connector)
            .await
            .expect("connect to the control socket");
        ControlServiceClient::new(channel)
    }

    /// Every plugin's status, through the control API.
    pub async fn status(&self) -> GetStatusResponse {
        self.client()
            .await
            .get_status(GetStatusRequest::default())
            .await
            .expect("GetStatus")
            .into_inner()
    }

    /// Each plugin's name and pid (0 when none runs).
    pub async fn pids(&self) -> BTreeMap<String, u32> {
        self.status()
            .await
            .plugins
            .into_iter()
            .map(|p| (p.name, p.pid))
            .collect()
    }

    /// Waits until every plugin is ready, or fails the test with their
    /// states.
    pub async fn wait_all_ready(&self) {
        let deadline = Instant::now() + START;
        loop {
            let status = self.status().await;
            if status
                .plugins
                .iter()
                .all(|p| p.state() == PluginState::Ready)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every plugin became ready: {:?}",
                status
                    .plugins
                    .iter()
                    .map(|p| (&p.name, p.state()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the daemon's children (its keeper aside) are exactly
    /// `pids`: no plugin instance left over, none missing. Fails the test
    /// otherwise.
    pub fn expect_children(&self, pids: impl IntoIterator<Item = u32>) {
        let mut want: Vec<u32> = pids.into_iter().collect();
        want.sort_unstable();
        let now = || {
            let mut children = child_pids(self.pid());
            children.sort_unstable();
            children
        };
        assert!(
            wait_until(Duration::from_secs(10), || now() == want),
            "the daemon's children are {:?}, not {want:?}",
            now()
        );
    }

    /// SIGTERMs the daemon and waits for it: it exits 0, its control
    /// socket is gone, none of its plugins (nor any child) runs on, and no
    /// runtime directory is left. Returns all it wrote on stderr.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let plugins: Vec<u32> = children_of(pid).into_iter().map(|(p, _)| p).collect();
        sigterm(pid);
        let mut status = None;
        let exited = wait_until(START, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        if !exited {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            child.wait().unwrap();
        }
        let stderr = std::mem::replace(&mut self.stderr, Lines::read(std::io::empty())).rest();
        assert!(
            exited,
            "the daemon did not exit on SIGTERM; stderr:\n{stderr}"
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "the daemon's exit on SIGTERM; stderr:\n{stderr}"
        );
        assert!(
            !self.socket.exists(),
            "the control socket {} is left behind",
            self.socket.display()
        );
        assert!(
            wait_until(Duration::from_secs(5), || plugins
                .iter()
                .all(|&p| !alive(p))),
            "processes the daemon started still run: {:?}",
            plugins.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        self.sandbox.assert_empty();
        stderr
    }

    /// A fixture plugin written as a shell script in the work directory
    /// (see [`write_script`]).
    pub fn write_script(&self, name: &str, body: &str) -> PathBuf {
        write_script(self.work.path(), name, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test that failed before `stop`: the daemon's death takes its
        // plugins with it (its keeper kills their groups).
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `phase` with an empty context through the control API; its report.
pub async fn invoke(client: &mut Client, phase: &str) -> DispatchReport {
    client
        .invoke(InvokeRequest {
            phase: phase.into(),
            context: None,
        })
        .await
        .unwrap_or_else(|s| panic!("Invoke {phase}: {s}"))
        .into_inner()
        .report
        .unwrap_or_else(|| panic!("Invoke {phase}: no report"))
}

/// The plugin `name` in `outboard status --json`'s output.
pub fn plugin_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {status}"))
}

/// The `scripted-plugin` fixture's path, for configs.
pub fn scripted() -> String {
    bin("scripted-plugin").display().to_string()
}

/// The `broken-plugin` fixture's path, for configs.
pub fn broken() -> String {
    bin("broken-plugin").display().to_string()
}

/// Writes `dir/name`, an executable shell script running `body`: written
/// aside, then renamed over the old one, as an upgrade replaces a binary in
/// place.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let aside = dir.join(format!(".{name}.new"));
    std::fs::write(&aside, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    path
}
