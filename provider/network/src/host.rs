//! The host's side effects and facts: `ip` and `nft` run as programs (never through a
//! shell), sysctls written under /proc/sys.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::NetworkError;

/// An external program and the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    name: &'static str,
    package: &'static str,
}

pub(crate) const IP: Tool = Tool { name: "ip", package: "iproute2" };
pub(crate) const NFT: Tool = Tool { name: "nft", package: "nftables" };

/// Directories searched after PATH: both tools live in sbin, which a non-login PATH may lack.
const SBIN: [&str; 2] = ["/usr/sbin", "/sbin"];

/// The program's path, or [`NetworkError::ToolMissing`].
pub(crate) fn locate(tool: Tool) -> Result<PathBuf, NetworkError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool.name))
        .find(|candidate| candidate.is_file())
        .ok_or(NetworkError::ToolMissing { tool: tool.name, package: tool.package })
}

/// A failed command's stderr, for callers that tell "no such device" from other failures.
struct Failure {
    error: NetworkError,
    stderr: String,
}

/// Runs `tool args…` with `stdin`, returning its stdout.
fn run_with(tool: Tool, args: &[&str], stdin: Option<&[u8]>) -> Result<String, Failure> {
    let fail = |error| Failure { error, stderr: String::new() };
    let program = locate(tool).map_err(fail)?;
    let command = format!("{} {}", tool.name, args.join(" "));
    let spawn_error = |e: std::io::Error| {
        fail(NetworkError::Command { command: command.clone(), status: "not started".into(), stderr: e.to_string() })
    };
    let mut child = Command::new(program)
        .args(args)
        // Errors are told apart by their text (e.g. "No such file or directory"): in English.
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Dropping the pipe afterwards closes it, so the tool sees the end of its input.
        pipe.write_all(bytes).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        return Err(Failure {
            error: NetworkError::Command { command, status: output.status.to_string(), stderr: stderr.clone() },
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn run(tool: Tool, args: &[&str]) -> Result<String, NetworkError> {
    run_with(tool, args, None).map_err(|failure| failure.error)
}

/// Whether a failure says the device is not there (`Device "x" does not exist.`,
/// `Cannot find device "x"`).
fn no_such_device(failure: &Failure) -> bool {
    failure.stderr.contains("does not exist") || failure.stderr.contains("Cannot find device")
}

fn parse_json(command: &str, stdout: &str) -> Result<Value, NetworkError> {
    if stdout.trim().is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_str(stdout)
        .map_err(|e| NetworkError::Output { command: command.to_owned(), reason: e.to_string() })
}

/// What the host says about one network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
}

fn link_from(value: &Value) -> Option<Link> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Some(Link {
        name: text(value.get("ifname")?)?,
        alias: value.get("ifalias").and_then(text).filter(|alias| !alias.is_empty()),
        kind: value.pointer("/linkinfo/info_kind").and_then(text),
    })
}

/// The device named `name`, if there is one.
pub(crate) fn link(name: &str) -> Result<Option<Link>, NetworkError> {
    let stdout = match run_with(IP, &["-j", "-d", "link", "show", "dev", name], None) {
        Ok(stdout) => stdout,
        Err(failure) if no_such_device(&failure) => return Ok(None),
        Err(failure) => return Err(failure.error),
    };
    let json = parse_json("ip -j -d link show", &stdout)?;
    Ok(json.as_array().and_then(|links| links.first()).and_then(link_from))
}

/// Devices enslaved to `bridge` (none when it does not exist).
pub(crate) fn ports_of(bridge: &str) -> Result<Vec<String>, NetworkError> {
    let stdout = match run_with(IP, &["-j", "link", "show", "master", bridge], None) {
        Ok(stdout) => stdout,
        Err(failure) if no_such_device(&failure) => return Ok(Vec::new()),
        Err(failure) => return Err(failure.error),
    };
    let json = parse_json("ip -j link show master", &stdout)?;
    Ok(json.as_array().into_iter().flatten().filter_map(link_from).map(|link| link.name).collect())
}

/// Every bridge of the host.
pub(crate) fn bridges() -> Result<Vec<Link>, NetworkError> {
    let stdout = run(IP, &["-j", "link", "show", "type", "bridge"])?;
    let json = parse_json("ip -j link show type bridge", &stdout)?;
    Ok(json.as_array().into_iter().flatten().filter_map(link_from).collect())
}

/// Creates bridge `name` marked with `alias`. The kernel takes no alias at creation, so the
/// bridge is made under the temporary name `staging`, marked, then renamed: a crash between
/// the steps leaves a device named `staging` with our alias (which reclaim removes), never a
/// bridge of the final name that looks like someone else's.
pub(crate) fn create_bridge(name: &str, staging: &str, alias: &str) -> Result<(), NetworkError> {
    run(IP, &["link", "add", "name", staging, "type", "bridge"])?;
    let marked = run(IP, &["link", "set", "dev", staging, "alias", alias])
        .and_then(|_| run(IP, &["link", "set", "dev", staging, "name", name]));
    if let Err(err) = marked {
        let _ = delete_link(staging);
        return Err(err);
    }
    Ok(())
}

/// Gives the bridge its gateway address and routing settings and brings it up; safe to
/// repeat on a bridge that has them.
pub(crate) fn configure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NetworkError> {
    run(IP, &["addr", "replace", &format!("{gateway}/{prefix}"), "dev", name])?;
    for (path, value) in bridge_sysctls(name) {
        write_sysctl(&path, value)?;
    }
    run(IP, &["link", "set", "dev", name, "up"])?;
    Ok(())
}

/// The sysctls bridge `name` needs, under /proc/sys, with their values.
pub(crate) fn bridge_sysctls(name: &str) -> [(PathBuf, &'static str); 5] {
    let conf = Path::new("/proc/sys/net/ipv4/conf").join(name);
    [
        // Routed between guests: forwarding, and ARP answered back out of the port it came in.
        (conf.join("forwarding"), "1"),
        (conf.join("proxy_arp_pvlan"), "1"),
        // So the host's requests to 127.0.0.1 may be DNAT-ed out of the bridge.
        (conf.join("route_localnet"), "1"),
        // Broadcast ARP requests are answered at once rather than after a random delay.
        (Path::new("/proc/sys/net/ipv4/neigh").join(name).join("proxy_delay"), "0"),
        (PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1"),
    ]
}

/// A sysctl's current value, trimmed.
pub(crate) fn read_sysctl(path: &Path) -> Result<String, NetworkError> {
    Ok(std::fs::read_to_string(path).map_err(fsutil::io("read", path))?.trim().to_owned())
}

/// Writes a sysctl when it differs (rewriting `ip_forward` would reset every interface's
/// forwarding setting).
fn write_sysctl(path: &Path, value: &str) -> Result<(), NetworkError> {
    let current = std::fs::read_to_string(path).map_err(fsutil::io("read", path))?;
    if current.trim() != value {
        std::fs::write(path, value).map_err(fsutil::io("write", path))?;
    }
    Ok(())
}

/// Creates TAP `tap` for QEMU (with virtio-net headers) as an isolated, up port of `bridge`.
pub(crate) fn create_tap(tap: &str, bridge: &str) -> Result<(), NetworkError> {
    run(IP, &["tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"])?;
    attach_port(tap, bridge)
}

/// Makes the existing device `tap` an isolated, up port of `bridge`; safe to repeat.
pub(crate) fn attach_port(tap: &str, bridge: &str) -> Result<(), NetworkError> {
    run(IP, &["link", "set", "dev", tap, "master", bridge])?;
    run(IP, &["link", "set", "dev", tap, "type", "bridge_slave", "isolated", "on"])?;
    run(IP, &["link", "set", "dev", tap, "up"])?;
    Ok(())
}

/// What drift checks need to know of one network device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Device {
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    /// The bridge (or other master) it is a port of.
    pub master: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// An isolated bridge port.
    pub isolated: bool,
    /// Its IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<Ipv4Net>,
}

/// Every device of the host with its addresses, from one `ip -j -d addr show`.
pub(crate) fn devices() -> Result<Vec<Device>, NetworkError> {
    let stdout = run(IP, &["-j", "-d", "addr", "show"])?;
    let json = parse_json("ip -j -d addr show", &stdout)?;
    Ok(json.as_array().into_iter().flatten().filter_map(device_from).collect())
}

fn device_from(value: &Value) -> Option<Device> {
    let link = link_from(value)?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let up = value.get("flags").and_then(Value::as_array).is_some_and(|flags| flags.iter().any(|f| f == "UP"));
    let isolated = value.pointer("/linkinfo/info_slave_data/isolated").and_then(Value::as_bool).unwrap_or(false);
    let ipv4 = value
        .get("addr_info")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|info| info.get("family").and_then(Value::as_str) == Some("inet"))
        .filter_map(|info| {
            let local: Ipv4Addr = info.get("local")?.as_str()?.parse().ok()?;
            let prefix = u8::try_from(info.get("prefixlen")?.as_u64()?).ok()?;
            Ipv4Net::new(local, prefix).ok()
        })
        .collect();
    Some(Device { name: link.name, alias: link.alias, kind: link.kind, master: text("master"), up, isolated, ipv4 })
}

/// Deletes a device; one already gone is fine.
pub(crate) fn delete_link(name: &str) -> Result<(), NetworkError> {
    match run_with(IP, &["link", "del", "dev", name], None) {
        Ok(_) => Ok(()),
        Err(failure) if no_such_device(&failure) => Ok(()),
        Err(failure) => Err(failure.error),
    }
}

/// One IPv4 route of the host, with the words `ip route` would show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub dst: Ipv4Net,
    pub dev: Option<String>,
    pub text: String,
}

