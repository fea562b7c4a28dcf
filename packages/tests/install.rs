//! Packages end to end: real files, real tar.gz archives, a real Rust
//! example plugin started as a subprocess.
//!
//! The packaged executable is a two-line `run` script that execs the
//! example's binary from `target/`: the package carries a real executable
//! without gzipping a 100 MB debug build in every test.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use outboard_packages::{
    InstallOptions, MANIFEST_FILE, PackageError, PackageMeta, SIGNATURE_FILE, SigningKey,
    TrustedKey, generate_key_pair, install, installed, pack, uninstall,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// One test's files: keys, plugin sources, packages and the plugin directory.
struct Bench {
    /// Everything lives here.
    root: TempDir,
    /// The trusted key's secret file.
    key: PathBuf,
    /// The trusted key's public file.
    public: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let root = tempfile::Builder::new()
            .prefix("obpkg-")
            .tempdir()
            .expect("temp dir");
        // Searchable by the user install starts a plugin as (nobody), as
        // a plugin directory must be.
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(root.path().join("plugins")).expect("plugin dir");
        // Where a plugin started by install may write what it saw.
        fs::create_dir(root.path().join("out")).expect("out dir");
        fs::set_permissions(root.path().join("out"), fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let key = root.path().join("trusted.key");
        let pair = generate_key_pair(&key).expect("keygen");
        Bench {
            key,
            public: pair.public,
            root,
        }
    }

    fn plugin_dir(&self) -> PathBuf {
        self.root.path().join("plugins")
    }

    /// `name` in the directory every user may write to.
    fn out(&self, name: &str) -> PathBuf {
        self.root.path().join("out").join(name)
    }

    /// A plugin source folder `name` whose `run` script writes what the
    /// shell line `before` says, then execs the env-injector example.
    fn source(&self, name: &str, before: &str, extra: &str) -> PathBuf {
        let dir = self.root.path().join("src").join(name);
        fs::create_dir_all(dir.join("data")).expect("source dir");
        fs::write(dir.join("plugin.toml"), "command = \"./run\"\n").expect("plugin.toml");
        let exe = outboard_test_support::bin("env-injector");
        let script = format!("#!/bin/sh\n{before}\nexec '{}' \"$@\"\n", exe.display());
        fs::write(dir.join("run"), script).expect("run");
        fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.join("data/notes.txt"), extra).expect("data");
        dir
    }

    /// Packs `source` as `name` 0.1.0 (env-injector's version), signed with `key`.
    fn pack(&self, source: &Path, name: &str, key: Option<&Path>) -> PathBuf {
        let out = self
            .root
            .path()
            .join(format!("{name}-{}.tar.gz", rand_suffix()));
        let meta = PackageMeta {
            name: name.to_owned(),
            version: env_injector_version(),
        };
        let key = key.map(|k| SigningKey::from_file(k).expect("signing key"));
        pack(source, &meta, key.as_ref(), &out).expect("pack");
        out
    }

    fn options(&self) -> InstallOptions {
        InstallOptions {
            plugin_dir: self.plugin_dir(),
            trusted: vec![TrustedKey::parse(&self.public.display().to_string()).expect("trusted")],
            allow_unsigned: false,
            probe_user: None,
            accept_config: false,
        }
    }
}

/// A unique suffix for file names within one bench.
fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The example's crate version, which its `Describe` reports.
fn env_injector_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Every path under `dir` with its kind, mode and content hash: equal
/// listings mean an untouched directory.
fn listing(dir: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let key = path
                .strip_prefix(base)
                .expect("under base")
                .display()
                .to_string();
            let value = if meta.is_dir() {
                walk(&path, base, out);
                format!("dir {:o}", meta.mode())
            } else if meta.is_file() {
                let hash = hex::encode(Sha256::digest(fs::read(&path).expect("read")));
                format!("file {:o} {hash}", meta.mode())
            } else {
                format!("other {:o}", meta.mode())
            };
            out.insert(key, value);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// One archive entry, as a test rewrites it.
#[derive(Clone)]
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    link: Vec<u8>,
    mode: u32,
    data: Vec<u8>,
}

