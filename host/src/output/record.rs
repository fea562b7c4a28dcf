//! One line of output as a log record: a JSON object's `level`, `message`
//! and other fields, or the line as it is.

use super::Stream;
use super::escape::Escaped;

/// Whether `line` is a JSON object: never part of a crash report.
pub(crate) fn is_json_object(line: &str) -> bool {
    line.trim_start().starts_with('{')
        && matches!(
            serde_json::from_str::<serde_json::Value>(line),
            Ok(serde_json::Value::Object(_))
        )
}

/// A log level as a plugin may write it in a JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// One parsed output line.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) level: Level,
    pub(crate) message: String,
    /// The JSON object's other keys, when the line was JSON.
    pub(crate) fields: Option<serde_json::Value>,
}

/// `line` as a record: a JSON object's level, message and fields, or the
/// line itself at info level.
pub(crate) fn parse(line: &str) -> Record {
    let plain = || Record {
        level: Level::Info,
        message: line.to_owned(),
        fields: None,
    };
    if !line.trim_start().starts_with('{') {
        return plain();
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return plain();
    };
    let level = match map.remove("level").as_ref().and_then(|l| l.as_str()) {
        Some(l) => match l.to_ascii_lowercase().as_str() {
            "error" | "fatal" | "critical" | "panic" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => Level::Info,
        },
        None => Level::Info,
    };
    let message = match map.remove("message").or_else(|| map.remove("msg")) {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    // The host stamps every record itself.
    map.remove("timestamp");
    // Structured loggers nest their fields; flatten one level for reading.
    if let Some(serde_json::Value::Object(inner)) = map.remove("fields") {
        for (k, v) in inner {
            map.entry(k).or_insert(v);
        }
    }
    let fields = (!map.is_empty()).then_some(serde_json::Value::Object(map));
    Record {
        level,
        message,
        fields,
    }
}

/// Logs one line of the plugin's output.
pub(crate) fn forward_line(plugin: &str, stream: Stream, line: &str) {
    let Record {
        level,
        message,
        fields,
    } = parse(line);
    let stream = stream.as_str();
    // The message is the plugin's text: escaped, so it cannot forge a
    // record of its own or drive the terminal. The fields are JSON text,
    // whose escaping leaves DEL and the C1 controls (U+009B is a CSI to
    // some terminals) as they are: escaped too.
    let message = Escaped::line(&message);
    let fields = fields.map(|f| f.to_string());
    let fields = fields.as_deref().map(Escaped::line);
    macro_rules! event {
        ($lvl:ident) => {
            match &fields {
                Some(f) => tracing::$lvl!(target: "outboard::plugin", plugin, stream, fields = %f, "{message}"),
                None => tracing::$lvl!(target: "outboard::plugin", plugin, stream, "{message}"),
            }
        };
    }
    match level {
        Level::Error => event!(error),
        Level::Warn => event!(warn),
        Level::Info => event!(info),
        Level::Debug => event!(debug),
        Level::Trace => event!(trace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lines_become_fields() {
        let r = parse(
            r#"{"level":"WARN","msg":"slow","timestamp":"t","elapsed_ms":12,"fields":{"phase":"x"}}"#,
        );
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.message, "slow");
        assert_eq!(r.fields, Some(json!({"elapsed_ms": 12, "phase": "x"})));
    }

    #[test]
    fn plain_and_broken_json_lines_stay_as_they_are() {
        for line in ["hello", "{not json", "[1,2]", ""] {
            let r = parse(line);
            assert_eq!(
                (r.level, r.message.as_str(), r.fields),
                (Level::Info, line, None)
            );
        }
    }
}
