//! The arguments of the package commands: `keygen`, `package`, `install`,
//! `uninstall`, `plugins`.

use std::path::PathBuf;

use clap::Args;

/// The arguments of `outboard keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where the secret key goes (mode 0600); the public key goes beside
    /// it as FILE.pub. Neither is ever overwritten.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "outboard.key")]
    pub(crate) out: PathBuf,
}

/// The arguments of `outboard package`.
#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    /// The plugin's folder: its plugin.toml, its executable, its files.
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The package file (default: NAME-VERSION.tar.gz, as the plugin
    /// describes itself, in the current directory).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Sign the package's manifest with this minisign secret key (made by
    /// `outboard keygen`).
    #[arg(long, value_name = "KEY")]
    pub(crate) sign: Option<PathBuf>,
}

/// Where installed plugins live, and which config names the trusted keys.
#[derive(Debug, Args)]
pub(crate) struct InstallPlace {
    /// The plugin directory (default: the first of OUTBOARD_PLUGIN_DIR).
    #[arg(long, value_name = "DIR")]
    pub(crate) plugin_dir: Option<PathBuf>,
}

/// The arguments of `outboard install`.
#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// The package file (.tar.gz, made by `outboard package`).
    #[arg(value_name = "PACKAGE")]
    pub(crate) package: PathBuf,
    /// Where to install.
    #[command(flatten)]
    pub(crate) place: InstallPlace,
    /// A trusted signer: a minisign public key (`RW...`) or its .pub file
    /// (repeatable; adds to the config's [trust] keys).
    #[arg(long, value_name = "KEY")]
    pub(crate) trust: Vec<String>,
    /// The host config whose [trust] keys to use (default: ./outboard.toml
    /// if it exists).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Install a package that carries no signature (a signature that is
    /// there is still checked).
    #[arg(long)]
    pub(crate) allow_unsigned: bool,
    /// Install a package whose plugin.toml sets what only the operator
    /// should set (grant, sandbox.user, sandbox.group, sandbox.best_effort,
    /// sandbox.network = "host", a command or working_dir outside its
    /// folder); install prints them either way.
    #[arg(long)]
    pub(crate) accept_config: bool,
    /// The unprivileged user install starts the plugin as, once, when it
    /// runs as root.
    #[arg(long, value_name = "USER", default_value = outboard_packages::PROBE_USER)]
    pub(crate) probe_user: String,
}

/// The arguments of `outboard uninstall`.
#[derive(Debug, Args)]
pub(crate) struct UninstallArgs {
    /// The plugin's name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// Where it is installed.
    #[command(flatten)]
    pub(crate) place: InstallPlace,
}

/// The arguments of `outboard plugins`.
#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    /// Where to look.
    #[command(flatten)]
    pub(crate) place: InstallPlace,
    /// A JSON array of {name, version, signer, path} (signer null if
    /// unsigned).
    #[arg(long)]
    pub(crate) json: bool,
}
