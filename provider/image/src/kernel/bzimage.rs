//! Turning a compressed `bzImage` into the uncompressed ELF `vmlinux` that QEMU's `microvm`
//! machine boots directly through its PVH entry point (no decompression in the guest,
//! which is slow under TCG).
//!
//! Facts of the x86 boot protocol used here: the real-mode header holds `setup_sects` at
//! 0x1f1 and the signature `HdrS` at 0x202; from protocol 2.08 on, `payload_offset` (0x248)
//! and `payload_length` (0x24c) locate the compressed kernel after the setup sectors.

use std::io::Read;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BzImageError {
    #[error("not a bzImage (no `HdrS` signature at 0x202)")]
    NotBzImage,
    #[error("the bzImage's payload lies outside the file")]
    BadPayload,
    #[error("the payload is compressed with {0}, which this sdsec cannot unpack; the bzImage is booted as it is")]
    Unsupported(&'static str),
    #[error("the {0} payload is corrupt: {1}")]
    Corrupt(&'static str, String),
    #[error("the unpacked kernel is not an ELF file with a PVH entry point (needs CONFIG_PVH=y)")]
    NoPvh,
}

const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// The legacy LZ4 format cuts its input into blocks of at most 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The compressed payload of a bzImage.
pub fn payload(bz: &[u8]) -> Result<&[u8], BzImageError> {
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err(BzImageError::NotBzImage);
    }
    let setup_sects = match bz.get(0x1f1).copied().ok_or(BzImageError::NotBzImage)? {
        0 => 4,
        n => usize::from(n),
    };
    let offset = u32_at(bz, 0x248).ok_or(BzImageError::BadPayload)? as usize;
    let length = u32_at(bz, 0x24c).ok_or(BzImageError::BadPayload)? as usize;
    let start = (setup_sects + 1) * 512 + offset;
    bz.get(start..start + length).ok_or(BzImageError::BadPayload)
}

/// The uncompressed kernel inside a bzImage, checked to have a PVH entry point.
pub fn vmlinux(bz: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let data = payload(bz)?;
    let elf = match data {
        [0x02, 0x21, 0x4c, 0x18, ..] => unlz4_legacy(data)?,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => unzstd(data)?,
        [0x1f, 0x8b, ..] => return Err(BzImageError::Unsupported("gzip")),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => return Err(BzImageError::Unsupported("xz")),
        _ => return Err(BzImageError::Unsupported("an unknown method")),
    };
    if !has_pvh_note(&elf) {
        return Err(BzImageError::NoPvh);
    }
    Ok(elf)
}

fn unlz4_legacy(data: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let corrupt = |m: String| BzImageError::Corrupt("LZ4", m);
    let mut out = Vec::with_capacity(data.len() * 3);
    let mut at = 4;
    // Blocks follow the magic; the kernel's build appends the uncompressed size (4 bytes),
    // which reads as a block size larger than what is left and ends the loop.
    while let Some(size) = u32_at(data, at) {
        at += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue;
        }
        let Some(block) = data.get(at..at + size as usize) else { break };
        at += size as usize;
        let start = out.len();
        out.resize(start + LZ4_LEGACY_BLOCK, 0);
        let n = lz4_flex::block::decompress_into(block, &mut out[start..]).map_err(|e| corrupt(e.to_string()))?;
        out.truncate(start + n);
    }
    if out.is_empty() {
        return Err(corrupt("no block".into()));
    }
    Ok(out)
}

fn unzstd(data: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let mut out = Vec::new();
    // The payload ends with the uncompressed size, which is not part of the frame.
    let mut decoder = zstd::stream::read::Decoder::new(data)
        .map_err(|e| BzImageError::Corrupt("zstd", e.to_string()))?
        .single_frame();
    decoder.read_to_end(&mut out).map_err(|e| BzImageError::Corrupt("zstd", e.to_string()))?;
    Ok(out)
}

/// Whether a 64-bit little-endian ELF file carries the Xen `PHYS32_ENTRY` note (type 18)
/// that QEMU needs to boot it through PVH.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    const PT_NOTE: u32 = 4;
    const PHYS32_ENTRY: u32 = 18;
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return false;
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |at: usize| elf.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let ph = phoff as usize + i * usize::from(phentsize);
        if u32_at(elf, ph) != Some(PT_NOTE) {
            return false;
        }
        let (Some(offset), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else { return false };
        let Some(notes) = elf.get(offset as usize..(offset + size) as usize) else { return false };
        note_types(notes).any(|(name, kind)| name == b"Xen\0" && kind == PHYS32_ENTRY)
    })
}

/// (name, type) of each note in an ELF note segment.
fn note_types(notes: &[u8]) -> impl Iterator<Item = (&[u8], u32)> {
    let align4 = |n: usize| n.div_ceil(4) * 4;
    let mut at = 0;
    std::iter::from_fn(move || {
        let namesz = u32_at(notes, at)? as usize;
        let descsz = u32_at(notes, at + 4)? as usize;
        let kind = u32_at(notes, at + 8)?;
        let name = notes.get(at + 12..at + 12 + namesz)?;
        at += 12 + align4(namesz) + align4(descsz);
        Some((name, kind))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bzimage_with(payload: &[u8]) -> Vec<u8> {
        let mut bz = vec![0u8; 5 * 512];
        bz[0x1f1] = 4;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        bz.extend_from_slice(&[0; 16]);
        bz.extend_from_slice(payload);
        bz
    }

    fn elf_with_pvh_note() -> Vec<u8> {
        let mut elf = vec![0u8; 0x40 + 0x38];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let note_at = elf.len() as u64;
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&18u32.to_le_bytes());
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&0x0100_0000u32.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&4u32.to_le_bytes());
        elf[0x48..0x50].copy_from_slice(&note_at.to_le_bytes());
        elf[0x60..0x68].copy_from_slice(&(note.len() as u64).to_le_bytes());
        elf.extend_from_slice(&note);
        elf.resize(4096, 0x90);
        elf
    }

    #[test]
    fn lz4_legacy_payload_unpacks_to_the_pvh_elf() {
        let elf = elf_with_pvh_note();
        let block = lz4_flex::block::compress(&elf);
        let mut payload = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        payload.extend_from_slice(&(block.len() as u32).to_le_bytes());
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(vmlinux(&bzimage_with(&payload)).unwrap(), elf);
    }

    #[test]
    fn zstd_payload_unpacks_and_a_kernel_without_pvh_is_refused() {
        let elf = elf_with_pvh_note();
        let mut payload = zstd::encode_all(&elf[..], 3).unwrap();
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(vmlinux(&bzimage_with(&payload)).unwrap(), elf);

        let mut no_note = elf.clone();
        no_note[0x40] = 1; // PT_LOAD instead of PT_NOTE
        let payload = zstd::encode_all(&no_note[..], 3).unwrap();
        assert_eq!(vmlinux(&bzimage_with(&payload)), Err(BzImageError::NoPvh));
    }

    #[test]
    fn other_inputs_are_named() {
        assert_eq!(vmlinux(b"not a kernel"), Err(BzImageError::NotBzImage));
        assert_eq!(vmlinux(&bzimage_with(&[0x1f, 0x8b, 8, 0])), Err(BzImageError::Unsupported("gzip")));
        let mut truncated = bzimage_with(&[0; 8]);
        truncated.truncate(5 * 512 + 20);
        assert_eq!(vmlinux(&truncated), Err(BzImageError::BadPayload));
    }
}
