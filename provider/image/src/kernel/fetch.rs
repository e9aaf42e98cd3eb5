//! `apt-get download` of a Debian kernel package and extraction of what images need, into
//! a temporary directory that is renamed into the cache only when complete.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;

use fsutil::io;

use super::process::{APT_HINT, Scratch, read_package, run};
use super::{KernelError, KernelKind, KernelRecord, MODULES, RECORD, bzimage};

/// Debian's meta package for the kernel built for virtual machines.
pub const DEFAULT_PACKAGE: &str = "linux-image-cloud-amd64";

/// The concrete kernel package a meta package depends on, or `package` itself.
fn concrete_package(package: &str) -> Result<String, KernelError> {
    let out = run(Command::new("apt-cache").args(["depends", package]), APT_HINT)?;
    let dependency = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.strip_prefix("linux-image-").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())));
    Ok(dependency.unwrap_or(package).to_owned())
}

pub(super) fn fetch_into(root: &Path, package: &str, progress: &mut dyn FnMut(&str)) -> Result<String, KernelError> {
    let scratch_dir = root.join(format!(".fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch_dir);
    fs::create_dir_all(scratch_dir.join("modules")).map_err(io("create", &scratch_dir))?;
    let mut scratch = Scratch(Some(scratch_dir.clone()));

    let concrete = concrete_package(package)?;
    progress(&format!("downloading {concrete}"));
    run(Command::new("apt-get").args(["download", "-q", &concrete]).current_dir(&scratch_dir), APT_HINT)?;
    let deb = fs::read_dir(&scratch_dir)
        .map_err(io("list", &scratch_dir))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| KernelError::NotAKernelPackage { package: concrete.clone(), what: ".deb file" })?;
    let version = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"), APT_HINT)?.trim().to_owned();

    progress(&format!("unpacking {concrete} {version}"));
    let (release, vmlinuz, modules) = extract(&deb, &scratch_dir)?;
    fs::remove_file(&deb).map_err(io("remove", &deb))?;

    let image = match bzimage::vmlinux(&vmlinuz) {
        Ok(elf) => {
            let path = scratch_dir.join("vmlinux");
            fs::write(&path, elf).map_err(io("write", &path))?;
            "vmlinux"
        }
        Err(e) => {
            progress(&format!("keeping the compressed kernel: {e}"));
            "vmlinuz"
        }
    };
    if image == "vmlinuz" {
        let path = scratch_dir.join("vmlinuz");
        fs::write(&path, &vmlinuz).map_err(io("write", &path))?;
    }

    let record = KernelRecord {
        layout: super::CACHE_LAYOUT,
        kind: KernelKind::DebianCloud,
        config_digest: None,
        package: concrete,
        package_version: version,
        release: release.clone(),
        image: image.into(),
        modules,
    };
    let json = serde_json::to_string_pretty(&record)
        .map_err(|e| KernelError::BadRecord { path: scratch_dir.join(RECORD), reason: e.to_string() })?;
    let record_path = scratch_dir.join(RECORD);
    fs::write(&record_path, json + "\n").map_err(io("write", &record_path))?;

    let dir = root.join(&release);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io("replace", &dir))?;
    }
    fs::rename(&scratch_dir, &dir).map_err(io("move into place", &dir))?;
    scratch.0 = None;
    Ok(release)
}

/// Streams the package's file system out of `dpkg-deb` and keeps the kernel and the
/// wanted modules. Returns the release, the bzImage and the module file names in load
/// order.
fn extract(deb: &Path, scratch: &Path) -> Result<(String, Vec<u8>, Vec<String>), KernelError> {
    let (release, vmlinuz, mut modules) = read_package(deb, |stream| read_tar(stream, scratch))?;
    let (Some(release), Some(vmlinuz)) = (release, vmlinuz) else {
        return Err(KernelError::NotAKernelPackage { package: deb.display().to_string(), what: "/boot/vmlinuz-*" });
    };
    modules.sort_by_key(|name| MODULES.iter().position(|m| format!("{m}.ko") == *name));
    Ok((release, vmlinuz, modules))
}

type Found = (Option<String>, Option<Vec<u8>>, Vec<String>);

fn read_tar(stream: impl Read, scratch: &Path) -> Result<Found, KernelError> {
    let tar_err = |e: io::Error| KernelError::from(io("read the package's archive", scratch)(e));
    let (mut release, mut vmlinuz, mut modules) = (None, None, Vec::new());
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = entry.path().map_err(tar_err)?.to_string_lossy().trim_start_matches("./").to_owned();
        if let Some(rel) = path.strip_prefix("boot/vmlinuz-") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(tar_err)?;
            release = Some(rel.to_owned());
            vmlinuz = Some(bytes);
        } else if path.starts_with("lib/modules/") || path.starts_with("usr/lib/modules/") {
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            let wanted = name.strip_suffix(".ko").is_some_and(|stem| MODULES.contains(&stem));
            if wanted && !modules.contains(&name) {
                let out = scratch.join("modules").join(&name);
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(tar_err)?;
                fs::write(&out, bytes).map_err(io("write", &out))?;
                modules.push(name);
            }
        }
    }
    Ok((release, vmlinuz, modules))
}
