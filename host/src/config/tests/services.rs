//! The `[state]` and `[services]` sections, and the host-service variables
//! configuration cannot set.

use super::*;

#[test]
fn the_state_dir_is_relative_to_the_file_and_absent_by_default() {
    let dir = fixture();
    let config = load(write_config(dir.path(), "")).expect("empty config");
    assert_eq!(config.state, StateSpec::default());
    assert_eq!(config.services, ServicesSpec::default());
    let config = load(write_config(dir.path(), "[state]\ndir = \"var/state\"\n")).expect("load");
    let expected = fs::canonicalize(dir.path())
        .expect("real")
        .join("var/state");
    assert_eq!(config.state.dir, Some(expected));
    let err = load_err(dir.path(), "[state]\ndir = \"  \"\n");
    assert!(err.ends_with(":2: state: dir is empty or holds a NUL: name a directory, or leave the key out for the default"), "{err}");
    let err = load_err(dir.path(), "[state]\npath = \"x\"\n");
    assert!(err.contains("unknown field `path`"), "{err}");
}

#[test]
fn services_limits_are_read_and_bad_values_name_the_key() {
    let dir = fixture();
    let config = load(write_config(
        dir.path(),
        "[services]\nkv_value_size = 1024\nkv_namespace_total = 1048576\ncall_timeout = \"3s\"\nmax_concurrent_calls = 4\n",
    ))
    .expect("load");
    assert_eq!(
        config.services,
        ServicesSpec {
            kv_value_size: 1024,
            kv_namespace_total: 1_048_576,
            call_timeout: Duration::from_secs(3),
            max_concurrent_calls: 4,
        }
    );
    for (line, key) in [
        ("kv_value_size = 0", "kv_value_size"),
        ("kv_value_size = 2000000", "kv_value_size"),
        ("kv_namespace_total = 10", "kv_namespace_total"),
        ("max_concurrent_calls = 0", "max_concurrent_calls"),
        ("call_timeout = \"2h\"", "call_timeout"),
    ] {
        let err = load_err(dir.path(), &format!("[services]\n{line}\n"));
        assert!(
            err.contains(&format!(":2: services: {key} ")),
            "{line}: {err}"
        );
    }
}

#[test]
fn the_host_service_variables_cannot_be_configured() {
    let dir = fixture();
    for var in ["OUTBOARD_HOST_SOCKET", "OUTBOARD_HOST_TOKEN"] {
        let err = load_err(
            dir.path(),
            &format!(
                "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n[plugin.env]\n{var} = \"x\"\n"
            ),
        );
        assert!(
            err.ends_with(&format!(":5: plugin \"a\": env.{var} is set by the host for the handshake and cannot be configured")),
            "{err}"
        );
    }
}
