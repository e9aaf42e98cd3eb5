//! `sdsec kernel build`: sdsec's own kernel, from Debian's `linux-source-6.1` and the
//! configuration fragment ([`super::config`]), into the cache under a name derived from
//! both. Nothing is installed on the host: the source package is downloaded with
//! `apt-get download` and unpacked into a scratch directory that is removed afterwards.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fsutil::io;

use super::config::{self, FRAGMENT, PATCHES};
use super::process::{APT_HINT, Scratch, read_package, run};
use super::{KernelError, KernelKind, KernelRecord, RECORD};

/// Debian's package of the kernel source (a tarball under /usr/src).
pub const SOURCE_PACKAGE: &str = "linux-source-6.1";

/// What a build needs on the host, as (command or file, Debian package).
const PREREQUISITES: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("objcopy", "binutils"),
    ("tar", "tar"),
    ("xz", "xz-utils"),
    ("perl", "perl"),
    ("patch", "patch"),
    ("/usr/include/gelf.h", "libelf-dev"),
    ("/usr/include/openssl/opensslv.h", "libssl-dev"),
];

/// The log of the last build, kept beside the kernels (the scratch directory is removed).
pub const LOG: &str = "last-build.log";

const SCRATCH_PREFIX: &str = ".build-";

fn found(prerequisite: &str) -> bool {
    if prerequisite.starts_with('/') {
        return Path::new(prerequisite).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(prerequisite).is_file())
}

/// The Debian packages of the missing prerequisites.
pub fn missing_prerequisites() -> Vec<&'static str> {
    let mut packages: Vec<&str> = PREREQUISITES.iter().filter(|(what, _)| !found(what)).map(|(_, pkg)| *pkg).collect();
    packages.dedup();
    packages
}

/// The version apt would download, without downloading.
pub(super) fn candidate_version() -> Result<String, KernelError> {
    let out = run(Command::new("apt-cache").args(["show", "--no-all-versions", SOURCE_PACKAGE]), APT_HINT)?;
    out.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_owned())
        .ok_or(KernelError::BadSourcePackage { what: "version" })
}

/// Held while a build runs: two builds into one cache would share the log and replace
/// each other's results. `flock`, so the kernel drops it with a killed build.
pub(super) fn lock(root: &Path) -> Result<File, KernelError> {
    let path = root.join(".build.lock");
    let file =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io("open", &path))?;
    file.lock().map_err(io("lock", &path))?;
    Ok(file)
}

/// Removes the scratch directories of earlier builds (killed midway): with the build lock
/// held, no other build is running.
fn remove_stale_scratch(root: &Path) {
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(SCRATCH_PREFIX)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Builds the kernel of this configuration from `version` of the source into `root/name`,
/// replacing what is there (a damaged earlier build). The caller holds [`lock`].
pub(super) fn build_into(
    root: &Path,
    name: &str,
    version: &str,
    jobs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<(), KernelError> {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        return Err(KernelError::MissingPrerequisites(missing.join(" ")));
    }
    remove_stale_scratch(root);
    let scratch_dir = root.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch_dir);
    fs::create_dir_all(&scratch_dir).map_err(io("create", &scratch_dir))?;
    let _scratch = Scratch(Some(scratch_dir.clone()));

    progress(&format!("downloading {SOURCE_PACKAGE} {version}"));
    let source = unpack_source(&scratch_dir, version)?;
    let log_path = root.join(LOG);
    let log = Log::create(&log_path)?;
    for (patch_name, diff) in PATCHES {
        progress(&format!("applying {patch_name}"));
        log.patch(&source, &scratch_dir, patch_name, diff)?;
    }

    progress("configuring: tinyconfig and sdsec's fragment");
    let fragment = config::parse(FRAGMENT)?;
    log.make(&source, &["tinyconfig"])?;
    let dot_config = source.join(".config");
    let base = fs::read_to_string(&dot_config).map_err(io("read", &dot_config))?;
    fs::write(&dot_config, config::merge(&base, &fragment)).map_err(io("write", &dot_config))?;
    log.make(&source, &["olddefconfig"])?;
    let resolved = fs::read_to_string(&dot_config).map_err(io("read", &dot_config))?;
    config::check(&resolved, &fragment)?;

    progress(&format!("compiling with {jobs} jobs (minutes; the log is {})", log_path.display()));
    log.make(&source, &[&format!("-j{jobs}"), "vmlinux"])?;
    let release = run(make(&source).args(["-s", "kernelrelease"]), BUILD_HINT)?.trim().to_owned();

    // The kernel the image boots: vmlinux without symbols, as the bzImage's payload is.
    let out = scratch_dir.join("kernel");
    fs::create_dir(&out).map_err(io("create", &out))?;
    run(
        Command::new("objcopy").args(["-R", ".comment", "-S"]).arg(source.join("vmlinux")).arg(out.join("vmlinux")),
        BUILD_HINT,
    )?;
    fs::copy(&dot_config, out.join("config")).map_err(io("copy", &dot_config))?;
    let record = KernelRecord {
        layout: super::CACHE_LAYOUT,
        kind: KernelKind::Sdsec,
        config_digest: Some(config::config_digest(FRAGMENT)),
        package: SOURCE_PACKAGE.into(),
        package_version: version.to_owned(),
        release,
        image: "vmlinux".into(),
        modules: Vec::new(),
    };
    let json = serde_json::to_string_pretty(&record)
        .map_err(|e| KernelError::BadRecord { path: out.join(RECORD), reason: e.to_string() })?;
    let record_path = out.join(RECORD);
    fs::write(&record_path, json + "\n").map_err(io("write", &record_path))?;

    let dir = root.join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io("replace", &dir))?;
    }
    fs::rename(&out, &dir).map_err(io("move into place", &dir))?;
    // The scratch directory (the source tree) goes when `scratch` drops.
    Ok(())
}

