//! What fetching and building kernels share: commands run with their failure explained,
//! and scratch directories that disappear unless the work completed.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::KernelError;

pub(super) const APT_HINT: &str =
    "this needs Debian's apt with its package lists (run `apt-get update`) and access to the archive";

/// Removes the directory unless the work completed (then the field is taken).
pub(super) struct Scratch(pub Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Runs `command` and gives its standard output; a failure names the command, its status
/// and what it printed on standard error, then `hint`.
pub(super) fn run(command: &mut Command, hint: &'static str) -> Result<String, KernelError> {
    let shown = format!("{command:?}").replace('"', "");
    let output = command.stdin(Stdio::null()).output().map_err(|e| KernelError::Command {
        command: shown.clone(),
        detail: e.to_string(),
        hint,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr.lines().filter(|l| !l.starts_with("W: ")).collect::<Vec<_>>().join(" / ");
        return Err(KernelError::Command { command: shown, detail: format!("{} ({detail})", output.status), hint });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
