//! The sockets `serve` answers on: TCP from `server.listen`, and a unix
//! socket from `server.unix_socket` or handed over by systemd socket
//! activation (`tokend.socket`, `LISTEN_FDS`).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::ServerConfig;

/// The sockets `serve` answers on, bound before anything else so a port
/// clash fails at once.
#[derive(Debug)]
pub struct Listeners {
    pub tcp: Vec<std::net::TcpListener>,
    /// The unix socket, and its path when tokend created it (and removes it on exit).
    pub unix: Option<(std::os::unix::net::UnixListener, Option<PathBuf>)>,
}

impl Listeners {
    pub fn bind(server: &ServerConfig) -> anyhow::Result<Listeners> {
        let mut tcp = Vec::new();
        for addr in &server.listen {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (server.listen)"))?;
            listener.set_nonblocking(true)?;
            tcp.push(listener);
        }
        let unix = match activated_unix_socket()? {
            Some(listener) => {
                if server.unix_socket.is_some() {
                    tracing::warn!("systemd passed a socket: server.unix_socket is not bound");
                }
                // systemd owns the file (and its mode, SocketMode=): no path to remove.
                Some((listener, None))
            }
            None => match &server.unix_socket {
                Some(path) => Some((
                    bind_unix(path, server.unix_socket_mode)?,
                    Some(path.clone()),
                )),
                None => None,
            },
        };
        Ok(Listeners { tcp, unix })
    }

    /// The TCP addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

/// Binds the unix socket, replacing a stale socket file (never another kind of
/// file), and sets its mode: bind() obeys the umask, which systemd sets to 0077.
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "server.unix_socket {} exists and is not a socket; refusing to replace it",
            path.display()
        );
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {} (server.unix_socket)", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The unix socket systemd passed (`LISTEN_FDS`, for this process), if any.
fn activated_unix_socket() -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    for i in 0..fds.len() {
        if let Some(listener) = fds
            .take_unix_listener(i)
            .context("the socket systemd passed is not a unix stream socket")?
        {
            listener.set_nonblocking(true)?;
            return Ok(Some(listener));
        }
    }
    Ok(None)
}
