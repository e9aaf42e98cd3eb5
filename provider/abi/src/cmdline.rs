//! The kernel command line of an image, and the launch settings that ride on it.
//!
//! An image holds only `/init`, the application, the plan and modules, so what init needs
//! beyond the plan travels as `sdsec.*` parameters. The kernel keeps parameters with a dot
//! out of init's argv and environment (it takes them for module parameters), so init reads
//! them from `/proc/cmdline`:
//!
//! - `sdsec.ip=<cidr>` and `sdsec.gw=<address>` the guest's address,
//! - `sdsec.app=/app/<name>` the executable to start,
//! - `sdsec.port=<port>` where it listens (on loopback, behind the runtime),
//! - `sdsec.listen=<port>` where the runtime listens, on every address,
//! - `sdsec.arg=<percent-encoded>` once per argument, in order (bytes outside
//!   `[A-Za-z0-9._~/:,+@=-]` are written `%XX`, so spaces and quotes survive),
//! - `sdsec.snapshot=1` added by the host at boot to an instance that is to be saved as a
//!   snapshot ([`with_snapshot`]): once ready, init waits for the host's `resume` request,
//! - `sdsec.provision=1` added by the host at boot when it hands the instance its own key and
//!   random seed on the control channel ([`with_flag`], [`crate::control::Provision`]): init
//!   reads them there before anything else.
//!
//! [`Launch::encode`] is the image builder's, [`Launch::decode`] init's; whatever the one
//! writes the other reads back. Settings that depend on the host (such as `tsc_early_khz`
//! under TCG) are added by the hypervisor backend at boot and are not part of the image.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::net::{self, Network};
use crate::paths;

/// The x86 `COMMAND_LINE_SIZE` is 2048 bytes including the terminating NUL.
const KERNEL_MAX_LEN: usize = 2047;
/// Room kept for what joins an image's line at boot: the backend's settings (the address,
/// `sdsec.provision`, `sdsec.snapshot`, the TSC frequency under TCG) and the kernel's
/// built-in line (sdsec's kernel), about 150 bytes today. The kernel would cut what is
/// over its limit without a word.
pub const BOOT_RESERVE: usize = 256;
/// The longest line an image holds.
pub const MAX_LEN: usize = KERNEL_MAX_LEN - BOOT_RESERVE;

/// Console on the first serial port (the microvm machine's, where the host reads the
/// runtime's events), no reboot loop on panic, quiet boot (printing to an emulated UART is
/// slow under TCG). `rdinit=` is [`paths::INIT`], added by the encoder.
const BASE: &[&str] = &["console=ttyS0", "panic=-1", "reboot=t", "quiet"];

/// Kernel parameters the plan may not set, because the builder owns them.
const RESERVED: &[&str] = &["console", "panic", "reboot", "rdinit", "init", "root", "ro", "rw"];

const PREFIX: &str = "sdsec.";
const APP: &str = "sdsec.app";
const PORT: &str = "sdsec.port";
const LISTEN: &str = "sdsec.listen";
const IP: &str = "sdsec.ip";
const GW: &str = "sdsec.gw";
const ARG: &str = "sdsec.arg";
const SNAPSHOT: &str = "sdsec.snapshot";
const PROVISION: &str = "sdsec.provision";

/// A setting the host adds at boot to a line the image holds ([`with_flag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `sdsec.snapshot=1`: booted to be saved as a snapshot.
    Snapshot,
    /// `sdsec.provision=1`: the key and seed come on the control channel.
    Provision,
}

impl Flag {
    fn key(self) -> &'static str {
        match self {
            Flag::Snapshot => SNAPSHOT,
            Flag::Provision => PROVISION,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error(
        "the plan's build.kernel_cmdline item `{0}` is not a single kernel parameter (empty, white space or quotes); compile the plan again with this sdsec version"
    )]
    BadItem(String),
    #[error("the plan's build.kernel_cmdline item `{0}` would override a setting the image builder owns")]
    Reserved(String),
    #[error("the kernel command line would be {0} bytes, over the limit of {MAX_LEN}; shorten the application's args")]
    TooLong(usize),
    #[error("the kernel command line has no `{0}=`: the image was not built by sdsec")]
    Missing(&'static str),
    #[error("`{0}` is given twice on the kernel command line")]
    Twice(&'static str),
    #[error("`{key}={value}` on the kernel command line is not valid: {why}")]
    Bad { key: &'static str, value: String, why: &'static str },
}

/// What init needs beyond the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The application's file name in [`paths::APP_DIR`].
    pub app: String,
    pub args: Vec<String>,
    /// Where the application listens (on loopback, behind the runtime).
    pub app_port: u16,
    /// Where the runtime listens, on every address.
    pub listen: u16,
    pub network: Network,
    /// Booted to be saved as a snapshot: each restored copy is resumed by the host.
    pub snapshot: bool,
    /// The instance's key and random seed come first on the control channel.
    pub provision: bool,
}

impl Launch {
    /// The settings of an image on QEMU's user network, the runtime on its usual port.
    pub fn new(app: &str, args: &[String], app_port: u16) -> Launch {
        Launch {
            app: app.to_owned(),
            args: args.to_vec(),
            app_port,
            listen: net::runtime_port(app_port),
            network: net::GUEST,
            snapshot: false,
            provision: false,
        }
    }

