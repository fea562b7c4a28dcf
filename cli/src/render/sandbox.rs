//! A plugin's walls, as `describe --sandbox` and `status` show them: a
//! table, one line, or JSON objects `{setting, value, mechanism}`.

use std::io::Write;

use outboard_host::Escaped;
use outboard_host::sandbox::Wall;
use outboard_proto::control::v1 as wire;
use serde::Serialize;

/// The setting every plugin gets: alone, it is no sandbox worth a line.
const ALWAYS: &str = "no_new_privs";

/// One wall around a plugin: a setting, its value, and how the kernel
/// enforces it (or `not enforced: ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct WallView {
    /// The setting, as in outboard.toml (`memory`, `network`, ...).
    pub(crate) setting: String,
    /// Its value as configured (`256Mi`, `none`).
    pub(crate) value: String,
    /// How it is enforced (`cgroup v1 memory`, `network namespace`).
    pub(crate) mechanism: String,
}

impl WallView {
    /// The view of one wall of the control API.
    pub(crate) fn of(w: &wire::SandboxWall) -> WallView {
        WallView {
            setting: w.setting.clone(),
            value: w.value.clone(),
            mechanism: w.mechanism.clone(),
        }
    }

    /// The view of one wall the host planned.
    pub(crate) fn planned(w: &Wall) -> WallView {
        WallView {
            setting: w.setting.clone(),
            value: w.value.clone(),
            mechanism: w.mechanism.clone(),
        }
    }
}

/// True if `walls` hold more than what every plugin gets.
pub(crate) fn any_beyond_the_default(walls: &[WallView]) -> bool {
    walls.iter().any(|w| w.setting != ALWAYS)
}

/// The walls as one line: `memory 256Mi (cgroup v1 memory); network none
/// (network namespace)`; every text escaped (a value may hold a path).
pub(crate) fn line(walls: &[WallView]) -> String {
    walls
        .iter()
        .map(|w| {
            let value = if w.value.is_empty() {
                String::new()
            } else {
                format!(" {}", Escaped::line(&w.value))
            };
            format!(
                "{}{value} ({})",
                Escaped::line(&w.setting),
                Escaped::line(&w.mechanism)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The walls as an aligned table: SETTING, VALUE, MECHANISM.
pub(crate) fn table(out: &mut impl Write, walls: &[WallView]) -> std::io::Result<()> {
    let rows: Vec<[String; 3]> = walls
        .iter()
        .map(|w| {
            [
                Escaped::line(&w.setting).to_string(),
                if w.value.is_empty() {
                    "-".to_owned()
                } else {
                    Escaped::line(&w.value).to_string()
                },
                Escaped::line(&w.mechanism).to_string(),
            ]
        })
        .collect();
    super::columns::aligned(out, ["SETTING", "VALUE", "MECHANISM"], &rows)
}
