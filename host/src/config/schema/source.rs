//! The file being resolved, and the errors about what it declares: each
//! names the file, the line, the plugin or section and the field.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::lines::LineIndex;
use crate::config::error::{ConfigError, Location, Subject};
use crate::config::limits::{CountBounds, DurationBounds};
use crate::config::value::{self, DurationText};

/// The file being resolved: for error locations and relative paths.
pub(super) struct Source<'a> {
    /// The file, as it was named to the host.
    pub(super) path: &'a Path,
    /// Where each of its lines starts, to turn byte offsets into lines.
    lines: LineIndex,
    /// What relative paths are relative to.
    base: &'a Path,
}

impl<'a> Source<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str, base: &'a Path) -> Self {
        Source {
            path,
            lines: LineIndex::new(text),
            base,
        }
    }

    /// The line `span` starts on.
    pub(super) fn location(&self, span: Range<usize>) -> Location {
        Location {
            path: self.path.to_owned(),
            line: Some(self.lines.line(span.start)),
        }
    }

    /// `base` as an absolute path (the current directory when it is empty).
    pub(super) fn base_dir(&self) -> PathBuf {
        let base = if self.base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.base
        };
        std::path::absolute(base).unwrap_or_else(|_| base.to_owned())
    }

    /// The errors about `subject`'s values in this file.
    pub(super) fn scope(&self, subject: Subject) -> Scope<'_> {
        Scope { src: self, subject }
    }
}

/// One plugin or section of a file, whose values are being resolved.
pub(super) struct Scope<'a> {
    src: &'a Source<'a>,
    subject: Subject,
}

impl Scope<'_> {
    /// `field` is invalid: `why`. At the line of `span`, or the whole file
    /// without one.
    pub(super) fn invalid(
        &self,
        span: Option<Range<usize>>,
        field: &str,
        why: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: span.map_or_else(|| Location::file(self.src.path), |s| self.src.location(s)),
            subject: self.subject.clone(),
            field: field.into(),
            why,
        }
    }

    /// The duration `field` as written, or `fallback` when it is left out;
    /// within `bounds`.
    pub(super) fn duration(
        &self,
        field: &str,
        value: &Option<Spanned<DurationText>>,
        fallback: Duration,
        bounds: DurationBounds,
    ) -> Result<Duration, ConfigError> {
        value::duration(value, fallback, bounds)
            .map_err(|(span, why)| self.invalid(Some(span), field, why))
    }

    /// The duration `field` within `bounds`, if it is written.
    pub(super) fn optional_duration(
        &self,
        field: &str,
        value: &Option<Spanned<DurationText>>,
        bounds: DurationBounds,
    ) -> Result<Option<Duration>, ConfigError> {
        value::optional_duration(value, bounds)
            .map_err(|(span, why)| self.invalid(Some(span), field, why))
    }

    /// The count `field` as written, or `fallback` when it is left out;
    /// within `bounds`.
    pub(super) fn count(
        &self,
        field: &str,
        value: &Option<Spanned<u32>>,
        fallback: u32,
        bounds: CountBounds,
    ) -> Result<u32, ConfigError> {
        value::count(value, fallback, bounds)
            .map_err(|(span, why)| self.invalid(Some(span), field, why))
    }
}
