//! `sidecar init-iptables`: the `nat` rules that make a pod's traffic pass
//! through the sidecar, as the init containers of established meshes write them
//! (Linkerd's proxy-init, Istio's istio-iptables).
//!
//! ```text
//! PREROUTING ─▶ WEIR_INBOUND:  skipped ports (admin, configured) RETURN
//!                              everything else REDIRECT → inbound port
//! OUTPUT ─────▶ WEIR_OUTPUT:   the proxy's own uid RETURN   (no loops)
//!                              loopback RETURN              (explicit mode, local calls)
//!                              skipped ports RETURN
//!                              everything else REDIRECT → outbound port
//! ```
//!
//! Running it again replaces the chains' rules instead of adding duplicates.

use std::fmt;
use std::process::Command;

/// The rule set's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesOptions {
    /// The sidecar's inbound port (redirect target of incoming traffic).
    pub inbound_port: u16,
    /// The sidecar's outbound port (redirect target of outgoing traffic).
    pub outbound_port: u16,
    /// The uid the sidecar runs as; its own connections are never redirected.
    pub proxy_uid: u32,
    /// The sidecar's admin port: probes and scrapes reach it directly.
    pub admin_port: u16,
    /// Incoming ports not redirected (e.g. `22`).
    pub skip_inbound_ports: Vec<u16>,
    /// Outgoing destination ports not redirected (e.g. `443` to an external API).
    pub skip_outbound_ports: Vec<u16>,
    /// Write the inbound rules.
    pub inbound: bool,
    /// Write the outbound rules.
    pub outbound: bool,
    /// The iptables binary (`iptables`, `iptables-legacy`, `ip6tables`).
    pub binary: String,
}

impl Default for IptablesOptions {
    fn default() -> Self {
        IptablesOptions {
            inbound_port: 4143,
            outbound_port: 4140,
            proxy_uid: 2102,
            admin_port: 4191,
            skip_inbound_ports: Vec::new(),
            skip_outbound_ports: Vec::new(),
            inbound: true,
            outbound: true,
            binary: "iptables".into(),
        }
    }
}

/// One iptables invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Arguments after the binary name.
    pub args: Vec<String>,
    /// Failure is expected and harmless (creating a chain that exists, removing
    /// a jump that is not there).
    pub may_fail: bool,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.args.join(" "))
    }
}

/// Applying the rules failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("cannot run {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{binary} {rule}` failed: {stderr}")]
    Failed {
        binary: String,
        rule: String,
        stderr: String,
    },
}

/// The inbound chain.
pub const INBOUND_CHAIN: &str = "WEIR_INBOUND";
/// The outbound chain.
pub const OUTPUT_CHAIN: &str = "WEIR_OUTPUT";

fn rule(may_fail: bool, args: &[&str]) -> Rule {
    let mut all = vec!["-w".to_owned(), "-t".to_owned(), "nat".to_owned()];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    Rule {
        args: all,
        may_fail,
    }
}

/// The rules for `opts`, in the order they must run.
pub fn rules(opts: &IptablesOptions) -> Vec<Rule> {
    let mut out = Vec::new();
    let chain = |out: &mut Vec<Rule>, name: &str, hook: &str| {
        // Remove our jump and chain first, so a rerun starts clean.
        out.push(rule(true, &["-D", hook, "-p", "tcp", "-j", name]));
        out.push(rule(true, &["-F", name]));
        out.push(rule(true, &["-X", name]));
        out.push(rule(false, &["-N", name]));
    };
    if opts.inbound {
        chain(&mut out, INBOUND_CHAIN, "PREROUTING");
        let mut skip = vec![opts.admin_port];
        skip.extend(&opts.skip_inbound_ports);
        skip.sort_unstable();
        skip.dedup();
        for port in skip {
            let p = port.to_string();
            out.push(rule(
                false,
                &[
                    "-A",
                    INBOUND_CHAIN,
                    "-p",
                    "tcp",
                    "--dport",
                    &p,
                    "-j",
                    "RETURN",
                ],
            ));
        }
        let to = opts.inbound_port.to_string();
        out.push(rule(
            false,
            &[
                "-A",
                INBOUND_CHAIN,
                "-p",
                "tcp",
                "-j",
                "REDIRECT",
                "--to-ports",
                &to,
            ],
        ));
        out.push(rule(
            false,
            &["-A", "PREROUTING", "-p", "tcp", "-j", INBOUND_CHAIN],
        ));
    }
    if opts.outbound {
        chain(&mut out, OUTPUT_CHAIN, "OUTPUT");
        let uid = opts.proxy_uid.to_string();
        out.push(rule(
            false,
            &[
                "-A",
                OUTPUT_CHAIN,
                "-m",
                "owner",
                "--uid-owner",
                &uid,
                "-j",
                "RETURN",
            ],
        ));
        out.push(rule(
            false,
            &["-A", OUTPUT_CHAIN, "-o", "lo", "-j", "RETURN"],
        ));
        let loopback = if opts.binary.contains("ip6tables") {
            "::1/128"
        } else {
            "127.0.0.0/8"
        };
        out.push(rule(
            false,
            &["-A", OUTPUT_CHAIN, "-d", loopback, "-j", "RETURN"],
        ));
        let mut skip = opts.skip_outbound_ports.clone();
        skip.sort_unstable();
        skip.dedup();
        for port in skip {
            let p = port.to_string();
            out.push(rule(
                false,
                &[
                    "-A",
                    OUTPUT_CHAIN,
                    "-p",
                    "tcp",
                    "--dport",
                    &p,
                    "-j",
                    "RETURN",
                ],
            ));
        }
        let to = opts.outbound_port.to_string();
        out.push(rule(
            false,
            &[
                "-A",
                OUTPUT_CHAIN,
                "-p",
                "tcp",
                "-j",
                "REDIRECT",
                "--to-ports",
                &to,
            ],
        ));
        out.push(rule(
            false,
            &["-A", "OUTPUT", "-p", "tcp", "-j", OUTPUT_CHAIN],
        ));
    }
    out
}

