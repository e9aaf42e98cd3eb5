//! The application's system call filter, per hardening level.
//!
//! A deny-list: the application is arbitrary code, so an allow-list would break it; what
//! is denied is what a web application has no business doing and an attacker would use to
//! escalate or persist. Filters are built before the fork (building allocates) and only
//! installed in the child.
//!
//! - `baseline`: mount changes and namespace creation or entry (unshare, setns, clone with
//!   any CLONE_NEW* flag; clone3, whose flags a filter cannot read, returns ENOSYS so libcs
//!   fall back to clone), raw and netlink sockets (AF_NETLINK, AF_PACKET, SOCK_RAW of any
//!   family), module and kexec loading, reboot, swap, ptrace and cross-process memory
//!   access, BPF, perf, userfaultfd, keyrings, handle-based opens, port I/O, clock and
//!   accounting changes, io_uring (its operations bypass seccomp) return EPERM.
//! - `strict`, in addition: no new processes (fork, vfork, and clone without
//!   CLONE_THREAD return EPERM), no sockets outside AF_UNIX/AF_INET/AF_INET6, no
//!   memfd_create; ptrace, cross-process memory access, pidfd_getfd and execveat kill the
//!   process; execve after the first is refused by PID 1's supervisor ([`super::exec`]).
//!
//! On x86_64 a separate filter refuses x32-ABI calls, which would otherwise slip past a
//! deny-list keyed on x86_64 numbers.

use std::collections::BTreeMap;

use plan::HardeningLevel;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("this architecture ({0}) has no seccomp filter support in sdsec")]
    Arch(&'static str),
    #[error("the seccomp filter has {0} instructions, more than the kernel takes ({MAX_INSTRUCTIONS})")]
    TooLong(usize),
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
}

/// One filter: the syscalls it matches (with conditions, if any) and what a match does.
#[derive(Debug)]
pub struct Layer {
    pub action: SeccompAction,
    pub rules: BTreeMap<i64, Vec<SeccompRule>>,
}

const BASELINE_DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_personality,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// Strict: refused outright, besides the conditional rules for clone and socket.
const STRICT_DENIED: &[i64] = &[
    libc::SYS_memfd_create,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
];

/// Strict: ways to read or take over another process, or to exec without a path.
const STRICT_KILLED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_execveat,
];

/// The socket families strict leaves open.
const STRICT_FAMILIES: &[libc::c_int] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// clone's namespace flags. CLONE_NEWTIME is not among them: clone() reads its bit as part
/// of the exit signal (only clone3 and unshare take it, and both are refused whole).
const CLONE_NEW_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// Socket families no level leaves open: the kernel's routing, firewall and raw link layer.
const REFUSED_FAMILIES: &[libc::c_int] = &[libc::AF_NETLINK, libc::AF_PACKET];

/// socket()'s type argument carries SOCK_NONBLOCK and SOCK_CLOEXEC above the type proper.
const SOCK_TYPE_MASK: u64 = 0xf;

/// The filters for a level, in the order they are installed. Several filters stack: the
/// kernel applies the most severe verdict, so a killed call stays killed even though the
/// baseline layer would only refuse it.
pub fn layers(level: HardeningLevel) -> Result<Vec<Layer>, SeccompError> {
    let unconditional =
        |calls: &[i64]| -> BTreeMap<i64, Vec<SeccompRule>> { calls.iter().map(|nr| (*nr, Vec::new())).collect() };
    let mut refused = unconditional(BASELINE_DENIED);
    // Rules of one call are alternatives: any that matches refuses it.
    let mut clone_rules = CLONE_NEW_FLAGS
        .iter()
        .map(|flag| {
            let set =
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag as u64), *flag as u64)?;
            Ok(SeccompRule::new(vec![set])?)
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    let mut socket_rules = REFUSED_FAMILIES
        .iter()
        .map(|family| {
            let named = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *family as u64)?;
            Ok(SeccompRule::new(vec![named])?)
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    let raw = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK),
        libc::SOCK_RAW as u64,
    )?;
    socket_rules.push(SeccompRule::new(vec![raw])?);
    let mut layers = Vec::new();
    if level == HardeningLevel::Strict {
        refused.extend(unconditional(STRICT_DENIED));
        // clone(flags, ...): a thread passes CLONE_THREAD, a new process does not.
        let new_process =
            SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64), 0)?;
        clone_rules.push(SeccompRule::new(vec![new_process])?);
        let other_family = STRICT_FAMILIES
            .iter()
            .map(|f| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *f as u64))
            .collect::<Result<Vec<_>, _>>()?;
        socket_rules.push(SeccompRule::new(other_family)?);
        layers.push(Layer { action: SeccompAction::KillProcess, rules: unconditional(STRICT_KILLED) });
    }
    refused.insert(libc::SYS_clone, clone_rules);
    refused.insert(libc::SYS_socket, socket_rules);
    layers.insert(
        0,
        Layer { action: SeccompAction::Errno(libc::ENOSYS as u32), rules: unconditional(&[libc::SYS_clone3]) },
    );
    layers.insert(0, Layer { action: SeccompAction::Errno(libc::EPERM as u32), rules: refused });
    Ok(layers)
}

