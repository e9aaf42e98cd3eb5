//! The launch settings of an image, read from the kernel command line.
//!
//! The kernel keeps dotted parameters (`sdsec.*`) out of init's argv and environment, so
//! init reads `/proc/cmdline`. The encoding is the image builder's (`sdsec-image`
//! `cmdline` module); the decoder is repeated here so the guest does not depend on the
//! builder.

use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("the kernel command line has no `{0}=`: the image was not built by sdsec")]
    Missing(&'static str),
    #[error("`{key}={value}` on the kernel command line is not valid: {why}")]
    Bad { key: &'static str, value: String, why: &'static str },
}

/// What init needs beyond the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The application, `/app/<name>`.
    pub app: PathBuf,
    pub args: Vec<String>,
    /// Where the application listens (on loopback, behind the PEP).
    pub app_port: u16,
    /// Where the PEP listens, on every address.
    pub listen: u16,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// The PEP's port for an application port: 80, or 81 when the application has 80. Only
/// for images built before `sdsec.listen` existed; the builder applies the same rule.
pub fn pep_port(app_port: u16) -> u16 {
    if app_port == 80 { 81 } else { 80 }
}

/// Parses the whole command line; words that are not `sdsec.*` belong to the kernel.
pub fn parse(line: &str) -> Result<Launch, CmdlineError> {
    let (mut app, mut port, mut listen, mut ip, mut gw) = (None, None, None, None, None);
    let mut args = Vec::new();
    // Words after `--` are init's argv, never settings.
    for word in line.split_ascii_whitespace().take_while(|w| *w != "--") {
        let Some((key, value)) = word.split_once('=') else { continue };
        match key {
            "sdsec.app" => app = Some(value),
            "sdsec.port" => port = Some(value),
            "sdsec.listen" => listen = Some(value),
            "sdsec.ip" => ip = Some(value),
            "sdsec.gw" => gw = Some(value),
            "sdsec.arg" => args.push(decode_arg(value).ok_or(bad(
                "sdsec.arg",
                value,
                "a malformed %XX escape or bytes that are not UTF-8",
            ))?),
            _ => {}
        }
    }
    let app = app.ok_or(CmdlineError::Missing("sdsec.app"))?;
    if !app.starts_with("/app/") || app.len() <= "/app/".len() || app["/app/".len()..].contains('/') {
        return Err(bad("sdsec.app", app, "it must be /app/<name>"));
    }
    let app_port = parse_port("sdsec.port", port.ok_or(CmdlineError::Missing("sdsec.port"))?)?;
    let listen = listen.map(|l| parse_port("sdsec.listen", l)).transpose()?.unwrap_or(pep_port(app_port));
    if listen == app_port {
        return Err(bad("sdsec.listen", &listen.to_string(), "the PEP cannot listen on the application's port"));
    }
    let cidr = ip.ok_or(CmdlineError::Missing("sdsec.ip"))?;
    let (addr, prefix) = cidr.split_once('/').ok_or(bad("sdsec.ip", cidr, "it must be ADDRESS/PREFIX"))?;
    let ip = addr.parse().map_err(|_| bad("sdsec.ip", cidr, "not an IPv4 address"))?;
    let prefix = prefix.parse().ok().filter(|p| *p <= 32).ok_or(bad("sdsec.ip", cidr, "prefix is not 0..=32"))?;
    let gw_text = gw.ok_or(CmdlineError::Missing("sdsec.gw"))?;
    let gateway = gw_text.parse().map_err(|_| bad("sdsec.gw", gw_text, "not an IPv4 address"))?;
    Ok(Launch { app: PathBuf::from(app), args, app_port, listen, ip, prefix, gateway })
}

fn bad(key: &'static str, value: &str, why: &'static str) -> CmdlineError {
    CmdlineError::Bad { key, value: value.to_owned(), why }
}

fn parse_port(key: &'static str, value: &str) -> Result<u16, CmdlineError> {
    value.parse().ok().filter(|p| *p != 0).ok_or(bad(key, value, "not a port in 1..=65535"))
}

/// Undoes the builder's percent-encoding; `None` on a malformed escape.
pub fn decode_arg(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
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
mod tests {
    use super::*;

    const LINE: &str = "console=ttyS0 panic=-1 reboot=t quiet rdinit=/init sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2 \
        ro sdsec.app=/app/api sdsec.port=8080 sdsec.arg=--listen sdsec.arg=0.0.0.0:8080 sdsec.arg=two%20words \
        sdsec.listen=80 tsc_early_khz=2400\n";

    #[test]
    fn the_builders_line_parses() {
        let l = parse(LINE).unwrap();
        assert_eq!(l.app, PathBuf::from("/app/api"));
        assert_eq!(l.args, ["--listen", "0.0.0.0:8080", "two words"]);
        assert_eq!((l.app_port, l.listen, l.prefix), (8080, 80, 24));
        assert_eq!((l.ip, l.gateway), (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 2)));
    }

    #[test]
    fn listen_defaults_to_the_builders_rule() {
        let line = "sdsec.app=/app/a sdsec.port=80 sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2";
        assert_eq!(parse(line).unwrap().listen, 81);
        assert_eq!(pep_port(8080), 80);
        let clash = format!("{line} sdsec.listen=80");
        assert!(matches!(parse(&clash), Err(CmdlineError::Bad { key: "sdsec.listen", .. })));
    }

    #[test]
    fn bad_lines_name_the_setting() {
        let ok = "sdsec.app=/app/a sdsec.port=8080 sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2";
        assert_eq!(parse("quiet"), Err(CmdlineError::Missing("sdsec.app")));
        for (line, key) in [
            (ok.replace("/app/a", "/bin/sh"), "sdsec.app"),
            (ok.replace("8080", "0"), "sdsec.port"),
            (ok.replace("/24", "/33"), "sdsec.ip"),
            (ok.replace("10.0.2.2", "gateway"), "sdsec.gw"),
            (format!("{ok} sdsec.arg=%zz"), "sdsec.arg"),
        ] {
            let e = parse(&line).unwrap_err();
            assert!(matches!(e, CmdlineError::Bad { key: k, .. } if k == key), "{line}: {e}");
        }
        // Settings after `--` are init's argv, not ours.
        assert_eq!(parse(&format!("-- {ok}")), Err(CmdlineError::Missing("sdsec.app")));
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_arg("say%20%22hi%22").as_deref(), Some("say \"hi\""));
        assert_eq!(decode_arg("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode_arg("100%25").as_deref(), Some("100%"));
        assert_eq!(decode_arg("%4"), None);
        assert_eq!(decode_arg("%FF"), None);
    }
}
