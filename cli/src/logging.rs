//! Log lines on stderr: the host's and, through it, the plugins' own.

use crate::args::LogFormat;

/// Installs the global subscriber: plugins' output at info and the host's
/// at warn by default, more with each `-v`; `RUST_LOG` overrides both.
pub(crate) fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "outboard::plugin=info,warn",
        1 => "info",
        _ => "debug,h2=info,tower=info,hyper_util=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
