//! The control channel: how sdsec on the host reconfigures the enforcement runtime of a
//! running guest without rebooting it.
//!
//! The transport is a virtio-serial port named [`PORT_NAME`], backed on the host by a unix
//! socket only the provider's user can open. Every message is one JSON line, authenticated
//! with HMAC-SHA256 under a key drawn for each instance ([`Key`]); the guest gets its copy
//! as the first line on the channel when it boots ([`Provision`]), read by init only. Sequence numbers only grow, so a recorded message cannot be
//! replayed. Replies are authenticated the same way, so the host knows the acknowledged
//! plan digest comes from the runtime that holds the key.

mod client;
mod key;
mod message;
mod provision;
mod resume;

pub use client::{Channel, ClientError, call, call_on, connect, exchange_on, next_seq, resume};
pub use key::{Key, KeyError};
pub use message::{Command, Notice, NoticeKind, Reply, Request};
pub use provision::{MAX_PROVISION_LINE, Provision};
pub use resume::{ENTROPY_BYTES, Entropy, Resume, ResumeNetwork};

/// The virtio-serial port's name, as the guest finds it in `/sys/class/virtio-ports/*/name`.
pub const PORT_NAME: &str = "sdsec.control";
