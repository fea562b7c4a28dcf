//! What a package's `plugin.toml` asks of the host beyond running its own
//! code: the grants, the sandbox, the user, the working directory and the
//! command. The file becomes the plugin's configuration once installed,
//! and its keys win over `[defaults]` in `outboard.toml`; the operator
//! never wrote it. Install prints every such key, and refuses, unless the
//! operator accepts them (`--accept-config`), those only the operator
//! should set.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use outboard_host::PluginSpec;
use serde::Deserialize;
use toml::Spanned;

/// One key of a package's `plugin.toml` that install shows the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAsk {
    /// The key, dotted: `grant`, `sandbox.user`, ...
    pub key: String,
    /// Its value as TOML (`["*"]`, `"root"`).
    pub value: String,
    /// Its line in the file, from 1.
    pub line: usize,
    /// Why only the operator should set it, if so.
    pub operator_only: Option<String>,
}

impl ConfigAsk {
    /// `line 3: grant = ["*"]`, and why it is the operator's if it is.
    pub fn describe(&self) -> String {
        let mut text = format!("line {}: {} = {}", self.line, self.key, self.value);
        if let Some(why) = &self.operator_only {
            text.push_str(&format!(" (operator-only: {why})"));
        }
        text
    }
}

/// The keys install reads; the file was already checked as a whole by
/// the host's loader, so only their spans matter here.
#[derive(Deserialize)]
struct Asked {
    command: Option<Spanned<toml::Value>>,
    args: Option<Spanned<toml::Value>>,
    working_dir: Option<Spanned<toml::Value>>,
    grant: Option<Spanned<toml::Value>>,
    env: Option<BTreeMap<String, Spanned<toml::Value>>>,
    sandbox: Option<BTreeMap<String, Spanned<toml::Value>>>,
    subscriptions: Option<BTreeMap<String, Spanned<toml::Value>>>,
    optional: Option<Spanned<toml::Value>>,
}

/// What the `plugin.toml` in `folder` asks (module docs), in the file's
/// order; `spec` is that file as the host resolved it. Err says why the
/// file cannot be read.
pub(crate) fn config_asks(folder: &Path, spec: &PluginSpec) -> Result<Vec<ConfigAsk>, String> {
    let file = folder.join(outboard_host::config::PLUGIN_FILE_NAME);
    let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let asked: Asked = toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let line = |span: std::ops::Range<usize>| text[..span.start].matches('\n').count() + 1;
    let inside = |path: &Path| match (fs::canonicalize(path), fs::canonicalize(folder)) {
        (Ok(p), Ok(f)) => p.starts_with(f),
        _ => false,
    };
    let mut asks = Vec::new();
    let mut ask = |key: &str, value: &Spanned<toml::Value>, operator_only: Option<String>| {
        asks.push(ConfigAsk {
            key: key.to_owned(),
            value: inline(value.get_ref()),
            line: line(value.span()),
            operator_only,
        });
    };
    if let Some(command) = &asked.command {
        let outside = (!inside(&spec.command)).then(|| {
            format!(
                "runs {}, outside the package's folder, which the signature does not cover",
                spec.command.display()
            )
        });
        ask("command", command, outside);
    }
    if let Some(args) = &asked.args {
        ask("args", args, None);
    }
    if let Some(dir) = &asked.working_dir {
        let outside = spec.working_dir.as_deref().filter(|d| !inside(d)).map(|d| {
            format!(
                "runs in {}, outside the package's folder, which a filesystem wall then \
                     lets it read",
                d.display()
            )
        });
        ask("working_dir", dir, outside);
    }
    if let Some(grant) = &asked.grant {
        ask(
            "grant",
            grant,
            Some("grants it what its Describe asks for (secrets, kv, network)".to_owned()),
        );
    }
    for (key, value) in asked.env.iter().flatten() {
        // Escaped: the name reaches the operator's terminal.
        ask(&format!("env.{}", key.escape_debug()), value, None);
    }
    // How the host treats its phases (order, timeout, failure policy):
    // the operator's choice too, shown, not refused.
    for (phase, value) in asked.subscriptions.iter().flatten() {
        ask(
            &format!("subscriptions.{}", phase.escape_debug()),
            value,
            None,
        );
    }
    if let Some(optional) = &asked.optional {
        ask("optional", optional, None);
    }
    for (key, value) in asked.sandbox.iter().flatten() {
        let operator_only = match (key.as_str(), value.get_ref()) {
            ("user" | "group", _) => Some(format!(
                "runs it as that {key}, any account on this machine, root included"
            )),
            ("best_effort", toml::Value::Boolean(true)) => Some(
                "lets the host leave out any wall it cannot build, [defaults.sandbox]'s included"
                    .to_owned(),
            ),
            ("network", toml::Value::String(n)) if n == "host" => {
                Some("gives it the host's network, whatever [defaults.sandbox] says".to_owned())
            }
            _ => None,
        };
        ask(
            &format!("sandbox.{}", key.escape_debug()),
            value,
            operator_only,
        );
    }
    asks.sort_by_key(|a| a.line);
    Ok(asks)
}

/// `value` on one line, as TOML writes it.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(table) => {
            let fields: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}