    /// The application's absolute path inside the guest: `/app/<name>`.
    pub fn app_path(&self) -> PathBuf {
        paths::in_guest(&paths::app(&self.app))
    }

    /// The whole command line: the base settings, the guest's address, the kernel
    /// parameters `kernel` (the plan's hardening) in order, `ro` for a read-only root, then
    /// the launch settings. Refuses what [`Launch::decode`] would not read back.
    pub fn encode(&self, kernel: &[String], read_only_root: bool) -> Result<String, CmdlineError> {
        self.check()?;
        let mut words: Vec<String> = BASE.iter().map(|s| (*s).to_owned()).collect();
        words.push(format!("rdinit=/{}", paths::INIT));
        let Network { ip, prefix, gateway } = self.network;
        words.push(format!("{IP}={ip}/{prefix}"));
        words.push(format!("{GW}={gateway}"));
        for item in kernel {
            if item.is_empty() || item.contains(|c: char| c.is_whitespace() || c == '"') {
                return Err(CmdlineError::BadItem(item.clone()));
            }
            let key = item.split('=').next().unwrap_or_default();
            if RESERVED.contains(&key) || key.starts_with(PREFIX) || item == "--" {
                return Err(CmdlineError::Reserved(item.clone()));
            }
            words.push(item.clone());
        }
        if read_only_root {
            words.push("ro".to_owned());
        }
        words.push(format!("{APP}=/{}", paths::app(&self.app)));
        words.push(format!("{PORT}={}", self.app_port));
        words.push(format!("{LISTEN}={}", self.listen));
        words.extend(self.args.iter().map(|a| format!("{ARG}={}", encode_arg(a))));
        let line = words.join(" ");
        if line.len() > MAX_LEN {
            return Err(CmdlineError::TooLong(line.len()));
        }
        Ok(line)
    }

    fn check(&self) -> Result<(), CmdlineError> {
        if !paths::is_app_name(&self.app) {
            return Err(bad(APP, &self.app, APP_RULE));
        }
        for (key, port) in [(PORT, self.app_port), (LISTEN, self.listen)] {
            if port == 0 {
                return Err(bad(key, "0", PORT_RULE));
            }
        }
        if self.listen == self.app_port {
            return Err(bad(LISTEN, &self.listen.to_string(), CLASH));
        }
        if self.network.prefix > 32 {
            return Err(bad(IP, &self.network.prefix.to_string(), PREFIX_RULE));
        }
        Ok(())
    }

    /// Reads the settings from a whole command line; words that are not `sdsec.*` belong
    /// to the kernel, words after `--` are init's argv.
    pub fn decode(line: &str) -> Result<Launch, CmdlineError> {
        let mut found = Found::default();
        let mut args = Vec::new();
        for word in line.split_ascii_whitespace().take_while(|w| *w != "--") {
            let Some((key, value)) = word.split_once('=') else { continue };
            let slot = match key {
                APP => (APP, &mut found.app),
                PORT => (PORT, &mut found.port),
                LISTEN => (LISTEN, &mut found.listen),
                IP => (IP, &mut found.ip),
                GW => (GW, &mut found.gw),
                SNAPSHOT => (SNAPSHOT, &mut found.snapshot),
                PROVISION => (PROVISION, &mut found.provision),
                ARG => {
                    args.push(decode_arg(value).ok_or_else(|| bad(ARG, value, ESCAPE_RULE))?);
                    continue;
                }
                // Other settings, ours of a later version or the kernel's.
                _ => continue,
            };
            if slot.1.replace(value).is_some() {
                return Err(CmdlineError::Twice(slot.0));
            }
        }
        let app_text = found.app.ok_or(CmdlineError::Missing(APP))?;
        let app = app_text
            .strip_prefix(&format!("/{}/", paths::APP_DIR))
            .filter(|name| paths::is_app_name(name))
            .ok_or_else(|| bad(APP, app_text, APP_RULE))?;
        let app_port = parse_port(PORT, found.port.ok_or(CmdlineError::Missing(PORT))?)?;
        // Images built before `sdsec.listen` existed follow the builder's rule.
        let listen = found.listen.map(|l| parse_port(LISTEN, l)).transpose()?.unwrap_or(net::runtime_port(app_port));
        if listen == app_port {
            return Err(bad(LISTEN, &listen.to_string(), CLASH));
        }
        let cidr = found.ip.ok_or(CmdlineError::Missing(IP))?;
        let (addr, prefix) = cidr.split_once('/').ok_or_else(|| bad(IP, cidr, "it must be ADDRESS/PREFIX"))?;
        let ip = parse_ip(IP, addr, cidr)?;
        let prefix = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| bad(IP, cidr, PREFIX_RULE))?;
        let gw = found.gw.ok_or(CmdlineError::Missing(GW))?;
        let gateway = parse_ip(GW, gw, gw)?;
        let flag = |key: &'static str, value: Option<&str>| match value {
            None => Ok(false),
            Some("1") => Ok(true),
            Some(other) => Err(bad(key, other, "it must be 1")),
        };
        let snapshot = flag(SNAPSHOT, found.snapshot)?;
        let provision = flag(PROVISION, found.provision)?;
        let network = Network { ip, prefix, gateway };
        Ok(Launch { app: app.to_owned(), args, app_port, listen, network, snapshot, provision })
    }
}

