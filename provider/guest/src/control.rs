//! The guest's end of the control channel ([`abi::control`]): reads authenticated requests from
//! the virtio-serial port, has a new plan put in force when it changes runtime mechanisms
//! only (by the proxy process in an image: [`crate::init::proxy_process`]), and answers each
//! request with the digest of the plan enforced, once it is.
//! Refusals (a bad MAC, a replayed sequence number, a plan that needs a new image) are
//! answered and written to the audit log; the running configuration stays.
//!
//! A copy restored from a snapshot is made its own by one `resume` ([`Resumer`]): from its
//! reply on, the copy answers to its own key only.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use abi::control::{Command, Key, Notice, NoticeKind, PORT_NAME, Reply, Request, Resume};
use abi::event::{Event, Refusal};
use plan::{ChangeKind, EnforcementPlan};

use crate::audit::AuditLog;
use crate::config::{Runtime, parse_plan};
use crate::proxy::Shared;

/// The port appears a little after its driver loads: virtio-serial announces ports after
/// the device is up.
const PORT_WAIT: Duration = Duration::from_secs(20);
/// A line longer than this is not a request (plans are a few KiB).
const MAX_LINE: usize = 1 << 20;

/// Whatever enforces the runtime part of a plan that the controller accepted.
pub trait Enforce: Send + std::fmt::Debug {
    /// Puts `plan` (whose runtime part is `runtime`, already compiled) in force; an error
    /// leaves the running plan in place.
    fn enforce(&mut self, plan: &EnforcementPlan, runtime: Runtime) -> Result<(), String>;
}

/// In the same process (host mode, tests): swapped in directly.
impl Enforce for Arc<Shared> {
    fn enforce(&mut self, _plan: &EnforcementPlan, runtime: Runtime) -> Result<(), String> {
        // Requests in flight hold the old configuration until they finish.
        self.reconfigure(runtime);
        Ok(())
    }
}

/// Whatever makes a copy restored from a snapshot its own (randomness, clock, address):
/// PID 1's main thread, which alone holds the capabilities for it ([`crate::init::resume`]).
pub trait Resumer: Send + std::fmt::Debug {
    /// Applies `resume`; returns once it is, or why it could not be.
    fn resume(&mut self, resume: Resume) -> Result<(), String>;
}

/// The state a request is judged against.
#[derive(Debug)]
pub struct Controller {
    key: Key,
    plan: EnforcementPlan,
    digest: String,
    last_seq: u64,
    enforcer: Box<dyn Enforce>,
    audit: AuditLog,
    /// Present in an instance booted for a snapshot until its one resume.
    resumer: Option<Box<dyn Resumer>>,
}

impl Controller {
    pub fn new(key: Key, plan: EnforcementPlan, enforcer: Box<dyn Enforce>, audit: AuditLog) -> Self {
        let digest = plan.digest();
        Controller { key, plan, digest, last_seq: 0, enforcer, audit, resumer: None }
    }

    /// A controller of an instance booted for a snapshot: its copies are resumed through
    /// `resumer`, once each.
    pub fn resumable(mut self, resumer: Box<dyn Resumer>) -> Self {
        self.resumer = Some(resumer);
        self
    }

    /// One request line in, one reply line out.
    pub fn handle(&mut self, line: &str) -> Reply {
        let request: Request = match serde_json::from_str(line) {
            Ok(request) => request,
            Err(_) => return self.refuse(0, Refusal::Malformed, "the request is not a control request".into()),
        };
        if !request.verify(&self.key) {
            return self.refuse(
                request.seq,
                Refusal::BadMac,
                "the request is not authenticated by this instance's key".into(),
            );
        }
        if request.seq <= self.last_seq {
            return self.refuse(request.seq, Refusal::Replayed, "the sequence number was used before".into());
        }
        self.last_seq = request.seq;
        match request.command {
            Command::Status => Reply::new(&self.key, request.seq, Ok(self.digest.clone())),
            Command::Reconfigure { plan } => match self.reconfigure(&plan) {
                Ok(()) => Reply::new(&self.key, request.seq, Ok(self.digest.clone())),
                Err(why) => self.refuse(request.seq, Refusal::RejectedPlan, why),
            },
            // Answered under the new key: the host learns that the copy took it.
            Command::Resume(resume) => match self.resume(resume) {
                Ok(()) => Reply::new(&self.key, request.seq, Ok(self.digest.clone())),
                Err(why) => self.refuse(request.seq, Refusal::RejectedResume, why),
            },
        }
    }