/// The BPF program to install for `level` (one, see [`chain`]).
pub fn programs(level: HardeningLevel) -> Result<Vec<BpfProgram>, SeccompError> {
    chained(layers(level)?)
}

/// The proxy process's program: `strict`'s (it makes threads, never processes, and only
/// INET and UNIX sockets), and execve killed, since it never executes anything once
/// started. Installed by the process itself, right after its own exec.
pub fn proxy_programs() -> Result<Vec<BpfProgram>, SeccompError> {
    let mut layers = layers(HardeningLevel::Strict)?;
    let no_exec = [libc::SYS_execve, libc::SYS_execveat].iter().map(|nr| (*nr, Vec::new())).collect();
    layers.push(Layer { action: SeccompAction::KillProcess, rules: no_exec });
    chained(layers)
}

/// `layers` compiled and chained into one program, x32 guard first, then the layers from
/// the most severe action down.
fn chained(mut layers: Vec<Layer>) -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Arch(std::env::consts::ARCH))?;
    // Stable: layers of one severity keep their order.
    layers.sort_by_key(|layer| std::cmp::Reverse(severity(&layer.action)));
    let mut programs = Vec::new();
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    for layer in layers {
        let filter = SeccompFilter::new(layer.rules, SeccompAction::Allow, layer.action, arch)?;
        programs.push(BpfProgram::try_from(filter)?);
    }
    Ok(vec![chain(programs)?])
}

/// How the kernel ranks a verdict among stacked filters (the most severe one wins).
fn severity(action: &SeccompAction) -> u8 {
    match action {
        SeccompAction::KillProcess => 7,
        SeccompAction::KillThread => 6,
        SeccompAction::Trap => 5,
        SeccompAction::Errno(_) => 4,
        SeccompAction::Trace(_) => 2,
        SeccompAction::Log => 1,
        SeccompAction::Allow => 0,
    }
}

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;

/// Programs as one: where one would allow, the next is asked instead, so the first verdict
/// other than allow is the answer. With the most severe programs first this is what the
/// kernel makes of the same programs stacked, as long as no two give different verdicts of
/// equal severity for one call. One filter is cheaper than a stack: the kernel evaluates
/// every installed filter for every system call number when it installs one, and runs every
/// filter on each call it could not rule on then.
pub fn chain(programs: Vec<BpfProgram>) -> Result<BpfProgram, SeccompError> {
    use bpf::{JA, RET_K};
    let mut out: BpfProgram = Vec::with_capacity(programs.iter().map(Vec::len).sum());
    let count = programs.len();
    for (index, program) in programs.into_iter().enumerate() {
        let last = index + 1 == count;
        let len = program.len();
        for (at, mut op) in program.into_iter().enumerate() {
            if !last && op.code == RET_K && op.k == libc::SECCOMP_RET_ALLOW {
                // To the next program's first instruction: JA's offset counts from the one after it.
                op = bpf::op(JA, 0, 0, (len - at - 1) as u32);
            }
            out.push(op);
        }
    }
    if out.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLong(out.len()));
    }
    Ok(out)
}

/// Refuses system calls with the x32 bit set (ENOSYS, as on kernels without x32) and
/// kills any other architecture.
/// Classic BPF for the filters written by hand (seccompiler's builder has no user
/// notification and cannot test the x32 bit).
pub(crate) mod bpf {
    pub use seccompiler::sock_filter;

    pub const LD_W_ABS: u16 = 0x20;
    pub const JEQ_K: u16 = 0x15;
    pub const JGE_K: u16 = 0x35;
    pub const JA: u16 = 0x05;
    pub const RET_K: u16 = 0x06;
    /// Offsets in `struct seccomp_data`.
    pub const NR: u32 = 0;
    pub const ARCH: u32 = 4;
    #[cfg(target_arch = "x86_64")]
    pub const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    pub const AUDIT_ARCH: u32 = 0xc000_00b7;

    pub fn op(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }
}

#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use bpf::{ARCH, AUDIT_ARCH, JEQ_K, JGE_K, LD_W_ABS, NR, RET_K, op};
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    vec![
        op(LD_W_ABS, 0, 0, ARCH),
        op(JEQ_K, 0, 3, AUDIT_ARCH),
        op(LD_W_ABS, 0, 0, NR),
        op(JGE_K, 0, 2, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs the programs on the calling thread. Called between fork and exec: it makes
/// system calls only, and allocates nothing.
pub fn install(programs: &[BpfProgram]) -> std::io::Result<()> {
    for program in programs {
        match seccompiler::apply_filter(program) {
            Ok(()) => {}
            Err(seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
