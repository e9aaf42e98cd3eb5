//! A libvirt daemon standing for another host: its own network namespace, reached over a
//! veth link at an address of its own, and its own mount namespace with private
//! /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt, /etc/libvirt, /run and /tmp, so
//! that it sees nothing of the provider's state (which the tests keep under /tmp), and its
//! own PID namespace, whose first process it is: ending it ends every process it started.
//! It listens on TLS with certificates made for the test; the client's are in `pkipath`.
//! Everything is removed when it is dropped. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct RemoteHost {
    pub uri: String,
    /// `unshare`, whose child is the daemon: killing it kills the daemon's PID namespace.
    daemon: Option<std::process::Child>,
    /// What the daemon has at /var/lib/libvirt, seen from the provider's side.
    pub var_lib: PathBuf,
    netns: String,
    veth: String,
    /// Removed with the host.
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

impl RemoteHost {
    /// `index` (0..=63) keeps one test process's hosts apart; the process id keeps
    /// concurrent runs' namespaces and addresses apart.
    pub fn start(index: u8) -> RemoteHost {
        use std::os::unix::fs::MetadataExt as _;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        assert!(root, "the remote-host tests need root (namespaces, a daemon)");
        assert!(index < 64, "index {index}: 0..=63");
        let pid = std::process::id();
        let tag = format!("{}x{index}", pid % 10_000);
        let netns = format!("sdsec-rh{tag}");
        let veth = format!("sdrh{tag}");
        let (subnet, block) = (pid % 250 + 1, u32::from(index) * 4);
        let (host_ip, daemon_ip) = (format!("10.253.{subnet}.{}", block + 1), format!("10.253.{subnet}.{}", block + 2));
        let dir = tempfile::Builder::new().prefix("sdsec-remote-host").tempdir().unwrap();
        let root = dir.path();
        // lib/dnsmasq as libvirt's network driver package makes it: its networks' files go there.
        for sub in ["run/lock", "lib/dnsmasq", "cache", "log", "etc/pki/private", "client"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        certificates(root, &daemon_ip);
        configure(root, &daemon_ip);
        // The link: the provider's end here, the daemon's in its namespace.
        run(Command::new("ip").args(["netns", "add", &netns]));
        let uri = format!("qemu+tls://{daemon_ip}/system?pkipath={}", root.join("client").display());
        let var_lib = root.join("lib");
        let root = root.to_path_buf();
        // From here on, whatever fails leaves nothing behind: dropping the host removes it.
        let mut host = Self { uri: String::new(), daemon: None, var_lib, netns, veth, _dir: dir };
        let (a, b) = (format!("{}a", host.veth), format!("{}b", host.veth));
        run(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        run(Command::new("ip").args(["link", "set", &b, "netns", &host.netns]));
        run(Command::new("ip").args(["addr", "add", &format!("{host_ip}/30"), "dev", &a]));
        run(Command::new("ip").args(["link", "set", &a, "up"]));
        let inside = |args: &[&str]| run(Command::new("ip").args(["-n", &host.netns]).args(args));
        inside(&["addr", "add", &format!("{daemon_ip}/30"), "dev", &b]);
        inside(&["link", "set", &b, "up"]);
        inside(&["link", "set", "lo", "up"]);
        // Private directories first, /tmp last: the test's directory is under /tmp.
        let r = root.display();
        let mounts = format!(
            "mount --bind {r}/run /run && mount --bind {r}/lib /var/lib/libvirt && \
             mount --bind {r}/cache /var/cache/libvirt && mount --bind {r}/log /var/log/libvirt && \
             mount --bind {r}/etc /etc/libvirt && mount -t tmpfs tmpfs /tmp && \
             virtlogd -d && while :; do libvirtd --listen; sleep 0.2; done"
        );
        // The shell is its PID namespace's first process and starts the daemon again when it
        // ends ([`RemoteHost::restart_daemon`]): as the namespace's init it also reaps what
        // QEMU leaves when it daemonizes (libvirtd as PID 1 would not, and then takes every
        // QEMU it stopped for one that will not die), and QEMU outlives a daemon's restart.
        // `--kill-child` ends it, and with it the namespace, when `unshare` is killed.
        let daemon = Command::new("ip")
            .args(["netns", "exec", &host.netns, "unshare", "--mount", "--propagation", "private"])
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "--", "sh", "-c", &mounts])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(root.join("daemon.stderr")).unwrap())
            .spawn()
            .unwrap();
        host.daemon = Some(daemon);
        host.uri = uri;
        host.wait_answering();
        host
    }

    fn wait_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = Command::new("virsh").args(["-c", &self.uri, "pool-list", "--all"]).output();
            if answer.as_ref().is_ok_and(|o| o.status.success()) {
                return;
            }
            let exited = self.daemon.as_mut().and_then(|d| d.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let said = answer.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
                let root = self.var_lib.parent().unwrap_or(Path::new("/"));
                let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
                panic!(
                    "the remote-host daemon did not answer at {} (exited: {exited:?}); virsh: {said}\nstderr: {}\nlog: {}",
                    self.uri,
                    read("daemon.stderr"),
                    read("log/libvirtd.log")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl RemoteHost {
    /// Runs `args` in the daemon's network and mount namespaces.
    pub fn inside(&self, args: &[&str]) -> String {
        let pid = self.pids().into_iter().next().expect("a process in the host's namespace");
        run(Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "-n", "--"]).args(args))
    }

    /// Cuts the link to the host, or restores it.
    pub fn set_link(&self, up: bool) {
        run(Command::new("ip").args(["link", "set", &format!("{}a", self.veth), if up { "up" } else { "down" }]));
    }

    /// Stops the daemon (SIGTERM) and waits until its successor answers; QEMU keeps running.
    pub fn restart_daemon(&mut self) {
        let daemon = self
            .pids()
            .into_iter()
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "libvirtd"))
            .expect("libvirtd in the host's namespace");
        run(Command::new("kill").args(["-TERM", &daemon.to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{daemon}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_answering();
    }

    fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.netns]).output().expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        // The daemon is its PID namespace's first process: killing `unshare` kills it, and
        // the kernel kills whatever it started (QEMU included).
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let pids = Command::new("ip").args(["netns", "pids", &self.netns]).output();
            if pids.is_ok_and(|o| o.stdout.trim_ascii().is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("ip").args(["link", "del", &format!("{}a", self.veth)]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// A CA, the daemon's certificate for its address and the client's, as libvirt looks for
/// them (the daemon's under its /etc/libvirt/pki, the client's in `pkipath`).
fn certificates(root: &Path, daemon_ip: &str) {
    let pki = root.join("etc/pki");
    let client = root.join("client");
    std::fs::write(root.join("server.ext"), format!("subjectAltName=IP:{daemon_ip}\nextendedKeyUsage=serverAuth\n"))
        .unwrap();
    std::fs::write(root.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let days = ["-days", "2"];
    openssl(
        root,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=sdsec test CA",
            days[0],
            days[1],
        ],
    );
    for (who, cn, key, cert) in [
        ("server", daemon_ip, pki.join("private/serverkey.pem"), pki.join("servercert.pem")),
        ("client", "sdsec-provider", client.join("clientkey.pem"), client.join("clientcert.pem")),
    ] {
        let (key, cert) = (key.display().to_string(), cert.display().to_string());
        let csr = format!("{who}.csr");
        let subject = format!("/CN={cn}");
        openssl(root, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
        let ext = format!("{who}.ext");
        openssl(
            root,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-extfile",
                &ext,
                days[0],
                days[1],
            ],
        );
    }
    std::fs::copy(root.join("ca.pem"), pki.join("cacert.pem")).unwrap();
    std::fs::copy(root.join("ca.pem"), client.join("cacert.pem")).unwrap();
}

/// The daemon's configuration, nothing of the host's: TLS on its address only, QEMU as
/// libvirt's unprivileged user and its logs through virtlogd (the defaults).
fn configure(root: &Path, daemon_ip: &str) {
    let etc = root.join("etc");
    std::fs::write(
        etc.join("libvirtd.conf"),
        format!(
            "listen_tls = 1\nlisten_tcp = 0\nlisten_addr = \"{daemon_ip}\"\n\
             key_file = \"/etc/libvirt/pki/private/serverkey.pem\"\ncert_file = \"/etc/libvirt/pki/servercert.pem\"\n\
             ca_file = \"/etc/libvirt/pki/cacert.pem\"\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n"
        ),
    )
    .unwrap();
    // QEMU's defaults: its logs and chardev files through virtlogd.
    std::fs::write(etc.join("qemu.conf"), "").unwrap();
}