/// The entries of `package`.
fn read_raw(package: &Path) -> Vec<Raw> {
    let file = fs::File::open(package).expect("open package");
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.push(Raw {
            name: entry.path_bytes().into_owned(),
            kind: entry.header().entry_type(),
            link: entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
            mode: entry.header().mode().expect("mode"),
            data,
        });
    }
    out
}

/// Writes `entries` to `package` with raw header names, so a test can
/// write what a careful archiver would refuse (`..`, absolute paths).
fn write_raw(package: &Path, entries: &[Raw]) {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for raw in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..raw.name.len()].copy_from_slice(&raw.name);
        header.as_old_mut().linkname[..raw.link.len()].copy_from_slice(&raw.link);
        header.set_entry_type(raw.kind);
        header.set_mode(raw.mode);
        header.set_size(raw.data.len() as u64);
        header.set_cksum();
        builder
            .append(&header, Cursor::new(&raw.data))
            .expect("append");
    }
    let bytes = builder
        .into_inner()
        .and_then(GzEncoder::finish)
        .expect("finish");
    fs::write(package, bytes).expect("write package");
}

/// Installs `package`, expects a refusal whose message holds `needle`,
/// and checks the plugin directory is exactly as it was.
async fn refused(
    bench: &Bench,
    package: &Path,
    options: &InstallOptions,
    needle: &str,
) -> PackageError {
    let before = listing(&bench.plugin_dir());
    let error = install(package, options).await.expect_err(needle);
    let message = error.to_string();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(
        listing(&bench.plugin_dir()),
        before,
        "the plugin directory changed"
    );
    error
}

/// A bench with `env-injector` 0.1.0 installed from a signed package.
async fn installed_bench() -> Bench {
    let bench = Bench::new();
    let source = bench.source("env-injector", "", "first");
    let package = bench.pack(&source, "env-injector", Some(&bench.key));
    install(&package, &bench.options())
        .await
        .expect("first install");
    bench
}

#[tokio::test]
async fn a_signed_package_installs_lists_and_uninstalls() {
    let bench = installed_bench().await;
    let target = bench.plugin_dir().join("env-injector");
    assert_eq!(
        fs::read_to_string(target.join("data/notes.txt")).expect("data"),
        "first"
    );
    assert_eq!(
        fs::metadata(target.join("run")).expect("run").mode() & 0o777,
        0o755
    );
    let pair_id = SigningKey::from_file(&bench.key).expect("key").key_id();
    let list = installed(&bench.plugin_dir()).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "env-injector");
    assert_eq!(list[0].version, env_injector_version());
    assert_eq!(list[0].signer.as_deref(), Some(pair_id.as_str()));
    assert_eq!(list[0].path, target);
    let gone = uninstall(&bench.plugin_dir(), "env-injector").expect("uninstall");
    assert_eq!(gone.name, "env-injector");
    assert!(
        listing(&bench.plugin_dir()).is_empty(),
        "uninstall left files behind"
    );
}

#[tokio::test]
async fn a_tampered_file_is_refused_naming_it() {
    let bench = installed_bench().await;
    let source = bench.source("v2", "", "second");
    let package = bench.pack(&source, "env-injector", Some(&bench.key));
    let mut entries = read_raw(&package);
    let notes = entries
        .iter_mut()
        .find(|e| e.name == b"plugin/data/notes.txt")
        .expect("notes entry");
    notes.data = b"tampered".to_vec();
    write_raw(&package, &entries);
    let error = refused(&bench, &package, &bench.options(), "data/notes.txt").await;
    assert!(matches!(error, PackageError::Checksum { .. }), "{error:?}");
}

