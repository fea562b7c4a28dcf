use std::os::unix::fs::PermissionsExt;

use super::*;

fn with_filesystem(best_effort: bool) -> SandboxSpec {
    SandboxSpec {
        filesystem: Some(FilesystemSpec {
            read: vec![PathBuf::from("/")],
            write: vec![],
        }),
        best_effort,
        ..SandboxSpec::default()
    }
}

#[test]
fn no_filesystem_setting_asks_for_no_wall() {
    assert_eq!(
        decide("p", &SandboxSpec::default(), None).expect("no wall"),
        None
    );
}

#[test]
fn a_kernel_without_landlock_is_refused_unless_best_effort() {
    let error = decide("scrubber", &with_filesystem(false), None).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "plugin \"scrubber\": sandbox.filesystem cannot be enforced here (the kernel has no \
         Landlock, or it is disabled at boot); set sandbox.best_effort = true to run the \
         plugin without this wall"
    );
    let allowed = decide("scrubber", &with_filesystem(true), None)
        .expect("best effort")
        .expect("a decision");
    assert_eq!(allowed, Decision::NotEnforced);
    assert_eq!(
        allowed.mechanism(),
        "not enforced: best_effort and no Landlock"
    );
}

#[test]
fn an_abi_without_truncate_is_refused_unless_best_effort() {
    let error = decide("p", &with_filesystem(false), Some(2)).expect_err("refused");
    assert!(
        error.to_string().contains(
            "the kernel's Landlock ABI is 2, and truncating a file is restricted only from ABI 3 on"
        ),
        "{error}"
    );
    let weaker = decide("p", &with_filesystem(true), Some(2))
        .expect("best effort")
        .expect("a decision");
    assert_eq!(weaker, Decision::Enforce { abi: 2 });
    assert!(weaker.mechanism().starts_with("Landlock ABI 2 (weaker: "));
}

#[test]
fn a_kernel_with_landlock_enforces_at_its_abi() {
    for best_effort in [false, true] {
        let decision = decide("p", &with_filesystem(best_effort), Some(7))
            .expect("enforced")
            .expect("a decision");
        assert_eq!(decision, Decision::Enforce { abi: 7 });
        assert_eq!(decision.mechanism(), "Landlock ABI 7");
    }
    assert_eq!(
        value(&FilesystemSpec {
            read: vec!["/a".into(), "/b".into()],
            write: vec!["/c".into()],
        }),
        "2 read, 1 write paths"
    );
}

/// Writes an executable file.
fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_script_brings_its_interpreters_through_env_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let python = bin.join("python3");
    executable(&python, "#!/bin/sh\nexec true\n");
    let script = dir.path().join("plugin");
    executable(&script, "#!/usr/bin/env -S python3 -u\nprint()\n");
    let path_var = format!("/nonexistent:{}", bin.display());
    let all = |_: &Path| true;
    assert_eq!(
        interpreters(&script, Some(&path_var), &all),
        [
            script.clone(),
            PathBuf::from("/usr/bin/env"),
            python,
            PathBuf::from("/bin/sh")
        ]
    );
    // A binary has no interpreter; a name not on PATH stops the chain.
    assert_eq!(
        interpreters(Path::new("/bin/sh"), None, &all),
        [PathBuf::from("/bin/sh")]
    );
    assert_eq!(
        interpreters(&script, Some("/nonexistent"), &all),
        [script.clone(), PathBuf::from("/usr/bin/env")]
    );
    // A file the plugin may write is not followed: it could name any file
    // as its interpreter, to read it at its next start.
    let not_bin = |p: &Path| !p.starts_with(&bin);
    assert_eq!(
        interpreters(&script, Some(&path_var), &not_bin),
        [script, PathBuf::from("/usr/bin/env"), bin.join("python3")]
    );
}

