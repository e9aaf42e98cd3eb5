//! Kernel modules: every `.ko` of the image, loaded in dependency order.
//!
//! The image does not record an order (no modules.dep), so it is derived from each
//! module's `.modinfo` section, whose `depends=` entry names the modules it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot list {path}: {source}")]
    List { path: String, source: std::io::Error },
    #[error("cannot load {path}: {source}")]
    Load { path: String, source: std::io::Error },
}

/// One module file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// As the kernel names it: the file stem with `-` written `_`.
    pub name: String,
    pub path: PathBuf,
    pub depends: Vec<String>,
}

/// Every `.ko` under `dir`, recursively.
pub fn scan(dir: &Path) -> Result<Vec<Module>, ModuleError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let list = |source| ModuleError::List { path: dir.display().to_string(), source };
        for entry in std::fs::read_dir(&dir).map_err(list)? {
            let path = entry.map_err(list)?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "ko") {
                let bytes = std::fs::read(&path)
                    .map_err(|source| ModuleError::Load { path: path.display().to_string(), source })?;
                let stem = path.file_stem().map(|s| s.to_string_lossy().replace('-', "_")).unwrap_or_default();
                out.push(Module { name: stem, depends: depends(&bytes), path });
            }
        }
    }
    Ok(out)
}

/// The `depends=` list of a module file: from its `.modinfo` section when the ELF headers
/// can be read, otherwise from the first `depends=` string anywhere in the file.
pub fn depends(file: &[u8]) -> Vec<String> {
    let info = modinfo(file).unwrap_or(file);
    let start = if info.starts_with(b"depends=") {
        Some(0)
    } else {
        info.windows(9).position(|w| w == b"\0depends=").map(|p| p + 1)
    };
    let Some(value) = start.and_then(|s| info.get(s + "depends=".len()..)) else { return Vec::new() };
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect()
}

/// The bytes of the `.modinfo` section of a little-endian ELF64 file.
fn modinfo(file: &[u8]) -> Option<&[u8]> {
    let u16_at = |at: usize| file.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| file.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |at: usize| file.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    // ELF magic, 64-bit class, little endian.
    if file.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let (entsize, count, names) = (usize::from(u16_at(0x3a)?), usize::from(u16_at(0x3c)?), usize::from(u16_at(0x3e)?));
    let section = |i: usize| -> Option<(usize, &[u8])> {
        let h = shoff.checked_add(i.checked_mul(entsize)?)?;
        let name = usize::try_from(u32_at(h)?).ok()?;
        let offset = usize::try_from(u64_at(h + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(h + 0x20)?).ok()?;
        Some((name, file.get(offset..offset.checked_add(size)?)?))
    };
    let (_, strings) = section(names)?;
    (0..count).filter_map(section).find_map(|(name, bytes)| {
        let s = strings.get(name..)?;
        (s.split(|b| *b == 0).next()? == b".modinfo").then_some(bytes)
    })
}

/// Dependencies first, otherwise by name. A dependency the image lacks is ignored (the
/// kernel may have it built in); a cycle is broken by name rather than refused.
pub fn order(mut modules: Vec<Module>) -> Vec<Module> {
    modules.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
    let present: BTreeSet<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let mut waiting: BTreeMap<usize, BTreeSet<&str>> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (i, m.depends.iter().map(String::as_str).filter(|d| present.contains(d)).collect()))
        .collect();
    let mut sequence = Vec::with_capacity(modules.len());
    while !waiting.is_empty() {
        // The first (by name) module with nothing left to wait for, or else the first of all.
        let next = waiting.iter().find(|(_, deps)| deps.is_empty()).or_else(|| waiting.iter().next()).map(|(i, _)| *i);
        let Some(next) = next else { break };
        waiting.remove(&next);
        let name = modules[next].name.as_str();
        for deps in waiting.values_mut() {
            deps.remove(name);
        }
        sequence.push(next);
    }
    let mut slots: Vec<Option<Module>> = modules.into_iter().map(Some).collect();
    sequence.into_iter().filter_map(|i| slots.get_mut(i).and_then(Option::take)).collect()
}

/// Loads one module; one already loaded (or built in) is not an error.
pub fn load(module: &Module) -> Result<(), ModuleError> {
    let failed = |source| ModuleError::Load { path: module.path.display().to_string(), source };
    let file = File::open(&module.path).map_err(failed)?;
    match rustix::system::finit_module(&file, c"", 0) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(failed(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, depends: &[&str]) -> Module {
        Module {
            name: name.to_owned(),
            path: PathBuf::from(format!("/lib/modules/{name}.ko")),
            depends: depends.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn names(modules: Vec<Module>) -> Vec<String> {
        order(modules).into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn dependencies_come_first_then_names() {
        let set = vec![
            module("virtio_net", &["net_failover", "virtio", "virtio_ring"]),
            module("net_failover", &["failover"]),
            module("virtio_mmio", &["virtio", "virtio_ring"]),
            module("failover", &[]),
            module("virtio_ring", &[]),
            module("virtio", &[]),
        ];
        let got = names(set);
        assert_eq!(got, ["failover", "net_failover", "virtio", "virtio_ring", "virtio_mmio", "virtio_net"]);
    }

    #[test]
    fn missing_dependencies_and_cycles_do_not_stop_loading() {
        assert_eq!(names(vec![module("b", &["builtin"]), module("a", &["b"])]), ["b", "a"]);
        assert_eq!(names(vec![module("y", &["x"]), module("x", &["y"]), module("z", &[])]), ["z", "x", "y"]);
    }

    #[test]
    fn depends_is_read_from_modinfo_strings() {
        let blob = b"junk\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0name=virtio_net\0";
        assert_eq!(depends(blob), ["virtio", "virtio_ring"]);
        assert_eq!(depends(b"depends=\0name=virtio\0"), Vec::<String>::new());
        assert_eq!(depends(b"depends=failover\0"), ["failover"]);
        assert!(depends(b"nothing here").is_empty());
    }

    #[test]
    fn depends_is_read_from_the_modinfo_section_of_an_elf() {
        // A minimal ELF64: header, the section contents, then three section headers
        // (null, .modinfo, .shstrtab). A decoy `depends=` outside .modinfo is ignored.
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let info = b"depends=virtio\0";
        let decoy = b"\0depends=decoy\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf.extend_from_slice(decoy);
        let info_at = elf.len();
        elf.extend_from_slice(info);
        let names_at = elf.len();
        elf.extend_from_slice(shstrtab);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        for (name, at, size) in [(0u32, 0usize, 0usize), (1, info_at, info.len()), (10, names_at, shstrtab.len())] {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(at as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        }
        assert_eq!(depends(&elf), ["virtio"]);
    }
}
