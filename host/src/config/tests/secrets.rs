//! `[secrets.NAME]`: what each source resolves to, and every rejection
//! with its file, line and key.

use super::*;

#[test]
fn each_source_resolves_with_defaults_and_overrides() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        r#"
[secrets.from-env]
env = "HMAC_KEY"

[secrets."db.password"]
file = "secrets/db"
cache = "0s"

[secrets.Vault_1]
command = ["bin/plug", "read", "x"]
cache = "1h"
timeout = "2s"
"#,
    );
    let config = load(&path).expect("valid");
    let base = fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(
        config.secrets["from-env"],
        SecretSpec::new(SecretSource::Env("HMAC_KEY".into()))
    );
    let db = &config.secrets["db.password"];
    assert_eq!(db.source, SecretSource::File(base.join("secrets/db")));
    assert_eq!(db.cache, Duration::ZERO);
    let vault = &config.secrets["Vault_1"];
    assert_eq!(
        vault.source,
        SecretSource::Command {
            program: base.join("bin/plug"),
            args: vec!["read".into(), "x".into()],
            dir: base.clone(),
        }
    );
    assert_eq!(
        (vault.cache, vault.timeout),
        (Duration::from_secs(3600), Duration::from_secs(2))
    );
    assert_eq!(vault.source.kind(), "command");
}

#[test]
fn no_secrets_section_is_no_secrets() {
    let dir = fixture();
    let config = load(write_config(dir.path(), "")).expect("valid");
    assert!(config.secrets.is_empty());
}

/// Each bad table, the line its error names, and the message's tail after
/// `FILE:LINE: `.
const REJECTED: &[(&str, usize, &str)] = &[
    (
        "[secrets.a]\ncache = \"1m\"\n",
        1,
        "secret \"a\": source is missing: set exactly one of env = \"VAR\", file = \"PATH\" or command = [\"program\", \"arg\", ...]",
    ),
    (
        "[secrets.a]\nenv = \"X\"\nfile = \"y\"\n",
        3,
        "secret \"a\": file is a second source (beside env): a secret has exactly one of env, file and command",
    ),
    (
        "[secrets.a]\nfile = \"y\"\ncommand = [\"bin/plug\"]\n",
        3,
        "secret \"a\": command is a second source (beside file): a secret has exactly one of env, file and command",
    ),
    (
        "[secrets.\"a b\"]\nenv = \"X\"\n",
        1,
        "secret \"a b\": name \"a b\" is not a valid secret name: 1 to 64 characters of a-z, A-Z, 0-9, '_', '.' and '-' (quote a name with a dot: [secrets.\"a.b\"])",
    ),
    (
        "[secrets.a]\nenv = \"\"\n",
        2,
        "secret \"a\": env \"\" is not a valid variable name (empty, or contains '=' or NUL)",
    ),
    (
        "[secrets.a]\nenv = \"A=B\"\n",
        2,
        "secret \"a\": env \"A=B\" is not a valid variable name (empty, or contains '=' or NUL)",
    ),
    (
        "[secrets.a]\nfile = \"\"\n",
        2,
        "secret \"a\": file is empty or contains a NUL byte: give the path of the file holding the secret",
    ),
    (
        "[secrets.a]\ncommand = []\n",
        2,
        "secret \"a\": command is empty: give the program and its arguments, e.g. [\"vault\", \"read\", ...]",
    ),
    (
        "[secrets.a]\ncommand = [\"bin/plug\", \"x\\u0000\"]\n",
        2,
        "secret \"a\": command[1] contains a NUL byte",
    ),
    (
        "[secrets.a]\ncommand = [\"./data\"]\n",
        2,
        "secret \"a\": command[0] \"./data\" is not executable (mode",
    ),
    (
        "[secrets.a]\nenv = \"X\"\ntimeout = \"1s\"\n",
        3,
        "secret \"a\": timeout applies to a command only: remove it, or read the secret with command",
    ),
    (
        "[secrets.a]\nenv = \"X\"\ncache = \"2days\"\n",
        3,
        "secret \"a\": cache \"2days\" is longer than the maximum, 1day",
    ),
    (
        "[secrets.a]\ncommand = [\"bin/plug\"]\ntimeout = \"0s\"\n",
        3,
        "secret \"a\": timeout \"0s\" must be longer than zero",
    ),
    (
        "[secrets.a]\nenv = \"X\"\ncache = 5\n",
        3,
        "cache: invalid type: integer `5`, expected a duration string like \"10s\" or \"500ms\"",
    ),
    (
        "[secrets.a]\nenv = \"X\"\nvalue = \"hunter2\"\n",
        3,
        "unknown field `value`, expected one of `env`, `file`, `command`, `cache`, `timeout`",
    ),
];

#[test]
fn every_bad_secret_table_is_named_with_its_line_and_key() {
    let dir = fixture();
    for (text, line, tail) in REJECTED {
        let err = load_err(dir.path(), text);
        let at = format!("{}:{line}", dir.path().join(CONFIG_FILE_NAME).display());
        assert!(err.starts_with(&at), "{text:?}: {err}");
        assert!(err.contains(tail), "{text:?}: {err}\nexpected: {tail}");
    }
}

#[test]
fn a_missing_command_is_reported_when_loading() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        "[secrets.a]\ncommand = [\"no-such-program-anywhere-1f3a\"]\n",
    );
    assert!(
        err.contains("secret \"a\": command[0] \"no-such-program-anywhere-1f3a\""),
        "{err}"
    );
}
