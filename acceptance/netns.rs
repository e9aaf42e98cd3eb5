//! Network namespaces for the networking tests: a "hypervisor host" namespace where
//! Terraform, the provider and QEMU run, and client namespaces joined to it by veth pairs,
//! addressed in the benchmarking range 198.18.0.0/15 (client `i` is 198.18.i.2, its link's
//! end in the host 198.18.i.1). Tests send traffic only to addresses inside these
//! namespaces.
//!
//! Each namespace is a guard: dropping it (also while a failed test unwinds) kills every
//! process left in it and deletes it, which removes its links, bridge and nftables tables.
//! Names hold the test process's id and a counter, so tests running at once never clash.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with `lo` up; `role` goes into its name.
    pub fn create(role: &str) -> Netns {
        let name = format!("sdsec-{role}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `program` with `args`, to run inside the namespace (`ip netns exec NAME program args`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program args` inside the namespace and returns its output, whatever its status.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).stdin(Stdio::null()).output().expect("run ip netns exec")
    }

    /// Runs `program args` inside the namespace, which must succeed; returns its standard output.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.output(program, args);
        assert!(
            out.status.success(),
            "in {}: {program} {} failed: {}{}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NAME args`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Processes running in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.name]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    /// Names of the namespace's links (without the `@peer` suffix).
    pub fn links(&self) -> Vec<String> {
        let text = self.ip(&["-o", "link", "show"]);
        text.lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // QEMU and servers left behind (a failed test, a failed destroy) die with the namespace.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client namespace and its link to the host namespace.
#[derive(Debug)]
pub struct Client {
    pub ns: Netns,
    /// The client's address, 198.18.i.2.
    pub addr: Ipv4Addr,
    /// The host's end of the link, 198.18.i.1: where the client reaches published ports.
    pub host_addr: Ipv4Addr,
}

/// The hypervisor host namespace and its clients. The host is dropped first, which
/// removes the veth pairs; then the clients.
#[derive(Debug)]
pub struct Topology {
    pub hv: Netns,
    pub clients: Vec<Client>,
}

impl Topology {
    /// A host namespace and `clients` client namespaces (1-based: client `i` is on
    /// 198.18.i.0/24), each with a default route through the host.
    pub fn new(clients: u8) -> Topology {
        let hv = Netns::create("hv");
        let mut topology = Topology { hv, clients: Vec::new() };
        for i in 1..=clients {
            let ns = Netns::create(&format!("c{i}"));
            let (host_addr, addr) = (Ipv4Addr::new(198, 18, i, 1), Ipv4Addr::new(198, 18, i, 2));
            let host_link = format!("cl{i}");
            // Created inside the host namespace with its peer moved at once: no name ever
            // exists in the namespace the tests run in.
            topology.hv.ip(&["link", "add", &host_link, "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
            topology.hv.ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_link]);
            topology.hv.ip(&["link", "set", &host_link, "up"]);
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["route", "add", "default", "via", &host_addr.to_string()]);
            topology.clients.push(Client { ns, addr, host_addr });
        }
        topology
    }

    /// Client `i`, 1-based.
    pub fn client(&self, i: usize) -> &Client {
        &self.clients[i - 1]
    }
}

/// A process started in a namespace, killed on drop.
#[derive(Debug)]
pub struct Background {
    child: std::process::Child,
}

impl Background {
    /// Starts the example API in `ns` listening on `listen`, and waits until it is bound.
    pub fn example_api(ns: &Netns, app: &std::path::Path, listen: &str) -> Background {
        use std::io::BufRead;
        let mut child = ns
            .command(app)
            .args(["--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example API");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("its first line");
        let started = Background { child };
        assert!(line.starts_with("listening on"), "the example API in {} did not start: {line:?}", ns.name);
        started
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // `ip netns exec` execs the program, so this is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