    fn resume(&mut self, resume: Resume) -> Result<(), String> {
        let mut resumer = self
            .resumer
            .take()
            .ok_or("this instance is not a copy of a snapshot waiting to be resumed (or it was resumed already)")?;
        let key = resume.key.clone();
        resumer.resume(resume)?;
        self.key = key;
        // The runtime's own secrets (such as the key of its credential cache) were drawn
        // before the snapshot: drawn again, from the reseeded kernel, by compiling anew.
        let runtime = Runtime::new(&self.plan.runtime).map_err(|e| e.to_string())?;
        self.enforcer.enforce(&self.plan, runtime)
    }

    fn reconfigure(&mut self, text: &str) -> Result<(), String> {
        let plan = parse_plan("the new plan", text).map_err(|e| e.to_string())?;
        if plan.node != self.plan.node {
            return Err(format!("the plan is for node `{}`, this instance enforces `{}`", plan.node, self.plan.node));
        }
        if plan.change_from(&self.plan) == ChangeKind::Replace {
            return Err("the plan changes the image or the placement, which needs a new instance".into());
        }
        let runtime = Runtime::new(&plan.runtime).map_err(|e| e.to_string())?;
        // Acknowledged only once in force.
        self.enforcer.enforce(&plan, runtime)?;
        self.digest = plan.digest();
        self.plan = plan;
        self.audit.emit(&Event::Reconfigured { digest: self.digest.as_str().into() });
        Ok(())
    }

    /// The reply names what was wrong; the audit line only why, never the request's content.
    fn refuse(&self, seq: u64, reason: Refusal, error: String) -> Reply {
        self.audit.emit(&Event::ControlRefused { reason, seq });
        Reply::new(&self.key, seq, Err(error))
    }
}

/// Tells the host what it would otherwise poll for ([`Notice`]), from a thread of its own.
#[derive(Debug, Clone)]
pub struct Notifier(mpsc::Sender<NoticeKind>);

impl Notifier {
    /// The instance serves: the host waiting for the boot learns it at once.
    pub fn ready(&self) {
        let _ = self.0.send(NoticeKind::Ready);
    }
}

/// Serves the control port on a thread of its own (its reads block).
pub fn spawn(mut controller: Controller, warn: fn(&str, String)) -> Notifier {
    let (notifier, notices) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("control".into()).spawn(move || {
        let Some(port) = crate::init::port::find(PORT_NAME, Instant::now() + PORT_WAIT) else {
            return warn("control", format!("no virtio-serial port named {PORT_NAME} appeared"));
        };
        let opened = File::options().read(true).write(true).open(&port);
        let opened = opened.and_then(|f| Ok((f.try_clone()?, f.try_clone()?, f)));
        let (reader, notice_writer, mut writer) = match opened {
            Ok(files) => files,
            Err(e) => return warn("control", format!("cannot open {}: {e}", port.display())),
        };
        let notifying = spawn_notices(notices, notice_writer, controller.key.clone(), controller.digest.clone());
        if let Err(e) = notifying {
            warn("control", format!("cannot start the notice thread: {e}"));
        }
        let wakeup = wakeup::Wakeup::arm(&reader);
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        loop {
            match (&mut reader).take(MAX_LINE as u64).read_line(&mut line) {
                // No host connected: the port reads as closed until one is. A line cut off
                // by a host that went away is dropped.
                Ok(0) => {
                    line.clear();
                    wakeup.wait();
                }
                Ok(_) if !line.ends_with('\n') && line.len() < MAX_LINE => continue,
                Ok(_) => {
                    let reply = controller.handle(line.trim());
                    line.clear();
                    if let Ok(mut text) = serde_json::to_string(&reply) {
                        text.push('\n');
                        let _ = writer.write_all(text.as_bytes());
                    }
                }
                Err(_) => {
                    line.clear();
                    wakeup.wait();
                }
            }
        }
    });
    if let Err(e) = spawned {
        warn("control", format!("cannot start the control thread: {e}"));
    }
    Notifier(notifier)
}

