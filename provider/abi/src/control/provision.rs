//! What an instance is given first on its control channel when it boots: its own control
//! key and a seed for its kernel's random number generator.
//!
//! Every instance of an image boots the image's own initramfs (one file, mapped once on the
//! host for all of them), so nothing an instance must not share can be in it. The host
//! writes one [`Provision`] line as soon as QEMU has made the channel's socket; init
//! reads exactly that line, before anything asks for randomness or the application starts,
//! from a port only init has open.
//!
//! The line carries no MAC: nothing is shared yet to make one with. What stands in for it:
//! the host end is a socket in the instance's directory (the provider's user's only, with
//! the embedded QEMU backend); in the guest, init alone reads the port; and the host counts
//! the guest ready only by the runtime's ready notice authenticated with the key it sent. A
//! guest that took a key something else wrote first is never ready for the host: the boot
//! fails and the instance is stopped.

use serde::{Deserialize, Serialize};

use super::key::Key;
use super::resume::Entropy;

/// The longest provisioning line init reads: the JSON of a key and a seed in hex.
pub const MAX_PROVISION_LINE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "provision")]
pub struct Provision {
    /// The instance's control key: every request and reply after this line is
    /// authenticated with it.
    pub key: Key,
    /// Credited to the guest's kernel before anything draws randomness.
    pub entropy: Entropy,
}

impl Provision {
    /// `key` with fresh randomness from the host's kernel.
    pub fn draw(key: Key) -> Result<Provision, getrandom::Error> {
        Ok(Provision { key, entropy: Entropy::draw()? })
    }

    /// The line the host writes, newline included.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads a line as the host wrote it (newline or not).
    pub fn parse(line: &[u8]) -> Result<Provision, serde_json::Error> {
        serde_json::from_slice(line.trim_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provision_line_reads_back_and_nothing_else_passes_for_one() {
        let provision = Provision::draw(Key::generate().unwrap()).unwrap();
        let line = provision.line();
        assert!(line.ends_with('\n') && line.len() < MAX_PROVISION_LINE, "{line}");
        assert!(line.starts_with(r#"{"op":"provision","#), "{line}");
        assert_eq!(Provision::parse(line.as_bytes()).unwrap(), provision);
        // A request of the control protocol is not one, nor a truncated line.
        assert!(Provision::parse(br#"{"op":"status","seq":1,"mac":"00"}"#).is_err());
        assert!(Provision::parse(&line.as_bytes()[..line.len() / 2]).is_err());
        // Debug shows neither secret.
        let shown = format!("{provision:?}");
        assert!(!shown.contains(&provision.key.to_hex()), "{shown}");
    }
}
