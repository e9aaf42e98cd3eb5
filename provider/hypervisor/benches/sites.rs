//! Sites: the quickstart's `api` booted N = 10 times on one site (a libvirt daemon that
//! shares nothing with this machine, reached over TLS) against N = 10 spread over two
//! sites (5 there, 5 on the system daemon here), same run, each boot in its own thread as
//! Terraform's parallelism runs them; and the upload of an image (kernel and initramfs) to
//! the remote pool, against checking what is already there. Needs root, libvirt
//! (scripts/libvirt.sh) and the image's parts built (scripts/build.sh).
//! Run: `cargo bench -p sdsec-hypervisor --bench sites`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/remote_host/mod.rs"]
mod remote_host;

#[allow(dead_code)]
#[path = "../tests/quickstart/mod.rs"]
mod quickstart;

use std::path::Path;
use std::time::{Duration, Instant};

use hypervisor::libvirt::{ImagePool, Libvirt};
use hypervisor::{AccelChoice, BootSpec, Hypervisor};

const N: usize = 10;
const SYSTEM: &str = "qemu:///system";

/// Boots `spec` once per site in `sites` (each a URI), all at once; the time until the last
/// is ready. Stops them all afterwards.
fn boot_all(state: &Path, spec: &BootSpec, sites: &[&str]) -> Duration {
    let started = Instant::now();
    let booted: Vec<(String, hypervisor::Instance)> = std::thread::scope(|scope| {
        let handles: Vec<_> = sites
            .iter()
            .map(|uri| {
                scope.spawn(move || {
                    let backend = Libvirt::new(state, uri, AccelChoice::Auto).unwrap();
                    let instance = backend.boot(spec).unwrap_or_else(|e| panic!("boot on {uri}: {e}"));
                    (uri.to_string(), instance)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    for (uri, instance) in booted {
        assert_eq!(quickstart::status(instance.endpoint, "/items", Some("quickstart-token")), 200);
        Libvirt::new(state, &uri, AccelChoice::Auto).unwrap().stop(&instance.id, Duration::from_secs(5)).unwrap();
    }
    took
}

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn main() {
    let state = tempfile::tempdir().unwrap();
    let spec = quickstart::quickstart_spec(state.path());
    let remote = remote_host::RemoteHost::start(45);

    // Upload: a pool of its own, so nothing is there yet.
    let conn = hypervisor::libvirt::connect(&remote.uri).unwrap();
    let pool = ImagePool::open(&conn, "bench-upload").unwrap();
    let bytes = std::fs::metadata(&spec.kernel).unwrap().len() + std::fs::metadata(&spec.initramfs).unwrap().len();
    let started = Instant::now();
    pool.place(&spec.kernel, None).unwrap();
    pool.place(&spec.initramfs, None).unwrap();
    let upload = started.elapsed();
    let started = Instant::now();
    pool.place(&spec.kernel, None).unwrap();
    pool.place(&spec.initramfs, None).unwrap();
    let again = started.elapsed();
    println!(
        "upload of an image ({:.1} MiB) to the remote pool: {} ms ({:.0} MiB/s); placing it again (checked, memoised): {} ms ({:.3}x)",
        bytes as f64 / (1 << 20) as f64,
        upload.as_millis(),
        mib_per_s(bytes, upload),
        again.as_millis(),
        again.as_secs_f64() / upload.as_secs_f64()
    );

    // Both sites' pools hold the image before the runs: what is timed is the boots.
    let warm = boot_all(state.path(), &spec, &[remote.uri.as_str(), SYSTEM]);
    println!("warm-up (one boot per site, uploads included): {} ms", warm.as_millis());
    let one: Vec<&str> = vec![remote.uri.as_str(); N];
    let two: Vec<&str> = (0..N).map(|i| if i % 2 == 0 { remote.uri.as_str() } else { SYSTEM }).collect();
    let one_site = boot_all(state.path(), &spec, &one);
    let two_sites = boot_all(state.path(), &spec, &two);
    println!(
        "N = {N} at once, until the last serves: one site {} ms, two sites {} ms ({:.2}x)",
        one_site.as_millis(),
        two_sites.as_millis(),
        two_sites.as_secs_f64() / one_site.as_secs_f64()
    );
    println!(
        "(both sites share this machine's {} cores: the ratio shows what spreading costs, not a second machine's capacity)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
