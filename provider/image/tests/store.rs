#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::{Arc, Barrier};

use sdsec_image::layout::FORBIDDEN_NAMES;
use sdsec_image::manifest::Manifest;
use sdsec_image::store::{INITRAMFS, KERNELS, MANIFEST, SUMS};
use sdsec_image::{ImageDigest, Outcome, Store, StoreError, image_digest};
use support::{fake_kernel, spec_in, static_copy};

/// A newc reader written from the format, independent of the crate's own.
struct Member {
    path: String,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    data: Vec<u8>,
}

fn read_newc(bytes: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
        let field = |i: usize| {
            u32::from_str_radix(std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap(), 16).unwrap()
        };
        let (size, namesize) = (field(6) as usize, field(11) as usize);
        assert_eq!(field(12), 0, "check field");
        let name = std::str::from_utf8(&bytes[at + 110..at + 110 + namesize - 1]).unwrap().to_owned();
        assert_eq!(bytes[at + 110 + namesize - 1], 0);
        let data_at = (at + 110 + namesize).next_multiple_of(4);
        if name == "TRAILER!!!" {
            assert_eq!(bytes.len(), data_at, "nothing after the trailer");
            return out;
        }
        let data = bytes[data_at..data_at + size].to_vec();
        out.push(Member {
            path: name,
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            mtime: field(5),
            data,
        });
        at = (data_at + size).next_multiple_of(4);
    }
}

fn store_in(dir: &Path) -> Store {
    Store::open(&dir.join("state")).unwrap()
}

fn temp_dirs(store_root: &Path) -> Vec<String> {
    let names = std::fs::read_dir(store_root.join("state/images")).unwrap().flatten();
    names.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(".tmp-")).collect()
}

#[test]
fn two_builds_of_one_spec_are_byte_identical() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = spec_in(a.path());
    let first = store_in(a.path()).ensure(&spec).unwrap().image;
    let second = store_in(b.path()).ensure(&spec).unwrap().image;
    assert_eq!(first.digest, second.digest);
    for name in [INITRAMFS, MANIFEST, SUMS] {
        let (x, y) = (std::fs::read(first.dir.join(name)).unwrap(), std::fs::read(second.dir.join(name)).unwrap());
        assert!(x == y, "{name} differs between two builds");
    }
    assert!(std::fs::read(&first.kernel).unwrap() == std::fs::read(&second.kernel).unwrap());
}

#[test]
fn images_share_one_stored_kernel_which_gc_removes_with_the_last_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let spec = spec_in(dir.path());
    let mut other = spec.clone();
    other.application.args = vec!["--other".into()];
    let (a, b) = (store.ensure(&spec).unwrap().image, store.ensure(&other).unwrap().image);
    assert_ne!(a.digest, b.digest);
    assert_eq!(a.kernel, b.kernel, "one kernel for both images");
    let kernels = dir.path().join("state/images").join(KERNELS);
    assert_eq!(a.kernel.parent(), Some(kernels.as_path()));
    let listed: Vec<_> = std::fs::read_dir(&kernels).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(listed, vec![a.kernel.clone()]);
    assert_eq!(a.kernel.file_name().unwrap().to_str().unwrap(), &a.manifest.kernel.sha256[7..]);
    assert!(!a.dir.join("kernel").exists(), "no copy inside the image");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&a.kernel).unwrap().permissions().mode() & 0o777, 0o444);

    let report = store.gc(std::slice::from_ref(&a.digest)).unwrap();
    assert_eq!((report.removed, report.kernels_removed), (vec![b.digest.clone()], 0));
    assert!(a.kernel.exists(), "still named by the image kept");
    let report = store.gc(&[]).unwrap();
    assert_eq!((report.removed, report.kernels_removed), (vec![a.digest.clone()], 1));
    assert!(!a.kernel.exists());
    let locks: Vec<_> = std::fs::read_dir(dir.path().join("state/images/.locks")).unwrap().flatten().collect();
    assert!(locks.is_empty(), "no lock of a removed image or kernel is left: {locks:?}");
    // Built again, the kernel comes back.
    let again = store.ensure(&spec).unwrap();
    assert_eq!(again.outcome, Outcome::Built);
    store.verify(&again.image.digest).unwrap();
}

