//! Log levels for journald. Under systemd, stderr is a stream to journald,
//! which reads a `<N>` syslog priority at the start of each line
//! (`SyslogLevelPrefix=`, on by default) and strips it. Without it every line
//! is stored at the unit's default priority, and `journalctl -p warning`
//! finds nothing. Plain lines keep the text greppable (`journalctl -g`) and
//! need no socket beyond the one systemd already gave us.

use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether stderr is the journald stream systemd connected: `JOURNAL_STREAM`
/// is `DEV:INODE` of that stream. Comparing it with stderr (as sd_journal's
/// docs ask) avoids prefixing lines in a shell that merely inherited the
/// variable from a service.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority journald stores for a tracing level.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Wraps an event formatter: with `enabled`, every line it writes starts
/// with `<N>` (each line, so a multi-line message keeps its priority).
#[derive(Debug)]
pub struct Priority<F> {
    enabled: bool,
    inner: F,
}

impl<F> Priority<F> {
    pub fn new(enabled: bool, inner: F) -> Self {
        Priority { enabled, inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.enabled {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let prefix = priority(event.metadata().level());
        for part in line.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{prefix}>{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(enabled: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .event_format(Priority::new(
                enabled,
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_line_carries_the_syslog_priority_of_its_level() {
        let out = logged(true, || {
            tracing::error!("e");
            tracing::warn!(credential = "user-42", "needs re-authorization");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::warn!("two\nlines");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("<3>") && lines[0].contains("ERROR"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("<4>") && lines[1].contains("credential=\"user-42\""),
            "{out}"
        );
        assert!(lines[2].starts_with("<6>"), "{out}");
        assert!(lines[3].starts_with("<7>"), "{out}");
        assert_eq!(
            &lines[4..],
            [
                "<4> WARN tokend::telemetry::journald::tests: two",
                "<4>lines"
            ]
        );
    }

    #[test]
    fn without_journald_lines_are_unchanged() {
        let out = logged(false, || tracing::warn!("w"));
        assert!(out.starts_with(" WARN"), "{out}");
    }
}
