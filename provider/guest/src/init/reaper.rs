//! Collecting PID 1's children: the application, the proxy process, and any orphan
//! re-parented to init.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    fn from_status(status: WaitStatus) -> Self {
        Self { code: status.exit_status(), signal: status.terminating_signal() }
    }

    pub fn describe(self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("status {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown status".to_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Reaper {
    app: Pid,
    app_exit: Option<Exit>,
    proxy: Option<Pid>,
    proxy_exit: Option<Exit>,
}

impl Reaper {
    pub fn new(app: Pid, proxy: Option<Pid>) -> Self {
        Self { app, app_exit: None, proxy, proxy_exit: None }
    }

    fn collect(&mut self) {
        // `wait`, not `waitpid(None)`: the latter only sees init's own process group, and
        // the application runs in a group of its own.
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            if pid == self.app {
                self.app_exit = Some(Exit::from_status(status));
            } else if Some(pid) == self.proxy {
                self.proxy_exit = Some(Exit::from_status(status));
            }
        }
    }

    /// The application's exit, once it has exited.
    pub fn poll(&mut self) -> Option<Exit> {
        self.collect();
        self.app_exit
    }

    /// The proxy process's exit, once it has exited.
    pub fn proxy_exit(&mut self) -> Option<Exit> {
        self.collect();
        self.proxy_exit
    }

    /// SIGTERM to the application's process group, SIGKILL after the grace period.
    pub async fn stop(&mut self) {
        for (signal, wait) in [(Signal::TERM, STOP_GRACE), (Signal::KILL, Duration::from_secs(1))] {
            let _ = rustix::process::kill_process_group(self.app, signal);
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if self.poll().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
