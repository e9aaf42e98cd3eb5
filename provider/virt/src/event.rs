//! libvirt's default event loop, which non-blocking streams and keepalives need.

use crate::api;
use crate::error::{Error, check};

/// Registers the default event loop; to be done before any connection is opened.
pub fn register_default_impl() -> Result<(), Error> {
    let api = api::api()?;
    // SAFETY: no arguments; libvirt sets up its own loop.
    check(api, unsafe { (api.virEventRegisterDefaultImpl)() }).map(drop)
}

/// Runs one iteration of the default event loop (blocks until something happens).
pub fn run_default_impl() -> Result<(), Error> {
    let api = api::api()?;
    // SAFETY: as above, after `register_default_impl`.
    check(api, unsafe { (api.virEventRunDefaultImpl)() }).map(drop)
}
