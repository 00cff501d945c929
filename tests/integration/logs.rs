//! The test binary's one log subscriber: the daemons' logs through the test
//! writer (shown for failing tests only), and [`Logs::capture`], which
//! records everything the capturing test's thread logs.
//!
//! One global subscriber rather than a thread-local one per capture: a
//! span made under a thread-local subscriber may be dropped on SQLite's
//! worker threads (sqlx enters the caller's span there), where the
//! registry then closes its parent through that thread's default, the
//! global subscriber, which panics on an id it never issued
//! (tokio-rs/tracing#1656).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The buffers of the threads capturing now.
fn capturing() -> &'static Mutex<HashMap<ThreadId, Logs>> {
    static CAPTURING: OnceLock<Mutex<HashMap<ThreadId, Logs>>> = OnceLock::new();
    CAPTURING.get_or_init(Mutex::default)
}

fn this_thread() -> Option<Logs> {
    let capturing = capturing().lock().unwrap_or_else(|e| e.into_inner());
    capturing.get(&std::thread::current().id()).cloned()
}

/// Installs the subscriber, once per test binary.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let daemon = fmt::layer()
            .with_test_writer()
            .with_filter(EnvFilter::new("info,tokend=debug"));
        let capture = fmt::layer()
            .with_ansi(false)
            .with_writer(ThreadWriter)
            .with_filter(filter_fn(|_| this_thread().is_some()));
        let _ = tracing_subscriber::registry()
            .with(daemon)
            .with(capture)
            .try_init();
    });
}

/// Everything logged at any level on this thread while the guard lives
/// (`#[tokio::test]` runs every task on the test's thread).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

/// Ends a capture when dropped.
pub struct CaptureGuard(ThreadId);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let mut capturing = capturing().lock().unwrap_or_else(|e| e.into_inner());
        capturing.remove(&self.0);
    }
}

impl Logs {
    pub fn capture() -> (Logs, CaptureGuard) {
        init();
        let logs = Logs::default();
        let thread = std::thread::current().id();
        let mut capturing = capturing().lock().unwrap_or_else(|e| e.into_inner());
        capturing.insert(thread, logs.clone());
        (logs, CaptureGuard(thread))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes into the buffer of the thread the event happened on.
struct ThreadWriter;

impl<'a> MakeWriter<'a> for ThreadWriter {
    type Writer = Box<dyn Write>;

    fn make_writer(&'a self) -> Box<dyn Write> {
        match this_thread() {
            Some(logs) => Box::new(logs),
            None => Box::new(std::io::sink()),
        }
    }
}
