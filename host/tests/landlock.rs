//! The filesystem wall around real plugin processes: the stress plugin,
//! started as the host starts any plugin, tries the file operations an
//! `Invoke` names (`stress_files`), and Landlock allows exactly what the
//! setting says. On a kernel without Landlock each test says so and
//! returns (the refusal itself is unit-tested with the ABI forced).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Sandbox;
use outboard_host::config::{FilesystemSpec, SandboxSpec};
use outboard_host::launch::{Exit, Launch, PluginProcess};
use outboard_host::{Plugin, Reply, sandbox};
use outboard_proto::json::json_to_struct;
use outboard_proto::patch::PatchOp;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// True if this kernel has Landlock; else says why the test returns.
fn landlock_here() -> bool {
    let abi = sandbox::offers().landlock_abi;
    if abi.is_none() {
        eprintln!("skipped: this kernel has no Landlock");
    }
    abi.is_some()
}

/// The files a test pushes against: `allowed/in.txt` and
/// `readonly/ro.txt` (listed under `read`), `writable/` (under `write`),
/// and `outside/secret.txt` (listed nowhere).
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("obl-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        for (sub, file, text) in [
            ("allowed", "in.txt", "inside"),
            ("readonly", "ro.txt", "read-only"),
            ("outside", "secret.txt", "secret"),
        ] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
            std::fs::write(dir.path().join(sub).join(file), text).expect("write");
        }
        std::fs::create_dir(dir.path().join("writable")).expect("mkdir");
        Tree { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A filesystem wall over this tree.
    fn filesystem(&self) -> FilesystemSpec {
        FilesystemSpec {
            read: vec![self.path("allowed"), self.path("readonly")],
            write: vec![self.path("writable")],
        }
    }
}

/// Runs `launch` to its exit: the exit, and all it wrote on stdout and
/// stderr.
async fn run(launch: &Launch) -> (Exit, String, String) {
    let (process, mut pipes) = PluginProcess::spawn(launch).await.expect("spawn");
    let (mut out, mut err) = (String::new(), String::new());
    let (a, b) = tokio::join!(
        pipes.stdout.read_to_string(&mut out),
        pipes.stderr.read_to_string(&mut err)
    );
    a.and(b).expect("read the pipes");
    let exit = process
        .exited_within(Duration::from_secs(30))
        .await
        .expect("exits");
    (exit, out, err)
}

/// The stress plugin with `filesystem` as its wall.
fn stress(sandbox: &Sandbox, filesystem: FilesystemSpec) -> outboard_host::PluginSpec {
    let mut spec = sandbox.stress("walled", "stress:0", json!({}));
    spec.sandbox = SandboxSpec {
        filesystem: Some(filesystem),
        ..SandboxSpec::default()
    };
    spec
}

