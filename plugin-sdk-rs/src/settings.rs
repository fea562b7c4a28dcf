//! What the host tells a plugin through its environment, read and checked
//! before anything is bound or printed.

use std::path::PathBuf;

use crate::host::{ENV_HOST_SOCKET, HostEndpoint, HostServices};

use outboard_proto::handshake::{
    self, ENV_FASTPATH_SOCKET, ENV_MAGIC_COOKIE, ENV_PLUGIN_NAME, ENV_PROTOCOL_VERSIONS,
    ENV_SOCKET, ENV_TOKEN, MAGIC_COOKIE_VALUE, SUPPORTED_PROTOCOL_VERSIONS,
};

/// How [`serve_with`](crate::serve_with) runs one plugin launch.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// The Unix socket path to bind (`OUTBOARD_SOCKET`).
    pub socket_path: PathBuf,
    /// The token every `PluginService` call must carry (`OUTBOARD_TOKEN`).
    pub token: String,
    /// The protocol version agreed with the host.
    pub protocol_version: u32,
    /// The name the host knows this instance by (`OUTBOARD_PLUGIN_NAME`),
    /// if it said.
    pub instance_name: Option<String>,
    /// `true` to stop gracefully on SIGTERM and SIGINT.
    pub handle_signals: bool,
    /// Where the host serves host services (`OUTBOARD_HOST_SOCKET`,
    /// `OUTBOARD_HOST_TOKEN`), if it offers them.
    pub host: Option<HostEndpoint>,
    /// Where the host wants the invoke fast path served
    /// (`OUTBOARD_FASTPATH_SOCKET`, PROTOCOL.md §18), if it does.
    pub fastpath_socket: Option<PathBuf>,
    /// `false` to stay on gRPC even when the host offers the fast path
    /// (default `true`): nothing is bound and the manifest does not list
    /// the feature.
    pub fastpath: bool,
    /// Without [`Settings::host`]: the variable that was missing or
    /// unusable, for the error every host-service call then gives.
    host_missing: &'static str,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never let it reach a log line.
        f.debug_struct("Settings")
            .field("socket_path", &self.socket_path)
            .field("token", &"<redacted>")
            .field("protocol_version", &self.protocol_version)
            .field("instance_name", &self.instance_name)
            .field("handle_signals", &self.handle_signals)
            .field("host", &self.host)
            .field("fastpath_socket", &self.fastpath_socket)
            .field("fastpath", &self.fastpath)
            .finish()
    }
}

/// Why the environment is not one a host set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `OUTBOARD_MAGIC_COOKIE` is missing or wrong: someone ran the plugin
    /// by hand.
    #[error("this program is an Outboard plugin and was not started by an Outboard host")]
    NotStartedByHost,
    /// A variable the host always sets is missing or empty.
    #[error("{0} is not set, but an Outboard host always sets it")]
    Missing(&'static str),
    /// A variable holds something unusable.
    #[error("{var} is {value:?}: {why}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// Its value, quoted.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// The host and the plugin share no protocol version.
    #[error(
        "no protocol version in common: the host speaks {} and this plugin speaks {}",
        handshake::format_versions(host),
        handshake::format_versions(plugin)
    )]
    NoCommonVersion {
        /// The versions in `OUTBOARD_PROTOCOL_VERSIONS`.
        host: Vec<u32>,
        /// The versions this SDK speaks.
        plugin: Vec<u32>,
    },
}

impl Settings {
    /// Settings for serving on `socket_path` with `token`, at the newest
    /// protocol version, stopping on SIGTERM/SIGINT. Mostly for tests; a
    /// plugin launched by a host uses [`Settings::from_env`].
    pub fn new(socket_path: impl Into<PathBuf>, token: impl Into<String>) -> Settings {
        Settings {
            socket_path: socket_path.into(),
            token: token.into(),
            protocol_version: handshake::PROTOCOL_VERSION,
            instance_name: None,
            handle_signals: true,
            host: None,
            fastpath_socket: None,
            fastpath: true,
            host_missing: ENV_HOST_SOCKET,
        }
    }

    /// Serves the invoke fast path on `socket` too (what
    /// `OUTBOARD_FASTPATH_SOCKET` says when a host sets it).
    pub fn with_fastpath_socket(mut self, socket: impl Into<PathBuf>) -> Settings {
        self.fastpath_socket = Some(socket.into());
        self
    }

    /// Sets whether the invoke fast path is served when the host offers it
    /// (default `true`). Off, the plugin answers `Invoke` on gRPC only.
    pub fn fastpath(mut self, on: bool) -> Settings {
        self.fastpath = on;
        self
    }

