//! The contract between sdsec on the host and the enforcement runtime in a guest. Both
//! sides link this crate, so neither spells a path, a command-line key, a port or an event
//! name of its own:
//!
//! - [`cmdline`]: the launch settings that ride on the kernel command line (one encoder
//!   for the image builder, one decoder for init),
//! - [`paths`]: where files are inside an image,
//! - [`net`]: the guest's address and the port its runtime listens on,
//! - [`event`]: the JSON lines the runtime prints on the serial console,
//! - [`control`]: the authenticated channel that reconfigures a running guest.
//!
//! Nothing here knows the compiler, an async runtime or a hypervisor.

pub mod cmdline;
pub mod control;
pub mod event;
pub mod net;
pub mod paths;
