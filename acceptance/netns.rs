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

/// A libvirt daemon of a test's own, running inside a namespace (`ip netns exec`) and in a
/// private mount namespace of its own, as `scripts/libvirt.sh --second` starts one: private
/// /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and a copy of
/// /etc/libvirt, all under a temporary directory, and its own socket directory there. With
/// `network = "bridge"` the provider creates the TAP in its own network namespace and
/// libvirtd opens it for QEMU: the daemon has to live in the provider's namespace. QEMU runs
/// as libvirt's unprivileged user, as scripts/libvirt.sh leaves it.
///
/// Dropping it destroys any domain left, stops libvirtd and virtlogd by their pid files and
/// removes the directory.
#[derive(Debug)]
pub struct Libvirtd {
    /// `qemu+unix:///system?socket=…`: where the daemon answers.
    pub uri: String,
    dir: std::path::PathBuf,
}

impl Libvirtd {
    /// Starts a daemon in `ns` and waits (bounded) until it answers; `None`, with the reason
    /// printed, when libvirt is not installed (`scripts/libvirt.sh` installs it).
    pub fn start(ns: &Netns) -> Option<Libvirtd> {
        let missing: Vec<&str> =
            ["libvirtd", "virtlogd", "virsh", "unshare"].into_iter().filter(|p| !installed(p)).collect();
        if !missing.is_empty() {
            println!("skipped: {} not installed (scripts/libvirt.sh installs libvirt)", missing.join(", "));
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "sdsec-libvirtd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "lib", "cache", "log", "sock"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the daemon's directories");
        }
        let daemon =
            Libvirtd { uri: format!("qemu+unix:///system?socket={}", dir.join("sock/libvirt-sock").display()), dir };
        daemon.configure();

        let log = std::fs::File::create(daemon.dir.join("start.log")).expect("start.log");
        let status = ns
            .command("unshare")
            .args(["-m", "--propagation", "private", "sh", "-euc"])
            .arg(
                r#"d="$1"
                mount --bind "$d/run" /run/libvirt
                mount --bind "$d/lib" /var/lib/libvirt
                mount --bind "$d/cache" /var/cache/libvirt
                mount --bind "$d/log" /var/log/libvirt
                mount --bind "$d/etc" /etc/libvirt
                virtlogd -d -p "$d/sock/virtlogd.pid"
                libvirtd -d -f /etc/libvirt/libvirtd.conf -p "$d/sock/libvirtd.pid""#,
            )
            .arg("sh")
            .arg(&daemon.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("start.log"))
            .stderr(log)
            .status()
            .expect("run unshare");
        assert!(status.success(), "libvirtd did not start in {}: {}", ns.name, daemon.logs());

        // Bounded: the daemon probes QEMU's capabilities at its first start.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.virsh(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "libvirtd does not answer on {} after 60 s: {}",
                daemon.uri,
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(daemon)
    }

    /// The private copy of /etc/libvirt, with what sdsec's libvirt backend needs whatever the
    /// machine's copy holds (`scripts/libvirt.sh` sets the same): QEMU as root with the owners
    /// of files left alone, no security driver, /dev/net/tun in QEMU's /dev (it opens the TAP
    /// by name); the daemon's own socket directory and log file; no network autostarted.
    fn configure(&self) {
        let etc = self.dir.join("etc");
        let copied = Command::new("cp").arg("-a").arg("/etc/libvirt").arg(&etc).status().expect("run cp");
        assert!(copied.success(), "cannot copy /etc/libvirt to {}", etc.display());
        let set = |file: &str, settings: &[(&str, String)]| {
            let path = etc.join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| {
                    !settings.iter().any(|(key, _)| {
                        l.trim_start().strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('='))
                    })
                })
                .map(str::to_owned)
                .collect();
            lines.extend(settings.iter().map(|(key, value)| format!("{key} = {value}")));
            std::fs::write(&path, lines.join("\n") + "\n").expect("write the daemon's configuration");
        };
        set("qemu.conf", &[("security_driver", "\"none\"".into())]);
        set(
            "libvirtd.conf",
            &[
                ("unix_sock_dir", format!("\"{}\"", self.dir.join("sock").display())),
                ("log_outputs", "\"3:file:/var/log/libvirt/libvirtd.log\"".into()),
            ],
        );
        if let Ok(links) = std::fs::read_dir(etc.join("qemu/networks/autostart")) {
            for link in links.flatten() {
                let _ = std::fs::remove_file(link.path());
            }
        }
    }

    /// `virsh -c URI args`, whatever its status (the socket is a path: any namespace reaches it).
    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new("virsh").args(["-c", &self.uri]).args(args).stdin(Stdio::null()).output().expect("run virsh")
    }

    /// Names of the daemon's domains, running or not.
    pub fn domains(&self) -> Vec<String> {
        let out = self.virsh(&["list", "--all", "--name"]);
        assert!(out.status.success(), "virsh list failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// What the start and the daemon's log say, for a failure message.
    pub fn logs(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.dir.join(p)).unwrap_or_default();
        format!("\n--- start\n{}\n--- libvirtd.log (last lines)\n{}", read("start.log"), {
            let log = read("log/libvirtd.log");
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        })
    }

    fn stop(&self, daemon: &str) {
        let Some(pid) = std::fs::read_to_string(self.dir.join(format!("sock/{daemon}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return;
        };
        let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid);
        let _ = Command::new("kill").arg(pid.to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        // Domains left by a failed test or destroy: their QEMU would keep the mounts alive.
        // Nothing here may panic: this runs while a failed test unwinds.
        let virsh = |args: &[&str]| {
            Command::new("virsh").args(["-c", &self.uri]).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output()
        };
        if let Ok(out) = virsh(&["list", "--all", "--name"]) {
            for name in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()) {
                let _ = virsh(&["destroy", name]);
                let _ = virsh(&["undefine", name]);
            }
        }
        self.stop("libvirtd");
        self.stop("virtlogd");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(std::path::PathBuf::from))
        .any(|dir| dir.join(program).is_file())
}

/// A daemonized process is no child of the test: once dead it is reaped by init, but check.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}
