use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plan::HardeningLevel;

use super::*;
use crate::init::sandbox::{Sandbox, set_pre_exec};
use crate::init::{privileges, seccomp};

/// Starts `sh -c script` as init starts the application under strict: as root, with the
/// whole sandbox (user 65534, no capability) and a supervisor thread holding only what PID 1's
/// keeps; unprivileged, with the strict filters and the exec guard only. Returns its output
/// and the refusals the supervisor heard of.
#[allow(unsafe_code)]
fn run_strict(script: &str) -> (std::process::Output, u32, Vec<Refused>) {
    let root = rustix::process::geteuid().is_root();
    let (guard, supervisor) = pair().unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    let start = move || {
        if root {
            privileges::keep_only(privileges::EXEC_SUPERVISION).unwrap();
        }
    };
    supervisor.spawn(start, move |refused| sink.lock().unwrap().push(refused)).unwrap();
    let mut command = Command::new("/bin/sh");
    command.args(["-c", script]).current_dir("/");
    if root {
        let hardening = plan::HardeningPlan {
            level: HardeningLevel::Strict,
            read_only_root: true,
            seccomp: true,
            max_lifetime_seconds: None,
            no_shell: true,
            no_package_manager: true,
            drop_capabilities: true,
            no_new_privileges: true,
        };
        set_pre_exec(&mut command, Sandbox::application(&hardening, Some(guard)).unwrap(), || Ok(()));
    } else {
        let programs = seccomp::programs(HardeningLevel::Strict).unwrap();
        // SAFETY: between fork and exec the closure makes system calls only, on data
        // prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                seccomp::install(&programs)?;
                guard.arm()
            });
        }
    }
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    drop(command);
    // The refusal is reported right after the answer: give the thread a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while heard.lock().unwrap().is_empty() && Instant::now() < deadline && !output.status.success() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let heard = heard.lock().unwrap().clone();
    (output, pid, heard)
}

#[test]
fn the_first_exec_runs_and_a_later_one_is_refused_and_reported() {
    let (output, pid, heard) = run_strict("echo started; exec /bin/true");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "started\n", "{stderr}");
    assert!(!output.status.success(), "the second exec must fail: {stderr}");
    assert!(stderr.to_lowercase().contains("not permitted"), "{stderr}");
    assert_eq!(heard, [Refused { pid: pid as i32, path: Some("/bin/true".into()) }]);
    let event = heard[0].event().to_line();
    assert!(event.starts_with(r#"{"event":"exec_refused","#) && event.contains(r#""path":"/bin/true""#), "{event}");
}

#[test]
fn the_filter_notifies_execve_only() {
    let program = notify_on_execve();
    // execve's comparison and the notify verdict are there; nothing else is refused.
    assert!(program.iter().any(|op| op.k == libc::SYS_execve as u32));
    assert!(program.iter().any(|op| op.k == libc::SECCOMP_RET_USER_NOTIF));
    assert!(
        program
            .iter()
            .filter(|op| op.code == 0x06)
            .all(|op| { op.k == libc::SECCOMP_RET_USER_NOTIF || op.k == libc::SECCOMP_RET_ALLOW })
    );
}
