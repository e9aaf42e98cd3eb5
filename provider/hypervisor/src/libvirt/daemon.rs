//! What sdsec learns of the daemon's host: the address forwards listen on, ports drawn
//! there, and the user QEMU runs as.

use std::net::{Ipv4Addr, ToSocketAddrs as _};

use crate::accel::Accel;

/// Forwarded ports picked on a daemon's host elsewhere, where this host cannot see which
/// are free: below Linux's ephemeral range, so no outgoing connection holds one.
const REMOTE_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// The first IPv4 address of `host`.
pub fn ipv4_of(host: &str) -> std::result::Result<Ipv4Addr, String> {
    let addresses = (host, 0).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?;
    addresses
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("{host} has no IPv4 address for the forwarded ports to listen on"))
}

/// A port in [`REMOTE_PORTS`], drawn afresh each time.
pub fn remote_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // std's per-process random keys: enough to spread picks, not a secret.
    let draw = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let span = u64::from(REMOTE_PORTS.end - REMOTE_PORTS.start);
    REMOTE_PORTS.start + u16::try_from(draw % span).unwrap_or(0)
}

/// The user the daemon's DAC driver runs QEMU as for domains of `accel`, from its
/// capabilities: `<secmodel><model>dac</model>...<baselabel type='kvm'>+64055:+64055</baselabel>`.
pub fn dac_label(capabilities: &str, accel: Accel) -> Option<String> {
    let kind = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "qemu",
    };
    capabilities.split("<secmodel>").skip(1).find_map(|secmodel| {
        let secmodel = secmodel.split("</secmodel>").next()?;
        if !secmodel.contains("<model>dac</model>") {
            return None;
        }
        let open = format!("<baselabel type='{kind}'>");
        let start = secmodel.find(&open)? + open.len();
        let label = &secmodel[start..start + secmodel[start..].find('<')?];
        label.bytes().all(|b| b.is_ascii_digit() || b == b'+' || b == b':').then(|| label.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_runs_as_the_user_the_daemons_dac_driver_names() {
        let caps = "<host><secmodel><model>none</model><doi>0</doi></secmodel>\
                    <secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>+64055:+994</baselabel>\
                    <baselabel type='qemu'>+64055:+64055</baselabel></secmodel></host>";
        assert_eq!(dac_label(caps, Accel::Tcg).as_deref(), Some("+64055:+64055"));
        assert_eq!(dac_label(caps, Accel::Kvm).as_deref(), Some("+64055:+994"));
        assert_eq!(dac_label("<host><secmodel><model>selinux</model></secmodel></host>", Accel::Tcg), None);
        let forged = "<secmodel><model>dac</model><baselabel type='qemu'>x'/><evil/></baselabel></secmodel>";
        assert_eq!(dac_label(forged, Accel::Tcg), None);
    }

    #[test]
    fn ports_on_a_remote_host_are_drawn_below_the_ephemeral_range() {
        let ports: std::collections::HashSet<u16> = (0..50).map(|_| remote_port()).collect();
        assert!(ports.iter().all(|p| REMOTE_PORTS.contains(p)));
        assert!(ports.len() > 40, "drawn afresh: {ports:?}");
    }
}
