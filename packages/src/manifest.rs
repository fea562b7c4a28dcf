//! `outboard-package.toml`: what a package holds, signed as a whole.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::PackageError;
use crate::paths::escape_reason;

/// The manifest's name, at the archive's top level and, once installed,
/// in the plugin's folder.
pub const MANIFEST_FILE: &str = outboard_host::config::PACKAGE_MANIFEST_FILE;
/// The detached minisign signature of the manifest, beside it.
pub const SIGNATURE_FILE: &str = "outboard-package.toml.minisig";
/// The only manifest format this build reads and writes.
const FORMAT: u32 = 1;
/// The largest manifest read: a list of files, not a payload.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The mode bits a packaged file may carry: no set-id, no sticky bit, no
/// write for group or others.
pub(crate) const ALLOWED_MODE: u32 = 0o755;

/// A package's manifest: the plugin it holds and every file of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// The manifest format, `1`.
    pub format: u32,
    /// The plugin's name, as its `Describe` gives it; also the folder
    /// it is installed into.
    pub name: String,
    /// The plugin's version, as its `Describe` gives it.
    pub version: String,
    /// Every regular file of the plugin directory, sorted by path.
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the plugin directory, `/`-separated.
    pub path: String,
    /// Permission bits in octal, e.g. `"755"`; at most `755`.
    pub mode: String,
    /// The content's SHA-256, lower-case hex.
    pub sha256: String,
}

impl FileEntry {
    /// The mode as bits; the manifest was validated, so it parses.
    pub(crate) fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or(0)
    }
}

impl PackageManifest {
    /// A format-1 manifest.
    pub(crate) fn new(name: String, version: String, files: Vec<FileEntry>) -> PackageManifest {
        PackageManifest {
            format: FORMAT,
            name,
            version,
            files,
        }
    }

    /// The manifest as the bytes that are signed and stored.
    pub fn to_toml(&self) -> Result<String, PackageError> {
        toml::to_string(self).map_err(|e| PackageError::Malformed(format!("{MANIFEST_FILE}: {e}")))
    }

    /// Parses and validates `text`: format, name, version, and every
    /// file's path, mode and checksum, each path once.
    pub fn parse(text: &str) -> Result<PackageManifest, PackageError> {
        let malformed = |why: String| PackageError::Malformed(format!("{MANIFEST_FILE}: {why}"));
        let manifest: PackageManifest =
            toml::from_str(text).map_err(|e| malformed(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(malformed(format!(
                "format {} is not supported (this outboard reads format {FORMAT}); upgrade outboard",
                manifest.format
            )));
        }
        if !outboard_proto::names::is_valid_plugin_name(&manifest.name) {
            return Err(malformed(outboard_proto::names::invalid_plugin_name(
                &manifest.name,
            )));
        }
        if manifest.version.is_empty() || manifest.version.len() > 128 {
            return Err(malformed("version must be 1 to 128 characters".to_owned()));
        }
        // A plugin's Describe gives a semantic version; anything else (a
        // control character for the operator's terminal, say) is refused
        // before it is shown anywhere.
        if semver::Version::parse(&manifest.version).is_err() {
            return Err(malformed(format!(
                "version {:?} is not a semantic version (such as 1.2.3)",
                manifest.version
            )));
        }
        let mut seen = BTreeSet::new();
        for file in &manifest.files {
            file.validate()
                .map_err(|why| malformed(format!("file {:?}: {why}", file.path)))?;
            if !seen.insert(file.path.as_str()) {
                return Err(malformed(format!("file {:?} is listed twice", file.path)));
            }
        }
        Ok(manifest)
    }
}

impl FileEntry {
    /// Why this entry is unusable, if it is.
    fn validate(&self) -> Result<(), String> {
        if let Some(reason) = escape_reason(&self.path) {
            return Err(reason.to_owned());
        }
        if self.path == MANIFEST_FILE || self.path == SIGNATURE_FILE {
            return Err("that name is reserved for the package's manifest".to_owned());
        }
        match u32::from_str_radix(&self.mode, 8) {
            Ok(bits) if bits & !ALLOWED_MODE == 0 => {}
            _ => return Err(format!("mode {:?} is not octal within 755", self.mode)),
        }
        let hex_ok = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err("sha256 is not 64 lower-case hex digits".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: &str) -> FileEntry {
        FileEntry {
            path: path.to_owned(),
            mode: mode.to_owned(),
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn a_manifest_round_trips_through_toml() {
        let manifest = PackageManifest::new(
            "env-injector".to_owned(),
            "1.2.3".to_owned(),
            vec![entry("plugin.toml", "644"), entry("bin/run", "755")],
        );
        let text = manifest.to_toml().expect("serialises");
        assert_eq!(PackageManifest::parse(&text).expect("parses"), manifest);
    }

    #[test]
    fn escaping_paths_wide_modes_and_duplicates_are_refused() {
        for (files, needle) in [
            (vec![entry("../x", "644")], "climbs out"),
            (vec![entry("/x", "644")], "absolute"),
            (vec![entry("x", "4755")], "mode"),
            (vec![entry("x", "777")], "mode"),
            (vec![entry("x", "644"), entry("x", "644")], "twice"),
            (vec![entry(MANIFEST_FILE, "644")], "reserved"),
        ] {
            let text = PackageManifest::new("p".to_owned(), "1.0.0".to_owned(), files)
                .to_toml()
                .expect("serialises");
            let error = PackageManifest::parse(&text).expect_err(needle).to_string();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn a_version_that_is_not_semantic_is_refused_quoted() {
        let text = PackageManifest::new(
            "p".to_owned(),
            "1.0.0\u{1b}[2K\rinstalled OK".to_owned(),
            vec![entry("x", "644")],
        )
        .to_toml()
        .expect("serialises");
        let error = PackageManifest::parse(&text)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("not a semantic version"), "{error}");
        assert!(!error.contains('\u{1b}'), "quoted, not raw: {error}");
    }
}