/// Invokes `plugin` asking for `operations`; the results, one per
/// operation, as `(ok, error)`.
async fn attempt(plugin: &Plugin, operations: &[(&str, &Path)]) -> Vec<(bool, String)> {
    let operations: Vec<Value> = operations
        .iter()
        .map(|(op, path)| json!({ *op: path }))
        .collect();
    let context = json!({ "stress_files": operations });
    let context = json_to_struct(context.as_object().expect("an object"));
    let reply = plugin
        .invoke("stress", "fs-1", 1, context, Duration::from_secs(30))
        .await
        .expect("invoke");
    let Reply::Continue { patch, .. } = reply else {
        panic!("vetoed: {reply:?}");
    };
    let results = patch
        .iter()
        .find_map(|op| match op {
            PatchOp::Set { path, value } if path.to_string() == "/metadata/stress_files" => {
                Some(value.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no results in {patch:?}"));
    results
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["ok"].as_bool().expect("ok"),
                r["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

const DENIED: &str = "Permission denied (os error 13)";

#[tokio::test]
async fn landlock_allows_what_the_setting_lists_and_denies_the_rest() {
    if !landlock_here() {
        return;
    }
    let sandbox = Sandbox::new();
    let tree = Tree::new();
    let spec = stress(&sandbox, tree.filesystem());
    let walls = sandbox::plan("walled", &spec.sandbox, sandbox::offers()).expect("plan");
    let filesystem = walls
        .iter()
        .find(|w| w.setting == "filesystem")
        .expect("a filesystem row");
    assert_eq!(filesystem.value, "2 read, 1 write paths");
    assert!(
        filesystem.mechanism.starts_with("Landlock ABI "),
        "{filesystem:?}"
    );
    let plugin = Plugin::start(&spec)
        .await
        .expect("the walled plugin starts: its socket is bound in its runtime directory");

    let in_runtime_dir = plugin.runtime_dir().join("scratch");
    let results = attempt(
        &plugin,
        &[
            ("read", &tree.path("allowed/in.txt")),
            ("read", &tree.path("outside/secret.txt")),
            ("read", Path::new("/etc/passwd")),
            ("write", &tree.path("readonly/ro.txt")),
            ("write", &tree.path("readonly/new.txt")),
            ("write", &tree.path("outside/secret.txt")),
            ("write", &tree.path("writable/out.txt")),
            ("write", &in_runtime_dir),
            ("read", &in_runtime_dir),
            ("read", Path::new("/proc/self/status")),
        ],
    )
    .await;
    let denied = (false, DENIED.to_owned());
    let allowed = (true, String::new());
    assert_eq!(
        results,
        [
            allowed.clone(),
            denied.clone(),
            denied.clone(),
            denied.clone(),
            denied.clone(),
            denied.clone(),
            allowed.clone(),
            allowed.clone(),
            allowed.clone(),
            allowed,
        ]
    );
    // What was denied did not happen.
    let read = |p: &str| std::fs::read_to_string(tree.path(p)).expect("read");
    assert_eq!(read("readonly/ro.txt"), "read-only");
    assert_eq!(read("outside/secret.txt"), "secret");
    assert!(!tree.path("readonly/new.txt").exists());
    assert_eq!(read("writable/out.txt"), "stress");
    plugin.stop().await;
    sandbox.assert_empty();
}

/// What docs/SECURITY.md says Landlock does not cover before ABI 9: a
/// Unix socket by path outside the lists can still be connected to; from
/// ABI 9 on it cannot.
#[tokio::test]
async fn a_unix_socket_outside_the_lists_is_reachable_only_before_abi_9() {
    let Some(abi) = sandbox::offers().landlock_abi else {
        eprintln!("skipped: this kernel has no Landlock");
        return;
    };
    let sandbox = Sandbox::new();
    let tree = Tree::new();
    let socket = tree.path("outside/service.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let plugin = Plugin::start(&stress(&sandbox, tree.filesystem()))
        .await
        .expect("starts");
    let results = attempt(&plugin, &[("connect", &socket)]).await;
    if abi < 9 {
        assert_eq!(results, [(true, String::new())]);
    } else {
        assert_eq!(results, [(false, DENIED.to_owned())]);
    }
    plugin.stop().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_missing_path_is_refused_naming_the_plugin_the_setting_and_the_path() {
    if !landlock_here() {
        return;
    }
    let sandbox = Sandbox::new();
    let tree = Tree::new();
    let mut filesystem = tree.filesystem();
    filesystem.write.push(tree.path("gone"));
    let error = Plugin::start(&stress(&sandbox, filesystem))
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("walled"), "{text}");
    assert!(
        text.contains(&format!(
            "sandbox.filesystem.write names {}, which cannot be opened: No such file or directory",
            tree.path("gone").display()
        )),
        "{text}"
    );
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_child_of_the_plugin_stays_inside_the_wall() {
    if !landlock_here() {
        return;
    }
    let sandbox = Sandbox::new();
    let tree = Tree::new();
    // A shell started from inside the domain: the wall is inherited.
    let mut spec = stress(&sandbox, tree.filesystem());
    spec.command = PathBuf::from("/bin/sh");
    spec.args = vec![
        "-c".into(),
        format!(
            "cat {} && cat {}",
            tree.path("allowed/in.txt").display(),
            tree.path("outside/secret.txt").display()
        ),
    ];
    spec.env.clear();
    let launch = Launch::by_hand(&spec);
    let (exit, out, err) = run(&launch).await;
    assert_eq!(out, "inside", "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!exit.success(), "{exit}");
}

/// The wall is up before the plugin's first instruction: the stress
/// plugin reading a file at start (`STRESS_AT_START=read:PATH`, before it
/// has set anything up) exits 4, refused, outside the lists, and 0 inside.
#[tokio::test]
async fn the_wall_is_up_before_the_plugins_first_instruction() {
    if !landlock_here() {
        return;
    }
    let tree = Tree::new();
    for (file, refused) in [("outside/secret.txt", true), ("allowed/in.txt", false)] {
        let path = tree.path(file);
        let launch = Launch {
            env: [(
                "STRESS_AT_START".to_owned(),
                format!("read:{}", path.display()),
            )]
            .into(),
            sandbox: SandboxSpec {
                filesystem: Some(tree.filesystem()),
                ..SandboxSpec::default()
            },
            ..Launch::new("stress", common::bin("stress"), vec![])
        };
        let (exit, _, err) = run(&launch).await;
        let expected = if refused { 4 } else { 0 };
        assert_eq!(exit.code(), Some(expected), "{file}: {err}");
        if refused {
            assert!(err.contains("Permission denied"), "{err}");
        }
    }
}

/// A `#!` line is the plugin author's: `env`'s options name a directory or
/// a variable, never something to grant. `#!/usr/bin/env -S -u / sh` once
/// had `/` taken for the interpreter and granted with everything beneath
/// it; now `-u /` is read as `env` reads it and only `sh` is granted, so
/// the plugin runs walled. A line naming a directory as its interpreter is
/// refused at launch, naming the plugin, the file and the path.
#[tokio::test]
async fn a_shebang_cannot_widen_the_wall() {
    if !landlock_here() {
        return;
    }
    let tree = Tree::new();
    let script = tree.path("plugin.sh");
    let launch = || Launch {
        sandbox: SandboxSpec {
            filesystem: Some(tree.filesystem()),
            ..SandboxSpec::default()
        },
        ..Launch::new("shebang", script.clone(), vec![])
    };
    for line in ["#!/usr/bin/env -S -u / sh", "#!/usr/bin/env -S -C / sh"] {
        let body = format!(
            "{line}\ncat {} && cat {} /etc/passwd; ls /\n",
            tree.path("allowed/in.txt").display(),
            tree.path("outside/secret.txt").display()
        );
        std::fs::write(&script, body).expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let (exit, out, err) = run(&launch()).await;
        // It ran (its own files and the allowed one are readable), and
        // nothing outside the lists is.
        assert_eq!(out, "inside", "{line}: {err}");
        for path in [
            tree.path("outside/secret.txt").display().to_string(),
            "/etc/passwd".to_owned(),
            "'/'".to_owned(),
        ] {
            assert!(
                err.lines()
                    .any(|l| l.contains(&path) && l.contains("Permission denied")),
                "{line}: {path} in {err}"
            );
        }
        assert!(!exit.success(), "{line}: {exit}");
    }
    std::fs::write(&script, "#!/usr/bin/env -S -C / /\n").expect("write");
    let error = PluginProcess::spawn(&launch())
        .await
        .expect_err("refused at launch");
    assert_eq!(
        error.to_string(),
        format!(
            "plugin \"shebang\": sandbox.filesystem refuses /, which the #! line of {} asks for \
             as an interpreter: it is a directory, and only an executable file is granted",
            script.display()
        )
    );
}
