//! Making a copy restored from a snapshot its own before it serves ([`abi::control::Resume`]).
//!
//! Every copy of a snapshot starts with the same memory: the same control key, the same
//! state of the kernel's random number generator, a clock stopped when the snapshot was
//! saved and another copy's address. An instance booted for a snapshot (`sdsec.snapshot=1`)
//! therefore keeps, on PID 1's main thread only, what making a copy its own needs
//! ([`RESUMING`]) until the host's `resume` arrives; the control thread, which holds no
//! capability, hands the request over ([`Handoff`]) and answers once it is applied. Then
//! the main thread gives those capabilities up for good.

use std::sync::mpsc;
use std::time::Duration;

use abi::control::Resume;
use rustix::thread::CapabilitySet;

use super::entropy::{self, EntropyError};
use super::net::{self, Address, NetError};
use super::privileges::{self, PrivilegeError};

/// What the main thread keeps until it is resumed, beyond its supervision: crediting
/// randomness and reseeding (SYS_ADMIN), setting the clock (SYS_TIME), the interface's
/// addresses (NET_ADMIN), and giving all of it up after (SETPCAP).
pub const RESUMING: CapabilitySet = CapabilitySet::SYS_ADMIN
    .union(CapabilitySet::SYS_TIME)
    .union(CapabilitySet::NET_ADMIN)
    .union(CapabilitySet::SETPCAP);

/// How long the control thread waits for the main thread to apply a resume.
const APPLY_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Entropy(#[from] EntropyError),
    #[error("cannot set the clock: {0}")]
    Clock(std::io::Error),
    #[error(transparent)]
    Network(#[from] NetError),
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
}

/// A resume handed from the control thread to the main thread, with where to say how it went.
#[derive(Debug)]
pub struct Request {
    pub resume: Resume,
    pub done: mpsc::Sender<Result<(), String>>,
}

/// The control thread's end of the hand-over.
#[derive(Debug)]
pub struct Handoff(tokio::sync::mpsc::Sender<Request>);

/// The two ends: the control thread's and the main thread's.
pub fn channel() -> (Handoff, tokio::sync::mpsc::Receiver<Request>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    (Handoff(sender), receiver)
}

impl crate::control::Resumer for Handoff {
    fn resume(&mut self, resume: Resume) -> Result<(), String> {
        let (done, result) = mpsc::channel();
        self.0.blocking_send(Request { resume, done }).map_err(|_| "init no longer waits for a resume".to_owned())?;
        result.recv_timeout(APPLY_WAIT).map_err(|_| format!("init did not apply the resume within {APPLY_WAIT:?}"))?
    }
}

/// Applies `resume` on the calling thread, PID 1's main thread, whose interface is set up
/// as `current`; returns the interface's settings after. Whatever happens, the thread
/// keeps only `supervision` after.
pub fn apply(resume: &Resume, current: Address, supervision: CapabilitySet) -> Result<Address, ResumeError> {
    let applied = make_own(resume, current);
    privileges::keep_only(supervision)?;
    applied
}

fn make_own(resume: &Resume, current: Address) -> Result<Address, ResumeError> {
    entropy::reseed(&resume.entropy.0)?;
    let seconds = resume.unix_ns / 1_000_000_000;
    let time = rustix::time::Timespec {
        tv_sec: i64::try_from(seconds).unwrap_or(i64::MAX),
        tv_nsec: (resume.unix_ns % 1_000_000_000) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, time).map_err(|e| ResumeError::Clock(e.into()))?;
    let Some(network) = resume.network else { return Ok(current) };
    let new = Address { ip: network.ip, prefix: network.prefix, gateway: network.gateway };
    net::readdress(current, new, network.mac)?;
    Ok(new)
}
