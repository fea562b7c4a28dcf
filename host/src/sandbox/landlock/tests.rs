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
        interpreters(&script, Some(&path_var), &all).expect("followed"),
        [
            script.clone(),
            PathBuf::from("/usr/bin/env"),
            python,
            PathBuf::from("/bin/sh")
        ]
    );
    // A binary has no interpreter; a name not on PATH stops the chain.
    assert_eq!(
        interpreters(Path::new("/bin/sh"), None, &all).expect("a binary"),
        [PathBuf::from("/bin/sh")]
    );
    assert_eq!(
        interpreters(&script, Some("/nonexistent"), &all).expect("not found"),
        [script.clone(), PathBuf::from("/usr/bin/env")]
    );
    // A file the plugin may write is not followed: it could name any file
    // as its interpreter, to read it at its next start.
    let not_bin = |p: &Path| !p.starts_with(&bin);
    assert_eq!(
        interpreters(&script, Some(&path_var), &not_bin).expect("not trusted"),
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
    let dirs = |interpreter: &Path, trusted: &dyn Fn(&Path) -> bool| {
        python_environment(interpreter, trusted)
            .into_iter()
            .map(|(dir, _)| dir)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dirs(&venv.join("bin/python"), &all),
        [venv.clone(), PathBuf::from("/opt/python/3.11"), source]
    );
    assert_eq!(
        dirs(Path::new("/usr/bin/python3"), &all),
        Vec::<PathBuf>::new()
    );
    // Files the plugin may write widen nothing.
    let not_site = |p: &Path| !p.starts_with(&site);
    assert_eq!(
        dirs(&venv.join("bin/python"), &not_site),
        [venv.clone(), PathBuf::from("/opt/python/3.11")]
    );
    let not_venv = |p: &Path| !p.starts_with(&venv);
    assert_eq!(
        dirs(&venv.join("bin/python"), &not_venv),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_script_beneath_a_write_path_brings_no_interpreter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plugin");
    executable(&script, "#!/bin/true\n");
    let cmd = Command::new(&script);
    let named = |spec: &FilesystemSpec| {
        rules(spec, &cmd)
            .expect("rules")
            .iter()
            .any(|r| r.path == Path::new("/bin/true") && r.source == Source::Interpreter)
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
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let own = canonical(dir.path());
    let mut cmd = Command::new("/bin/true");
    cmd.env_clear()
        .env(
            outboard_proto::handshake::ENV_SOCKET,
            "/tmp/ob-x/plugin.sock",
        )
        .current_dir(&own);
    let spec = FilesystemSpec {
        read: vec!["/data".into()],
        write: vec!["/spool".into()],
    };
    let rules = rules(&spec, &cmd).expect("rules");
    let find = |path: &str| {
        rules
            .iter()
            .find(|r| r.path == Path::new(path))
            .unwrap_or_else(|| panic!("{path} in {rules:#?}"))
    };
    assert!(!find("/data").write && find("/data").source == Source::Read);
    assert!(find("/spool").write && find("/spool").source == Source::Write);
    assert!(!find("/bin/true").write && find("/bin/true").source == Source::Own);
    let own = own.to_str().expect("UTF-8");
    assert!(!find(own).write && find(own).source == Source::Derived);
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

/// The rules for `script` run with `PATH` set to `path_var`, read-only.
fn rules_for(script: &Path, path_var: &str) -> Result<Vec<Rule>, String> {
    let mut cmd = Command::new(script);
    cmd.env_clear().env("PATH", path_var);
    rules(&FilesystemSpec::default(), &cmd)
}

#[test]
fn env_options_on_a_shebang_never_grant_their_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plugin");
    // The values of -C and -u are a directory and a variable name, not the
    // command: `/` was taken for an interpreter and granted with
    // everything beneath it.
    for line in [
        "#!/usr/bin/env -S -C / sh",
        "#!/usr/bin/env -S -u / sh",
        "#!/usr/bin/env -S -C/ -u/ -i -v -- FOO=/ sh",
        "#!/usr/bin/env -S --chdir=/ --unset / --ignore-signal=PIPE sh",
        "#!/usr/bin/env --split-string=-C / sh",
    ] {
        executable(&script, &format!("{line}\necho\n"));
        let chain = interpreters(&script, Some("/usr/bin:/bin"), &|_| true)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(chain.len(), 3, "{line}: {chain:?}");
        assert_eq!(chain[1], Path::new("/usr/bin/env"));
        assert!(chain[2].ends_with("sh"), "{line}: {chain:?}");
        let rules = rules_for(&script, "/usr/bin:/bin").expect("rules");
        assert!(
            rules.iter().all(|r| r.path != Path::new("/")),
            "{line}: {rules:#?}"
        );
    }
    // -i and -u PATH leave the default search path; PATH=... replaces it.
    assert_eq!(
        env_command(Some("-S -i sh"), Some("/opt/bin")),
        Ok(Some(("sh".to_owned(), Some(DEFAULT_PATH.to_owned()))))
    );
    assert_eq!(
        env_command(Some("-S -u PATH sh"), Some("/opt/bin")),
        Ok(Some(("sh".to_owned(), Some(DEFAULT_PATH.to_owned()))))
    );
    assert_eq!(
        env_command(Some("-S PATH=/x:/y sh -e"), Some("/opt/bin")),
        Ok(Some(("sh".to_owned(), Some("/x:/y".to_owned()))))
    );
    assert_eq!(env_command(Some("-S -u X"), None), Ok(None));
    assert_eq!(env_command(None, None), Ok(None));
}

#[test]
fn env_forms_not_understood_are_refused() {
    for (arg, why) in [
        ("-S -P /x sh", "env option -P is not handled"),
        ("-S -iu / sh", "env option -iu is not handled"),
        ("-S -C", "env -C without its value"),
        ("-S 'sh'", "env -S with '\\'' is not handled"),
        ("-S ${X} sh", "env -S with '$' is not handled"),
        ("-S bin/sh", "the relative command bin/sh is not handled"),
        (
            "--split-string sh",
            "env options without -S are not handled (the kernel passes them as one word)",
        ),
        (
            "-u / sh",
            "env options without -S are not handled (the kernel passes them as one word)",
        ),
        (
            "python3 -u",
            "without -S, env takes the whole line as one command name",
        ),
    ] {
        assert_eq!(env_command(Some(arg), None), Err(why.to_owned()), "{arg}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plugin");
    executable(&script, "#!/usr/bin/env -S -P / sh\n");
    let error = rules_for(&script, "/usr/bin").expect_err("refused");
    assert_eq!(
        error,
        format!(
            "cannot follow the #! line of {} (#!/usr/bin/env -S -P / sh): env option -P is not \
             handled; name the interpreter by its absolute path",
            script.display()
        )
    );
}

#[test]
fn an_interpreter_that_is_not_an_executable_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plugin");
    for (line, path, what) in [
        ("#!/", "/", "a directory"),
        ("#!/usr/bin/env /", "/", "a directory"),
        ("#!/usr/bin/env -S -C / /usr", "/usr", "a directory"),
        ("#!/etc/passwd", "/etc/passwd", "a file nobody may execute"),
    ] {
        executable(&script, &format!("{line}\n"));
        let error = rules_for(&script, "/usr/bin").expect_err(line);
        assert_eq!(
            error,
            format!(
                "refuses {path}, which the #! line of {} asks for as an interpreter: it is \
                 {what}, and only an executable file is granted",
                script.display()
            ),
            "{line}"
        );
    }
    // A missing interpreter is not granted: the start fails by itself.
    executable(&script, "#!/nonexistent/sh\n");
    let rules = rules_for(&script, "/usr/bin").expect("rules");
    assert!(rules.iter().all(|r| !r.path.starts_with("/nonexistent")));
}

/// A virtual environment in `dir` whose `bin/python` runs `script`.
fn venv_with(dir: &Path, config: &str, pth: &str) -> (PathBuf, PathBuf) {
    let venv = dir.join("venv");
    let site = venv.join("lib/python3.11/site-packages");
    std::fs::create_dir_all(venv.join("bin")).expect("bin");
    std::fs::create_dir_all(&site).expect("site-packages");
    executable(&venv.join("bin/python"), "#!/bin/sh\n");
    std::fs::write(venv.join("pyvenv.cfg"), config).expect("pyvenv.cfg");
    std::fs::write(site.join("evil.pth"), pth).expect(".pth");
    let script = dir.join("plugin");
    executable(&script, &format!("#!{}/bin/python\n", venv.display()));
    (venv, site)
}

#[test]
fn a_python_environment_asking_for_the_root_or_a_system_parent_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (venv, _) = venv_with(dir.path(), "home = /\n", "");
    let error = rules_for(&dir.path().join("plugin"), "/usr/bin").expect_err("home = /");
    assert_eq!(
        error,
        format!(
            "refuses /, which {}/pyvenv.cfg (home) asks for: it is the root directory, which \
             holds every file",
            venv.display()
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (venv, _) = venv_with(dir.path(), "home = /etc/bin\n", "");
    let error = rules_for(&dir.path().join("plugin"), "/usr/bin").expect_err("home = /etc");
    assert_eq!(
        error,
        format!(
            "refuses /etc, which {}/pyvenv.cfg (home) asks for: it holds /etc/ld.so.cache and \
             more than the plugin's own files",
            venv.display()
        )
    );
    // A file is no prefix: granted, it would be readable.
    let dir = tempfile::tempdir().expect("tempdir");
    let (venv, _) = venv_with(dir.path(), "home = /etc/shadow\n", "");
    let error = rules_for(&dir.path().join("plugin"), "/usr/bin").expect_err("a file");
    assert_eq!(
        error,
        format!(
            "refuses /etc/shadow, which {}/pyvenv.cfg (home) asks for: it is not a directory",
            venv.display()
        )
    );
    // A system prefix itself is fine: it is readable anyway.
    let dir = tempfile::tempdir().expect("tempdir");
    venv_with(dir.path(), "home = /usr/bin\n", "");
    let rules = rules_for(&dir.path().join("plugin"), "/usr/bin").expect("home = /usr");
    assert!(rules.iter().any(|r| r.path == Path::new("/usr")));
}

#[test]
fn a_pth_file_asking_for_the_root_is_refused_even_through_a_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, site) = venv_with(dir.path(), "home = /usr/bin\n", "/\n");
    let error = rules_for(&dir.path().join("plugin"), "/usr/bin").expect_err(".pth /");
    assert_eq!(
        error,
        format!(
            "refuses /, which {}/evil.pth asks for: it is the root directory, which holds \
             every file",
            site.display()
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::os::unix::fs::symlink("/", &root).expect("link");
    let (_, site) = venv_with(dir.path(), "", &format!("{}\n", root.display()));
    let error = rules_for(&dir.path().join("plugin"), "/usr/bin").expect_err("link to /");
    assert_eq!(
        error,
        format!(
            "refuses {}, which {}/evil.pth asks for: it is the root directory, which holds \
             every file",
            root.display(),
            site.display()
        )
    );
}

#[test]
fn a_working_directory_above_system_paths_or_the_runtime_base_is_refused() {
    let rules_in = |dir: &str| {
        let mut cmd = Command::new("/bin/true");
        cmd.env_clear()
            .env(
                outboard_proto::handshake::ENV_SOCKET,
                "/tmp/ob-x/plugin.sock",
            )
            .current_dir(dir);
        rules(&FilesystemSpec::default(), &cmd)
    };
    assert_eq!(
        rules_in("/").expect_err("/"),
        "refuses its working_dir /: it is the root directory, which holds every file; run it \
         in a directory of its own"
    );
    assert_eq!(
        rules_in("/etc").expect_err("/etc"),
        "refuses its working_dir /etc: it holds /etc/ld.so.cache and more than the plugin's \
         own files; run it in a directory of its own"
    );
    assert_eq!(
        rules_in("/tmp").expect_err("/tmp"),
        "refuses its working_dir /tmp: it holds the runtime directories of every plugin \
         (/tmp); run it in a directory of its own"
    );
    for (dir, why) in [
        (
            "/proc",
            "it is beneath /proc, which holds other processes' state, keys or devices",
        ),
        (
            "/proc/1",
            "it is beneath /proc, which holds other processes' state, keys or devices",
        ),
        (
            "/etc/ssl/private",
            "it is beneath /etc, which holds other processes' state, keys or devices",
        ),
        (
            "/home",
            "it holds /home, which holds other users' and programs' files",
        ),
        (
            "/var",
            "it holds /var, which holds other users' and programs' files",
        ),
    ] {
        if !Path::new(dir).is_dir() {
            eprintln!("{dir} is not here: not tried");
            continue;
        }
        assert_eq!(
            rules_in(dir).expect_err(dir),
            format!("refuses its working_dir {dir}: {why}; run it in a directory of its own")
        );
    }
    let own = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let own = canonical(own.path());
    let rules = rules_in(own.to_str().expect("UTF-8")).expect("its own directory");
    assert!(rules.iter().any(|r| r.path == own));
    // Not a directory: a file named by `home` would be readable.
    assert_eq!(
        rules_in("/etc/shadow").expect_err("a file"),
        "refuses its working_dir /etc/shadow: it is not a directory; run it in a directory \
         of its own"
    );
}
