//! Recognising a shell by what a file holds, not by its name: a BusyBox renamed `httpd` is
//! still a shell, and an image must hold none.
//!
//! Each shell leaves text in its executable that it needs to work (its version banner, its
//! multi-call applet table, its default prompts), so a match is evidence, not a guess. What
//! is recognised: BusyBox and toybox builds that include a shell applet (`sh`, `ash`,
//! `hush`, `bash`), GNU bash, dash, zsh, mksh and ksh93. A multi-call build without a shell
//! applet (a BusyBox with `httpd` only) passes: it cannot run commands given to it as text.

use memchr::memmem;

/// A recognised shell: what it is, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shell(pub &'static str);

/// Applet names as multi-call tables store them, NUL-separated.
const SHELL_APPLETS: &[&[u8]] = &[b"\0sh\0", b"\0ash\0", b"\0hush\0", b"\0bash\0"];

/// Single shells: all of a signature's markers must be present.
const SIGNATURES: &[(&str, &[&[u8]])] = &[
    ("GNU bash", &[b"GNU bash, version"]),
    ("dash", &[b"Usage: getopts optstring var", b"PS1=$ "]),
    ("zsh", &[b"ZSH_VERSION", b"zsh"]),
    ("mksh", &[b"MIRBSD KSH"]),
    ("ksh93", &[b"@(#)$Id: Version ", b"ksh"]),
];

/// Multi-call binaries, a shell when their applet table holds a shell.
const MULTI_CALL: &[(&str, &[u8])] =
    &[("BusyBox with a shell applet", b"BusyBox v"), ("toybox with a shell applet", b"toybox")];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memmem::find(haystack, needle).is_some()
}

/// The shell `bytes` is, if it is one.
pub fn recognise(bytes: &[u8]) -> Option<Shell> {
    for (name, marker) in MULTI_CALL {
        if contains(bytes, marker) && SHELL_APPLETS.iter().any(|applet| contains(bytes, applet)) {
            return Some(Shell(name));
        }
    }
    SIGNATURES.iter().find(|(_, markers)| markers.iter().all(|m| contains(bytes, m))).map(|(name, _)| Shell(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake executable: ELF-looking padding around the given strings.
    fn file(parts: &[&[u8]]) -> Vec<u8> {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        for part in parts {
            bytes.extend_from_slice(&[0xAA; 64]);
            bytes.extend_from_slice(part);
        }
        bytes
    }

    #[test]
    fn multi_call_binaries_are_shells_only_with_a_shell_applet() {
        let busybox = file(&[b"BusyBox v1.35.0 (Debian)", b"[\0[[\0acpid\0ash\0httpd\0ls\0sh\0"]);
        assert_eq!(recognise(&busybox), Some(Shell("BusyBox with a shell applet")));
        let httpd_only = file(&[b"BusyBox v1.36.1", b"[\0httpd\0ls\0"]);
        assert_eq!(recognise(&httpd_only), None);
        let toybox = file(&[b"toybox 0.8.9", b"\0ls\0sh\0"]);
        assert_eq!(recognise(&toybox), Some(Shell("toybox with a shell applet")));
    }

    #[test]
    fn single_shells_need_every_marker() {
        assert_eq!(recognise(&file(&[b"GNU bash, version %s (%s)"])), Some(Shell("GNU bash")));
        assert_eq!(recognise(&file(&[b"Usage: getopts optstring var [arg...]", b"PS1=$ "])), Some(Shell("dash")));
        assert_eq!(recognise(&file(&[b"Usage: getopts optstring var [arg...]"])), None);
        assert_eq!(recognise(&file(&[b"@(#)MIRBSD KSH R59"])), Some(Shell("mksh")));
        assert_eq!(recognise(&file(&[b"an http server", b"\0sh\0"])), None);
    }

    /// The shells of the machine the tests run on, where they are static or not: content
    /// decides, whatever the ELF kind.
    #[test]
    fn the_hosts_shells_are_recognised() {
        for (path, name) in
            [("/bin/bash", "GNU bash"), ("/bin/dash", "dash"), ("/bin/busybox", "BusyBox with a shell applet")]
        {
            if let Ok(bytes) = std::fs::read(path) {
                assert_eq!(recognise(&bytes), Some(Shell(name)), "{path}");
            }
        }
    }
}
