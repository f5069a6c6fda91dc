//! `tcpdump` on one end of the veth pair: what crossed between the two
//! namespaces, byte for byte, to look for data that must not be there.
//!
//! A capture is ready once tcpdump says it is listening (not after a sleep),
//! and read back once a known last packet is in the file, so every packet
//! sent before that one is in it too.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running capture of TCP on device `dev` in namespace `ns`, to a file.
pub struct Capture {
    tcpdump: Child,
    pcap: PathBuf,
}

/// Whether `needle` occurs anywhere in `wire`.
pub fn seen_in(wire: &[u8], needle: &str) -> bool {
    wire.windows(needle.len()).any(|w| w == needle.as_bytes())
}

impl Capture {
    /// Starts tcpdump (ended by `timeout` after two minutes whatever
    /// happens, and after 5000 packets) and returns once it is listening.
    pub fn start(ns: &str, dev: &str) -> Capture {
        let pcap = std::env::temp_dir().join(format!("weir-capture-{ns}-{dev}.pcap"));
        let mut tcpdump = Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "120", "tcpdump"])
            .args([
                "-i",
                dev,
                "--immediate-mode",
                "-U",
                "-n",
                "-s",
                "0",
                "-c",
                "5000",
                "-w",
            ])
            .arg(&pcap)
            .arg("tcp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(tcpdump.stderr.take().unwrap());
        let mut line = String::new();
        // tcpdump writes a line or two before this one; each read returns a
        // line or the end of the stream, so the loop ends either way.
        while !line.contains("listening on") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "tcpdump ended before capturing"
            );
        }
        Capture { tcpdump, pcap }
    }

    /// Waits (up to 20 s) until `last` is in the file, then stops tcpdump
    /// and returns everything it captured.
    pub fn finish_after(mut self, last: &str) -> Vec<u8> {
        let until = Instant::now() + Duration::from_secs(20);
        while !seen_in(&std::fs::read(&self.pcap).unwrap_or_default(), last) {
            assert!(Instant::now() < until, "the capture never showed {last:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        std::fs::read(&self.pcap).unwrap()
    }

    fn stop(&mut self) {
        // SAFETY: kill with the pid of a child this process spawned and has
        // not reaped; SIGTERM lets tcpdump finish the file.
        unsafe { libc::kill(self.tcpdump.id() as i32, libc::SIGTERM) };
        let _ = self.tcpdump.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.tcpdump.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        std::fs::remove_file(&self.pcap).ok();
    }
}
