//! The real `tokend` binary as a child process: start, find its address in
//! its log, SIGTERM or SIGKILL it, read what it logged.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fake_provider::FakeProvider;
use crate::helpers::test_config_toml;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokend");

pub struct Daemon {
    child: Child,
    pub url: String,
    pub key: String,
    logs: Arc<Mutex<String>>,
}

/// Writes the test configuration (both providers on `fake`) into `dir`.
pub fn write_config(dir: &Path, fake: &FakeProvider, extra: &str) -> PathBuf {
    let path = dir.join("tokend.toml");
    std::fs::write(&path, test_config_toml(dir, fake, extra)).unwrap();
    path
}

/// Runs a CLI command to completion: (exit status, stdout, stderr).
pub fn cli(config: &Path, args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Daemon {
    /// Starts `tokend serve` and waits until it listens (not yet ready).
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(Command::new(BIN), config, env)
    }

    /// [`Daemon::start`] with the open-file limit (soft and hard) at `nofile`.
    pub fn start_with_open_files(config: &Path, nofile: u32) -> Daemon {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(BIN);
        Daemon::spawn(command, config, &[])
    }

    fn spawn(mut command: Command, config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            // Drain stderr for the daemon's whole life so it never blocks on a full pipe.
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                    && let Some(a) = v["address"].as_str()
                {
                    let _ = addr_tx.send(a.to_owned());
                }
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("tokend did not start:\n{}", logs.lock().unwrap());
            }
        };
        let dir = config.parent().unwrap();
        let key = std::fs::read_to_string(dir.join("client.key")).unwrap_or_default();
        Daemon {
            child,
            url: format!("http://{addr}"),
            key: key.trim().to_owned(),
            logs,
        }
    }

    /// Starts `tokend serve` and waits until `/readyz` answers 200.
    pub async fn start_ready(config: &Path) -> Daemon {
        let daemon = Daemon::start(config, &[]);
        daemon.wait_ready().await;
        daemon
    }

    /// [`Daemon::sigterm`] from an async test, waited for off the runtime.
    pub async fn stop(self) -> (ExitStatus, String) {
        tokio::task::spawn_blocking(move || self.sigterm())
            .await
            .unwrap()
    }

    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("tokend never became ready:\n{}", self.logs());
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (up to 30 s) for the exit.
    pub fn sigterm(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the drain thread a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.logs());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tokend ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
