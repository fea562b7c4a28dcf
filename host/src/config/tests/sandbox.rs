//! `[plugin.sandbox]` and `[defaults.sandbox]`: what they resolve to, how
//! a plugin's keys replace the defaults', and each bad value named with
//! its file, line and key.

use super::*;

#[test]
fn a_plugin_sandbox_overrides_the_defaults_key_by_key() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        r#"
[defaults.sandbox]
memory = "256Mi"
network = "none"
core_dumps = false
filesystem = { read = ["data"] }

[[plugin]]
name = "a"
command = "bin/plug"

[[plugin]]
name = "b"
command = "bin/plug"
sandbox = { memory = "100Mi", cpu = 0.5, pids = 32, open_files = 64, network = "loopback", best_effort = true, user = "nobody", group = "65534", filesystem = { write = ["/tmp"] } }
"#,
    );
    let cfg = load(&path).expect("valid config");
    let base = fs::canonicalize(dir.path()).expect("real");
    let a = &cfg.plugin("a").expect("a").sandbox;
    assert_eq!(a, &cfg.defaults.sandbox);
    assert_eq!(a.memory, Some(256 << 20));
    assert_eq!(a.network, Network::None);
    assert_eq!(a.core_dumps, Some(false));
    assert_eq!(
        a.filesystem,
        Some(FilesystemSpec {
            read: vec![base.join("data")],
            write: vec![],
        })
    );
    let b = &cfg.plugin("b").expect("b").sandbox;
    assert_eq!(
        b,
        &SandboxSpec {
            memory: Some(100 << 20),
            cpu_millis: Some(500),
            pids: Some(32),
            open_files: Some(64),
            core_dumps: Some(false),
            network: Network::Loopback,
            filesystem: Some(FilesystemSpec {
                read: vec![],
                write: vec![PathBuf::from("/tmp")],
            }),
            best_effort: true,
            user: Some("nobody".into()),
            group: Some("65534".into()),
        }
    );
}

#[test]
fn no_sandbox_table_is_no_wall() {
    let dir = fixture();
    let cfg = load(write_config(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n",
    ))
    .expect("load");
    assert!(cfg.plugin("a").expect("a").sandbox.is_empty());
}

#[test]
fn bad_sandbox_values_name_file_line_and_key() {
    let dir = fixture();
    let plugin = |table: &str| {
        format!("[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n\n[plugin.sandbox]\n{table}\n")
    };
    let cases = [
        (
            "memory = \"lots\"",
            ":6: plugin \"a\": sandbox.memory \"lots\" is not a size",
        ),
        (
            "memory = \"1Mi\"",
            ":6: plugin \"a\": sandbox.memory \"1Mi\" is too small",
        ),
        ("cpu = 0", ":6: plugin \"a\": sandbox.cpu 0 is out of range"),
        (
            "pids = 0",
            ":6: plugin \"a\": sandbox.pids must be at least 1",
        ),
        (
            "open_files = 3",
            ":6: plugin \"a\": sandbox.open_files must be at least 16",
        ),
        (
            "user = \"\"",
            ":6: plugin \"a\": sandbox.user \"\" is not an account name",
        ),
        (
            "group = \"a:b\"",
            ":6: plugin \"a\": sandbox.group \"a:b\" is not an account name",
        ),
        (
            "filesystem = { read = [\"\"] }",
            ":6: plugin \"a\": sandbox.filesystem.read[0] is empty",
        ),
    ];
    for (table, expected) in cases {
        let err = load_err(dir.path(), &plugin(table));
        assert!(err.contains(expected), "{table}: {err}");
        assert!(err.contains(CONFIG_FILE_NAME), "{table}: {err}");
    }
    let err = load_err(dir.path(), &plugin("network = \"internet\""));
    assert!(err.contains("network"), "{err}");
    let err = load_err(dir.path(), &plugin("swap = \"1Gi\""));
    assert!(err.contains("unknown field `swap`"), "{err}");
    let err = load_err(dir.path(), "[defaults.sandbox]\nmemory = \"x\"\n");
    assert!(
        err.contains(":2: defaults: sandbox.memory \"x\" is not a size"),
        "{err}"
    );
}
