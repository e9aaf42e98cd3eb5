//! The cpio "newc" format (magic `070701`), which the Linux kernel unpacks as an initramfs.
//!
//! Layout of one member: a 110-byte ASCII header (the magic, then 13 fields of 8 hex
//! digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
//! rdevminor, namesize including its NUL, check), the name and its NUL padded so that
//! header plus name end on a 4-byte boundary, then the data padded to 4 bytes. The archive
//! ends with a member named `TRAILER!!!`.
//!
//! The writer makes the output a function of the entries alone: owners 0, times 0, inode
//! numbers given in order, entries sorted. The reader exists so that the store can check
//! a stored initramfs against its manifest.

use std::collections::BTreeMap;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFMT: u32 = 0o170_000;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio entry `{0}` is not a clean relative path (no leading `/`, `.` or `..` components, no empty parts)")]
    BadPath(String),
    #[error("cpio entry `{0}` is given twice")]
    Duplicate(String),
    #[error("cpio entry `{path}` is larger than the 4 GiB a newc member can hold")]
    TooLarge { path: String },
    #[error("`{path}` is both a file and the parent of `{child}`")]
    FileAsParent { path: String, child: String },
    #[error("the archive is cut short at byte {0}")]
    Truncated(usize),
    #[error("bad cpio header at byte {0}: {1}")]
    BadHeader(usize, &'static str),
    #[error("the archive has no TRAILER!!! member")]
    NoTrailer,
    #[error("the archive goes on after its TRAILER!!! member, at byte {0}: the kernel would unpack what follows")]
    AfterTrailer(usize),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
}

/// One member as given to the writer: `path` is relative (`app/api`), `mode` holds only the
/// permission bits (0o755), the file type comes from `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub kind: Kind,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry { path: path.to_owned(), mode, kind: Kind::Dir }
    }

    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry { path: path.to_owned(), mode, kind: Kind::File(data) }
    }
}

/// One member as read back, with every header field the writer fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub data: Vec<u8>,
}

impl Member {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let clean = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if clean { Ok(()) } else { Err(CpioError::BadPath(path.to_owned())) }
}

/// Adds the missing parent directories (mode 0o755), sorts by path components so that a
/// parent always precedes its children, and refuses duplicates and files used as parents.
pub fn normalise(entries: Vec<Entry>) -> Result<Vec<Entry>, CpioError> {
    let mut by_path: BTreeMap<Vec<String>, Entry> = BTreeMap::new();
    for entry in entries {
        check_path(&entry.path)?;
        let key: Vec<String> = entry.path.split('/').map(str::to_owned).collect();
        if by_path.insert(key, entry.clone()).is_some() {
            return Err(CpioError::Duplicate(entry.path));
        }
    }
    let mut parents = Vec::new();
    for key in by_path.keys() {
        for n in 1..key.len() {
            parents.push(key[..n].to_vec());
        }
    }
    for parent in parents {
        let path = parent.join("/");
        match by_path.get(&parent) {
            Some(Entry { kind: Kind::File(_), .. }) => {
                let child = by_path.keys().find(|k| k.starts_with(&parent) && **k != parent).map(|k| k.join("/"));
                return Err(CpioError::FileAsParent { path, child: child.unwrap_or_default() });
            }
            Some(_) => {}
            None => {
                by_path.insert(parent, Entry::dir(&path, 0o755));
            }
        }
    }
    Ok(by_path.into_values().collect())
}

fn push_header(out: &mut Vec<u8>, fields: [u32; 13]) {
    out.extend_from_slice(MAGIC);
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn push_member(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) -> Result<(), CpioError> {
    let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge { path: name.to_owned() })?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| CpioError::TooLarge { path: name.to_owned() })?;
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
    push_header(out, [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0]);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

/// Writes the archive. The entries are normalised first (see [`normalise`]); inode numbers
/// start at 1 in that order; every member has uid, gid and mtime 0.
pub fn write(entries: Vec<Entry>) -> Result<Vec<u8>, CpioError> {
    let entries = normalise(entries)?;
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let ino = u32::try_from(i + 1).map_err(|_| CpioError::TooLarge { path: entry.path.clone() })?;
        match &entry.kind {
            Kind::Dir => push_member(&mut out, ino, S_IFDIR | (entry.mode & 0o7777), 2, &entry.path, &[])?,
            Kind::File(data) => push_member(&mut out, ino, S_IFREG | (entry.mode & 0o7777), 1, &entry.path, data)?,
        }
    }
    push_member(&mut out, 0, 0, 1, TRAILER, &[])?;
    Ok(out)
}