#[test]
fn an_image_stored_by_an_older_sdsec_is_outdated_not_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let spec = spec_in(dir.path());
    let image = store.ensure(&spec).unwrap().image;
    // Layout 2 kept a copy of the kernel inside the image and listed it in SHA256SUMS.
    std::fs::copy(&image.kernel, image.dir.join("kernel")).unwrap();
    match store.verify(&image.digest) {
        Err(StoreError::Outdated(digest)) => assert_eq!(digest, image.digest),
        other => panic!("an old-layout image must be reported outdated: {other:?}"),
    }
    assert_eq!(store.ensure(&spec).unwrap().outcome, Outcome::Built);
    store.verify(&image.digest).unwrap();

    // Layout 3 kept the initramfs compressed, under another name.
    std::fs::rename(&image.initramfs, image.dir.join("initramfs.cpio.zst")).unwrap();
    assert!(matches!(store.verify(&image.digest), Err(StoreError::Outdated(_))), "{:?}", store.verify(&image.digest));
    assert_eq!(store.ensure(&spec).unwrap().outcome, Outcome::Built);
    store.verify(&image.digest).unwrap();
}

#[test]
fn a_stored_kernel_missing_or_tampered_is_caught_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let spec = spec_in(dir.path());
    let image = store.ensure(&spec).unwrap().image;
    std::fs::remove_file(&image.kernel).unwrap();
    match store.verify(&image.digest) {
        Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains("kernel") && reason.contains("missing")),
        other => panic!("a missing kernel was not detected: {other:?}"),
    }
    assert!(matches!(store.ensure(&spec).unwrap().outcome, Outcome::Rebuilt { .. }));
    store.verify(&image.digest).unwrap();
    // Same size, other bytes.
    let mut bytes = std::fs::read(&image.kernel).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&image.kernel, &bytes).unwrap();
    match store.verify(&image.digest) {
        Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains("its image expects"), "{reason}"),
        other => panic!("a tampered kernel was not detected: {other:?}"),
    }
    assert!(matches!(store.ensure(&spec).unwrap().outcome, Outcome::Rebuilt { .. }));
    assert_ne!(std::fs::read(&image.kernel).unwrap(), bytes, "the kernel was replaced");
    store.verify(&image.digest).unwrap();
}

#[test]
fn the_digest_from_the_spec_is_the_digest_of_the_built_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let planned = image_digest(&spec).unwrap();
    let image = store_in(dir.path()).ensure(&spec).unwrap().image;
    assert_eq!(image.digest, planned);
    assert_eq!(ImageDigest::of(&std::fs::read(image.dir.join(MANIFEST)).unwrap()), planned);
    assert_eq!(image.dir.file_name().unwrap().to_str().unwrap(), planned.hex());
}

#[test]
fn every_input_changes_the_digest_but_the_kernel_path_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let base = image_digest(&spec).unwrap();
    let mut changed = Vec::new();

    let mut s = spec.clone();
    s.plan.runtime.quarantine = true;
    changed.push(("plan", s));
    let mut s = spec.clone();
    s.application.path = dir.path().join("api2");
    static_copy(&s.application.path, "another app");
    changed.push(("app", s));
    let mut s = spec.clone();
    s.kernel = dir.path().join("vmlinuz2");
    fake_kernel(&s.kernel, 1 << 20, 2);
    changed.push(("kernel", s));
    let mut s = spec.clone();
    s.application.args.push("--verbose".into());
    changed.push(("args", s));
    let mut s = spec.clone();
    s.port = 9090;
    changed.push(("port", s));
    let mut s = spec.clone();
    s.memory_mb += 64;
    changed.push(("memory", s));
    let mut s = spec.clone();
    s.modules.pop();
    changed.push(("modules", s));
    for (what, s) in changed {
        assert_ne!(image_digest(&s).unwrap(), base, "changing the {what} must change the digest");
    }

    let mut moved = spec.clone();
    moved.kernel = dir.path().join("elsewhere/vmlinuz");
    std::fs::create_dir_all(moved.kernel.parent().unwrap()).unwrap();
    std::fs::copy(&spec.kernel, &moved.kernel).unwrap();
    assert_eq!(image_digest(&moved).unwrap(), base, "the kernel's path is not part of the digest");
}

#[test]
fn the_command_line_carries_hardening_and_launch_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_in(dir.path());
    spec.plan.build.hardening.read_only_root = true;
    let manifest = Manifest::from_spec(&spec).unwrap();
    let words: Vec<&str> = manifest.cmdline.split(' ').collect();
    for item in &spec.plan.build.kernel_cmdline {
        assert!(words.contains(&item.as_str()), "{item} missing from {}", manifest.cmdline);
    }
    for word in ["ro", "console=ttyS0", "sdsec.app=/app/api", "sdsec.port=8080", "sdsec.arg=two%20words"] {
        assert!(words.contains(&word), "{word} missing from {}", manifest.cmdline);
    }
    spec.plan.build.hardening.read_only_root = false;
    assert!(!Manifest::from_spec(&spec).unwrap().cmdline.split(' ').any(|w| w == "ro"));
}

