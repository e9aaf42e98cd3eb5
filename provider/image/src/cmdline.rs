//! The kernel command line baked into an image, and how the runtime's launch settings ride
//! on it.
//!
//! The image holds only `/init`, the application, the plan and modules, so the settings the
//! runtime needs beyond the plan travel as `sdsec.*` parameters. The kernel keeps
//! parameters with a dot out of init's environment and argv (it takes them for module
//! parameters), and the runtime reads them from `/proc/cmdline`:
//!
//! - `sdsec.app=/app/<name>` the executable to start,
//! - `sdsec.port=<port>` where it listens,
//! - `sdsec.listen=<port>` where the runtime (PEP) listens, on every address: see
//!   [`pep_port`],
//! - `sdsec.arg=<percent-encoded>` once per argument, in order (bytes outside
//!   `[A-Za-z0-9._~/:,+@=-]` are written `%XX`, so spaces and quotes survive),
//! - `sdsec.ip=<cidr>` and `sdsec.gw=<address>` the guest's address (QEMU user networking).
//!
//! Settings that depend on the host (such as `tsc_early_khz` under TCG) are added by the
//! hypervisor backend at boot and are not part of the image.

use sectosca::EnforcementPlan;

/// The x86 `COMMAND_LINE_SIZE` is 2048 bytes including the terminating NUL.
pub const MAX_LEN: usize = 2047;

/// Console on the first serial port (the microvm machine's), no reboot loop on panic,
/// quiet boot (printing to an emulated UART is slow under TCG), and the guest address on
/// QEMU's user network.
pub const BASE: &[&str] =
    &["console=ttyS0", "panic=-1", "reboot=t", "quiet", "rdinit=/init", "sdsec.ip=10.0.2.15/24", "sdsec.gw=10.0.2.2"];

/// The port the runtime listens on inside the guest: 80, or 81 when the application
/// itself has 80 (both listen in the same guest).
pub fn pep_port(app_port: u16) -> u16 {
    if app_port == 80 { 81 } else { 80 }
}

/// Keys the plan may not set, because the builder owns them.
const RESERVED: &[&str] = &["console", "panic", "reboot", "rdinit", "init", "root", "ro", "rw"];

#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error(
        "the plan's build.kernel_cmdline item `{0}` is not a single kernel parameter (empty, white space or quotes); compile the plan again with this sdsec version"
    )]
    BadItem(String),
    #[error("the plan's build.kernel_cmdline item `{0}` would override a setting the image builder owns")]
    Reserved(String),
    #[error("the kernel command line would be {0} bytes, over the limit of {MAX_LEN}; shorten the application's args")]
    TooLong(usize),
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~/:,+@=-".contains(&b)
}

/// Percent-encodes an argument so it is one command-line word.
pub fn encode_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    for b in arg.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_arg`], for the runtime; `None` on a malformed escape.
pub fn decode_arg(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The whole command line: the base settings, the plan's hardening parameters, `ro` when
/// the plan asks for a read-only root, then the runtime's launch settings.
pub fn kernel_cmdline(
    plan: &EnforcementPlan,
    app_name: &str,
    args: &[String],
    port: u16,
) -> Result<String, CmdlineError> {
    let mut words: Vec<String> = BASE.iter().map(|s| (*s).to_owned()).collect();
    for item in &plan.build.kernel_cmdline {
        if item.is_empty() || item.contains(|c: char| c.is_whitespace() || c == '"') {
            return Err(CmdlineError::BadItem(item.clone()));
        }
        let key = item.split('=').next().unwrap_or_default();
        if RESERVED.contains(&key) || key.starts_with("sdsec.") || item == "--" {
            return Err(CmdlineError::Reserved(item.clone()));
        }
        words.push(item.clone());
    }
    if plan.build.hardening.read_only_root {
        words.push("ro".to_owned());
    }
    words.push(format!("sdsec.app=/app/{app_name}"));
    words.push(format!("sdsec.port={port}"));
    words.push(format!("sdsec.listen={}", pep_port(port)));
    words.extend(args.iter().map(|a| format!("sdsec.arg={}", encode_arg(a))));
    let line = words.join(" ");
    if line.len() > MAX_LEN {
        return Err(CmdlineError::TooLong(line.len()));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_survive_encoding() {
        for arg in ["--listen", "0.0.0.0:8080", "a b", "say \"hi\"", "100%", "", "é"] {
            let word = encode_arg(arg);
            assert!(!word.contains([' ', '"']), "{word}");
            assert_eq!(decode_arg(&word).as_deref(), Some(arg));
        }
        assert_eq!(decode_arg("%4"), None);
    }

    #[test]
    fn the_runtime_listens_beside_the_application() {
        assert_eq!(pep_port(8080), 80);
        assert_eq!(pep_port(81), 80);
        assert_eq!(pep_port(80), 81);
    }
}
