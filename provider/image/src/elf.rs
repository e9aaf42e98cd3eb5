//! Checks that a file is a static x86-64 ELF executable: the image holds no dynamic loader
//! and no shared libraries, so anything else could not run in it.
//!
//! Only what the check needs is parsed: the ELF64 header (`e_ident`, `e_type` at 16,
//! `e_machine` at 18, `e_entry` at 24, `e_phoff` at 32, `e_phentsize` at 54, `e_phnum` at
//! 56) and the program headers' `p_type` (offset 0) and, for `PT_INTERP`, `p_offset` (8)
//! and `p_filesz` (32).

use std::path::{Path, PathBuf};

const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;

const HOW_TO_BUILD_STATIC: &str = "build a static x86-64 executable: for Rust, \
     RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu \
     (or the x86_64-unknown-linux-musl target); for Go, CGO_ENABLED=0 go build; for C, link with -static";

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error(
        "{path} is {what}, not a static x86-64 ELF executable; the image has no shell, loader or libraries to run it: {HOW_TO_BUILD_STATIC}"
    )]
    NotStatic { path: PathBuf, what: String },
}

/// What kind of static executable it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticKind {
    /// `ET_EXEC`: linked at a fixed address.
    Exec,
    /// `ET_DYN` without an interpreter: a static position-independent executable.
    StaticPie,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Describes a file that is not an ELF executable at all, for the error message.
fn describe_non_elf(bytes: &[u8]) -> String {
    if bytes.starts_with(b"#!") {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        format!("a script (`{}`)", String::from_utf8_lossy(line).trim())
    } else if bytes.is_empty() {
        "an empty file".to_owned()
    } else {
        "not an ELF file".to_owned()
    }
}

/// Checks `bytes`, the content of the file at `path` (named in errors).
pub fn check_static_executable(path: &Path, bytes: &[u8]) -> Result<StaticKind, ElfError> {
    let fail = |what: String| ElfError::NotStatic { path: path.to_owned(), what };
    if bytes.len() < EHDR_LEN || !bytes.starts_with(b"\x7fELF") {
        return Err(fail(describe_non_elf(bytes)));
    }
    if bytes[4] != ELFCLASS64 {
        return Err(fail("a 32-bit ELF file".to_owned()));
    }
    if bytes[5] != ELFDATA2LSB {
        return Err(fail("a big-endian ELF file".to_owned()));
    }
    let truncated = || fail("a truncated ELF file".to_owned());
    let e_type = u16_at(bytes, 16).ok_or_else(truncated)?;
    let e_machine = u16_at(bytes, 18).ok_or_else(truncated)?;
    if e_machine != EM_X86_64 {
        return Err(fail(format!("an ELF file for another machine (e_machine {e_machine}, x86-64 is 62)")));
    }
    let kind = match e_type {
        ET_EXEC => StaticKind::Exec,
        ET_DYN => StaticKind::StaticPie,
        1 => return Err(fail("a relocatable object file (.o or kernel module)".to_owned())),
        4 => return Err(fail("a core dump".to_owned())),
        other => return Err(fail(format!("an ELF file of unknown type {other}"))),
    };
    let entry = u64_at(bytes, 24).ok_or_else(truncated)?;
    if kind == StaticKind::StaticPie && entry == 0 {
        return Err(fail("a shared library (no entry point)".to_owned()));
    }
    let phoff = usize::try_from(u64_at(bytes, 32).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(bytes, 54).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(bytes, 56).ok_or_else(truncated)?);
    if phnum == 0 || phentsize < PHDR_LEN {
        return Err(fail("an ELF file without program headers".to_owned()));
    }
    for i in 0..phnum {
        let at = phentsize.checked_mul(i).and_then(|o| o.checked_add(phoff)).ok_or_else(truncated)?;
        if u32_at(bytes, at).ok_or_else(truncated)? == PT_INTERP {
            return Err(fail(format!(
                "a dynamically linked executable (it asks for the loader {})",
                interpreter(bytes, at)
            )));
        }
    }
    Ok(kind)
}

/// The loader path a `PT_INTERP` header names, or `?` when it cannot be read.
fn interpreter(bytes: &[u8], phdr: usize) -> String {
    let read = || {
        let off = usize::try_from(u64_at(bytes, phdr + 8)?).ok()?;
        let len = usize::try_from(u64_at(bytes, phdr + 32)?).ok()?;
        let raw = bytes.get(off..off.checked_add(len)?)?;
        Some(String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or_default()).into_owned())
    };
    read().unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `ptype`.
    fn elf(e_type: u16, machine: u16, ptype: u32) -> Vec<u8> {
        let mut b = vec![0u8; EHDR_LEN + PHDR_LEN + 32];
        b[..4].copy_from_slice(b"\x7fELF");
        (b[4], b[5], b[6]) = (ELFCLASS64, ELFDATA2LSB, 1);
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&ptype.to_le_bytes());
        let interp = b"/lib/ld.so\0";
        let off = EHDR_LEN + PHDR_LEN;
        b[off..off + interp.len()].copy_from_slice(interp);
        b[64 + 8..64 + 16].copy_from_slice(&(off as u64).to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes());
        b
    }

    fn message(bytes: &[u8]) -> String {
        check_static_executable(Path::new("build/app"), bytes).unwrap_err().to_string()
    }

    #[test]
    fn static_exec_and_static_pie_pass() {
        assert_eq!(check_static_executable(Path::new("a"), &elf(ET_EXEC, EM_X86_64, 1)).unwrap(), StaticKind::Exec);
        assert_eq!(check_static_executable(Path::new("a"), &elf(ET_DYN, EM_X86_64, 1)).unwrap(), StaticKind::StaticPie);
    }

    #[test]
    fn everything_else_is_refused_with_the_reason_and_the_fix() {
        let m = message(&elf(ET_DYN, EM_X86_64, PT_INTERP));
        assert!(m.contains("build/app is a dynamically linked executable (it asks for the loader /lib/ld.so)"), "{m}");
        assert!(m.contains("+crt-static") && m.contains("CGO_ENABLED=0"), "{m}");
        assert!(message(&elf(ET_EXEC, 183, 1)).contains("another machine"));
        assert!(message(&elf(1, EM_X86_64, 1)).contains("relocatable"));
        assert!(message(b"#!/bin/sh\necho hi\n").contains("a script (`#!/bin/sh`)"));
        assert!(message(b"").contains("an empty file"));
        let mut truncated = elf(ET_EXEC, EM_X86_64, 1);
        truncated[32..40].copy_from_slice(&4096u64.to_le_bytes());
        assert!(message(&truncated).contains("truncated"));
        let mut class32 = elf(ET_EXEC, EM_X86_64, 1);
        class32[4] = 1;
        assert!(message(&class32).contains("32-bit"));
    }
}
