//! `outboard plugins`: the installed packages as a table for people, the
//! same rows as a JSON array for scripts.

use std::io::Write;
use std::path::PathBuf;

use outboard_host::Escaped;
use outboard_packages::Installed;
use serde::Serialize;

/// One installed package, as `plugins --json` writes it.
#[derive(Debug, Serialize)]
pub(crate) struct InstalledRow {
    /// The plugin's name (its folder's).
    name: String,
    /// Its version, from the package's manifest.
    version: String,
    /// The key id that signed it; `null` if it was installed unsigned.
    signer: Option<String>,
    /// Its folder.
    path: PathBuf,
}

impl From<&Installed> for InstalledRow {
    fn from(one: &Installed) -> InstalledRow {
        InstalledRow {
            name: one.name.clone(),
            version: one.version.clone(),
            signer: one.signer.clone(),
            path: one.path.clone(),
        }
    }
}

/// The table's header.
const HEADER: [&str; 4] = ["NAME", "VERSION", "SIGNER", "PATH"];

/// The rows as an aligned table (`unsigned` where no key signed it).
pub(crate) fn table(out: &mut impl Write, rows: &[InstalledRow]) -> std::io::Result<()> {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            // Folder names in the plugin directory are anyone's text.
            [
                Escaped::line(&row.name).to_string(),
                Escaped::line(&row.version).to_string(),
                row.signer.clone().unwrap_or_else(|| "unsigned".to_owned()),
                Escaped::line(&row.path.display().to_string()).to_string(),
            ]
        })
        .collect();
    super::columns::aligned(out, HEADER, &cells)
}
