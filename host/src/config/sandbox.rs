//! `[plugin.sandbox]` and `[defaults.sandbox]`: the walls the kernel puts
//! around a plugin, as resolved values. Every limit is optional (none: no
//! wall of that kind); `no_new_privs` is not a setting, it is always on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A plugin's sandbox, with everything resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SandboxSpec {
    /// The most memory, in bytes, its processes may use together (a cgroup
    /// limit, else `RLIMIT_AS` per process).
    pub memory: Option<u64>,
    /// The CPU it may use, in thousandths of a core (500: half a core).
    pub cpu_millis: Option<u32>,
    /// The most processes and threads it may have at once.
    pub pids: Option<u32>,
    /// The most open descriptors per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u32>,
    /// False to forbid core dumps (`RLIMIT_CORE` = 0); `None` leaves the
    /// host's limit.
    pub core_dumps: Option<bool>,
    /// Which network it reaches.
    pub network: Network,
    /// The paths it may read and write (Landlock); `None`: the whole
    /// filesystem, as the user's permissions allow.
    pub filesystem: Option<FilesystemSpec>,
    /// True if a wall the machine cannot build may be replaced by a weaker
    /// one, or left out, instead of refusing to start the plugin.
    pub best_effort: bool,
    /// The user to run it as (a name or a number); the host must be root.
    pub user: Option<String>,
    /// The group to run it as (a name or a number); the host must be root.
    pub group: Option<String>,
}

impl SandboxSpec {
    /// True if the spec asks for no wall at all.
    pub fn is_empty(&self) -> bool {
        self == &SandboxSpec::default()
    }

    /// The strict preset over these settings: at most [`STRICT_MEMORY`]
    /// (a smaller configured limit stays), no network, and a filesystem
    /// wall, so the plugin reads only its own files, its runtime directory
    /// and the system's libraries, plus the paths these settings already
    /// list; no best effort, so a wall this machine cannot build is an
    /// error. The other settings (cpu, pids, user, ...) stay as they are.
    pub fn strict(&self) -> SandboxSpec {
        SandboxSpec {
            memory: Some(self.memory.map_or(STRICT_MEMORY, |m| m.min(STRICT_MEMORY))),
            network: Network::None,
            filesystem: Some(self.filesystem.clone().unwrap_or_default()),
            best_effort: false,
            ..self.clone()
        }
    }
}

/// The memory limit of the strict preset ([`SandboxSpec::strict`]): 256 MiB.
pub const STRICT_MEMORY: u64 = 256 << 20;

/// The network a plugin reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network (no namespace).
    #[default]
    Host,
    /// Its own network namespace with only `lo`, up.
    Loopback,
    /// Its own network namespace with nothing up.
    None,
}

/// The paths a plugin may read and write, absolute; its own files, its
/// runtime directory and the system libraries are added at launch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilesystemSpec {
    /// Readable (and executable) paths.
    pub read: Vec<PathBuf>,
    /// Readable and writable paths.
    pub write: Vec<PathBuf>,
}

/// The multipliers of a memory size's suffixes: binary (`Ki`, `Mi`, `Gi`,
/// `Ti`) and decimal (`K`, `M`, `G`, `T`); none is bytes.
const SIZE_SUFFIXES: [(&str, u64); 8] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// The smallest `memory`: below this a dynamically linked program cannot
/// even be loaded, and the failure would look like a crash of the plugin.
pub(super) const MIN_MEMORY: u64 = 8 << 20;

/// Parses a memory size: `"100Mi"`, `"1G"`, `"4096"` (bytes).
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, multiplier) = SIZE_SUFFIXES
        .iter()
        .find_map(|(suffix, m)| text.strip_suffix(suffix).map(|d| (d, *m)))
        .unwrap_or((text, 1));
    let bad = || format!("{text:?} is not a size: write a number and Ki, Mi, Gi (e.g. \"100Mi\")");
    let number: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = number.checked_mul(multiplier).ok_or_else(bad)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{text:?} is too small: at least {}Mi",
            MIN_MEMORY >> 20
        ));
    }
    Ok(bytes)
}

/// Parses a fraction of a core (`0.5`, `2`) into thousandths.
pub(super) fn cpu_millis(cores: f64) -> Result<u32, String> {
    // 0.01: the smallest quota a 100 ms period takes (1 ms). 1024 cores:
    // beyond any machine, and far from overflow.
    if !(0.01..=1024.0).contains(&cores) {
        return Err(format!(
            "{cores} is out of range: a fraction of a core from 0.01 to 1024 (0.5 is half a core)"
        ));
    }
    // In range, so the product fits a u32.
    Ok((cores * 1000.0).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_suffixes() {
        assert_eq!(parse_size("100Mi"), Ok(100 << 20));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert_eq!(parse_size(" 16777216 "), Ok(16 << 20));
        assert!(
            parse_size("1Mi")
                .expect_err("refused")
                .contains("too small")
        );
        assert!(
            parse_size("lots")
                .expect_err("refused")
                .contains("not a size")
        );
        assert!(parse_size("-5Mi").is_err());
        assert!(
            parse_size("99999999999Ti")
                .expect_err("refused")
                .contains("not a size")
        );
    }

    #[test]
    fn the_strict_preset_tightens_and_keeps_the_rest() {
        let strict = SandboxSpec::default().strict();
        assert_eq!(strict.memory, Some(256 << 20));
        assert_eq!(strict.network, Network::None);
        assert_eq!(strict.filesystem, Some(FilesystemSpec::default()));
        assert!(!strict.best_effort);
        let configured = SandboxSpec {
            memory: Some(64 << 20),
            pids: Some(32),
            network: Network::Loopback,
            filesystem: Some(FilesystemSpec {
                read: vec!["/srv/data".into()],
                write: vec![],
            }),
            best_effort: true,
            ..SandboxSpec::default()
        };
        let strict = configured.strict();
        assert_eq!(strict.memory, Some(64 << 20), "a smaller limit stays");
        assert_eq!(strict.pids, Some(32));
        assert_eq!(strict.network, Network::None);
        assert_eq!(strict.filesystem, configured.filesystem);
        assert!(!strict.best_effort);
        let larger = SandboxSpec {
            memory: Some(1 << 30),
            ..SandboxSpec::default()
        };
        assert_eq!(larger.strict().memory, Some(STRICT_MEMORY));
    }

    #[test]
    fn cpu_is_a_bounded_fraction_of_a_core() {
        assert_eq!(cpu_millis(0.5), Ok(500));
        assert_eq!(cpu_millis(2.0), Ok(2000));
        assert!(cpu_millis(0.0).is_err());
        assert!(cpu_millis(f64::NAN).is_err());
        assert!(cpu_millis(5000.0).is_err());
    }
}
