//! The libvirt backend against a daemon that shares nothing with the provider's machine
//! ([`remote_host`]): what it boots travels over the connection. Needs root and libvirtd's
//! packages (scripts/libvirt.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod remote_host;

use std::io::Write;

use hypervisor::libvirt::ImagePool;
use sha2::{Digest, Sha256};
use virt::Connect;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Uploaded once, found again, and a volume changed behind the provider's back is replaced
/// rather than used.
#[test]
fn images_travel_to_a_daemon_that_shares_nothing_and_a_tampered_volume_is_replaced() {
    let remote = remote_host::RemoteHost::start(31);
    let conn = Connect::open(&remote.uri).unwrap_or_else(|e| panic!("connect to {}: {e}", remote.uri));
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
                    let conn = Connect::open(&remote.uri).unwrap();
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

/// A file of `len` bytes no two runs share, and its digest's hex.
fn content_file(len: usize) -> (tempfile::NamedTempFile, String) {
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    let content: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).to_le_bytes()[1]).collect();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&content).unwrap();
    (file, hex(&content))
}

/// The link to the daemon cut in the middle of an upload: the upload fails within the
/// keepalive's bound instead of hanging, nothing stands under the digest's name, and once
/// the link is back the next placement uploads it whole.
#[test]
fn a_cut_upload_is_never_used_and_the_next_one_completes() {
    let remote = remote_host::RemoteHost::start(34);
    let (file, digest) = content_file(256 << 20);
    let pool_dir = remote.var_lib.join("sdsec-pools/cut");
    let uri = remote.uri.clone();
    let path = file.path().to_owned();
    let upload = std::thread::spawn(move || {
        let conn = hypervisor::libvirt::connect(&uri).unwrap();
        let started = std::time::Instant::now();
        (ImagePool::open(&conn, "cut").unwrap().place(&path, None), started.elapsed())
    });
    // Cut once a part of it has arrived (the staging volume is made sparse at full size:
    // what is written shows in its blocks).
    use std::os::unix::fs::MetadataExt as _;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let arrived = std::fs::read_dir(&pool_dir).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().contains(".part-") && e.metadata().is_ok_and(|m| m.blocks() * 512 > 8 << 20)
        });
        if arrived || upload.is_finished() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the upload never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    remote.set_link(false);
    let (placed, took) = upload.join().unwrap();
    remote.set_link(true);
    let err = placed.expect_err("the upload went through a cut link").to_string();
    eprintln!("cut upload failed after {took:?}: {err}");
    assert!(err.contains("upload volume"), "cut while streaming: {err}");
    assert!(took < std::time::Duration::from_secs(60), "the cut took {took:?} to notice");

    let conn = hypervisor::libvirt::connect(&remote.uri).unwrap();
    let pool = ImagePool::open(&conn, "cut").unwrap();
    assert!(!pool.holds(&digest).unwrap(), "nothing stands under the digest's name after a cut upload");
    let placed = pool.place(file.path(), None).unwrap();
    assert!(pool.holds(&digest).unwrap());
    let on_daemon = pool_dir.join(format!("sha256-{digest}"));
    assert_eq!(placed.path, format!("/var/lib/libvirt/sdsec-pools/cut/sha256-{digest}"));
    assert_eq!(hex(&std::fs::read(on_daemon).unwrap()), digest);
}

/// A pool whose disk is full: the error says so and what to do, and nothing stands under
/// the digest's name.
#[test]
fn a_full_pool_says_so_and_keeps_nothing_partial() {
    let remote = remote_host::RemoteHost::start(35);
    let conn = hypervisor::libvirt::connect(&remote.uri).unwrap();
    ImagePool::open(&conn, "full").unwrap();
    remote.inside(&["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", "/var/lib/libvirt/sdsec-pools/full"]);
    let (file, digest) = content_file(3 << 20);
    let pool = ImagePool::open(&conn, "full").unwrap();
    let err = pool.place(file.path(), None).expect_err("3 MiB fit into 1 MiB").to_string();
    // Either libvirt reports the short write (its helper's error comes back with the stream),
    // or the check after the upload finds the volume short: both say what to do.
    let told = err.contains("is full: free space there") || err.contains("check free space");
    assert!(err.contains("storage pool `full`") && told, "{err}");
    // A fresh connection: the daemon may close the one whose stream it failed.
    let conn = hypervisor::libvirt::connect(&remote.uri).unwrap();
    assert!(!ImagePool::open(&conn, "full").unwrap().holds(&digest).unwrap());
}
