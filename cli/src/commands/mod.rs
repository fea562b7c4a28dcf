//! The commands, one file each. Every command but `conformance` creates its
//! signal listener first, before it reads a config or starts a plugin, and
//! passes it down: as [`Signals`] where a signal can come while plugins
//! stop (`run`, `up`, `invoke`, `ls`: `stop` kills them then), as one stop
//! future elsewhere.
//!
//! The management commands (`status`, `logs`, `manage`: restart, stop and
//! start, `reload`, `events`) are clients of a running daemon, through
//! `crate::client`.
//!
//! `packages`: keygen, package, install, uninstall and plugins, over
//! outboard-packages.
//!
//! Beside them: `services`, host services for the commands that start
//! plugins; `stop`, stopping plugins while a signal can cut the stop
//! short (for every command that stops plugins); `report_file`, where
//! `run --report` writes without replacing what is not a regular file.

mod conformance;
mod dead_letters;
mod describe;
mod emit;
mod events;
mod invoke;
mod job_events;
mod logs;
mod ls;
mod manage;
mod packages;
mod reload;
mod report_file;
mod run;
mod services;
mod status;
mod stop;
mod target;
mod up;

use std::future::Future;
use std::path::PathBuf;

use anyhow::bail;
use outboard_host::config::{self as registry, HostConfig};

use crate::args::{Command, Source};
use crate::signals::Signals;

/// Runs `command`; returns its exit status, or the error to print (status
/// 1).
pub(crate) async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => Ok(run::run(args, Signals::listen()).await),
        Command::Up(args) => up::run(args, Signals::listen()).await,
        Command::Describe(args) => describe::run(args, Signals::listen().first()).await,
        Command::Ls(args) => ls::run(args, Signals::listen()).await,
        Command::Invoke(args) => invoke::run(args, Signals::listen()).await,
        // The battery cleans up after itself on every path but a signal's;
        // there the default action and the plugins' parent-death signal do.
        Command::Conformance(args) => conformance::run(args).await,
        Command::Status(args) => status::run(args, Signals::listen()).await,
        Command::Logs(args) => logs::run(args, Signals::listen()).await,
        Command::Restart(args) => {
            let action = manage::Action::restart(&args);
            manage::run(action, args.json, args.control, Signals::listen()).await
        }
        Command::Stop(args) => {
            let action = manage::Action::Stop(args.name);
            manage::run(action, args.json, args.control, Signals::listen()).await
        }
        Command::Start(args) => {
            let action = manage::Action::Start(args.name);
            manage::run(action, args.json, args.control, Signals::listen()).await
        }
        Command::Reload(args) => reload::run(args, Signals::listen()).await,
        Command::Events(args) => events::run(args, Signals::listen()).await,
        Command::Emit(args) => emit::run(args).await,
        Command::Keygen(args) => packages::keygen(args),
        // Both start the plugin once; on a signal the work is dropped, which
        // kills that plugin and removes the staging folder.
        Command::Package(args) => packages::package(args, Signals::listen().first()).await,
        Command::Install(args) => packages::install_package(args, Signals::listen().first()).await,
        Command::Uninstall(args) => packages::uninstall_plugin(args),
        Command::Plugins(args) => packages::plugins(args),
    }
}

/// Runs `work` unless `shutdown` completes first. On a stop, `work` is
/// dropped: plugins it was still starting are killed with their groups.
async fn unless_interrupted<T>(
    work: impl Future<Output = T>,
    shutdown: impl Future<Output = ()>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = shutdown => {
            say!("outboard: interrupted");
            None
        }
    }
}

/// The host config the flags point to.
fn load_config(source: &Source) -> anyhow::Result<HostConfig> {
    let dirs = if source.plugin_dir.is_empty() && source.config.is_none() {
        registry::dirs_from_env()
    } else {
        source.plugin_dir.clone()
    };
    let mut config = match &source.config {
        Some(file) => registry::load(file)?,
        None if dirs.is_empty() => {
            let default = PathBuf::from(registry::CONFIG_FILE_NAME);
            if !default.exists() {
                bail!(
                    "no plugins to run: give --config FILE or --plugin-dir DIR \
                     (or set OUTBOARD_PLUGIN_DIR), or create ./outboard.toml"
                );
            }
            registry::load(&default)?
        }
        None => HostConfig::default(),
    };
    // Plugins found in directories get the file's [defaults] too.
    let found = registry::discover_with(&dirs, &config.defaults)?;
    config.add_plugins(found)?;
    Ok(config)
}
