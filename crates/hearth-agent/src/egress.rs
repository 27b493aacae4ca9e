//! Opt-in outbound network (`network: egress`): the instance's namespace gets `eth0`, one end
//! of a veth pair whose other end (`hh<n>`) stays on the host, a /30 of its own out of
//! [`SUBNET`], and a default route through the host, which masquerades the traffic to its
//! uplink (nftables table `ip hearth`). Instances cannot reach one another (forwarding
//! between two `hh*` links is dropped), nor the host itself on any of its addresses (input
//! from `hh*` is dropped, so a host service bound to 0.0.0.0 is out of reach), nor private,
//! shared, link-local (the cloud metadata address), loopback, multicast or reserved
//! destinations beyond it ([`BLOCKED`]); the one exception is DNS to the resolvers the
//! host's `/etc/resolv.conf` names.
//!
//! The plumbing uses the iproute2 and nftables command-line tools. It runs on the network
//! pool's thread, ahead of time, so the few milliseconds it takes are off the request path.
//! The kernel removes a veth pair with its namespace, so nothing is left behind when an
//! instance or the server dies; forwarding and the nftables table are shared by every Hearth
//! server on the machine (`egress_nat.rs`): replaced, identically, at each server's first
//! egress instance, and removed when the last server using them stops.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::egress_nat::NatUse;

/// The addresses instances with egress get, one /30 each (host end .1, instance .2).
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 0);
pub const SUBNET_PREFIX: u8 = 16;
const LINKS: u32 = 1 << (32 - SUBNET_PREFIX - 2);
/// Name prefix of the host ends.
pub const HOST_IF_PREFIX: &str = "hh";

/// One instance's link to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressLink {
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    pub instance_addr: Ipv4Addr,
}

impl EgressLink {
    fn for_index(n: u32) -> Self {
        let base = u32::from(SUBNET) + n * 4;
        Self {
            host_if: format!("{HOST_IF_PREFIX}{n}"),
            host_addr: Ipv4Addr::from(base + 1),
            instance_addr: Ipv4Addr::from(base + 2),
        }
    }
}

/// Hands out links. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Egress {
    next: Arc<AtomicU32>,
    /// This pool's hold on forwarding and the NAT table, taken at its first egress link.
    nat: Arc<OnceLock<Result<NatUse, String>>>,
}

impl Default for Egress {
    fn default() -> Self {
        // Servers on one machine start at different links; one another holds is skipped.
        let start = std::process::id().wrapping_mul(7_919) % LINKS;
        Self { next: Arc::new(AtomicU32::new(start)), nat: Arc::default() }
    }
}