/// Runs the rules (or, with `dry_run`, prints them), writing progress to `log`.
pub fn apply(
    opts: &IptablesOptions,
    dry_run: bool,
    log: &mut dyn std::io::Write,
) -> Result<(), IptablesError> {
    for r in rules(opts) {
        let _ = writeln!(log, "{} {r}", opts.binary);
        if dry_run {
            continue;
        }
        let out = Command::new(&opts.binary)
            .args(&r.args)
            .output()
            .map_err(|source| IptablesError::Spawn {
                binary: opts.binary.clone(),
                source,
            })?;
        if !out.status.success() && !r.may_fail {
            return Err(IptablesError::Failed {
                binary: opts.binary.clone(),
                rule: r.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(opts: &IptablesOptions) -> Vec<String> {
        rules(opts).iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn default_rules_redirect_both_ways_and_skip_the_proxy() {
        let t = text(&IptablesOptions::default());
        assert!(t.contains(&"-w -t nat -N WEIR_INBOUND".to_owned()));
        assert!(t.contains(&"-w -t nat -A WEIR_INBOUND -p tcp --dport 4191 -j RETURN".to_owned()));
        assert!(
            t.contains(&"-w -t nat -A WEIR_INBOUND -p tcp -j REDIRECT --to-ports 4143".to_owned())
        );
        assert!(t.contains(&"-w -t nat -A PREROUTING -p tcp -j WEIR_INBOUND".to_owned()));
        let uid = t
            .iter()
            .position(|r| r.contains("--uid-owner 2102 -j RETURN"))
            .unwrap();
        let lo = t
            .iter()
            .position(|r| r.contains("-o lo -j RETURN"))
            .unwrap();
        let redirect = t
            .iter()
            .position(|r| r.ends_with("-A WEIR_OUTPUT -p tcp -j REDIRECT --to-ports 4140"))
            .unwrap();
        assert!(
            uid < redirect && lo < redirect,
            "exclusions come before the redirect"
        );
        assert_eq!(
            t.last().unwrap(),
            "-w -t nat -A OUTPUT -p tcp -j WEIR_OUTPUT"
        );
    }

    #[test]
    fn skipped_ports_and_directions() {
        let opts = IptablesOptions {
            skip_inbound_ports: vec![22, 22],
            skip_outbound_ports: vec![443],
            outbound: true,
            inbound: false,
            ..IptablesOptions::default()
        };
        let t = text(&opts);
        assert!(!t.iter().any(|r| r.contains("WEIR_INBOUND")));
        assert!(t.contains(&"-w -t nat -A WEIR_OUTPUT -p tcp --dport 443 -j RETURN".to_owned()));
        let opts = IptablesOptions {
            skip_inbound_ports: vec![22, 22],
            outbound: false,
            ..IptablesOptions::default()
        };
        let t = text(&opts);
        assert_eq!(t.iter().filter(|r| r.contains("--dport 22 ")).count(), 1);
        assert!(!t.iter().any(|r| r.contains("WEIR_OUTPUT")));
    }

    #[test]
    fn ip6tables_uses_the_ipv6_loopback() {
        let opts = IptablesOptions {
            binary: "ip6tables".into(),
            ..IptablesOptions::default()
        };
        let t = text(&opts);
        assert!(t.contains(&"-w -t nat -A WEIR_OUTPUT -d ::1/128 -j RETURN".to_owned()));
        assert!(!t.iter().any(|r| r.contains("127.0.0.0/8")));
    }

    #[test]
    fn dry_run_prints_without_running() {
        let opts = IptablesOptions {
            binary: "/nonexistent/iptables".into(),
            ..IptablesOptions::default()
        };
        let mut out = Vec::new();
        apply(&opts, true, &mut out).unwrap();
        let printed = String::from_utf8(out).unwrap();
        assert_eq!(printed.lines().count(), rules(&opts).len());
        assert!(printed.starts_with("/nonexistent/iptables -w -t nat -D PREROUTING"));
        assert!(apply(&opts, false, &mut Vec::new()).is_err());
    }
}
