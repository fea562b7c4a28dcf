//! The plugin: checks the config at `Configure`, and after the command
//! exits builds the `job.finished` event, signs it and delivers it.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use outboard_examples::{Clock, append_line, command_argv, exit_code, job_id, rfc3339_millis};
use outboard_plugin::host::StatusCode;
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::http::{budget, deliver};
use crate::url::{HttpUrl, parse_url};

/// Where a plugin reads its own environment: [`std::env::var`] in
/// production, a table in tests.
pub(crate) type Getenv = fn(&str) -> Option<String>;

/// The config as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The HMAC key itself.
    secret: Option<String>,
    /// The variable of the plugin's environment holding the key.
    secret_env: Option<String>,
    /// A file to append events to.
    file: Option<PathBuf>,
    /// A webhook on this machine to POST events to.
    url: Option<String>,
}

/// Where events go.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// Appended to this file.
    File(PathBuf),
    /// POSTed to this URL.
    Url(HttpUrl),
}

/// The host secret holding the key when the config sets neither `secret`
/// nor `secret_env`; the manifest asks for `secret:` + this.
pub(crate) const HOST_SECRET: &str = "notifier-hmac";

/// Where the HMAC key comes from.
enum Key {
    /// Given in the config, or read from the plugin's environment at
    /// `Configure`.
    Fixed(Vec<u8>),
    /// The host secret [`HOST_SECRET`], read through host services on every
    /// event (the host keeps it for its cache time), so a rotated key is
    /// used without a restart.
    Host,
}

/// The checked config. No `Debug`: it may hold the secret.
struct Settings {
    /// The HMAC key, or where to get it.
    key: Key,
    /// Where events go.
    target: Target,
}

/// The event, its fields in alphabetical order (see the module docs).
#[derive(Debug, Serialize)]
struct Event<'a> {
    command: &'a [String],
    event: &'static str,
    exit_code: i64,
    job_id: &'a str,
    status: &'static str,
    timestamp: String,
}

/// The plugin: the settings from `Configure`, a clock and an environment.
pub(crate) struct Notifier {
    /// `None` until configured.
    settings: RwLock<Option<Arc<Settings>>>,
    /// Where `timestamp` comes from.
    clock: Clock,
    /// Where `secret_env` is looked up.
    getenv: Getenv,
}

impl Notifier {
    /// A plugin reading the time from `clock` and `secret_env` through
    /// `getenv`.
    pub(crate) fn new(clock: Clock, getenv: Getenv) -> Notifier {
        Notifier {
            settings: RwLock::new(None),
            clock,
            getenv,
        }
    }
}