#[test]
fn the_initramfs_parses_back_sorted_with_fixed_owners_times_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let image = store_in(dir.path()).ensure(&spec).unwrap().image;
    let archive = std::fs::read(&image.initramfs).unwrap();
    assert_eq!(&archive[..6], b"070701", "cpio newc, uncompressed: the guest kernel copies it rather than unpack it");
    let members = read_newc(&archive);
    let modules = "lib/modules/6.1.0-test/kernel/drivers/net";
    let expected: Vec<(String, u32)> = [
        ("app", 0o40755),
        ("app/api", 0o100555),
        ("dev", 0o40755),
        ("etc", 0o40755),
        ("etc/sdsec", 0o40755),
        ("etc/sdsec/plan.json", 0o100400),
        ("init", 0o100555),
        ("lib", 0o40755),
        ("lib/modules", 0o40755),
        ("lib/modules/6.1.0-test", 0o40755),
        ("lib/modules/6.1.0-test/kernel", 0o40755),
        ("lib/modules/6.1.0-test/kernel/drivers", 0o40755),
        (modules, 0o40755),
        (&format!("{modules}/failover.ko"), 0o100444),
        (&format!("{modules}/net_failover.ko"), 0o100444),
        (&format!("{modules}/virtio_net.ko"), 0o100444),
        ("proc", 0o40755),
        ("run", 0o40755),
        ("sys", 0o40755),
        ("tmp", 0o40755),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m))
    .collect();
    let got: Vec<(String, u32)> = members.iter().map(|m| (m.path.clone(), m.mode)).collect();
    assert_eq!(got, expected);
    for (i, m) in members.iter().enumerate() {
        assert_eq!((m.uid, m.gid, m.mtime, m.ino), (0, 0, 0, i as u32 + 1), "{}", m.path);
        let base = m.path.rsplit('/').next().unwrap();
        assert!(!FORBIDDEN_NAMES.contains(&base), "{} is a shell or package manager", m.path);
    }
    let file = |p: &str| &members.iter().find(|m| m.path == p).unwrap().data;
    assert_eq!(*file("etc/sdsec/plan.json"), spec.plan.canonical_json().into_bytes());
    assert_eq!(*file("app/api"), std::fs::read(&spec.application.path).unwrap());
    assert_eq!(*file("init"), std::fs::read(&spec.runtime).unwrap());
}

#[test]
fn a_dynamic_executable_or_a_script_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_in(dir.path());
    assert!(
        sdsec_image::elf::check_static_executable(
            &spec.application.path,
            &std::fs::read(&spec.application.path).unwrap()
        )
        .is_ok()
    );
    let dynamic = ["/bin/ls", "/usr/bin/ls"].into_iter().map(Path::new).find(|p| p.exists()).unwrap();
    spec.application.path = dynamic.to_owned();
    let err = image_digest(&spec).unwrap_err().to_string();
    assert!(err.contains(&format!("{} is a dynamically linked executable", dynamic.display())), "{err}");
    assert!(
        err.contains("-C target-feature=+crt-static") && err.contains("musl") && err.contains("CGO_ENABLED=0"),
        "{err}"
    );

    let mut spec = spec_in(dir.path());
    spec.runtime = dynamic.to_owned();
    assert!(image_digest(&spec).unwrap_err().to_string().contains("dynamically linked"));

    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\nexec server\n").unwrap();
    spec.runtime = script;
    let err = image_digest(&spec).unwrap_err().to_string();
    assert!(err.contains("a script (`#!/bin/sh`)"), "{err}");
}

#[test]
fn shells_and_package_managers_never_enter_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    for name in ["sh", "bash", "busybox", "apt-get", "pip"] {
        let mut spec = spec_in(dir.path());
        spec.application.name = name.to_owned();
        let err = store.ensure(&spec).unwrap_err().to_string();
        assert!(err.contains("no shell or package manager") && err.contains(&format!("/app/{name}")), "{err}");
        let mut spec = spec_in(dir.path());
        spec.modules[0].image_path = format!("/lib/modules/6.1.0-test/{name}");
        assert!(store.ensure(&spec).unwrap_err().to_string().contains("no shell or package manager"));
    }
    assert!(store.list().unwrap().is_empty());
}

