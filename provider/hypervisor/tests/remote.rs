//! The libvirt backend against a daemon that shares nothing with the provider's machine
//! ([`remote_host`]): what it boots travels over the connection. Needs root and libvirtd's
//! packages (scripts/libvirt.sh).
#![cfg(feature = "libvirt")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod remote_host;

use std::io::Write;

use hypervisor::libvirt::ImagePool;
use sha2::{Digest, Sha256};
use virt::connect::Connect;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Uploaded once, found again, and a volume changed behind the provider's back is replaced
/// rather than used.
#[test]
fn images_travel_to_a_daemon_that_shares_nothing_and_a_tampered_volume_is_replaced() {
    let remote = remote_host::RemoteHost::start(31);
    let conn = Connect::open(Some(&remote.uri)).unwrap_or_else(|e| panic!("connect to {}: {e}", remote.uri));
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    file.write_all(&content).unwrap();
    let digest = hex(&content);

    let pool = ImagePool::open(&conn, "sdsec-test").unwrap();
    let placed = pool.place(file.path(), None).unwrap();
    let name = format!("sha256-{digest}");
    assert_eq!(placed.path, format!("/var/lib/libvirt/sdsec-pools/sdsec-test/{name}"));
    assert!(!placed.replaced);
    // On the daemon's disk, not on the provider's: the daemon's /var/lib/libvirt is its own.
    let on_daemon = remote.var_lib.join("sdsec-pools/sdsec-test").join(&name);
    assert_eq!(std::fs::read(&on_daemon).unwrap(), content);
    assert!(!std::path::Path::new(&placed.path).exists(), "the provider's /var/lib/libvirt must not have it");

    // Found again (with the digest given), not replaced.
    let again = pool.place(file.path(), Some(&format!("sha256:{digest}"))).unwrap();
    assert_eq!(again, placed);
    assert!(pool.holds(&digest).unwrap());

    // Uploads go to a volume of their own first: none is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(on_daemon.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != &name)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // One byte changed on the daemon's host: detected, replaced, and whole again.
    let mut tampered = content.clone();
    tampered[1234] ^= 0x5a;
    std::fs::write(&on_daemon, &tampered).unwrap();
    let refreshed = ImagePool::open(&conn, "sdsec-test").unwrap();
    assert!(!refreshed.holds(&digest).unwrap(), "a tampered volume must not pass");
    let replaced = refreshed.place(file.path(), None).unwrap();
    assert!(replaced.replaced);
    assert_eq!(std::fs::read(&on_daemon).unwrap(), content);
}

/// Two placements of the same new file at once (two unikernels of one image in one apply)
/// both get the one volume, whole.
#[test]
fn concurrent_placements_of_one_file_share_one_whole_volume() {
    let remote = remote_host::RemoteHost::start(32);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect();
    file.write_all(&content).unwrap();
    let placed: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let conn = Connect::open(Some(&remote.uri)).unwrap();
                    ImagePool::open(&conn, "sdsec-test").unwrap().place(file.path(), None).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(placed[0].path, placed[1].path);
    let on_daemon = remote.var_lib.join(placed[0].path.trim_start_matches("/var/lib/libvirt/"));
    assert_eq!(std::fs::read(on_daemon).unwrap(), content);
    assert!(placed.iter().all(|p| !p.replaced), "{placed:?}");
}