const BUILD_HINT: &str = "the kernel build failed; see the build log in the kernel cache";

fn make(source: &Path) -> Command {
    let mut command = Command::new("make");
    // A build that depends only on its inputs: no host name, user or time inside.
    command
        .current_dir(source)
        .arg("ARCH=x86_64")
        .env("KBUILD_BUILD_USER", "sdsec")
        .env("KBUILD_BUILD_HOST", "sdsec")
        .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
        .env("KBUILD_BUILD_VERSION", "1");
    command
}

/// The build's output, appended to one file across the steps.
struct Log {
    path: PathBuf,
    file: File,
}

impl Log {
    fn create(path: &Path) -> Result<Log, KernelError> {
        let file = File::create(path).map_err(io("create", path))?;
        Ok(Log { path: path.to_owned(), file })
    }

    fn make(&self, source: &Path, args: &[&str]) -> Result<(), KernelError> {
        let mut command = make(source);
        command.args(args);
        self.run(command, format!("make {}", args.join(" ")))
    }

    /// Applies `diff` (one of [`PATCHES`]) to the tree; it must apply whole, exactly where
    /// its context says (no fuzz: a newer source release the patch no longer fits fails the
    /// build rather than patching the wrong place) and once.
    fn patch(&self, source: &Path, scratch: &Path, name: &str, diff: &str) -> Result<(), KernelError> {
        let file = scratch.join(name);
        fs::write(&file, diff).map_err(io("write", &file))?;
        let mut command = Command::new("patch");
        command
            .current_dir(source)
            .args(["-p1", "--forward", "--batch", "--fuzz=0", "--no-backup-if-mismatch", "-i"])
            .arg(&file);
        self.run(command, format!("patch -p1 --fuzz=0 < {name} (it no longer fits this source release)"))
    }

    fn run(&self, mut command: Command, shown: String) -> Result<(), KernelError> {
        let clone = || self.file.try_clone().map_err(io("write", &self.path));
        command.stdin(Stdio::null()).stdout(clone()?).stderr(clone()?);
        let status = command.status().map_err(|e| KernelError::Command {
            command: shown.clone(),
            detail: e.to_string(),
            hint: BUILD_HINT,
        })?;
        if status.success() {
            return Ok(());
        }
        let tail = fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = tail.lines().collect();
        let last = lines[lines.len().saturating_sub(15)..].join("\n");
        Err(KernelError::BuildFailed { step: shown, status: status.to_string(), log: self.path.clone(), last })
    }
}

/// Downloads the source package and unpacks its tarball; gives the source tree.
fn unpack_source(scratch: &Path, version: &str) -> Result<PathBuf, KernelError> {
    let pinned = format!("{SOURCE_PACKAGE}={version}");
    run(Command::new("apt-get").args(["download", "-q", &pinned]).current_dir(scratch), APT_HINT)?;
    let deb = fs::read_dir(scratch)
        .map_err(io("list", scratch))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or(KernelError::BadSourcePackage { what: ".deb file" })?;
    let tarball = scratch.join("source.tar.xz");
    extract_tarball(&deb, &tarball)?;
    fs::remove_file(&deb).map_err(io("remove", &deb))?;
    run(Command::new("tar").arg("-xJf").arg(&tarball).arg("-C").arg(scratch), BUILD_HINT)?;
    fs::remove_file(&tarball).map_err(io("remove", &tarball))?;
    let tree = scratch.join(SOURCE_PACKAGE);
    if !tree.join("Makefile").is_file() {
        return Err(KernelError::BadSourcePackage { what: "kernel source tree" });
    }
    Ok(tree)
}

/// Copies `usr/src/linux-source-*.tar.xz` out of the package's data archive.
fn extract_tarball(deb: &Path, out: &Path) -> Result<(), KernelError> {
    if !read_package(deb, |stream| copy_member(stream, out))? {
        return Err(KernelError::BadSourcePackage { what: "source tarball" });
    }
    Ok(())
}

fn copy_member(stream: impl io::Read, out: &Path) -> Result<bool, KernelError> {
    let tar_err = |e: io::Error| KernelError::from(io("read the package's archive", out)(e));
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = entry.path().map_err(tar_err)?.to_string_lossy().trim_start_matches("./").to_owned();
        if path.starts_with("usr/src/linux-source-") && path.ends_with(".tar.xz") {
            let mut file = File::create(out).map_err(io("create", out))?;
            io::copy(&mut entry, &mut file).map_err(io("write", out))?;
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_directories_of_earlier_builds_are_removed_and_kernels_kept() {
        let root = tempfile::tempdir().unwrap();
        let killed = root.path().join(format!("{SCRATCH_PREFIX}{}", u32::MAX));
        let kernel = root.path().join("sdsec-0123456789abcdef");
        for dir in [&killed, &kernel] {
            fs::create_dir_all(dir).unwrap();
        }
        let _held = lock(root.path()).unwrap();
        remove_stale_scratch(root.path());
        assert!(!killed.exists() && kernel.exists());
    }

    #[test]
    fn prerequisites_are_looked_up_on_path_and_as_files() {
        assert!(found("sh"));
        assert!(found("/"));
        assert!(!found("sdsec-no-such-command"));
        assert!(!found("/sdsec/no/such/header.h"));
    }
}