/// Writes each notice as it is asked for. A write waits while no host is connected (the
/// port blocks writers then), which is why it is not the control thread's: a host that
/// connects later finds the notice queued and skips it.
fn spawn_notices(
    notices: mpsc::Receiver<NoticeKind>,
    mut port: impl Write + Send + 'static,
    key: Key,
    digest: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("control-notice".into()).spawn(move || {
        for kind in notices {
            let notice = Notice::new(&key, kind, digest.clone());
            if let Ok(mut text) = serde_json::to_string(&notice) {
                text.push('\n');
                let _ = port.write_all(text.as_bytes());
            }
        }
    })
}

/// Waiting for the host without polling. With no host connected the port reads as closed at
/// once, so a plain loop would spin; an idle guest under TCG pays for every wake-up. The
/// driver raises SIGIO when the host connects or data arrives (`O_ASYNC`): it is directed
/// to the control thread alone, blocked there so it stays pending, and taken with
/// `sigtimedwait`. Where that cannot be set up, the thread polls every 20 ms instead.
mod wakeup {
    use std::fs::File;
    use std::os::fd::AsRawFd as _;
    use std::time::Duration;

    /// `F_SETOWN_EX` and `F_OWNER_TID` from `<fcntl.h>` (the libc crate has them for few targets).
    const F_SETOWN_EX: libc::c_int = 15;
    const F_OWNER_TID: libc::c_int = 0;
    /// A safety net only: a signal raised between a read and the wait stays pending (it is
    /// blocked) and ends the wait at once.
    const LONGEST_WAIT: Duration = Duration::from_secs(1);
    const POLL: Duration = Duration::from_millis(20);

    #[repr(C)]
    struct OwnerEx {
        kind: libc::c_int,
        pid: libc::pid_t,
    }

    #[derive(Debug)]
    pub struct Wakeup {
        armed: bool,
    }

