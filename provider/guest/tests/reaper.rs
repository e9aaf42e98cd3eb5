//! PID 1's reaper tells the application's exit from the proxy process's (a binary of its own:
//! the reaper collects every child of the process it runs in).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use guest::init::reaper::Reaper;
use rustix::process::Pid;

fn sleeper() -> (std::process::Child, Pid) {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = Pid::from_child(&child);
    (child, pid)
}

#[test]
fn the_proxy_process_ending_is_seen_apart_from_the_application() {
    let (mut app, app_pid) = sleeper();
    let (mut proxy, proxy_pid) = sleeper();
    let mut reaper = Reaper::new(app_pid, Some(proxy_pid));
    assert!(reaper.poll().is_none() && reaper.proxy_exit().is_none());

    proxy.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = reaper.proxy_exit() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the proxy's end was not seen");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.describe(), "signal 9");
    assert!(reaper.poll().is_none(), "the application still runs");

    app.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reaper.poll().is_none() {
        assert!(Instant::now() < deadline, "the application's end was not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
}
