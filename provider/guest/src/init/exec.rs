//! Under `strict`, the application executes nothing after it has started: no execve after
//! the first.
//!
//! A filter cannot tell the exec that starts the application from a later one, so the
//! decision is PID 1's. Between fork and exec the child installs a user-notification filter
//! on execve (SECCOMP_RET_USER_NOTIF, with SECCOMP_FILTER_FLAG_NEW_LISTENER) and hands the
//! listener to PID 1 over a socket pair. A supervisor thread of PID 1 answers the first
//! execve (the application's own start) "continue", and every later one EPERM, writing an
//! [`Event::ExecRefused`]. The filter is inherited by every thread and process the
//! application makes, and cannot be removed; if the supervisor is gone, the kernel fails
//! the call (ENOSYS). execveat is killed by the strict filter outright.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use abi::event::Event;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType,
};
use seccompiler::sock_filter;

use crate::audit::now_rfc3339;

/// `_IOWR('!', 0, struct seccomp_notif)`, `_IOWR('!', 1, struct seccomp_notif_resp)`,
/// `_IOW('!', 2, __u64)` from `<linux/seccomp.h>` (the libc crate has them only lately).
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;
const NOTIF_ID_VALID: u64 = 0x4008_2102;
/// The supervisor thread's name (15 bytes at most: the kernel's limit).
pub const THREAD_NAME: &str = "exec-supervisor";
/// Longest program path read from the application's memory.
const PATH_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot create the exec supervisor's socket pair: {0}")]
    Socket(std::io::Error),
    #[error("cannot start the exec supervisor thread: {0}")]
    Thread(std::io::Error),
}

/// The child's half: what it needs between fork and exec, prepared before the fork.
#[derive(Debug)]
pub struct ExecGuard {
    socket: OwnedFd,
    program: Vec<sock_filter>,
}

/// PID 1's half: receives the listener and answers the notifications.
#[derive(Debug)]
pub struct Supervisor {
    socket: OwnedFd,
}

/// One refused exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub pid: i32,
    pub path: Option<String>,
}

impl Refused {
    pub fn event(&self) -> Event<'static> {
        Event::ExecRefused { ts: now_rfc3339(), pid: self.pid, path: self.path.clone() }
    }
}

/// Both halves, connected.
pub fn pair() -> Result<(ExecGuard, Supervisor), ExecError> {
    // Close-on-exec both: neither end may reach the application's program.
    let (child, parent) =
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .map_err(|e| ExecError::Socket(e.into()))?;
    Ok((ExecGuard { socket: child, program: notify_on_execve() }, Supervisor { socket: parent }))
}

/// execve goes to the listener; anything else (and another architecture, which the x32
/// guard kills anyway) is allowed by this filter.
fn notify_on_execve() -> Vec<sock_filter> {
    use super::seccomp::bpf::{ARCH, AUDIT_ARCH, JEQ_K, LD_W_ABS, NR, RET_K, op};
    vec![
        op(LD_W_ABS, 0, 0, ARCH),
        op(JEQ_K, 0, 3, AUDIT_ARCH),
        op(LD_W_ABS, 0, 0, NR),
        op(JEQ_K, 0, 1, libc::SYS_execve as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

impl ExecGuard {
    /// Runs in the child between fork and exec, after its other filters: system calls on
    /// data prepared before the fork only. Installs the filter and sends its listener.
    #[allow(unsafe_code)]
    pub fn arm(&self) -> std::io::Result<()> {
        rustix::thread::set_no_new_privs(true)?;
        let program = libc::sock_fprog { len: self.program.len() as u16, filter: self.program.as_ptr() as *mut _ };
        // SAFETY: the program outlives the call; the kernel copies it. A non-negative result
        // is a new descriptor that this process owns.
        let listener = unsafe {
            let fd = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &program as *const libc::sock_fprog,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd as i32)
        };
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [listener.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(&self.socket, &[IoSlice::new(b"l")], &mut control, SendFlags::empty())?;
        Ok(())
    }
}

impl Supervisor {
    /// Starts the thread that answers the application's execs; `refused` hears of each
    /// refusal. Must run before the application is spawned: the spawn returns only once
    /// its exec has been answered.
    /// `start` runs first on the thread (PID 1 gives up capabilities there).
    pub fn spawn(
        self,
        start: impl FnOnce() + Send + 'static,
        refused: impl Fn(Refused) + Send + 'static,
    ) -> Result<(), ExecError> {
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                start();
                if let Some(listener) = self.receive() {
                    answer(&listener, &refused);
                }
            })
            .map_err(ExecError::Thread)?;
        Ok(())
    }

    /// The listener, once the child has sent it; `None` if the child ended first.
    fn receive(&self) -> Option<OwnedFd> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        loop {
            match rustix::net::recvmsg(
                &self.socket,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return None,
            }
        }
        control.drain().find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
    }
}