/// `line` with the guest's address and gateway set to `network`: an image is built with
/// [`net::GUEST`] (QEMU's user network), and on a bridge each instance is given its own
/// address when it boots. Words after `--` are init's and stay as they are.
pub fn with_network(line: &str, network: Network) -> String {
    let Network { ip, prefix, gateway } = network;
    let mut out: Vec<String> = Vec::new();
    let mut words = line.split_ascii_whitespace();
    for word in words.by_ref() {
        if word == "--" {
            out.push(word.to_owned());
            break;
        }
        match word.split_once('=').map(|(key, _)| key) {
            Some(IP | GW) => {}
            _ => out.push(word.to_owned()),
        }
    }
    let at = out.iter().position(|w| w == "--").unwrap_or(out.len());
    out.insert(at, format!("{GW}={gateway}"));
    out.insert(at, format!("{IP}={ip}/{prefix}"));
    out.extend(words.map(str::to_owned));
    out.join(" ")
}

/// `line` marked for a snapshot (`sdsec.snapshot=1` before any `--`): the instance booted
/// with it is saved, and every copy restored from it waits for the host's `resume`.
pub fn with_snapshot(line: &str) -> String {
    with_flag(line, Flag::Snapshot)
}

/// `line` with `flag` set once, before any `--`.
pub fn with_flag(line: &str, flag: Flag) -> String {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let at = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let set = format!("{}=1", flag.key());
    let kernel = words[..at].iter().copied().filter(|w| w.split_once('=').map(|(key, _)| key) != Some(flag.key()));
    kernel.chain(std::iter::once(set.as_str())).chain(words[at..].iter().copied()).collect::<Vec<_>>().join(" ")
}

const APP_RULE: &str = "it must be /app/<name>, the name of letters, digits, `.`, `_`, `-`";
const PORT_RULE: &str = "not a port in 1..=65535";
const CLASH: &str = "the runtime cannot listen on the application's port";
const PREFIX_RULE: &str = "prefix is not 0..=32";
const ESCAPE_RULE: &str = "a malformed %XX escape or bytes that are not UTF-8";

/// The singular settings seen so far.
#[derive(Default)]
struct Found<'a> {
    app: Option<&'a str>,
    port: Option<&'a str>,
    listen: Option<&'a str>,
    ip: Option<&'a str>,
    gw: Option<&'a str>,
    snapshot: Option<&'a str>,
    provision: Option<&'a str>,
}

fn bad(key: &'static str, value: &str, why: &'static str) -> CmdlineError {
    CmdlineError::Bad { key, value: value.to_owned(), why }
}

fn parse_port(key: &'static str, value: &str) -> Result<u16, CmdlineError> {
    value.parse().ok().filter(|p| *p != 0).ok_or_else(|| bad(key, value, PORT_RULE))
}

fn parse_ip(key: &'static str, text: &str, value: &str) -> Result<Ipv4Addr, CmdlineError> {
    text.parse().map_err(|_| bad(key, value, "not an IPv4 address"))
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~/:,+@=-".contains(&b)
}

/// Percent-encodes an argument so it is one command-line word.
fn encode_arg(arg: &str) -> String {
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

/// The inverse of [`encode_arg`]; `None` on a malformed escape or bytes that are not UTF-8.
fn decode_arg(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            // `from_str_radix` takes a leading `+`: only two hex digits are an escape.
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
