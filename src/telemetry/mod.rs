//! Watching tokend: logs (here), [`metrics`] and [`systemd`] notifications.
//!
//! Logging: tracing-subscriber set up from `[log]`, reloadable on SIGHUP.
//! Logs go to stderr (stdout is for CLI output such as `tokend token ID`).
//! `log.format = "auto"` picks text without timestamps under journald
//! (`JOURNAL_STREAM` names stderr: journald stamps lines itself), JSON when
//! stderr is not a terminal, and coloured text on a terminal. Under journald
//! each line starts with its syslog priority ([`journald`]).

pub mod exposition;
pub mod journald;
pub mod metrics;
pub mod systemd;

use std::io::IsTerminal;

use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

use journald::Priority;

use crate::config::{LogConfig, LogFormat};

/// Dependencies that are chatty at debug level; a user directive naming them
/// explicitly (e.g. `hyper=debug`) still wins because it comes later.
const QUIET_DEPENDENCIES: &str =
    "hyper=warn,hyper_util=warn,reqwest=warn,h2=warn,rustls=warn,sqlx=warn,tower_http=info";

/// Lets SIGHUP change the level without restarting.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogHandle")
    }
}

/// The format `auto` resolves to in this environment.
pub fn resolve_format(format: LogFormat, journal_stream: bool, terminal: bool) -> LogFormat {
    match format {
        LogFormat::Auto if journal_stream => LogFormat::Text,
        LogFormat::Auto if terminal => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// The filter: `RUST_LOG` if set, else `log.level`, over quiet dependency defaults.
pub fn filter(level: &str) -> EnvFilter {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| level.to_owned());
    EnvFilter::try_new(format!("{QUIET_DEPENDENCIES},{directive}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("{QUIET_DEPENDENCIES},info")))
}

/// Installs the global subscriber. Call once, early.
pub fn init(config: &LogConfig) -> LogHandle {
    let journald = journald::stderr_is_journal();
    let terminal = std::io::stderr().is_terminal();
    let format = resolve_format(config.format, journald, terminal);
    let (filter_layer, handle) = reload::Layer::new(filter(&config.level));
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(output_layer(format, journald, terminal))
        .init();
    LogHandle { filter: handle }
}

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// The formatting layer. Under journald every line starts with its syslog
/// priority (`<4>` for WARN), in either format.
fn output_layer(
    format: LogFormat,
    journald: bool,
    terminal: bool,
) -> Box<dyn Layer<Filtered> + Send + Sync> {
    match format {
        LogFormat::Json => fmt::layer()
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(Priority::new(
                journald,
                fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            ))
            .with_writer(std::io::stderr)
            .boxed(),
        _ if journald => fmt::layer()
            .with_ansi(false)
            .event_format(Priority::new(
                true,
                fmt::format().without_time().with_ansi(false),
            ))
            .with_writer(std::io::stderr)
            .boxed(),
        _ => fmt::layer()
            .with_ansi(terminal)
            .with_writer(std::io::stderr)
            .boxed(),
    }
}

impl LogHandle {
    /// Applies a new `log.level` (SIGHUP). `RUST_LOG`, when set, still wins.
    pub fn set_level(&self, level: &str) {
        if let Err(e) = self.filter.reload(filter(level)) {
            tracing::error!(error = %e, "could not change the log level");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_format() {
        assert_eq!(
            resolve_format(LogFormat::Auto, true, false),
            LogFormat::Text
        );
        assert_eq!(
            resolve_format(LogFormat::Auto, false, true),
            LogFormat::Text
        );
        assert_eq!(
            resolve_format(LogFormat::Auto, false, false),
            LogFormat::Json
        );
        assert_eq!(resolve_format(LogFormat::Json, true, true), LogFormat::Json);
        assert_eq!(
            resolve_format(LogFormat::Text, false, false),
            LogFormat::Text
        );
    }
}