    fn sigio_set() -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set it is given; a zeroed sigset_t is a valid
        // value to hand it.
        #[allow(unsafe_code)]
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGIO);
            set
        }
    }

    impl Wakeup {
        /// Must run on the thread that waits.
        pub fn arm(port: &File) -> Wakeup {
            let fd = port.as_raw_fd();
            let set = sigio_set();
            // SAFETY: system calls on an open descriptor and on values that live on this
            // stack until they return. The signal is blocked on this thread before the
            // port may raise it, and only ever sent to this thread.
            #[allow(unsafe_code)]
            let armed = unsafe {
                let owner = OwnerEx { kind: F_OWNER_TID, pid: libc::gettid() };
                libc::fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx) == 0
                    && libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
                    && {
                        let flags = libc::fcntl(fd, libc::F_GETFL);
                        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) == 0
                    }
            };
            Wakeup { armed }
        }

        /// Until the host connects or writes (or a while has passed).
        pub fn wait(&self) {
            if !self.armed {
                return std::thread::sleep(POLL);
            }
            let set = sigio_set();
            let timeout = libc::timespec { tv_sec: LONGEST_WAIT.as_secs() as libc::time_t, tv_nsec: 0 };
            // SAFETY: the set and the timeout live on this stack until the call returns; no
            // signal information is asked for.
            #[allow(unsafe_code)]
            unsafe {
                libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn request(key: &Key, seq: u64, plan: &EnforcementPlan) -> String {
        let command = Command::Reconfigure { plan: plan.canonical_json() };
        serde_json::to_string(&Request::new(key, seq, command)).unwrap()
    }

    #[tokio::test]
    async fn only_authenticated_fresh_runtime_changes_are_applied() {
        let sink = Sink::default();
        let audit = AuditLog::spawn(Box::new(sink.clone())).unwrap();
        let old = crate::config::bare_plan();
        let runtime = Runtime::new(&old.runtime).unwrap();
        let proxy = crate::proxy::Proxy::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            runtime,
            audit.clone(),
        )
        .await
        .unwrap();
        let key = Key::generate().unwrap();
        let mut controller = Controller::new(key.clone(), old.clone(), Box::new(proxy.shared()), audit);

        let mut new = old.clone();
        new.runtime.firewall.http.max_header_bytes += 1;
        let forged = controller.handle(&request(&Key::generate().unwrap(), 5, &new));
        assert!(!forged.ok && forged.verify(&key), "{forged:?}");
        assert_eq!(controller.digest, old.digest(), "a forged plan changes nothing");

        let applied = controller.handle(&request(&key, 6, &new));
        assert!(applied.ok && applied.verify(&key), "{applied:?}");
        assert_eq!(applied.digest.as_deref(), Some(new.digest().as_str()));
        assert_eq!(proxy.shared().runtime().plan, new.runtime);

        let replayed = controller.handle(&request(&key, 6, &new));
        assert_eq!(replayed.error.as_deref(), Some("the sequence number was used before"));

        let mut rebuild = new.clone();
        rebuild.build.hardening.read_only_root = !rebuild.build.hardening.read_only_root;
        let refused = controller.handle(&request(&key, 7, &rebuild));
        assert!(refused.error.as_deref().is_some_and(|e| e.contains("needs a new instance")), "{refused:?}");
        assert!(!controller.handle("not json").ok);

        let status = controller.handle(&serde_json::to_string(&Request::new(&key, 8, Command::Status)).unwrap());
        assert_eq!(status.digest.as_deref(), Some(new.digest().as_str()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let events: Vec<Event> = Event::scan(&text).collect();
        let refusals: Vec<Refusal> = events
            .iter()
            .filter_map(|e| if let Event::ControlRefused { reason, .. } = e { Some(*reason) } else { None })
            .collect();
        assert_eq!(refusals, [Refusal::BadMac, Refusal::Replayed, Refusal::RejectedPlan, Refusal::Malformed], "{text}");
        let digest = new.digest();
        assert!(events.iter().any(|e| matches!(e, Event::Reconfigured { digest: d } if *d == digest)), "{text}");
    }

    #[derive(Debug)]
    struct Applied(Arc<std::sync::Mutex<Vec<Resume>>>);

    impl Resumer for Applied {
        fn resume(&mut self, resume: Resume) -> Result<(), String> {
            self.0.lock().unwrap().push(resume);
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Enforce for Counted {
        fn enforce(&mut self, _plan: &EnforcementPlan, _runtime: Runtime) -> Result<(), String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    fn resume_request(key: &Key, seq: u64, new_key: &Key) -> String {
        let resume =
            Resume { key: new_key.clone(), entropy: abi::control::Entropy::draw().unwrap(), unix_ns: 1, network: None };
        serde_json::to_string(&Request::new(key, seq, Command::Resume(resume))).unwrap()
    }

    #[tokio::test]
    async fn a_copy_is_resumed_once_and_answers_to_its_own_key_only_from_then_on() {
        let audit = AuditLog::spawn(Box::new(Sink::default())).unwrap();
        let plan = crate::config::bare_plan();
        let snapshot_key = Key::generate().unwrap();
        let enforced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let plain = Controller::new(snapshot_key.clone(), plan.clone(), Box::new(Counted(enforced.clone())), audit);
        let applied = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut controller = plain.resumable(Box::new(Applied(applied.clone())));
        let own_key = Key::generate().unwrap();

        let forged = controller.handle(&resume_request(&Key::generate().unwrap(), 1, &own_key));
        assert!(!forged.ok && applied.lock().unwrap().is_empty(), "{forged:?}");
        let resumed = controller.handle(&resume_request(&snapshot_key, 2, &own_key));
        assert!(resumed.ok && resumed.verify(&own_key) && !resumed.verify(&snapshot_key), "{resumed:?}");
        assert_eq!(applied.lock().unwrap().len(), 1);
        assert_eq!(enforced.load(std::sync::atomic::Ordering::SeqCst), 1, "the runtime was compiled anew");

        let status = |key: &Key, seq| serde_json::to_string(&Request::new(key, seq, Command::Status)).unwrap();
        assert!(!controller.handle(&status(&snapshot_key, 3)).ok, "the snapshot's key is refused from now on");
        assert!(controller.handle(&status(&own_key, 4)).ok);
        let again = controller.handle(&resume_request(&own_key, 5, &Key::generate().unwrap()));
        assert!(again.error.as_deref().is_some_and(|e| e.contains("resumed already")), "{again:?}");
        assert_eq!(applied.lock().unwrap().len(), 1, "resumed once only");
    }

    #[test]
    fn the_ready_notice_goes_out_authenticated_with_the_plan_digest() {
        let sink = Sink::default();
        let key = Key::generate().unwrap();
        let (notifier, notices) = mpsc::channel();
        let thread = spawn_notices(notices, sink.clone(), key.clone(), "sha256:ab".into()).unwrap();
        Notifier(notifier).ready();
        thread.join().unwrap();
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let notice: Notice = serde_json::from_str(written.strip_suffix('\n').unwrap()).unwrap();
        assert_eq!((notice.notice, notice.digest.as_str()), (NoticeKind::Ready, "sha256:ab"));
        assert!(notice.verify(&key));
    }
}