/// Every IPv4 route of every table but default routes.
pub(crate) fn routes() -> Result<Vec<Route>, NetworkError> {
    let stdout = run(IP, &["-j", "-4", "route", "show", "table", "all"])?;
    let json = parse_json("ip -j -4 route show table all", &stdout)?;
    Ok(json.as_array().into_iter().flatten().filter_map(route_from).collect())
}

fn route_from(value: &Value) -> Option<Route> {
    let field = |key: &str| value.get(key).and_then(Value::as_str);
    let dst = field("dst")?;
    let net = match dst.parse::<Ipv4Net>() {
        Ok(net) => net,
        Err(_) => Ipv4Net::from(dst.parse::<Ipv4Addr>().ok()?),
    };
    if net.prefix_len() == 0 {
        return None;
    }
    let mut text = String::new();
    if let Some(kind) = field("type").filter(|kind| *kind != "unicast") {
        text.push_str(kind);
        text.push(' ');
    }
    text.push_str(dst);
    for (word, key) in [("via", "gateway"), ("dev", "dev"), ("table", "table")] {
        if let Some(value) = field(key) {
            text.push_str(&format!(" {word} {value}"));
        }
    }
    Some(Route { dst: net, dev: field("dev").map(str::to_owned), text })
}

/// The host's IPv4 addresses.
pub(crate) fn local_addresses() -> Result<Vec<Ipv4Addr>, NetworkError> {
    let stdout = run(IP, &["-j", "-4", "addr", "show"])?;
    let json = parse_json("ip -j -4 addr show", &stdout)?;
    let addresses = json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|info| info.get("local")?.as_str()?.parse().ok())
        .collect();
    Ok(addresses)
}