/// Answers notifications until the listener fails (every filtered process is gone).
fn answer(listener: &OwnedFd, refused: &impl Fn(Refused)) {
    let mut first = true;
    loop {
        let Some(notification) = receive(listener) else { return };
        if first {
            first = false;
            respond(listener, notification.id, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32);
            continue;
        }
        let pid = notification.pid as i32;
        let path = read_path(pid, notification.data.args[0]);
        // The pid may have died and been reused while the path was read: believe the path
        // only if the notification is still pending.
        let path = path.filter(|_| still_valid(listener, notification.id));
        respond(listener, notification.id, -libc::EPERM, 0);
        refused(Refused { pid, path });
    }
}

#[allow(unsafe_code)]
fn receive(listener: &OwnedFd) -> Option<libc::seccomp_notif> {
    loop {
        // SAFETY: the kernel requires a zeroed structure and fills it; all-zero is a valid
        // value of this plain C structure.
        let mut notification: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the structure is the size NOTIF_RECV names and lives until the call returns.
        let result = unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_RECV as _, &mut notification) };
        if result == 0 {
            return Some(notification);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // Interrupted, or the process went away before its notification was read.
            Some(libc::EINTR | libc::ENOENT) => continue,
            _ => return None,
        }
    }
}

#[allow(unsafe_code)]
fn respond(listener: &OwnedFd, id: u64, error: i32, flags: u32) {
    let mut response = libc::seccomp_notif_resp { id, val: 0, error, flags };
    // SAFETY: the structure is the size NOTIF_SEND names and lives until the call returns.
    // A failure means the process is gone (ENOENT): nothing to answer.
    unsafe {
        libc::ioctl(listener.as_raw_fd(), NOTIF_SEND as _, &mut response);
    }
}

#[allow(unsafe_code)]
fn still_valid(listener: &OwnedFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the id lives until the call returns; the kernel only reads it.
    unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_ID_VALID as _, &mut id) == 0 }
}

/// The NUL-terminated string at `address` in `pid`'s memory, best effort. With
/// process_vm_readv, which needs CAP_SYS_PTRACE only: opening /proc/PID/mem would need to
/// pass the file's permissions too (it is the application's).
#[allow(unsafe_code)]
fn read_path(pid: i32, address: u64) -> Option<String> {
    const PAGE: u64 = 4096;
    let mut buf = vec![0u8; PATH_MAX];
    // Two pieces split at a page boundary: a string near the end of a mapping still reads
    // up to it (the kernel stops at the first piece that faults).
    let first = (PAGE - address % PAGE).min(PATH_MAX as u64) as usize;
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: PATH_MAX };
    let remote = [
        libc::iovec { iov_base: address as *mut libc::c_void, iov_len: first },
        libc::iovec { iov_base: address.wrapping_add(first as u64) as *mut libc::c_void, iov_len: PATH_MAX - first },
    ];
    // SAFETY: the local buffer is PATH_MAX bytes and outlives the call; the remote ranges
    // are only read, in another process, and checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), 2, 0) };
    let n = usize::try_from(n).ok()?;
    let end = buf[..n].iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests;
