//! Network namespaces for the tests that need two hosts: two namespaces
//! joined by a veth pair, removed on drop, and threads that run inside one;
//! a capture of what crosses the veth ([`capture`]) and the sidecar binary
//! run inside a namespace ([`process`]).

#![allow(unsafe_code, dead_code, unreachable_pub)]

pub mod capture;
pub mod process;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

pub fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("network-namespace test cannot run under CI: {reason}");
    }
    eprintln!("skipping network-namespace test: {reason}");
    true
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn run(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces and a veth pair, removed on drop.
pub struct Net {
    pub pod: String,
    pub peer: String,
    pub pod_ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
    /// The pod's end of the veth pair.
    pub pod_dev: String,
}

impl Net {
    pub fn create() -> Result<Net, String> {
        let id = fastrand::u32(1000..9999);
        let subnet = fastrand::u8(1..250);
        let net = Net {
            pod: format!("weirpod{id}"),
            peer: format!("weirpeer{id}"),
            pod_ip: Ipv4Addr::new(10, 231, subnet, 1),
            peer_ip: Ipv4Addr::new(10, 231, subnet, 2),
            pod_dev: format!("wv{id}a"),
        };
        let (va, vb) = (format!("wv{id}a"), format!("wv{id}b"));
        run(&["ip", "netns", "add", &net.pod])?;
        run(&["ip", "netns", "add", &net.peer])?;
        run(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ])?;
        run(&["ip", "link", "set", &va, "netns", &net.pod])?;
        run(&["ip", "link", "set", &vb, "netns", &net.peer])?;
        for (ns, dev, ip) in [(&net.pod, &va, net.pod_ip), (&net.peer, &vb, net.peer_ip)] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.pod]);
        let _ = run(&["ip", "netns", "del", &self.peer]);
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}")).expect("namespace file");
    // SAFETY: setns with a valid, open namespace fd affects only the calling
    // thread (a thread of its own, spawned for this); the fd outlives the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("namespace thread")
}
