//! The rules for `[server]`: where tokend listens, whose `Host` it
//! accepts, and the limits on requests and connections.

use super::Config;

impl Config {
    /// Every rule the `[server]` table breaks, each naming its key and what
    /// it takes (see `validate` for the whole configuration).
    pub(super) fn server_problems(&self, p: &mut Vec<String>) {
        let s = &self.server;
        if s.listen.is_empty() && s.unix_socket.is_none() {
            p.push("server.listen must name an address when server.unix_socket is empty".into());
        }
        for addr in &s.listen {
            if !addr.ip().is_loopback() && !s.allow_remote {
                p.push(format!(
                    "server.listen address {addr} is not loopback; set server.allow_remote = true to allow it"
                ));
            }
        }
        if let Some(path) = &s.unix_socket
            && !path.is_absolute()
        {
            p.push(format!(
                "server.unix_socket must be an absolute path, got {path:?}"
            ));
        }
        // Names only: the Host check compares them with what a client sends
        // (a port comes from the listener, never from this list).
        for host in &s.allowed_hosts {
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                p.push(format!(
                    "server.allowed_hosts entry {host:?} is not a host name"
                ));
            }
        }
        // Zero would refuse every body, request or connection: a typo, not
        // a setting. The deadlines are whole seconds; `max_connections` is
        // lowered at start if the open-file limit leaves too little room.
        for (key, value) in [
            ("max_body_bytes", s.max_body_bytes as u64),
            ("request_timeout_secs", s.request_timeout_secs),
            ("header_read_timeout_secs", s.header_read_timeout_secs),
            ("idle_timeout_secs", s.idle_timeout_secs),
            ("max_connections", s.max_connections as u64),
        ] {
            if value == 0 {
                p.push(format!("server.{key} must be at least 1"));
            }
        }
    }
}