impl Plugin for Notifier {
    fn manifest(&self) -> Manifest {
        Manifest::new("notifier", env!("CARGO_PKG_VERSION"))
            .describe("Sends a signed job.finished event to a file or a local webhook")
            // Not idempotent: a retry would deliver the event twice.
            .subscribe("post_container", 10)
            .permission(
                format!("secret:{HOST_SECRET}"),
                "the HMAC key events are signed with, when the config sets neither secret nor \
                 secret_env",
            )
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "description": "At most one of secret and secret_env (neither: the host secret notifier-hmac), and exactly one of file and url",
                "type": "object",
                "properties": {
                    "secret": {
                        "description": "The HMAC-SHA256 key events are signed with",
                        "type": "string",
                        "minLength": 1
                    },
                    "secret_env": {
                        "description": "The variable of the plugin's environment holding the key",
                        "type": "string",
                        "minLength": 1
                    },
                    "file": {
                        "description": "A file to append one signed event per line to",
                        "type": "string",
                        "minLength": 1
                    },
                    "url": {
                        "description": "An http:// URL on this machine (127.0.0.0/8, [::1] or localhost) to POST events to",
                        "type": "string",
                        "minLength": 1
                    }
                },
                // "Exactly one of" is checked at Configure rather than with
                // oneOf here: a schema failure only says "valid under more
                // than one of the schemas listed in 'oneOf'", and Configure
                // names the keys (and, for `url`, what is allowed).
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let key = match (raw.secret, raw.secret_env) {
            (Some(secret), None) => Key::Fixed(secret.into_bytes()),
            (None, Some(name)) => Key::Fixed(
                (self.getenv)(&name)
                    .ok_or_else(|| {
                        PluginError::invalid_config(format!(
                            "secret_env: {name} is not set in the plugin's environment (set it \
                             with `env` in the plugin's [[plugin]] table)"
                        ))
                    })?
                    .into_bytes(),
            ),
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "give one of `secret` and `secret_env`, not both",
                ));
            }
            (None, None) => {
                host_key(&config).await?;
                Key::Host
            }
        };
        if matches!(&key, Key::Fixed(k) if k.is_empty()) {
            return Err(PluginError::invalid_config("the secret must not be empty"));
        }
        let target = match (raw.file, raw.url) {
            (Some(file), None) if file.as_os_str().is_empty() => {
                return Err(PluginError::invalid_config("file: must not be empty"));
            }
            (Some(file), None) => Target::File(file),
            (None, Some(url)) => Target::Url(
                parse_url(&url)
                    .map_err(|why| PluginError::invalid_config(format!("url: {url:?} {why}")))?,
            ),
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "give one of `file` and `url`, not both",
                ));
            }
            (None, None) => {
                return Err(PluginError::invalid_config(
                    "a destination is required: set `file` or `url`",
                ));
            }
        };
        let settings = Settings { key, target };
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(settings));
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PluginError::failed("notifier was not configured"))?;
        let command = command_argv(&invocation)?;
        let job_id = job_id(&invocation)?;
        let Some(exit_code) = exit_code(&invocation)? else {
            return Ok(Reply::ok().with_message("the command did not run; nothing to notify"));
        };
        let event = Event {
            command: &command,
            event: "job.finished",
            exit_code,
            job_id,
            status: if exit_code == 0 {
                "succeeded"
            } else {
                "failed"
            },
            timestamp: rfc3339_millis((self.clock)()),
        };
        let body = serde_json::to_string(&event)
            .map_err(|e| PluginError::internal(format!("cannot serialize the event: {e}")))?;
        let signature = match &settings.key {
            Key::Fixed(key) => sign(key, body.as_bytes()),
            Key::Host => {
                let key = invocation.secrets().get(HOST_SECRET).await?;
                sign(key.expose(), body.as_bytes())
            }
        };

        let delivered_to = match &settings.target {
            Target::File(path) => {
                // The event's bytes go in verbatim: they are what was signed.
                let line = format!("{{\"signature\":\"{signature}\",\"event\":{body}}}");
                append_line(path, &line).await?;
                path.display().to_string()
            }
            Target::Url(url) => {
                let budget = budget(invocation.deadline, SystemTime::now());
                deliver(url, &body, &signature, budget).await?;
                url.raw.clone()
            }
        };
        Ok(Reply::ok()
            .set(
                "/metadata/notifier",
                json!({"delivered_to": delivered_to, "signature": signature}),
            )
            .with_message(format!(
                "job.finished ({}) sent to {delivered_to}",
                event.status
            )))
    }
}

/// Checks at `Configure` that the host secret can be read: granted, and
/// configured on the host. A source that is only unavailable for now (a
/// vault that is down) is left for the first event to retry, and so is a
/// host that offers no host services at all (`outboard describe` starts a
/// plugin without them) or does not serve `GetSecret` (`conformance`'s
/// stand-in host): each event then fails saying so.
async fn host_key(config: &Config) -> Result<(), PluginError> {
    let permission = format!("secret:{HOST_SECRET}");
    if !config.is_granted(&permission) {
        return Err(PluginError::failed_precondition(format!(
            "no key: the config sets neither `secret` nor `secret_env`, and the host secret \
             {HOST_SECRET} is not granted (add grant = [\"{permission}\"] to the plugin's \
             table and a [secrets.{HOST_SECRET}] section to outboard.toml)"
        )));
    }
    let Err(e) = config.secrets().get(HOST_SECRET).await else {
        return Ok(());
    };
    match e.code() {
        // Down for now, no host services, or a host that does not serve
        // secrets: the first event tries again and says why it cannot.
        StatusCode::Unavailable | StatusCode::Unimplemented => Ok(()),
        _ if e.is_not_offered() => Ok(()),
        _ => Err(PluginError::failed_precondition(format!(
            "no key: the config sets neither `secret` nor `secret_env`, and the host secret \
             {HOST_SECRET} cannot be read: {e}"
        ))),
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