    /// The socket to serve the fast path on: the host offers it and the
    /// plugin did not turn it off.
    pub(crate) fn fastpath_to_serve(&self) -> Option<&std::path::Path> {
        self.fastpath_socket.as_deref().filter(|_| self.fastpath)
    }

    /// Offers host services at `endpoint` (what `OUTBOARD_HOST_SOCKET` and
    /// `OUTBOARD_HOST_TOKEN` say when a host sets them).
    pub fn with_host(mut self, endpoint: HostEndpoint) -> Settings {
        self.host = Some(endpoint);
        self
    }

    /// The handle every configure, invocation and event of this launch
    /// gets: connected to [`Settings::host`], or failing every call with
    /// an error naming the missing variable.
    pub fn host_services(&self) -> HostServices {
        match &self.host {
            Some(endpoint) => HostServices::connect(endpoint.clone()),
            None => HostServices::absent(self.host_missing),
        }
    }

    /// Sets whether SIGTERM and SIGINT stop the server (default `true`).
    /// In-process tests turn it off so that the test binary keeps its own
    /// Ctrl-C behaviour.
    pub fn handle_signals(mut self, on: bool) -> Settings {
        self.handle_signals = on;
        self
    }

    /// Reads the `OUTBOARD_*` variables of this process (as they were
    /// before [`run`](crate::run) took them out of its environment).
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(crate::environment::var)
    }

    /// Reads the `OUTBOARD_*` variables through `lookup`, so that the rules
    /// can be tested without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        // The cookie comes first: without it nothing else is worth reporting.
        if lookup(ENV_MAGIC_COOKIE).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(SettingsError::NotStartedByHost);
        }
        let required = |var: &'static str| {
            lookup(var)
                .filter(|v| !v.is_empty())
                .ok_or(SettingsError::Missing(var))
        };

        let versions = required(ENV_PROTOCOL_VERSIONS)?;
        let host = handshake::parse_versions(&versions).map_err(|why| SettingsError::Invalid {
            var: ENV_PROTOCOL_VERSIONS,
            value: versions.clone(),
            why,
        })?;
        let protocol_version = handshake::negotiate(&host, SUPPORTED_PROTOCOL_VERSIONS)
            .ok_or_else(|| SettingsError::NoCommonVersion {
                host: host.clone(),
                plugin: SUPPORTED_PROTOCOL_VERSIONS.to_vec(),
            })?;

        let socket = required(ENV_SOCKET)?;
        if !socket.starts_with('/') {
            return Err(SettingsError::Invalid {
                var: ENV_SOCKET,
                value: socket,
                why: "the socket path must be absolute".into(),
            });
        }
        let token = required(ENV_TOKEN)?;
        // Optional: a host that does not want the fast path leaves it out.
        let fastpath_socket = match lookup(ENV_FASTPATH_SOCKET).filter(|v| !v.is_empty()) {
            Some(path) if !path.starts_with('/') => {
                return Err(SettingsError::Invalid {
                    var: ENV_FASTPATH_SOCKET,
                    value: path,
                    why: "the socket path must be absolute".into(),
                });
            }
            path => path.map(PathBuf::from),
        };
        let instance_name = lookup(ENV_PLUGIN_NAME).filter(|n| !n.is_empty());
        // Host services are optional: a host that sets only one of the two
        // variables offers none, and only the calls say so.
        let (host, host_missing) = match HostEndpoint::from_lookup(&lookup) {
            Ok(host) => (host, ENV_HOST_SOCKET),
            Err(missing) => (None, missing),
        };

        Ok(Settings {
            socket_path: PathBuf::from(socket),
            token,
            protocol_version,
            instance_name,
            handle_signals: true,
            host,
            fastpath_socket,
            fastpath: true,
            host_missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn host_env() -> Vec<(&'static str, &'static str)> {
        vec![
            (ENV_MAGIC_COOKIE, MAGIC_COOKIE_VALUE),
            (ENV_PROTOCOL_VERSIONS, "1"),
            (ENV_SOCKET, "/tmp/ob-abc/plugin.sock"),
            (ENV_TOKEN, "s3cret"),
            (ENV_PLUGIN_NAME, "envy"),
        ]
    }

    #[test]
    fn host_services_are_read_and_redacted() {
        let mut env = host_env();
        assert_eq!(
            Settings::from_lookup(lookup(&env)).expect("valid").host,
            None
        );
        env.push(("OUTBOARD_HOST_SOCKET", "/tmp/ob-abc/host.sock"));
        env.push(("OUTBOARD_HOST_TOKEN", "h0st-t0ken"));
        let s = Settings::from_lookup(lookup(&env)).expect("valid");
        let host = s.host.as_ref().expect("offered");
        assert_eq!(host.socket, PathBuf::from("/tmp/ob-abc/host.sock"));
        assert_eq!(host.token, "h0st-t0ken");
        assert!(
            !format!("{s:?}").contains("h0st-t0ken"),
            "token leaked: {s:?}"
        );
        assert!(s.host_services().is_offered());
        env.pop();
        let s = Settings::from_lookup(lookup(&env)).expect("a half-set pair is not fatal");
        assert_eq!(s.host, None);
        assert_eq!(s.host_missing, "OUTBOARD_HOST_TOKEN");
        env.pop();
        env.push(("OUTBOARD_HOST_TOKEN", "t"));
        let s = Settings::from_lookup(lookup(&env)).expect("valid");
        assert_eq!(s.host_missing, "OUTBOARD_HOST_SOCKET");
        env.push(("OUTBOARD_HOST_SOCKET", "host.sock"));
        let s = Settings::from_lookup(lookup(&env)).expect("valid");
        assert_eq!(
            s.host_missing, "OUTBOARD_HOST_SOCKET",
            "a relative path is unusable"
        );
    }

    #[test]
    fn reads_a_hosts_environment() {
        let s = Settings::from_lookup(lookup(&host_env())).expect("valid");
        assert_eq!(s.socket_path, PathBuf::from("/tmp/ob-abc/plugin.sock"));
        assert_eq!(s.token, "s3cret");
        assert_eq!(s.protocol_version, 1);
        assert_eq!(s.instance_name.as_deref(), Some("envy"));
        assert!(s.handle_signals);
        assert!(!format!("{s:?}").contains("s3cret"), "token leaked: {s:?}");
        assert_eq!(s.fastpath_socket, None, "not offered");
        assert_eq!(s.fastpath_to_serve(), None);
    }

    #[test]
    fn the_fast_path_socket_is_read_and_can_be_turned_off() {
        let mut env = host_env();
        env.push((ENV_FASTPATH_SOCKET, "/tmp/ob-abc/fast.sock"));
        let s = Settings::from_lookup(lookup(&env)).expect("valid");
        assert_eq!(
            s.fastpath_to_serve(),
            Some(std::path::Path::new("/tmp/ob-abc/fast.sock"))
        );
        let off = s.fastpath(false);
        assert_eq!(off.fastpath_to_serve(), None, "turned off by the plugin");
        assert!(off.fastpath_socket.is_some(), "still known");

        env.pop();
        env.push((ENV_FASTPATH_SOCKET, ""));
        let s = Settings::from_lookup(lookup(&env)).expect("empty means not offered");
        assert_eq!(s.fastpath_to_serve(), None);

        env.pop();
        env.push((ENV_FASTPATH_SOCKET, "fast.sock"));
        let err = Settings::from_lookup(lookup(&env)).expect_err("relative");
        assert_eq!(
            err.to_string(),
            r#"OUTBOARD_FASTPATH_SOCKET is "fast.sock": the socket path must be absolute"#
        );
    }

    #[test]
    fn missing_or_wrong_cookie_means_run_by_hand() {
        assert_eq!(
            Settings::from_lookup(lookup(&[])).err(),
            Some(SettingsError::NotStartedByHost)
        );
        let mut env = host_env();
        env[0].1 = "nope";
        assert_eq!(
            Settings::from_lookup(lookup(&env)).err(),
            Some(SettingsError::NotStartedByHost)
        );
    }

    #[test]
    fn no_common_version_names_both_lists() {
        let mut env = host_env();
        env[1].1 = "2,3";
        let err = Settings::from_lookup(lookup(&env)).expect_err("no overlap");
        assert_eq!(
            err.to_string(),
            "no protocol version in common: the host speaks 2,3 and this plugin speaks 1"
        );
    }

    #[test]
    fn bad_and_missing_variables_are_named() {
        let mut env = host_env();
        env[1].1 = "1,x";
        let err = Settings::from_lookup(lookup(&env)).expect_err("bad list");
        assert_eq!(
            err.to_string(),
            r#"OUTBOARD_PROTOCOL_VERSIONS is "1,x": "x" is not a positive integer"#
        );

        let env: Vec<_> = host_env()
            .into_iter()
            .filter(|(k, _)| *k != ENV_TOKEN)
            .collect();
        assert_eq!(
            Settings::from_lookup(lookup(&env)).err(),
            Some(SettingsError::Missing(ENV_TOKEN))
        );

        let mut env = host_env();
        env[2].1 = "plugin.sock";
        let err = Settings::from_lookup(lookup(&env)).expect_err("relative");
        assert!(err.to_string().contains("must be absolute"), "{err}");
    }
}
