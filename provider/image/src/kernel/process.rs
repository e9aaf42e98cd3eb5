//! What fetching and building kernels share: commands run with their failure explained,
//! and scratch directories that disappear unless the work completed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// Streams the file system of the package `deb` (its data archive, a tar stream from
/// `dpkg-deb --fsys-tarfile`) to `read`; fails if `read` does or dpkg-deb does.
pub(super) fn read_package<T>(
    deb: &Path,
    read: impl FnOnce(&mut dyn Read) -> Result<T, KernelError>,
) -> Result<T, KernelError> {
    let shown = format!("dpkg-deb --fsys-tarfile {}", deb.display());
    let command_err = |detail: String| KernelError::Command { command: shown.clone(), detail, hint: APT_HINT };
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| command_err(e.to_string()))?;
    let mut stdout = child.stdout.take().ok_or_else(|| command_err("no output".into()))?;
    let read = read(&mut stdout);
    // What `read` left unread: dpkg-deb must not block on a full pipe, nor fail on a closed one.
    let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    drop(stdout);
    let status = child.wait().map_err(|e| command_err(e.to_string()))?;
    let value = read?;
    if !status.success() {
        return Err(command_err(status.to_string()));
    }
    Ok(value)
}
