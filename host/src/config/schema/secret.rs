//! A `[secrets.NAME]` table resolved into a [`SecretSpec`]: exactly one
//! source, a valid name, durations within bounds. Errors quote the source
//! (a variable's name, a path, a command line), never a value: the table
//! holds none.

use std::ops::Range;

use toml::Spanned;

use super::SecretToml;
use super::source::{Scope, Source};
use crate::config::command::resolve_command;
use crate::config::error::{ConfigError, Subject};
use crate::config::limits;
use crate::config::secret::{
    DEFAULT_SECRET_CACHE, DEFAULT_SECRET_TIMEOUT, SecretSource, SecretSpec, is_valid_secret_name,
};

impl SecretToml {
    /// The spec for the secret `name`, declared at `span`.
    pub(super) fn resolve(
        &self,
        name: &str,
        span: Range<usize>,
        src: &Source<'_>,
    ) -> Result<SecretSpec, ConfigError> {
        let scope = src.scope(Subject::Secret(name.to_owned()));
        if !is_valid_secret_name(name) {
            return Err(scope.invalid(
                Some(span),
                "name",
                format!(
                    "{:?} is not a valid secret name: 1 to 64 characters of \
                     a-z, A-Z, 0-9, '_', '.' and '-' (quote a name with a dot: \
                     [secrets.\"a.b\"])",
                    name.escape_debug().to_string()
                ),
            ));
        }
        let source = self.source(span.clone(), src, &scope)?;
        if let (Some(timeout), false) = (
            &self.timeout,
            matches!(source, SecretSource::Command { .. }),
        ) {
            return Err(scope.invalid(
                Some(timeout.span()),
                "timeout",
                "applies to a command only: remove it, or read the secret with command".into(),
            ));
        }
        Ok(SecretSpec {
            source,
            cache: scope.duration(
                "cache",
                &self.cache,
                DEFAULT_SECRET_CACHE,
                limits::SECRET_CACHE,
            )?,
            timeout: scope.duration(
                "timeout",
                &self.timeout,
                DEFAULT_SECRET_TIMEOUT,
                limits::SECRET_TIMEOUT,
            )?,
        })
    }

    /// The one source among `env`, `file` and `command`.
    fn source(
        &self,
        span: Range<usize>,
        src: &Source<'_>,
        scope: &Scope<'_>,
    ) -> Result<SecretSource, ConfigError> {
        let given: Vec<(&str, Range<usize>)> = [
            self.env.as_ref().map(|v| ("env", v.span())),
            self.file.as_ref().map(|v| ("file", v.span())),
            self.command.as_ref().map(|v| ("command", v.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [] => Err(scope.invalid(
                Some(span),
                "source",
                "is missing: set exactly one of env = \"VAR\", file = \"PATH\" or \
                 command = [\"program\", \"arg\", ...]"
                    .into(),
            )),
            [_] => self.the_source(src, scope),
            [_, (second, at), ..] => Err(scope.invalid(
                Some(at.clone()),
                second,
                format!(
                    "is a second source (beside {}): a secret has exactly one of env, file \
                     and command",
                    given[0].0
                ),
            )),
        }
    }

    /// The source that is set, checked.
    fn the_source(&self, src: &Source<'_>, scope: &Scope<'_>) -> Result<SecretSource, ConfigError> {
        if let Some(var) = &self.env {
            let name = var.get_ref();
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(scope.invalid(
                    Some(var.span()),
                    "env",
                    format!(
                        "{:?} is not a valid variable name (empty, or contains '=' or NUL)",
                        name.escape_debug().to_string()
                    ),
                ));
            }
            return Ok(SecretSource::Env(name.clone()));
        }
        if let Some(path) = &self.file {
            return file(path, src, scope);
        }
        let Some(argv) = &self.command else {
            unreachable!("the_source is called with one source set");
        };
        command(argv, src, scope)
    }
}

/// A `file` source: a path, relative to the config file's directory.
fn file(
    path: &Spanned<String>,
    src: &Source<'_>,
    scope: &Scope<'_>,
) -> Result<SecretSource, ConfigError> {
    let text = path.get_ref();
    if text.is_empty() || text.contains('\0') {
        return Err(scope.invalid(
            Some(path.span()),
            "file",
            "is empty or contains a NUL byte: give the path of the file holding the secret".into(),
        ));
    }
    Ok(SecretSource::File(src.base_dir().join(text)))
}

/// A `command` source: a program resolved like a plugin's `command`, its
/// arguments free of NUL bytes.
fn command(
    argv: &Spanned<Vec<String>>,
    src: &Source<'_>,
    scope: &Scope<'_>,
) -> Result<SecretSource, ConfigError> {
    let Some((program, args)) = argv.get_ref().split_first() else {
        return Err(scope.invalid(
            Some(argv.span()),
            "command",
            "is empty: give the program and its arguments, e.g. [\"vault\", \"read\", ...]".into(),
        ));
    };
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(scope.invalid(
            Some(argv.span()),
            &format!("command[{}]", i + 1),
            "contains a NUL byte".into(),
        ));
    }
    let base = src.base_dir();
    let program = resolve_command(program, &base, false).map_err(|why| {
        scope.invalid(
            Some(argv.span()),
            "command[0]",
            format!("{program:?} {why}"),
        )
    })?;
    Ok(SecretSource::Command {
        program,
        args: args.to_vec(),
        dir: base,
    })
}
