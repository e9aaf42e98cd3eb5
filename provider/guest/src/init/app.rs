//! Starting the application: an unprivileged user, an empty environment, and the plan's
//! hardening applied between fork and exec.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use abi::cmdline::Launch;
use plan::HardeningPlan;
use rustix::thread::{CapabilitySet, CapabilitySets};
use seccompiler::BpfProgram;

use super::exec::ExecGuard;
use super::seccomp;

/// `nobody`: the application owns no file of the image and holds no capability.
pub const APP_ID: u32 = 65534;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("cannot start {app}: {source}")]
    Spawn { app: String, source: std::io::Error },
}

/// What the child applies to itself before exec, prepared in the parent.
#[derive(Debug)]
struct Sandbox {
    drop_capabilities: bool,
    no_new_privileges: bool,
    filters: Vec<BpfProgram>,
    /// Under strict: no execve after the application's own.
    exec_guard: Option<ExecGuard>,
}

impl Sandbox {
    fn new(hardening: &HardeningPlan, exec_guard: Option<ExecGuard>) -> Result<Self, AppError> {
        let filters = if hardening.seccomp { seccomp::programs(hardening.level)? } else { Vec::new() };
        Ok(Self {
            drop_capabilities: hardening.drop_capabilities,
            no_new_privileges: hardening.no_new_privileges,
            filters,
            exec_guard,
        })
    }

    /// Runs in the forked child: system calls only, no allocation, no lock. The order
    /// matters: the bounding set needs CAP_SETPCAP and the groups CAP_SETGID, both gone
    /// once the uid changes; the filter comes last so it cannot refuse any of these.
    fn apply(&self) -> std::io::Result<()> {
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
        let id = (rustix::process::Gid::from_raw(APP_ID), rustix::process::Uid::from_raw(APP_ID));
        // Per-thread calls are right here: the child of a fork has one thread.
        rustix::thread::set_thread_groups(&[])?;
        rustix::thread::set_thread_gid(id.0)?;
        rustix::thread::set_thread_uid(id.1)?;
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

/// Starts the application in its own process group, from /tmp. Its stdout and stderr are
/// the pipe whose reading end is returned (see [`super::relay`]). With `exec_guard`, its
/// supervisor must already run.
pub fn spawn(
    launch: &Launch,
    hardening: &HardeningPlan,
    exec_guard: Option<ExecGuard>,
) -> Result<(Child, std::io::PipeReader), AppError> {
    let sandbox = Sandbox::new(hardening, exec_guard)?;
    let app = launch.app_path();
    let spawn_error = |source| AppError::Spawn { app: app.display().to_string(), source };
    let (output, stdout) = std::io::pipe().map_err(spawn_error)?;
    let stderr = stdout.try_clone().map_err(spawn_error)?;
    let mut command = Command::new(&app);
    command
        .args(&launch.args)
        .env_clear()
        .env("PATH", "/")
        .env("HOME", "/tmp")
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    set_pre_exec(&mut command, sandbox);
    let child = command.spawn().map_err(spawn_error)?;
    // The command holds the writing ends until it is dropped; the pipe ends when the
    // application and whatever inherited them are gone.
    drop(command);
    Ok((child, output))
}

#[allow(unsafe_code)]
fn set_pre_exec(command: &mut Command, sandbox: Sandbox) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is allowed. `Sandbox::apply` makes raw system calls (prctl,
    // capset, setgroups, setgid, setuid, seccomp) on data prepared before the fork, and
    // neither allocates nor takes a lock; so does `ExecGuard::arm` (seccomp, sendmsg).
    unsafe {
        command.pre_exec(move || sandbox.apply());
    }
}
