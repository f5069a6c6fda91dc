//! The sidecar binary run in a namespace, as a pod runs it: `sidecar run
//! --config FILE`, optionally as another uid (the one the pod's iptables
//! rules exempt from redirection).
//!
//! It is ready when it logs `sidecar serving`, which it does after binding
//! every listener; the test waits for that line instead of polling a port.
//! Its log is read to the end on a thread of its own, so the pipe never
//! fills and blocks it; what it wrote before serving explains a failure to
//! start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a sidecar may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running sidecar process, killed on drop.
pub struct SidecarProcess {
    child: Child,
}

impl SidecarProcess {
    /// Starts `sidecar run --config <config>` in namespace `ns`, as `uid`
    /// (and the same gid, no supplementary groups) when given, and returns
    /// once it serves.
    pub fn start(ns: &str, config: &Path, uid: Option<u32>) -> SidecarProcess {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        if let Some(uid) = uid {
            cmd.arg("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups");
        }
        let mut child = cmd
            .arg(env!("CARGO_BIN_EXE_sidecar"))
            .args(["run", "--config"])
            .arg(config)
            .env("WEIR_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        // Nobody waits any more: keep draining the pipe.
                        continue;
                    }
                }
            });
        }
        drop(tx);
        let until = Instant::now() + START_TIMEOUT;
        let mut log = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("sidecar serving") => break,
                Ok(line) => log.push(line),
                Err(e) => panic!(
                    "the sidecar in {ns} did not start ({e}); its log:\n{}",
                    log.join("\n")
                ),
            }
        }
        SidecarProcess { child }
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