#[test]
fn a_python_virtual_environment_brings_its_base_and_editable_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let venv = dir.path().join("venv");
    let site = venv.join("lib/python3.11/site-packages");
    std::fs::create_dir_all(venv.join("bin")).expect("bin");
    std::fs::create_dir_all(&site).expect("site-packages");
    let source = dir.path().join("src");
    std::fs::create_dir(&source).expect("src");
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /opt/python/3.11/bin\ninclude-system-site-packages = false\n",
    )
    .expect("pyvenv.cfg");
    std::fs::write(
        site.join("_editable.pth"),
        format!(
            "{}\n# a comment\nimport os; os.getcwd()\n/nonexistent\n",
            source.display()
        ),
    )
    .expect(".pth");
    std::fs::write(site.join("inside.pth"), "pkg\n").expect(".pth");
    std::fs::create_dir(site.join("pkg")).expect("pkg");
    let all = |_: &Path| true;
    assert_eq!(
        python_environment(&venv.join("bin/python"), &all),
        [venv.clone(), PathBuf::from("/opt/python/3.11"), source]
    );
    assert_eq!(
        python_environment(Path::new("/usr/bin/python3"), &all),
        Vec::<PathBuf>::new()
    );
    // Files the plugin may write widen nothing.
    let not_site = |p: &Path| !p.starts_with(&site);
    assert_eq!(
        python_environment(&venv.join("bin/python"), &not_site),
        [venv.clone(), PathBuf::from("/opt/python/3.11")]
    );
    let not_venv = |p: &Path| !p.starts_with(&venv);
    assert_eq!(
        python_environment(&venv.join("bin/python"), &not_venv),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_script_beneath_a_write_path_brings_no_interpreter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plugin");
    executable(&script, "#!/etc/shadow\n");
    let cmd = Command::new(&script);
    let named = |spec: &FilesystemSpec| {
        rules(spec, &cmd)
            .iter()
            .any(|r| r.path == Path::new("/etc/shadow"))
    };
    assert!(named(&FilesystemSpec::default()), "followed when read-only");
    let writable = FilesystemSpec {
        read: vec![],
        write: vec![dir.path().to_path_buf()],
    };
    assert!(!named(&writable), "not followed beneath a write path");
}

#[test]
fn the_runtime_directory_is_writable_and_the_working_directory_readable() {
    let mut cmd = Command::new("/bin/true");
    cmd.env_clear()
        .env(
            outboard_proto::handshake::ENV_SOCKET,
            "/tmp/ob-x/plugin.sock",
        )
        .current_dir("/srv/plugin");
    let spec = FilesystemSpec {
        read: vec!["/data".into()],
        write: vec!["/spool".into()],
    };
    let rules = rules(&spec, &cmd);
    let find = |path: &str| {
        rules
            .iter()
            .find(|r| r.path == Path::new(path))
            .unwrap_or_else(|| panic!("{path} in {rules:#?}"))
    };
    assert!(!find("/data").write && find("/data").source == Source::Read);
    assert!(find("/spool").write && find("/spool").source == Source::Write);
    assert!(!find("/bin/true").write && find("/bin/true").source == Source::Own);
    assert!(!find("/srv/plugin").write);
    assert!(find("/tmp/ob-x").write);
    assert!(!find("/usr").write && find("/dev/null").write && !find("/dev/urandom").write);
    assert!(rules.iter().all(|r| !r.path.starts_with("/proc")));
}

#[test]
fn a_missing_path_names_the_plugin_the_setting_and_the_path() {
    let Some(abi) = crate::sandbox::detect().landlock_abi else {
        eprintln!("no Landlock on this kernel: nothing to prepare");
        return;
    };
    let cmd = Command::new("/bin/true");
    for (spec, setting) in [
        (
            FilesystemSpec {
                read: vec!["/nonexistent/data".into()],
                write: vec![],
            },
            "filesystem.read",
        ),
        (
            FilesystemSpec {
                read: vec![],
                write: vec!["/nonexistent/data".into()],
            },
            "filesystem.write",
        ),
    ] {
        let error = prepare("scrubber", &spec, abi, &cmd).expect_err("missing path");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let expected = format!(
            "plugin \"scrubber\": sandbox.{setting} names /nonexistent/data, which cannot be \
             opened: No such file or directory (os error 2)"
        );
        assert_eq!(error.to_string(), expected);
        // The plan says so first, without opening anything.
        let spec = SandboxSpec {
            filesystem: Some(spec),
            ..SandboxSpec::default()
        };
        let refused = decide("scrubber", &spec, Some(abi)).expect_err("refused");
        assert_eq!(refused.to_string(), expected);
        assert_eq!(refused.setting, setting);
    }
    // The automatic paths that do not exist here (/lib32, /etc/pki, ...)
    // are left out without a word.
    prepare("scrubber", &FilesystemSpec::default(), abi, &cmd).expect("prepared");
}
