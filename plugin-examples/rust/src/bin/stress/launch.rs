//! The `STRESS_*` environment: what must be known before `Configure` (the
//! subscriptions, a fault at start, signal handling).

use std::time::Duration;

use crate::walls::Wall;

/// The subscriptions when `STRESS_PHASES` is unset.
const DEFAULT_PHASES: &str = "stress:0";
/// The variable naming the subscriptions.
pub(crate) const ENV_PHASES: &str = "STRESS_PHASES";
/// The variable naming a fault at start.
const ENV_AT_START: &str = "STRESS_AT_START";
/// The variable asking to survive SIGTERM.
const ENV_IGNORE_SIGTERM: &str = "STRESS_IGNORE_SIGTERM";

/// A fault that acts independently of calls, chosen by `STRESS_AT_START`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AtStart {
    /// Exit 3 at once, before the handshake.
    Exit,
    /// Serve, then exit 3 this long after start.
    ExitAfter(Duration),
    /// Never print the handshake.
    Hang,
    /// Push against a sandbox wall, then exit.
    Wall(Wall),
    /// Serve normally, then allocate without end this long after start.
    AllocAfter(Duration),
}

/// One subscription from `STRESS_PHASES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
    /// The phase name.
    pub(crate) name: String,
    /// Its priority.
    pub(crate) priority: i32,
    /// `true` if marked `:idempotent`.
    pub(crate) idempotent: bool,
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    /// `STRESS_AT_START`.
    pub(crate) at_start: Option<AtStart>,
    /// `STRESS_PHASES`.
    pub(crate) phases: Vec<Phase>,
    /// `STRESS_IGNORE_SIGTERM`.
    pub(crate) ignore_sigterm: bool,
}

impl Launch {
    /// Reads the `STRESS_*` variables through `lookup`.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Launch, String> {
        let at_start = match lookup(ENV_AT_START) {
            None => None,
            Some(v) => {
                parse_at_start(&v).map_err(|why| format!("{ENV_AT_START} is {v:?}: {why}"))?
            }
        };
        let phases = lookup(ENV_PHASES).unwrap_or_else(|| DEFAULT_PHASES.to_owned());
        let phases =
            parse_phases(&phases).map_err(|why| format!("{ENV_PHASES} is {phases:?}: {why}"))?;
        let ignore_sigterm = match lookup(ENV_IGNORE_SIGTERM).as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(format!(
                    "{ENV_IGNORE_SIGTERM} is {other:?}: expected 1 or true (or 0, false, empty)"
                ));
            }
        };
        Ok(Launch {
            at_start,
            phases,
            ignore_sigterm,
        })
    }
}

/// `exit`, `exit-after-ms:N`, `hang`, or empty for none.
fn parse_at_start(value: &str) -> Result<Option<AtStart>, String> {
    const EXPECTED: &str = "expected exit, exit-after-ms:N, hang, alloc-mib:N, \
                            alloc-after-ms:N, forkbomb, connect:ADDR or read:PATH";
    if let Some(wall) = Wall::parse(value.trim()) {
        return wall.map(|w| Some(AtStart::Wall(w)));
    }
    match value.trim() {
        "" => Ok(None),
        "exit" => Ok(Some(AtStart::Exit)),
        "hang" => Ok(Some(AtStart::Hang)),
        other => {
            let millis = |ms: &str| {
                ms.trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{ms:?} is not a number of milliseconds"))
            };
            if let Some(ms) = other.strip_prefix("exit-after-ms:") {
                millis(ms).map(|d| Some(AtStart::ExitAfter(d)))
            } else if let Some(ms) = other.strip_prefix("alloc-after-ms:") {
                millis(ms).map(|d| Some(AtStart::AllocAfter(d)))
            } else {
                Err(EXPECTED.to_owned())
            }
        }
    }
}

/// `phase[:priority[:idempotent]]`, comma separated; empty entries are
/// skipped. Phase names are checked with the manifest, by the SDK.
fn parse_phases(value: &str) -> Result<Vec<Phase>, String> {
    let mut phases = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(':').map(str::trim);
        let name = parts.next().unwrap_or_default().to_owned();
        let priority = match parts.next() {
            None => 0,
            Some(p) => p
                .parse()
                .map_err(|_| format!("in {entry:?}, the priority {p:?} is not an integer"))?,
        };
        let idempotent = match parts.next() {
            None => false,
            Some("idempotent") => true,
            Some(other) => {
                return Err(format!(
                    "in {entry:?}, {other:?} is not `idempotent` (the form is \
                     phase[:priority[:idempotent]])"
                ));
            }
        };
        if parts.next().is_some() {
            return Err(format!(
                "{entry:?} has too many parts (the form is phase[:priority[:idempotent]])"
            ));
        }
        phases.push(Phase {
            name,
            priority,
            idempotent,
        });
    }
    if phases.is_empty() {
        return Err("it names no phase".to_owned());
    }
    Ok(phases)
}

