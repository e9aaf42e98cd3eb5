//! `ensure`, `retain` and the removal of unloadable snapshots against a hypervisor that
//! boots nothing: its "instances" are records, its saved state a few bytes of its choosing,
//! and a copy's load reads the state QEMU would be handed.

use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::sync::{Arc, Mutex, PoisonError};

use hypervisor::{
    Accel, BootSpec, ControlEndpoint, Creator, Hypervisor, HypervisorError, Instance, InstanceId, InstanceState,
};
use network::ModeChoice;
use sdsec_image::input::FileRef;
use sdsec_image::manifest::AppRef;
use sdsec_image::{Image, ImageDigest, Manifest};

use super::*;
use crate::ProviderConfig;
use crate::instance::{Boot, InstanceError, boot_from_snapshot};

/// How a copy's load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Fits,
    /// QEMU refuses the stream.
    Refused,
    /// The machine being loaded is too slow: says nothing of the stream.
    TimesOut,
}

#[derive(Debug)]
struct Shared {
    compat: String,
    load: Load,
    /// Instances booted to be saved.
    made: u32,
    /// What each copy's load read, through the descriptor it was handed.
    loaded: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Fake(Arc<Mutex<Shared>>);

impl Fake {
    fn new() -> Fake {
        Fake(Arc::new(Mutex::new(Shared { compat: "fake 1".into(), load: Load::Fits, made: 0, loaded: Vec::new() })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn instance(spec: &BootSpec) -> Instance {
    Instance {
        id: InstanceId::random().unwrap(),
        name: spec.name.clone(),
        image_digest: spec.image_digest.clone(),
        endpoint: "127.0.0.1:18080".parse().unwrap(),
        accel: Accel::Tcg,
        boot_ms: 1234,
        console_log: PathBuf::new(),
        audit_log: None,
        bridged: None,
        creator: None,
        memory_mb: spec.memory_mb,
        vcpus: spec.vcpus,
        started_at_ms: 0,
        metadata: serde_json::Value::Null,
    }
}

impl Hypervisor for Fake {
    fn boot(&self, spec: &BootSpec) -> hypervisor::Result<Instance> {
        let booted = instance(spec);
        let Some(restore) = &spec.restore else {
            assert!(spec.cmdline.contains("sdsec.snapshot=1"), "{}", spec.cmdline);
            self.with(|s| s.made += 1);
            return Ok(booted);
        };
        let refused =
            |reason: &str| HypervisorError::SnapshotUnloadable { id: booted.id.clone(), reason: reason.into() };
        match self.with(|s| s.load) {
            Load::Refused => return Err(refused("Invalid argument")),
            Load::TimesOut => return Err(HypervisorError::Snapshot { id: booted.id.clone(), reason: "slow".into() }),
            Load::Fits => {}
        }
        let mut stream = vec![0u8; 4096];
        let n = restore.state.read_at(&mut stream, 0).unwrap();
        stream.truncate(n);
        self.with(|s| s.loaded.push(stream));
        Ok(booted)
    }
    fn state(&self, _: &InstanceId) -> hypervisor::Result<InstanceState> {
        Ok(InstanceState::Paused)
    }
    fn instance(&self, id: &InstanceId) -> hypervisor::Result<Instance> {
        Err(HypervisorError::NoSuchInstance(id.clone()))
    }
    fn list(&self) -> hypervisor::Result<Vec<(Instance, InstanceState)>> {
        Ok(Vec::new())
    }
    fn pause(&self, _: &InstanceId) -> hypervisor::Result<()> {
        Ok(())
    }
    fn resume(&self, _: &InstanceId) -> hypervisor::Result<()> {
        Ok(())
    }
    fn stop(&self, _: &InstanceId, _: Duration) -> hypervisor::Result<()> {
        Ok(())
    }
    fn log(&self, id: &InstanceId, _: hypervisor::LogKind) -> hypervisor::Result<Box<dyn hypervisor::LogFile>> {
        Err(HypervisorError::NoSuchInstance(id.clone()))
    }
    fn set_metadata(&self, _: &InstanceId, _: serde_json::Value) -> hypervisor::Result<()> {
        Ok(())
    }
    fn set_creator(&self, _: &InstanceId, _: Option<Creator>) -> hypervisor::Result<()> {
        Ok(())
    }
    fn control(&self, id: &InstanceId) -> hypervisor::Result<ControlEndpoint> {
        Err(HypervisorError::NoControl(id.clone()))
    }
    /// Like QEMU's: a new file, the stream written into it.
    fn save(&self, id: &InstanceId, dest: &Path) -> hypervisor::Result<()> {
        let mut file = File::options().write(true).create_new(true).mode(0o600).open(dest).unwrap();
        file.write_all(format!("stream of {id}").as_bytes()).unwrap();
        Ok(())
    }
    fn snapshot_compat(&self) -> hypervisor::Result<String> {
        Ok(self.with(|s| s.compat.clone()))
    }
}

fn file_ref(what: &str) -> FileRef {
    FileRef::of(what.as_bytes())
}

fn image(dir: &Path) -> Image {
    let manifest = Manifest {
        format: 1,
        builder: "test".into(),
        node: "api".into(),
        plan: file_ref("plan"),
        kernel: file_ref("kernel"),
        cmdline: "console=ttyS0".into(),
        init: file_ref("init"),
        application: AppRef {
            name: "app".into(),
            sha256: file_ref("app").sha256,
            size: 3,
            args: Vec::new(),
            port: 8080,
        },
        modules: Vec::new(),
        memory_mb: 128,
        vcpus: 1,
    };
    Image {
        digest: ImageDigest::of(b"image"),
        dir: dir.to_owned(),
        manifest,
        kernel: dir.join("vmlinux"),
        initramfs: dir.join("initramfs"),
    }
}

fn plan() -> EnforcementPlan {
    let doc = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    api: { type: sdsec.nodes.Unikernel }\n";
    let compiled = sectosca::compile_str("t", doc);
    compiled.plans.get("api").cloned().unwrap_or_else(|| panic!("{:?}", compiled.diagnostics))
}

struct Setup {
    _state: tempfile::TempDir,
    dir: PathBuf,
    fake: Fake,
    host: Host,
    image: Image,
    plan: EnforcementPlan,
    snapshots: Snapshots,
}

impl Setup {
    fn new() -> Setup {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().to_owned();
        let mut config = ProviderConfig::new(dir.clone());
        config.network.choice = ModeChoice::User;
        let fake = Fake::new();
        let host = Host::new(Box::new(fake.clone()), &config);
        let snapshots = Snapshots::new(&dir);
        Setup { image: image(&dir), plan: plan(), _state: state, dir, fake, host, snapshots }
    }

    fn ensure(&self) -> Result<Snapshot, SnapshotError> {
        self.snapshots.ensure(&self.host, &self.image, &self.plan, Duration::from_secs(5))
    }

    fn start(&self) -> Result<Instance, InstanceError> {
        let boot = Boot {
            name: "api".into(),
            host_port: None,
            timeout: Duration::from_secs(5),
            metadata: serde_json::Value::Null,
            peers: Vec::new(),
        };
        boot_from_snapshot(&self.host, &self.dir, &self.image, &self.plan, boot)
    }

    fn key(&self) -> String {
        Snapshots::key(&self.image.digest.to_string(), &self.fake.with(|s| s.compat.clone()))
    }

    fn made(&self) -> u32 {
        self.fake.with(|s| s.made)
    }

    /// The names in the snapshots directory, lock files aside.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        names.sort();
        names
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_snapshot_is_made_once_root_only_and_then_reused() {
    let s = Setup::new();
    let made = s.ensure().unwrap();
    assert_eq!(s.made(), 1);
    assert_eq!(made.dir, s.dir.join("snapshots").join(s.key()));
    assert_eq!(made.record.boot_ms, 1234);
    assert_eq!(made.record.compat, "fake 1");
    assert_eq!(mode(&made.dir), 0o700, "the dir");
    assert_eq!(mode(&made.dir.join(STATE)), 0o400, "the state");
    assert_eq!(mode(&made.dir.join(RECORD)), 0o600, "the record (it holds the key)");
    assert_eq!(s.entries(), [s.key()], "nothing half-made is left");
    let again = s.ensure().unwrap();
    assert_eq!(s.made(), 1, "a snapshot that verifies is not made again");
    assert_eq!(again.record, made.record);
}

#[test]
fn a_damaged_snapshot_is_removed_and_made_again() {
    let s = Setup::new();
    let first = s.ensure().unwrap();
    let state = first.dir.join(STATE);
    fs::set_permissions(&state, fs::Permissions::from_mode(0o600)).unwrap();
    let mut bytes = fs::read(&state).unwrap();
    bytes[3] ^= 0xff;
    fs::write(&state, &bytes).unwrap();
    let second = s.ensure().unwrap();
    assert_eq!(s.made(), 2, "the damaged state was made again");
    assert_ne!(second.record.key, first.record.key);
    assert_eq!(mode(&second.dir.join(STATE)), 0o400);

    fs::write(second.dir.join(RECORD), b"{ not json").unwrap();
    s.ensure().unwrap();
    assert_eq!(s.made(), 3, "an unreadable record too");

    fs::remove_file(second.dir.join(STATE)).unwrap();
    s.ensure().unwrap();
    assert_eq!(s.made(), 4, "a missing state too");
    assert_eq!(s.entries(), [s.key()]);
}

#[test]
fn the_copy_loads_the_very_file_that_was_verified() {
    let s = Setup::new();
    let saved = fs::read(s.ensure().unwrap().dir.join(STATE)).unwrap();
    let snapshot = s.ensure().unwrap();
    // Swapped behind the verification's back, between it and the load.
    let path = snapshot.dir.join(STATE);
    let swapped = snapshot.dir.join("swapped");
    fs::write(&swapped, b"another stream").unwrap();
    fs::rename(&swapped, &path).unwrap();
    let mut spec = launch::boot_spec(&s.image, &s.plan, Duration::from_secs(5));
    spec.restore = Some(snapshot.restore());
    s.host.boot_detached(spec).unwrap();
    assert_eq!(s.fake.with(|f| f.loaded.clone()), [saved]);
}

#[test]
fn a_snapshot_that_verifies_but_does_not_load_is_removed_and_made_again() {
    let s = Setup::new();
    s.start().unwrap();
    assert_eq!(s.fake.with(|f| f.loaded.len()), 1);

    // A slow machine says nothing of the stream: the snapshot stays.
    s.fake.with(|f| f.load = Load::TimesOut);
    let slow = s.start().unwrap_err();
    assert!(matches!(slow, InstanceError::Boot(_)), "{slow}");
    assert_eq!(s.entries(), [s.key()]);

    s.fake.with(|f| f.load = Load::Refused);
    let refused = s.start().unwrap_err().to_string();
    assert!(refused.contains("does not load on this host (Invalid argument)"), "{refused}");
    assert!(refused.contains("it was removed and is made again at the next start"), "{refused}");
    assert!(s.entries().is_empty(), "{:?}", s.entries());

    s.fake.with(|f| f.load = Load::Fits);
    s.start().unwrap();
    assert_eq!(s.made(), 2, "made again at the next start");
}

#[test]
fn one_removed_for_not_loading_is_not_one_made_again_meanwhile() {
    let s = Setup::new();
    let failed = s.ensure().unwrap();
    fs::remove_dir_all(&failed.dir).unwrap();
    let remade = s.ensure().unwrap();
    let error = s.snapshots.unloadable(&failed, "Invalid argument".into());
    assert!(matches!(error, SnapshotError::Unloadable { .. }), "{error}");
    assert!(remade.dir.join(RECORD).exists(), "another process's new snapshot stays");
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn partial_dirs_of_crashed_makes_are_collected_and_a_live_one_is_kept() {
    let s = Setup::new();
    let key = s.key();
    let root = s.dir.join("snapshots");
    let crashed = root.join(format!(".{key}.{}", dead_pid()));
    fs::create_dir_all(&crashed).unwrap();
    // A make in progress: its process runs (this one) and holds the key's lock.
    let live = root.join(format!(".{key}.{}", std::process::id()));
    fs::create_dir_all(&live).unwrap();
    let lock = s.snapshots.lock(&key).unwrap();
    assert_eq!(s.snapshots.retain(&[], None), 0);
    assert!(!crashed.exists(), "its process is gone");
    assert!(live.exists(), "a live make is never touched");
    drop(lock);
    // The number is taken by a live process, but no make holds the lock: not a make's.
    s.snapshots.retain(&[], None);
    assert!(!live.exists(), "no make holds the lock");

    // A make collects its key's leftovers itself, whatever their pid.
    fs::create_dir_all(root.join(format!(".{key}.1"))).unwrap();
    let other = root.join(".0123456789abcdef0123456789abcdef.1");
    fs::create_dir_all(&other).unwrap();
    s.ensure().unwrap();
    assert_eq!(s.entries(), [".0123456789abcdef0123456789abcdef.1".to_owned(), key], "another key's is left to gc");
}

#[test]
fn snapshots_of_another_compat_or_revision_or_image_are_collected() {
    let s = Setup::new();
    let old = s.ensure().unwrap();
    s.fake.with(|f| f.compat = "fake 2".into());
    let current = s.ensure().unwrap();
    assert_eq!(s.made(), 2, "another emulator gets a snapshot of its own");
    assert_ne!(old.dir, current.dir);
    let image = s.image.digest.to_string();
    assert_eq!(s.snapshots.retain(std::slice::from_ref(&image), None), 0, "without a compat, kept images' stay");
    assert_eq!(s.snapshots.retain(std::slice::from_ref(&image), Some("fake 2")), 1);
    assert!(!old.dir.exists() && current.dir.exists());

    let mut record = current.record.clone();
    record.revision = REVISION - 1;
    fsutil::write_json_atomically(&current.dir.join(RECORD), &record).unwrap();
    assert_eq!(s.snapshots.retain(std::slice::from_ref(&image), Some("fake 2")), 1, "an older revision");

    s.ensure().unwrap();
    assert_eq!(s.snapshots.retain(&[], Some("fake 2")), 1, "its image is gone");
    assert!(s.entries().is_empty(), "{:?}", s.entries());
}

#[test]
fn a_make_waits_for_the_lock_of_its_key() {
    let s = Arc::new(Setup::new());
    let lock = s.snapshots.lock(&s.key()).unwrap();
    let waiting = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.ensure().map(|snapshot| snapshot.record.key))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "ensure went ahead while the lock was held");
    assert_eq!(s.made(), 0);
    drop(lock);
    waiting.join().unwrap().unwrap();
    assert_eq!(s.made(), 1);
}
