//! The signals `serve` handles itself besides SIGHUP (`reload`): SIGTERM
//! and SIGINT end it; SIGXFSZ is caught so that a write past the file-size
//! limit fails instead of ending the process.

/// A write past a file-size limit (`ulimit -f`, `LimitFSIZE=`) sends
/// SIGXFSZ, whose default action ends the process, and any refreshed
/// result held in memory with it. Caught, the write fails (`EFBIG`) and is
/// handled like a full disk.
pub(super) fn catch_file_size_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let xfsz = SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw());
    match signal(xfsz) {
        Ok(mut received) => {
            tokio::spawn(async move {
                while received.recv().await.is_some() {
                    tracing::debug!("SIGXFSZ: a write went past the file-size limit");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot catch SIGXFSZ"),
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