/// A multi-call shell renamed to a harmless name is still refused: by content, at plan time.
#[test]
fn a_renamed_busybox_is_refused_by_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut spec = spec_in(dir.path());
    spec.application.name = "httpd".into();
    // A static executable carrying BusyBox's banner and an applet table with `sh`, as a real
    // BusyBox does (the host's own is used too, when it has a static one).
    support::static_copy(&spec.application.path, "BusyBox v1.35.0 (Debian)\0[\0[[\0ash\0httpd\0sh\0");
    let candidates = [spec.application.path.clone(), "/bin/busybox".into()];
    for path in candidates
        .iter()
        .filter(|p| sdsec_image::elf::check_static_executable(p, &std::fs::read(p).unwrap_or_default()).is_ok())
    {
        spec.application.path = path.clone();
        let err = image_digest(&spec).unwrap_err().to_string();
        assert!(err.contains("is a shell (BusyBox with a shell applet) by its content"), "{err}");
        assert!(store.ensure(&spec).is_err());
    }
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn a_flipped_byte_is_detected_by_verify_and_repaired_by_ensure() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let store = store_in(dir.path());
    let image = store.ensure(&spec).unwrap().image;
    let good = std::fs::read(&image.initramfs).unwrap();
    store.verify(&image.digest).unwrap();

    for target in [INITRAMFS, "kernel", MANIFEST] {
        let path = if target == "kernel" { image.kernel.clone() } else { image.dir.join(target) };
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match store.verify(&image.digest) {
            Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains(target), "{target}: {reason}"),
            other => panic!("a flipped byte in {target} was not detected: {other:?}"),
        }
        let ensured = store.ensure(&spec).unwrap();
        assert!(matches!(ensured.outcome, Outcome::Rebuilt { .. }), "{:?}", ensured.outcome);
        assert_eq!(std::fs::read(&ensured.image.initramfs).unwrap(), good);
        store.verify(&image.digest).unwrap();
    }
    assert_eq!(store.builds(), 4);
}

/// What an attacker who can write the store does: new initramfs bytes, and `SHA256SUMS`
/// made to match them.
fn replace_initramfs_and_its_sum(image: &Path, bytes: &[u8]) {
    std::fs::write(image.join(INITRAMFS), bytes).unwrap();
    let file = sdsec_image::input::FileRef::of(bytes);
    let sums = std::fs::read_to_string(image.join(SUMS)).unwrap();
    let fixed: String = sums
        .lines()
        .map(
            |l| if l.ends_with(INITRAMFS) { format!("{}  {INITRAMFS}\n", &file.sha256[7..]) } else { format!("{l}\n") },
        )
        .collect();
    std::fs::write(image.join(SUMS), fixed).unwrap();
}

#[test]
fn tampering_that_also_rewrites_the_sums_is_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let store = store_in(dir.path());
    let image = store.ensure(&spec).unwrap().image;
    // Replace the application inside the archive with another valid archive, and fix SHA256SUMS.
    let mut evil = spec.clone();
    evil.application.path = dir.path().join("evil");
    static_copy(&evil.application.path, "evil");
    let evil_manifest = Manifest::from_spec(&evil).unwrap();
    let evil_bytes = sdsec_image::initramfs::archive(&evil, &evil_manifest).unwrap();
    replace_initramfs_and_its_sum(&image.dir, &evil_bytes);
    match store.verify(&image.digest) {
        Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains("/app/api differs"), "{reason}"),
        other => panic!("not detected: {other:?}"),
    }
    std::fs::remove_file(image.dir.join(SUMS)).unwrap();
    assert!(matches!(store.verify(&image.digest), Err(StoreError::Tampered { .. })));
    assert!(matches!(store.ensure(&spec).unwrap().outcome, Outcome::Rebuilt { .. }));
}

/// The kernel unpacks archives concatenated after the image's own over it: an entry
/// appended after the trailer (here a new `init`), with the sums rewritten, is caught.
#[test]
fn an_archive_appended_after_the_trailer_is_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let store = store_in(dir.path());
    let image = store.ensure(&spec).unwrap().image;
    let mut bytes = std::fs::read(&image.initramfs).unwrap();
    let honest = bytes.len();
    // One small entry, without a trailer of its own (the kernel needs none): it fits within
    // the size the manifest's tree allows, so the archive's own end must catch it.
    let init = sdsec_image::cpio::Entry::file("init", 0o100555, b"#!/a".to_vec());
    let appended = sdsec_image::cpio::write(vec![init]).unwrap();
    let trailer = appended.windows(6).rposition(|w| w == b"070701").unwrap();
    bytes.extend(&appended[..trailer]);
    replace_initramfs_and_its_sum(&image.dir, &bytes);
    match store.verify(&image.digest) {
        Err(StoreError::Tampered { reason, .. }) => {
            assert!(reason.contains(&format!("after its TRAILER!!! member, at byte {honest}")), "{reason}")
        }
        other => panic!("not detected: {other:?}"),
    }
}

