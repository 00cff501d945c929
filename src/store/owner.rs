//! Who holds a refresh lease, written so that another process on the same
//! machine can tell whether the holder is still alive.
//!
//! A lease outlives its refresh only when its holder died holding it (a
//! `kill -9`, an OOM kill, a power cut); everyone else then waits for it to
//! expire: 3 × the provider timeout + 10 s, 70 s at the defaults, during
//! which the grant cannot be refreshed. So the owner names its process:
//! machine (host name, `/etc/machine-id`, boot id where readable), PID
//! namespace, PID and the process's start time (`/proc/PID/stat`). A lease whose owner is on this
//! machine, in this PID namespace, and provably gone (no such PID, a
//! zombie, or the PID now belongs to a process started at another time)
//! may be taken over at once. Anything less than proof (another machine,
//! another namespace, a process this one may not look at, an owner written
//! by an older tokend) leaves the lease to expire as before.

use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::process::Pid;

/// What identifies this machine and PID namespace; the same for every
/// process that shares them.
fn this_machine() -> &'static str {
    static MACHINE: OnceLock<String> = OnceLock::new();
    MACHINE.get_or_init(|| {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        // Unreadable under systemd's ProcSubset=pid: then "-" for every
        // process of the service alike.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_else(|_| "-".into());
        let pidns = rustix::fs::stat("/proc/self/ns/pid").map_or(0, |st| st.st_ino);
        format!(
            "host={} machine={} boot={} pidns={pidns}",
            field(&host),
            field(machine.trim()),
            field(boot.trim())
        )
    })
}

/// A value without the separators the owner text uses.
fn field(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c == '=' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The owner text for a store opened by this process: its machine, PID and
/// start time, and `nonce`, which tells two stores of one process apart.
pub fn this_process(nonce: u32) -> String {
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or(0);
    format!(
        "v1 {} pid={pid} start={start} n={nonce:08x}",
        this_machine()
    )
}

/// Whether the process that wrote `owner` is provably not alive: it ran on
/// this machine and PID namespace, and its PID is gone, a zombie, or
/// another process's.
pub fn is_provably_dead(owner: &str) -> bool {
    let Some(rest) = owner.strip_prefix("v1 ") else {
        return false;
    };
    let machine = this_machine();
    // Its machine and namespace must be exactly ours, and known.
    let same_machine = rest
        .strip_prefix(machine)
        .is_some_and(|r| r.starts_with(' '));
    if !same_machine || machine.starts_with("host= ") || machine.ends_with("pidns=0") {
        return false;
    }
    let value = |key: &str| {
        rest.split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (Some(pid), Some(start)) = (value("pid"), value("start")) else {
        return false;
    };
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    // EPERM (not ours to signal) means it exists, like success.
    if let Err(Errno::SRCH) = rustix::process::test_kill_process(pid) {
        return true;
    }
    match proc_stat(pid.as_raw_pid() as u32) {
        // Its PID was given to a process started later: the owner is gone.
        Some((state, started)) => state == 'Z' || state == 'X' || (start != 0 && started != start),
        // Hidden from us (another user's process under ProtectProc=): no proof.
        None => false,
    }
}

/// When process `pid` started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// The state and start time of process `pid` (`/proc/PID/stat` fields 3
/// and 22). The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from its closing parenthesis.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owner text like `this_process` writes, for another PID and start.
    fn owner(pid: u32, start: u64) -> String {
        format!("v1 {} pid={pid} start={start} n=00000001", this_machine())
    }

    #[test]
    fn this_process_is_alive() {
        let me = this_process(7);
        assert!(me.contains(&format!("pid={} ", std::process::id())), "{me}");
        assert!(start_time(std::process::id()).unwrap() > 0);
        assert!(!is_provably_dead(&me));
    }

    #[test]
    fn a_reaped_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        assert!(is_provably_dead(&owner(pid, start)));
    }

    #[test]
    fn a_pid_given_to_a_later_process_is_dead() {
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        assert!(is_provably_dead(&owner(pid, start + 1)));
        assert!(!is_provably_dead(&owner(pid, start)));
    }

    #[test]
    fn without_proof_the_lease_is_left_to_expire() {
        let pid = 999_999_999u32;
        let elsewhere = owner(pid, 1).replace("host=", "host=elsewhere-");
        assert!(!is_provably_dead(&elsewhere), "another machine");
        let other_ns = owner(pid, 1).replace("pidns=", "pidns=1");
        assert!(!is_provably_dead(&other_ns), "another PID namespace");
        assert!(
            !is_provably_dead("pid123-0000abcd"),
            "an older tokend's owner"
        );
        assert!(!is_provably_dead("v1 garbage"));
    }
}
