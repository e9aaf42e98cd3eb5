//! What a process PID 1 starts applies to itself between fork and exec: its own unprivileged
//! user, no capability, no_new_privs, and its system call filters. Used for the application
//! and for the proxy process.

use std::os::unix::process::CommandExt;
use std::process::Command;

use plan::HardeningPlan;
use rustix::thread::{CapabilitySet, CapabilitySets};
use seccompiler::BpfProgram;

use super::exec::ExecGuard;
use super::seccomp;

/// `nobody`: the application owns no file of the image and holds no capability.
pub const APP_ID: u32 = 65534;
/// The proxy process's user and group: neither root nor the application's, so neither can
/// signal or read the other.
pub const PROXY_ID: u32 = 65533;

/// Prepared in the parent (building allocates), applied in the child.
#[derive(Debug)]
pub struct Sandbox {
    /// The user and group to become; `None` keeps the parent's.
    id: Option<u32>,
    drop_capabilities: bool,
    no_new_privileges: bool,
    filters: Vec<BpfProgram>,
    /// Under strict: no execve after the application's own.
    exec_guard: Option<ExecGuard>,
}

impl Sandbox {
    /// The application's, as its plan's hardening says.
    pub fn application(
        hardening: &HardeningPlan,
        exec_guard: Option<ExecGuard>,
    ) -> Result<Self, seccomp::SeccompError> {
        let filters = if hardening.seccomp { seccomp::programs(hardening.level)? } else { Vec::new() };
        Ok(Self {
            id: Some(APP_ID),
            drop_capabilities: hardening.drop_capabilities,
            no_new_privileges: hardening.no_new_privileges,
            filters,
            exec_guard,
        })
    }

    /// The proxy process's, whatever the plan: its filter refuses execve, so the process
    /// installs it itself once started ([`seccomp::proxy_programs`]). Without `enabled`
    /// (tests run unprivileged) it changes nothing but no_new_privs.
    pub fn proxy(enabled: bool) -> Self {
        Self {
            id: enabled.then_some(PROXY_ID),
            drop_capabilities: enabled,
            no_new_privileges: true,
            filters: Vec::new(),
            exec_guard: None,
        }
    }

    /// Runs in the forked child: system calls only, no allocation, no lock. The order
    /// matters: the bounding set needs CAP_SETPCAP and the groups CAP_SETGID, both gone
    /// once the uid changes; the filter comes last so it cannot refuse any of these.
    pub fn apply(&self) -> std::io::Result<()> {
        if self.drop_capabilities {
            // Every capability number the kernel knows; it answers EINVAL past the last.
            for bit in 0..64 {
                match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << bit)) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::INVAL) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            rustix::thread::clear_ambient_capability_set()?;
        }
        if let Some(id) = self.id {
            // Per-thread calls are right here: the child of a fork has one thread.
            rustix::thread::set_thread_groups(&[])?;
            rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(id))?;
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(id))?;
        }
        if self.drop_capabilities {
            // Leaving uid 0 cleared the permitted and effective sets; this clears the
            // inheritable one too.
            let none = CapabilitySet::empty();
            rustix::thread::set_capabilities(
                None,
                CapabilitySets { effective: none, permitted: none, inheritable: none },
            )?;
        }
        if self.no_new_privileges {
            rustix::thread::set_no_new_privs(true)?;
        }
        // Installing a filter also sets no_new_privs: the kernel requires it of a process
        // without CAP_SYS_ADMIN.
        seccomp::install(&self.filters)?;
        match &self.exec_guard {
            Some(guard) => guard.arm(),
            None => Ok(()),
        }
    }
}

/// Has `command`'s child run `before` (placing descriptors, say) and then apply `sandbox`.
#[allow(unsafe_code)]
pub fn set_pre_exec(
    command: &mut Command,
    sandbox: Sandbox,
    before: impl Fn() -> std::io::Result<()> + Send + Sync + 'static,
) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is allowed. `before` and `Sandbox::apply` make raw system calls
    // (dup, fcntl, prctl, capset, setgroups, setgid, setuid, seccomp, sendmsg) on data
    // prepared before the fork, and neither allocates nor takes a lock.
    unsafe {
        command.pre_exec(move || {
            before()?;
            sandbox.apply()
        });
    }
}