fn hex_field(bytes: &[u8], at: usize, index: usize) -> Result<u32, CpioError> {
    let start = at + 6 + index * 8;
    let text =
        std::str::from_utf8(&bytes[start..start + 8]).map_err(|_| CpioError::BadHeader(at, "non-ASCII field"))?;
    u32::from_str_radix(text, 16).map_err(|_| CpioError::BadHeader(at, "field is not hexadecimal"))
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Reads a newc archive back, up to its trailer.
pub fn read(bytes: &[u8]) -> Result<Vec<Member>, CpioError> {
    let mut members = Vec::new();
    let mut at = 0;
    loop {
        if bytes.len() < at + HEADER_LEN {
            return Err(if at >= bytes.len() { CpioError::NoTrailer } else { CpioError::Truncated(at) });
        }
        if &bytes[at..at + 6] != MAGIC {
            return Err(CpioError::BadHeader(at, "magic is not 070701"));
        }
        let field = |i| hex_field(bytes, at, i);
        let (ino, mode, uid, gid, nlink, mtime) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?, field(5)?);
        let size = field(6)? as usize;
        let namesize = field(11)? as usize;
        if namesize == 0 {
            return Err(CpioError::BadHeader(at, "empty name"));
        }
        let name_end = at + HEADER_LEN + namesize;
        let data_start = align4(name_end);
        let data_end = data_start + size;
        if bytes.len() < data_end {
            return Err(CpioError::Truncated(at));
        }
        let name_bytes = &bytes[at + HEADER_LEN..name_end - 1];
        if bytes[name_end - 1] != 0 {
            return Err(CpioError::BadHeader(at, "name is not NUL-terminated"));
        }
        let path = String::from_utf8(name_bytes.to_vec()).map_err(|_| CpioError::BadHeader(at, "name is not UTF-8"))?;
        if path == TRAILER {
            // Zeros are padding, which the kernel skips; anything else would be a further
            // archive, unpacked over this one.
            let end = align4(data_end).min(bytes.len());
            return match bytes[end..].iter().position(|&b| b != 0) {
                None => Ok(members),
                Some(offset) => Err(CpioError::AfterTrailer(end + offset)),
            };
        }
        members.push(Member { path, ino, mode, uid, gid, nlink, mtime, data: bytes[data_start..data_end].to_vec() });
        at = align4(data_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_but_padding_may_follow_the_trailer() {
        let archive = write(vec![Entry::file("init", 0o100555, b"x".to_vec())]).unwrap();
        assert_eq!(read(&archive).unwrap().len(), 1);
        let padded = [archive.clone(), vec![0; 512]].concat();
        assert_eq!(read(&padded).unwrap().len(), 1);
        let appended = [archive.clone(), write(vec![Entry::file("init", 0o100555, b"y".to_vec())]).unwrap()].concat();
        assert!(
            matches!(read(&appended), Err(CpioError::AfterTrailer(at)) if at == archive.len()),
            "{:?}",
            read(&appended)
        );
    }

    #[test]
    fn parents_are_added_and_sorted_before_children() {
        let entries = vec![Entry::file("a/b/c", 0o444, b"x".to_vec()), Entry::file("a-b", 0o444, vec![])];
        let paths: Vec<String> = normalise(entries).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a-b"]);
    }

    #[test]
    fn header_and_padding_follow_newc() {
        let out = write(vec![Entry::file("init", 0o555, b"hello".to_vec())]).unwrap();
        // "init\0" is 5 bytes: 110 + 5 = 115, padded to 116; data 5 bytes padded to 8.
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[6..14], b"00000001");
        assert_eq!(&out[14..22], b"0000816d");
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(out.len() % 4, 0);
        let back = read(&out).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].permissions(), back[0].is_file(), back[0].data.as_slice()), (0o555, true, &b"hello"[..]));
    }

    #[test]
    fn bad_paths_duplicates_and_files_as_parents_are_refused() {
        for bad in ["/init", "a/../b", "a//b", "./a", ""] {
            assert!(matches!(write(vec![Entry::dir(bad, 0o755)]), Err(CpioError::BadPath(_))), "{bad}");
        }
        let dup = vec![Entry::dir("a", 0o755), Entry::dir("a", 0o755)];
        assert!(matches!(write(dup), Err(CpioError::Duplicate(_))));
        let clash = vec![Entry::file("a", 0o444, vec![]), Entry::file("a/b", 0o444, vec![])];
        assert!(matches!(write(clash), Err(CpioError::FileAsParent { .. })));
    }

    #[test]
    fn truncated_archives_are_errors() {
        let out = write(vec![Entry::file("f", 0o444, vec![7; 100])]).unwrap();
        assert!(read(&out[..150]).is_err());
        assert!(matches!(read(&out[..out.len() - 124]), Err(CpioError::NoTrailer)));
    }
}