/// `nft -j list table FAMILY NAME` as JSON; `None` when there is no such table.
pub(crate) fn list_table(family: &str, name: &str) -> Result<Option<Value>, NetworkError> {
    match run_with(NFT, &["-j", "list", "table", family, name], None) {
        Ok(stdout) => parse_json("nft -j list table", &stdout).map(Some),
        Err(failure) if failure.stderr.contains("No such file or directory") => Ok(None),
        Err(failure) => Err(failure.error),
    }
}

/// Applies one nftables JSON batch as a single transaction.
pub(crate) fn apply_rules(batch: &Value) -> Result<(), NetworkError> {
    let bytes = serde_json::to_vec(batch)
        .map_err(|e| NetworkError::Output { command: "nft -j -f -".into(), reason: e.to_string() })?;
    run_with(NFT, &["-j", "-f", "-"], Some(&bytes)).map_err(|failure| failure.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_described_as_ip_shows_them() {
        let route = route_from(&serde_json::json!({
            "dst": "10.213.0.0/16", "gateway": "10.0.0.1", "dev": "eth0", "protocol": "static"
        }))
        .unwrap();
        assert_eq!(route.text, "10.213.0.0/16 via 10.0.0.1 dev eth0");
        let local = route_from(&serde_json::json!({
            "type": "local", "dst": "10.0.0.5", "dev": "eth0", "table": "local"
        }))
        .unwrap();
        assert_eq!(local.dst.to_string(), "10.0.0.5/32");
        assert_eq!(local.text, "local 10.0.0.5 dev eth0 table local");
        assert!(route_from(&serde_json::json!({ "dst": "default", "dev": "eth0" })).is_none());
    }

    #[test]
    fn devices_say_whose_port_they_are_and_their_addresses() {
        let port = device_from(&serde_json::json!({
            "ifname": "sdt-0123456789", "flags": ["NO-CARRIER", "BROADCAST", "UP"], "master": "sdsec0",
            "linkinfo": { "info_kind": "tun", "info_slave_kind": "bridge", "info_slave_data": { "isolated": true } },
            "addr_info": []
        }))
        .unwrap();
        assert_eq!(port.master.as_deref(), Some("sdsec0"));
        assert!(port.up && port.isolated && port.ipv4.is_empty());
        let bridge = device_from(&serde_json::json!({
            "ifname": "sdsec0", "flags": ["BROADCAST"], "ifalias": "sdsec:/s",
            "linkinfo": { "info_kind": "bridge" },
            "addr_info": [
                { "family": "inet", "local": "10.213.0.1", "prefixlen": 24 },
                { "family": "inet6", "local": "fe80::1", "prefixlen": 64 }
            ]
        }))
        .unwrap();
        assert!(!bridge.up && !bridge.isolated && bridge.master.is_none());
        assert_eq!(bridge.ipv4, ["10.213.0.1/24".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(bridge.alias.as_deref(), Some("sdsec:/s"));
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = locate(Tool { name: "sdsec-no-such-tool", package: "sdsec-pkg" }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sdsec-no-such-tool` is not installed; install Debian's sdsec-pkg (apt-get install sdsec-pkg)"
        );
    }
}