fn tool(name: &str) -> String {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// Runs `program args` with `input` on stdin; the error carries its stderr.
pub(crate) fn run(program: &str, args: &[&str], input: &str) -> std::io::Result<()> {
    let path = tool(program);
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_clear()
        .spawn()
        .map_err(|e| {
            let package = if program == "nft" { "nftables" } else { "iproute2" };
            std::io::Error::new(e.kind(), format!("network egress needs {program} ({path}: {e}); install {package}"))
        })?;
    child.stdin.take().expect("stdin is piped").write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Destinations beyond the host that an instance with egress may not reach.
pub const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// The IPv4 name servers of a `resolv.conf`.
fn resolvers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .collect()
}

fn nat_rules(resolvers: &[Ipv4Addr]) -> String {
    let blocked = BLOCKED.join(", ");
    let dns = if resolvers.is_empty() {
        String::new()
    } else {
        let set = resolvers.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
        format!(
            "iifname \"{HOST_IF_PREFIX}*\" ip daddr {{ {set} }} udp dport 53 accept;\n\
             iifname \"{HOST_IF_PREFIX}*\" ip daddr {{ {set} }} tcp dport 53 accept;\n"
        )
    };
    format!(
        "add table ip hearth\ndelete table ip hearth\ntable ip hearth {{\n\
         chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
         ip saddr {SUBNET}/{SUBNET_PREFIX} oifname != \"{HOST_IF_PREFIX}*\" masquerade; }}\n\
         chain input {{ type filter hook input priority filter; policy accept;\n\
         iifname \"{HOST_IF_PREFIX}*\" drop; }}\n\
         chain forward {{ type filter hook forward priority filter; policy accept;\n\
         iifname \"{HOST_IF_PREFIX}*\" oifname \"{HOST_IF_PREFIX}*\" drop;\n\
         {dns}iifname \"{HOST_IF_PREFIX}*\" ip daddr {{ {blocked} }} drop; }}\n}}\n"
    )
}

impl Egress {
    /// Forwarding on and the NAT table in place, once per pool.
    fn ensure_nat(&self) -> std::io::Result<()> {
        let done = self.nat.get_or_init(|| {
            let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            NatUse::acquire(&nat_rules(&resolvers(&resolv_conf)))
        });
        done.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.clone()))
    }

    /// Links the namespace `ns` to the host. Called from a thread in the host namespace
    /// `host`; it enters `ns` to configure the inner end and returns to `host`.
    pub fn attach(&self, host: &OwnedFd, ns: &OwnedFd) -> std::io::Result<EgressLink> {
        use nix::sched::{CloneFlags, setns};
        self.ensure_nat()?;
        let ns_path = format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd());
        let mut link = None;
        for _ in 0..LINKS.min(256) {
            let candidate = EgressLink::for_index(self.next.fetch_add(1, Ordering::Relaxed) % LINKS);
            let EgressLink { host_if, host_addr, .. } = &candidate;
            let script = format!(
                "link add {host_if} type veth peer name eth0 netns {ns_path}\n\
                 addr add {host_addr}/30 dev {host_if}\nlink set {host_if} up\n"
            );
            match run("ip", &["-batch", "-"], &script) {
                Ok(()) => {
                    link = Some(candidate);
                    break;
                }
                // Another server (or a namespace still being torn down) holds that link.
                Err(e) if e.to_string().contains("File exists") => {}
                Err(e) => return Err(e),
            }
        }
        let link = link.ok_or_else(|| std::io::Error::other("no free egress address: every link is taken"))?;
        let inner = format!(
            "addr add {}/30 dev eth0\nlink set eth0 up\nroute add default via {}\n",
            link.instance_addr, link.host_addr
        );
        setns(ns, CloneFlags::CLONE_NEWNET)?;
        let configured = run("ip", &["-batch", "-"], &inner);
        setns(host, CloneFlags::CLONE_NEWNET)?;
        configured?;
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_disjoint_slash_30s() {
        let a = EgressLink::for_index(0);
        assert_eq!((a.host_addr, a.instance_addr), (Ipv4Addr::new(10, 211, 0, 1), Ipv4Addr::new(10, 211, 0, 2)));
        let b = EgressLink::for_index(LINKS - 1);
        assert_eq!(b.instance_addr, Ipv4Addr::new(10, 211, 255, 254));
        assert!(b.host_if.len() <= 15, "interface names are at most 15 bytes");
    }

    #[test]
    fn rules_keep_instances_off_the_host_and_private_ranges_except_dns() {
        let conf = "# comment\nnameserver 10.0.0.2\nnameserver ::1\nsearch example\nnameserver 192.168.1.1\n";
        assert_eq!(resolvers(conf), [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(192, 168, 1, 1)]);
        let rules = nat_rules(&resolvers(conf));
        assert!(rules.contains("hook input") && rules.contains("iifname \"hh*\" drop;"), "{rules}");
        for range in ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"] {
            assert!(rules.contains(range), "{range} blocked: {rules}");
        }
        let dns = rules.find("udp dport 53 accept").unwrap();
        assert!(dns < rules.find("10.0.0.0/8").unwrap(), "DNS to the resolvers is accepted before the drop");
        assert!(!nat_rules(&[]).contains("dport 53"));
    }
}