#[test]
fn concurrent_builds_of_images_sharing_a_kernel_all_succeed_and_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path());
    let barrier = Arc::new(Barrier::new(4));
    let state = dir.path().to_owned();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let mut spec = spec.clone();
            spec.application.args = vec![format!("--image-{i}")];
            let (barrier, state) = (barrier.clone(), state.clone());
            std::thread::spawn(move || {
                // A Store each, as separate requests of one provider process have.
                let store = store_in(&state);
                barrier.wait();
                store.ensure(&spec).map(|e| e.image)
            })
        })
        .collect();
    let images: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert!(images.iter().all(|i| i.kernel == images[0].kernel));
    let stored: Vec<_> = std::fs::read_dir(dir.path().join("state/images").join(KERNELS)).unwrap().flatten().collect();
    assert_eq!(stored.len(), 1, "one kernel, no copy left over: {stored:?}");
}

#[test]
fn concurrent_ensures_of_one_digest_build_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Arc::new(spec_in(dir.path()));
    let barrier = Arc::new(Barrier::new(4));
    let state = dir.path().to_owned();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (spec, barrier, state) = (spec.clone(), barrier.clone(), state.clone());
            std::thread::spawn(move || {
                // A Store each: the lock must hold across separate opens, as across processes.
                let store = store_in(&state);
                barrier.wait();
                let ensured = store.ensure(&spec).unwrap();
                (store.builds(), ensured.image.digest, ensured.outcome)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.iter().map(|r| r.0).sum::<u64>(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.1 == results[0].1));
    assert_eq!(results.iter().filter(|r| r.2 == Outcome::Reused).count(), 3);
}

#[test]
fn a_failed_build_leaves_no_image_and_no_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut spec = spec_in(dir.path());
    spec.application.path = dir.path().join("missing-app");
    let err = store.ensure(&spec).unwrap_err().to_string();
    assert!(err.contains("cannot read the application") && err.contains("missing-app"), "{err}");

    // Fails in the middle: the kernel is already copied into the temp dir when the app is read.
    let spec = spec_in(dir.path());
    let manifest = Manifest::from_spec(&spec).unwrap();
    std::fs::remove_file(&spec.application.path).unwrap();
    let err = store.ensure_manifest(&spec, &manifest).unwrap_err().to_string();
    assert!(err.contains("cannot read the application"), "{err}");
    // An input that changed since the digest was computed is refused, not built.
    static_copy(&spec.application.path, "changed since plan");
    let err = store.ensure_manifest(&spec, &manifest).unwrap_err().to_string();
    assert!(err.contains("changed since the image digest was computed"), "{err}");

    assert!(store.list().unwrap().is_empty());
    assert!(temp_dirs(dir.path()).is_empty(), "{:?}", temp_dirs(dir.path()));
    assert!(matches!(store.verify(&manifest.digest().unwrap()), Err(StoreError::NotFound(_))));
}

#[test]
fn gc_removes_unreferenced_images_and_stale_temp_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let spec = spec_in(dir.path());
    let mut other = spec.clone();
    other.application.args = vec!["--other".into()];
    let keep = store.ensure(&spec).unwrap().image.digest;
    let drop = store.ensure(&other).unwrap().image.digest;
    let stale = dir.path().join(format!("state/images/.tmp-{}-999999-0", drop.hex()));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(INITRAMFS), b"half").unwrap();
    assert_eq!(store.list().unwrap().len(), 2, "temp dirs are not listed");

    let report = store.gc(std::slice::from_ref(&keep)).unwrap();
    assert_eq!(report.removed, vec![drop.clone()]);
    assert_eq!(report.temp_dirs_removed, 1);
    assert!(report.busy.is_empty());
    let listed: Vec<ImageDigest> = store.list().unwrap().into_iter().map(|i| i.digest).collect();
    assert_eq!(listed, vec![keep.clone()]);
    assert!(!stale.exists());
    assert!(!dir.path().join(format!("state/images/.locks/{}.lock", drop.hex())).exists());
    store.verify(&keep).unwrap();
    assert!(matches!(store.verify(&drop), Err(StoreError::NotFound(_))));
    assert_eq!(store.gc(&[]).unwrap().removed, vec![keep]);
    assert!(store.list().unwrap().is_empty());
}
