//! Starting the application: an unprivileged user, an empty environment, and the plan's
//! hardening applied between fork and exec.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use abi::cmdline::Launch;
use plan::HardeningPlan;

use super::exec::ExecGuard;
use super::sandbox::{Sandbox, set_pre_exec};
use super::seccomp;

pub use super::sandbox::APP_ID;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("cannot start {app}: {source}")]
    Spawn { app: String, source: std::io::Error },
}

/// Starts the application in its own process group, from /tmp. Its stdout and stderr are
/// the pipe whose reading end is returned (see [`super::relay`]). With `exec_guard`, its
/// supervisor must already run.
pub fn spawn(
    launch: &Launch,
    hardening: &HardeningPlan,
    exec_guard: Option<ExecGuard>,
) -> Result<(Child, std::io::PipeReader), AppError> {
    let sandbox = Sandbox::application(hardening, exec_guard)?;
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
    set_pre_exec(&mut command, sandbox, || Ok(()));
    let child = command.spawn().map_err(spawn_error)?;
    // The command holds the writing ends until it is dropped; the pipe ends when the
    // application and whatever inherited them are gone.
    drop(command);
    Ok((child, output))
}