#[tokio::test]
async fn a_signature_of_other_content_is_refused() {
    let bench = installed_bench().await;
    let package = bench.pack(
        &bench.source("v2", "", "second"),
        "env-injector",
        Some(&bench.key),
    );
    let other = bench.pack(
        &bench.source("v3", "", "third"),
        "env-injector",
        Some(&bench.key),
    );
    let foreign = read_raw(&other)
        .into_iter()
        .find(|e| e.name == SIGNATURE_FILE.as_bytes())
        .expect("sig");
    let mut entries = read_raw(&package);
    entries.retain(|e| e.name != SIGNATURE_FILE.as_bytes());
    entries.push(foreign);
    write_raw(&package, &entries);
    let error = refused(&bench, &package, &bench.options(), "does not verify").await;
    assert!(
        matches!(error, PackageError::BadSignature { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_signer_and_an_unsigned_package_are_refused() {
    let bench = installed_bench().await;
    let stranger = bench.root.path().join("stranger.key");
    let stranger_id = generate_key_pair(&stranger).expect("keygen").key_id;
    let source = bench.source("v2", "", "second");
    let package = bench.pack(&source, "env-injector", Some(&stranger));
    let error = refused(&bench, &package, &bench.options(), &stranger_id).await;
    assert!(
        matches!(error, PackageError::UnknownSigner { .. }),
        "{error:?}"
    );
    let unsigned = bench.pack(&source, "env-injector", None);
    refused(&bench, &unsigned, &bench.options(), "--allow-unsigned").await;
    // Refused before anything is written: not even the plugin directory
    // is looked at (a missing one is not what the error says).
    let nowhere = InstallOptions {
        plugin_dir: bench.root.path().join("missing"),
        ..bench.options()
    };
    let error = install(&package, &nowhere).await.expect_err("untrusted");
    assert!(
        matches!(error, PackageError::UnknownSigner { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn paths_escaping_the_package_are_refused() {
    let bench = installed_bench().await;
    let package = bench.pack(
        &bench.source("v2", "", "second"),
        "env-injector",
        Some(&bench.key),
    );
    let file = |name: &str, kind, link: &str| Raw {
        name: name.as_bytes().to_vec(),
        kind,
        link: link.as_bytes().to_vec(),
        mode: 0o644,
        data: if kind == tar::EntryType::Regular {
            b"x".to_vec()
        } else {
            Vec::new()
        },
    };
    for (extra, needle) in [
        (
            file("plugin/../../escaped", tar::EntryType::Regular, ""),
            "plugin/../../escaped",
        ),
        (
            file("/tmp/obpkg-absolute", tar::EntryType::Regular, ""),
            "absolute",
        ),
        (
            file("plugin/data/link", tar::EntryType::Symlink, "/etc/passwd"),
            "symlink",
        ),
        (
            file("plugin/data/hard", tar::EntryType::Link, "plugin/run"),
            "hard link",
        ),
        (file("plugin/data/dev", tar::EntryType::Char, ""), "device"),
        (file("plugin", tar::EntryType::Regular, ""), "holds only"),
        (file("elsewhere", tar::EntryType::Regular, ""), "holds only"),
    ] {
        // First in the archive (nothing unpacked before it), and last
        // (everything else unpacked in staging first, then thrown away).
        for first in [true, false] {
            let mut entries = read_raw(&package);
            let extra = extra.clone();
            if first {
                entries.insert(0, extra);
            } else {
                entries.push(extra);
            }
            let bad = bench.root.path().join("bad.tar.gz");
            write_raw(&bad, &entries);
            let error = refused(&bench, &bad, &bench.options(), needle).await;
            assert!(matches!(error, PackageError::Entry { .. }), "{error:?}");
        }
    }
    assert!(!bench.root.path().join("escaped").exists());
    assert!(!Path::new("/tmp/obpkg-absolute").exists());
}

#[tokio::test]
async fn a_plugin_folder_no_package_installed_is_not_replaced() {
    let bench = Bench::new();
    let by_hand = bench.plugin_dir().join("env-injector");
    fs::create_dir(&by_hand).expect("folder");
    fs::write(by_hand.join("plugin.toml"), "command = \"./run\"\n").expect("plugin.toml");
    let package = bench.pack(
        &bench.source("p", "", "x"),
        "env-injector",
        Some(&bench.key),
    );
    let error = refused(&bench, &package, &bench.options(), "no package installed").await;
    assert!(
        matches!(error, PackageError::NotInstalled { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_name_the_plugin_does_not_give_is_refused() {
    let bench = installed_bench().await;
    let package = bench.pack(
        &bench.source("other", "", "x"),
        "not-env-injector",
        Some(&bench.key),
    );
    let error = refused(
        &bench,
        &package,
        &bench.options(),
        "Describe names it \"env-injector\"",
    )
    .await;
    assert!(matches!(error, PackageError::Mismatch { .. }), "{error:?}");
}

#[tokio::test]
async fn a_plugin_started_by_install_cannot_change_its_own_files() {
    let bench = installed_bench().await;
    let failed = bench.out("failed");
    // Each attempt that fails leaves a line; a write that succeeds, none.
    let before = format!(
        "id -u > '{f}.uid'\n\
         {{ echo changed > data/notes.txt || echo notes >> '{f}'; }} 2>/dev/null\n\
         {{ echo new > extra || echo extra >> '{f}'; }} 2>/dev/null\n\
         {{ chmod 777 data || echo chmod >> '{f}'; }} 2>/dev/null\n\
         {{ mv data data2 || echo mv >> '{f}'; }} 2>/dev/null",
        f = failed.display()
    );
    let source = bench.source("writer", &before, "x");
    let package = bench.pack(&source, "env-injector", Some(&bench.key));
    install(&package, &bench.options())
        .await
        .expect("installs: its writes failed");
    assert_eq!(
        fs::read_to_string(failed.with_extension("uid")).expect("it ran"),
        "65534\n",
        "started as nobody"
    );
    assert_eq!(
        fs::read_to_string(&failed).expect("its attempts failed"),
        "notes\nextra\nchmod\nmv\n"
    );
    let target = bench.plugin_dir().join("env-injector");
    assert_eq!(
        fs::read_to_string(target.join("data/notes.txt")).expect("data"),
        "x"
    );
    assert!(!target.join("extra").exists());
    // Owned by root, writable by no one else.
    for (path, mode) in [(&target, 0o755), (&target.join("data/notes.txt"), 0o644)] {
        let meta = fs::metadata(path).expect("metadata");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, mode), "{path:?}");
    }
}

#[tokio::test]
async fn the_one_start_runs_without_network() {
    let bench = Bench::new();
    let seen = bench.out("netns");
    let interfaces = bench.out("interfaces");
    // What the plugin's process sees: its network namespace, and the
    // interfaces in it (the first two lines of /proc/net/dev are headers).
    let before = format!(
        "readlink /proc/self/ns/net > '{}'; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > '{}'",
        seen.display(),
        interfaces.display()
    );
    let package = bench.pack(
        &bench.source("p", &before, "x"),
        "env-injector",
        Some(&bench.key),
    );
    install(&package, &bench.options()).await.expect("install");
    let ours = fs::read_link("/proc/self/ns/net").expect("our network namespace");
    let theirs = fs::read_to_string(&seen).expect("the plugin ran");
    assert_ne!(
        theirs.trim(),
        ours.display().to_string(),
        "the plugin ran in the host's network namespace"
    );
    assert_eq!(
        fs::read_to_string(&interfaces).expect("interfaces"),
        "lo\n",
        "only a loopback interface (down) in its namespace"
    );
}

#[tokio::test]
async fn what_the_one_start_leaves_behind_cannot_change_the_files_later() {
    let bench = Bench::new();
    let pid_file = bench.out("escaped.pid");
    // A child in a session of its own (out of the plugin's process group)
    // that would rewrite a file once install has checked it.
    let before = format!(
        "setsid sh -c 'echo $$ > \"{pid}.tmp\"; mv \"{pid}.tmp\" \"{pid}\"; sleep 5; echo evil > data/notes.txt' &\n\
         while [ ! -e '{pid}' ]; do sleep 0.01; done",
        pid = pid_file.display()
    );
    let package = bench.pack(
        &bench.source("p", &before, "x"),
        "env-injector",
        Some(&bench.key),
    );
    install(&package, &bench.options()).await.expect("install");
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("the child ran")
        .trim()
        .parse()
        .expect("a pid");
    // Gone, or a zombie waiting for whoever inherited it to reap it.
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).map(|stat| {
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .unwrap_or('?')
    });
    assert!(
        matches!(state, Err(_) | Ok('Z')),
        "the child {pid} the plugin left outlived install: {state:?}"
    );
}

#[tokio::test]
async fn install_starts_it_as_nobody_whatever_user_its_plugin_toml_names() {
    let bench = Bench::new();
    let uid = bench.out("uid");
    let source = bench.source("p", &format!("id -u > '{}'", uid.display()), "x");
    fs::write(
        source.join("plugin.toml"),
        "command = \"./run\"\noptional = true\n[subscriptions.pre_container]\nfailure_policy = \"fail_closed\"\n\
         [sandbox]\nuser = \"root\"\nbest_effort = true\nnetwork = \"host\"\n",
    )
    .expect("plugin.toml");
    let package = bench.pack(&source, "env-injector", Some(&bench.key));
    let options = InstallOptions {
        accept_config: true,
        ..bench.options()
    };
    let done = install(&package, &options)
        .await
        .expect("installs, its plugin.toml accepted");
    assert_eq!(done.name, "env-injector");
    assert_eq!(fs::read_to_string(&uid).expect("it ran"), "65534\n");
    let asked: Vec<String> = done.asks.iter().map(|a| a.describe()).collect();
    assert_eq!(asked.len(), 6, "{asked:?}");
    assert_eq!(asked[1], "line 2: optional = true");
    assert_eq!(
        asked[2],
        "line 3: subscriptions.pre_container = { failure_policy = \"fail_closed\" }"
    );
    assert!(asked[3].starts_with("line 6: sandbox.user = \"root\" (operator-only:"));
}

#[tokio::test]
async fn the_probe_user_named_is_the_one_the_plugin_runs_as() {
    let bench = Bench::new();
    let Some(daemon) = uid_of("daemon") else {
        eprintln!("skipped: no user daemon here");
        return;
    };
    let ids = bench.out("ids");
    let before = format!("id -u > '{0}'; id -g >> '{0}'", ids.display());
    let package = bench.pack(
        &bench.source("p", &before, "x"),
        "env-injector",
        Some(&bench.key),
    );
    let options = InstallOptions {
        probe_user: Some("daemon".to_owned()),
        ..bench.options()
    };
    install(&package, &options).await.expect("install");
    assert_eq!(
        fs::read_to_string(&ids).expect("it ran"),
        format!("{}\n{}\n", daemon.0, daemon.1)
    );
}

/// The uid and primary gid of `user`, from `getent`.
fn uid_of(user: &str) -> Option<(u32, u32)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let mut fields = line.trim().split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

#[tokio::test]
async fn a_plugin_directory_every_user_may_write_is_refused_unless_sticky() {
    let bench = Bench::new();
    let package = bench.pack(
        &bench.source("p", "", "x"),
        "env-injector",
        Some(&bench.key),
    );
    let dir = bench.plugin_dir();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = refused(
        &bench,
        &package,
        &bench.options(),
        "is writable by every user",
    )
    .await;
    assert!(matches!(error, PackageError::Unsafe { .. }), "{error:?}");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).expect("chmod");
    install(&package, &bench.options())
        .await
        .expect("a sticky directory: its entries are only their owners' to move");
}

#[tokio::test]
async fn a_probe_user_that_does_not_exist_or_is_root_refuses_the_install() {
    let bench = Bench::new();
    let package = bench.pack(
        &bench.source("p", "", "x"),
        "env-injector",
        Some(&bench.key),
    );
    for (user, needle) in [
        (
            "no-such-user-ob",
            "\"no-such-user-ob\" (--probe-user), which is not usable",
        ),
        ("root", "\"root\" is root"),
        ("0", "\"0\" is root"),
    ] {
        let options = InstallOptions {
            probe_user: Some(user.to_owned()),
            ..bench.options()
        };
        let error = refused(&bench, &package, &options, needle).await;
        assert!(matches!(error, PackageError::Start { .. }), "{error:?}");
    }
}

#[tokio::test]
async fn operator_only_keys_in_plugin_toml_are_refused_naming_line_and_key() {
    let bench = installed_bench().await;
    let outside = bench.root.path().join("elsewhere");
    fs::create_dir(&outside).expect("mkdir");
    let cases = [
        ("grant = [\"*\"]\n", "line 2: grant = [\"*\"]"),
        (
            "[sandbox]\nuser = \"root\"\n",
            "line 3: sandbox.user = \"root\"",
        ),
        (
            "[sandbox]\ngroup = \"0\"\n",
            "line 3: sandbox.group = \"0\"",
        ),
        (
            "[sandbox]\nbest_effort = true\n",
            "line 3: sandbox.best_effort = true",
        ),
        (
            "[sandbox]\nnetwork = \"host\"\n",
            "line 3: sandbox.network = \"host\"",
        ),
        (
            "working_dir = \"/\"\n",
            "line 2: working_dir = \"/\" (operator-only: runs in /,",
        ),
        (
            "working_dir = \"..\"\n",
            "line 2: working_dir = \"..\" (operator-only: runs in",
        ),
    ];
    for (extra, needle) in cases {
        let source = bench.source("p", "", "x");
        fs::write(
            source.join("plugin.toml"),
            format!("command = \"./run\"\n{extra}"),
        )
        .expect("plugin.toml");
        let package = bench.pack(&source, "env-injector", Some(&bench.key));
        let error = refused(&bench, &package, &bench.options(), needle).await;
        assert!(
            matches!(error, PackageError::OperatorConfig { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("env-injector/plugin.toml: ")
                && message.contains("--accept-config"),
            "{message}"
        );
    }
    // A command outside the folder: the example's binary itself.
    let source = bench.source("p", "", "x");
    let exe = outboard_test_support::bin("env-injector");
    fs::write(
        source.join("plugin.toml"),
        format!("command = {:?}\n", exe.display().to_string()),
    )
    .expect("plugin.toml");
    let package = bench.pack(&source, "env-injector", Some(&bench.key));
    refused(
        &bench,
        &package,
        &bench.options(),
        &format!(
            "line 1: command = {:?} (operator-only: runs",
            exe.display().to_string()
        ),
    )
    .await;
}

#[tokio::test]
async fn a_version_the_plugin_does_not_give_is_refused() {
    let bench = installed_bench().await;
    let source = bench.source("other-version", "", "x");
    let out = bench.root.path().join("wrong-version.tar.gz");
    let meta = PackageMeta {
        name: "env-injector".to_owned(),
        version: "9.9.9".to_owned(),
    };
    let key = SigningKey::from_file(&bench.key).expect("signing key");
    pack(&source, &meta, Some(&key), &out).expect("pack");
    let error = refused(
        &bench,
        &out,
        &bench.options(),
        &format!(
            "Describe gives version {}, the manifest 9.9.9",
            env_injector_version()
        ),
    )
    .await;
    assert!(matches!(error, PackageError::Mismatch { .. }), "{error:?}");
}

#[tokio::test]
async fn an_upgrade_keeps_the_old_version_until_the_new_one_has_started() {
    let bench = installed_bench().await;
    let target = bench.plugin_dir().join("env-injector");
    // A new version that cannot start is refused; the old one stays whole.
    let broken = bench.pack(
        &bench.source("broken", "exit 3", "broken"),
        "env-injector",
        Some(&bench.key),
    );
    let error = refused(&bench, &broken, &bench.options(), "did not start").await;
    assert!(matches!(error, PackageError::Start { .. }), "{error:?}");
    // A new version that starts sees the old one in place while it does.
    let seen = bench.out("seen");
    let before = format!(
        "/bin/cat '{}' > '{}'",
        target.join("data/notes.txt").display(),
        seen.display()
    );
    let next = bench.pack(
        &bench.source("next", &before, "second"),
        "env-injector",
        Some(&bench.key),
    );
    let done = install(&next, &bench.options()).await.expect("upgrade");
    assert_eq!(
        done.replaced.as_deref(),
        Some(env_injector_version().as_str())
    );
    assert_eq!(
        fs::read_to_string(&seen).expect("the new version ran"),
        "first"
    );
    assert_eq!(
        fs::read_to_string(target.join("data/notes.txt")).expect("data"),
        "second"
    );
    let names: Vec<_> = fs::read_dir(bench.plugin_dir())
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(
        names,
        ["env-injector"],
        "staging or the old version was left behind"
    );
}

#[test]
fn the_signature_verifies_as_minisign_does() {
    let bench = Bench::new();
    let package = bench.pack(
        &bench.source("p", "", "x"),
        "env-injector",
        Some(&bench.key),
    );
    let entries = read_raw(&package);
    let find = |name: &str| {
        &entries
            .iter()
            .find(|e| e.name == name.as_bytes())
            .expect(name)
            .data
    };
    let manifest = find(MANIFEST_FILE);
    let signature = String::from_utf8(find(SIGNATURE_FILE).clone()).expect("utf-8");
    let public = fs::read_to_string(&bench.public).expect("public key");
    let public = minisign::PublicKeyBox::from_string(&public)
        .and_then(minisign::PublicKeyBox::into_public_key)
        .expect("minisign public key file");
    let signature = minisign::SignatureBox::from_string(&signature).expect("minisig file");
    assert!(
        signature
            .trusted_comment()
            .expect("comment")
            .starts_with("outboard package env-injector ")
    );
    minisign::verify(
        &public,
        &signature,
        Cursor::new(manifest),
        true,
        false,
        false,
    )
    .expect("verifies");
    let mut altered = manifest.clone();
    altered.push(b'\n');
    assert!(
        minisign::verify(
            &public,
            &signature,
            Cursor::new(altered),
            true,
            false,
            false
        )
        .is_err()
    );
}

#[test]
fn keygen_refuses_to_overwrite_and_keeps_the_secret_private() {
    let bench = Bench::new();
    assert_eq!(fs::metadata(&bench.key).expect("key").mode() & 0o777, 0o600);
    let before = fs::read(&bench.key).expect("key");
    let error = generate_key_pair(&bench.key).expect_err("overwrite");
    assert!(error.to_string().contains("never overwrites"), "{error}");
    assert_eq!(fs::read(&bench.key).expect("key"), before);
}

#[test]
fn trusted_keys_come_from_the_config_relative_to_it() {
    let bench = Bench::new();
    let config = bench.root.path().join("outboard.toml");
    let id = SigningKey::from_file(&bench.key).expect("key").key_id();
    fs::write(&config, "[trust]\nkeys = [\"trusted.key.pub\"]\n").expect("config");
    let keys = outboard_packages::trusted_keys_in_config(&config).expect("keys");
    assert_eq!(
        keys.iter().map(TrustedKey::key_id).collect::<Vec<_>>(),
        [id]
    );
    fs::write(&config, "[trust]\nkey = [\"trusted.key.pub\"]\n").expect("config");
    let error = outboard_packages::trusted_keys_in_config(&config).expect_err("typo");
    assert!(error.to_string().contains("unknown key \"key\""), "{error}");
    fs::write(&config, "[daemon]\n").expect("config");
    assert!(
        outboard_packages::trusted_keys_in_config(&config)
            .expect("no table")
            .is_empty()
    );
}
