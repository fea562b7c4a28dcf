//! A child started by a plugin under `run_with` does not see the token nor
//! any other `OUTBOARD_*` variable, while the plugin still reads its
//! settings. The test runs this same executable as the plugin, as a host
//! would start it (libtest is off: the plugin must start single-threaded).

#![allow(clippy::unwrap_used)]

use std::process::{Command, ExitCode};

use outboard_plugin::{ServeError, Settings};

const TOKEN: &str = "child-env-token-0123456789";
const AS_PLUGIN: &str = "--as-plugin";

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(AS_PLUGIN) {
        return outboard_plugin::run_with("child-env", || async {
            let settings = Settings::from_env().map_err(|source| ServeError::Settings {
                plugin: "child-env".into(),
                source,
            })?;
            println!("settings token {}", settings.token);
            // Read at start, before the variables left the environment.
            let host = settings.host.map(|h| h.token).unwrap_or_default();
            println!("host token {host}");
            let seen = Command::new("env").output().unwrap();
            for line in String::from_utf8_lossy(&seen.stdout).lines() {
                let name = line.split('=').next().unwrap_or_default();
                println!("child sees {name}");
            }
            Ok(())
        });
    }
    a_child_does_not_see_the_token();
    println!("test a_child_does_not_see_the_token ... ok");
    ExitCode::SUCCESS
}

fn a_child_does_not_see_the_token() {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg(AS_PLUGIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OUTBOARD_MAGIC_COOKIE", "0b7f4a8e-outboard-plugin")
        .env("OUTBOARD_PROTOCOL_VERSIONS", "1")
        .env("OUTBOARD_SOCKET", "/tmp/obt-child-env/plugin.sock")
        .env("OUTBOARD_TOKEN", TOKEN)
        .env("OUTBOARD_PLUGIN_NAME", "child-env")
        .env("OUTBOARD_HOST_SOCKET", "/tmp/obt-child-env/host.sock")
        .env("OUTBOARD_HOST_TOKEN", "host-token")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("settings token {TOKEN}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("host token host-token\n"), "{stdout}");
    assert!(stdout.contains("child sees PATH\n"), "{stdout}");
    assert!(!stdout.contains("child sees OUTBOARD_"), "{stdout}");
}
