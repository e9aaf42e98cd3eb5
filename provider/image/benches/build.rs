//! Image generation, cold and from the store, and the image size, for a realistic
//! application (a ~1.6 MB static Rust HTTP server) and runtime of the same size.
//!
//! Baseline in the same run: what the same archive would take compressed with zstd (which
//! the store no longer does: unpacking it cost the guest far more boot time than it saved
//! in bytes). Set SDSEC_BENCH_KERNEL to a real kernel to include it;
//! otherwise an 8 MiB stand-in is copied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sdsec_image::manifest::Manifest;
use sdsec_image::{Store, image_digest};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let mut spec = support::spec_in(work.path());
    match std::env::var_os("SDSEC_BENCH_KERNEL") {
        Some(kernel) => spec.kernel = kernel.into(),
        None => support::fake_kernel(&spec.kernel, 8 << 20, 7),
    }
    let app_size = std::fs::metadata(&spec.application.path).unwrap().len();
    let kernel_size = std::fs::metadata(&spec.kernel).unwrap().len();
    println!(
        "inputs: app {:.2} MB, runtime {:.2} MB, kernel {:.2} MB ({})",
        mb(app_size),
        mb(app_size),
        mb(kernel_size),
        spec.kernel.display()
    );

    let digest_time = time(|| image_digest(&spec).unwrap());
    let mut n = 0;
    let cold = time(|| {
        n += 1;
        let store = Store::open(&work.path().join(format!("cold-{n}"))).unwrap();
        store.ensure(&spec).unwrap()
    });
    let store = Store::open(&work.path().join("warm")).unwrap();
    let image = store.ensure(&spec).unwrap().image;
    let warm = time(|| store.ensure(&spec).unwrap());
    let verify = time(|| store.verify(&image.digest).unwrap());
    assert_eq!(store.builds(), 1);

    let initramfs = std::fs::metadata(&image.initramfs).unwrap().len();
    let manifest = Manifest::from_spec(&spec).unwrap();
    let archive = sdsec_image::initramfs::archive(&spec, &manifest).unwrap();
    println!("digest at plan time (hash inputs): {}", ms(digest_time));
    println!("cold build (ensure, empty store):  {}", ms(cold));
    println!(
        "from the store (ensure, verified): {}  ({:.1}x faster than cold)",
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    println!("verify alone:                      {}", ms(verify));
    assert_eq!(initramfs, archive.len() as u64, "the store keeps the archive as it is");
    println!(
        "image: initramfs {:.2} MB (cpio), kernel {:.2} MB, total {:.2} MB",
        mb(initramfs),
        mb(kernel_size),
        mb(initramfs + kernel_size)
    );
    println!("baseline, the same archive compressed with zstd (the guest would unpack it at every boot):");
    for level in [3, 19] {
        let mut size = 0;
        let t = time(|| size = zstd::bulk::compress(&archive, level).unwrap().len());
        println!(
            "  level {level:>2}: {:>9}  {:.2} MB ({:.2} of the archive)",
            ms(t),
            mb(size as u64),
            size as f64 / initramfs as f64
        );
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