// ---------------------------------------------------------------------------
// The config

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// What the environment `pairs` asks for; the other tests start their
    /// plugin from it.
    pub(crate) fn launch(pairs: &[(&str, &str)]) -> Launch {
        Launch::from_lookup(lookup(pairs)).unwrap()
    }

    fn phase(name: &str, priority: i32, idempotent: bool) -> Phase {
        Phase {
            name: name.into(),
            priority,
            idempotent,
        }
    }

    #[test]
    fn environment_defaults_and_values() {
        assert_eq!(
            launch(&[]),
            Launch {
                at_start: None,
                phases: vec![phase("stress", 0, false)],
                ignore_sigterm: false,
            }
        );
        let l = launch(&[
            (
                ENV_PHASES,
                "pre_container:10, post_container:-5:idempotent,cleanup,",
            ),
            (ENV_AT_START, "exit-after-ms:250"),
            (ENV_IGNORE_SIGTERM, "1"),
        ]);
        assert_eq!(
            l.phases,
            [
                phase("pre_container", 10, false),
                phase("post_container", -5, true),
                phase("cleanup", 0, false),
            ]
        );
        assert_eq!(
            l.at_start,
            Some(AtStart::ExitAfter(Duration::from_millis(250)))
        );
        assert!(l.ignore_sigterm);
        assert_eq!(
            launch(&[(ENV_AT_START, "exit")]).at_start,
            Some(AtStart::Exit)
        );
        assert_eq!(
            launch(&[(ENV_AT_START, "hang")]).at_start,
            Some(AtStart::Hang)
        );
        assert_eq!(launch(&[(ENV_AT_START, "")]).at_start, None);
        assert_eq!(
            launch(&[(ENV_AT_START, "alloc-after-ms:300")]).at_start,
            Some(AtStart::AllocAfter(Duration::from_millis(300)))
        );
        assert_eq!(
            launch(&[(ENV_AT_START, "alloc-mib:64")]).at_start,
            Some(AtStart::Wall(Wall::Alloc(64)))
        );
        assert_eq!(
            launch(&[(ENV_AT_START, "read:/etc/hostname")]).at_start,
            Some(AtStart::Wall(Wall::Read("/etc/hostname".into())))
        );
        let err = Launch::from_lookup(lookup(&[(ENV_AT_START, "alloc-mib:x")])).unwrap_err();
        assert_eq!(
            err,
            r#"STRESS_AT_START is "alloc-mib:x": "x" is not a number of MiB"#
        );
        assert!(!launch(&[(ENV_IGNORE_SIGTERM, "0")]).ignore_sigterm);
    }

    #[test]
    fn bad_environment_is_refused_naming_the_variable() {
        let cases = [
            (
                (ENV_AT_START, "boom"),
                r#"STRESS_AT_START is "boom": expected exit, exit-after-ms:N, hang, alloc-mib:N, alloc-after-ms:N, forkbomb, connect:ADDR or read:PATH"#,
            ),
            (
                (ENV_AT_START, "exit-after-ms:soon"),
                r#"STRESS_AT_START is "exit-after-ms:soon": "soon" is not a number of milliseconds"#,
            ),
            (
                (ENV_PHASES, "pre_container:high"),
                r#"STRESS_PHASES is "pre_container:high": in "pre_container:high", the priority "high" is not an integer"#,
            ),
            (
                (ENV_PHASES, "a:1:twice"),
                r#"STRESS_PHASES is "a:1:twice": in "a:1:twice", "twice" is not `idempotent` (the form is phase[:priority[:idempotent]])"#,
            ),
            (
                (ENV_PHASES, "a:1:idempotent:x"),
                r#"STRESS_PHASES is "a:1:idempotent:x": "a:1:idempotent:x" has too many parts (the form is phase[:priority[:idempotent]])"#,
            ),
            (
                (ENV_PHASES, " , "),
                r#"STRESS_PHASES is " , ": it names no phase"#,
            ),
            (
                (ENV_IGNORE_SIGTERM, "yes"),
                r#"STRESS_IGNORE_SIGTERM is "yes": expected 1 or true (or 0, false, empty)"#,
            ),
        ];
        for ((var, value), want) in cases {
            let err = Launch::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err, want);
        }
    }
}
