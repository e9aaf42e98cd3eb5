use super::*;

fn action_for(layers: &[Layer], nr: i64) -> Vec<SeccompAction> {
    layers.iter().filter(|l| l.rules.contains_key(&nr)).map(|l| l.action.clone()).collect()
}

#[test]
fn baseline_refuses_escalation_and_leaves_processes_alone() {
    let layers = layers(HardeningLevel::Baseline).unwrap();
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    for nr in [libc::SYS_mount, libc::SYS_ptrace, libc::SYS_finit_module, libc::SYS_unshare, libc::SYS_bpf] {
        assert_eq!(action_for(&layers, nr), std::slice::from_ref(&eperm), "{nr}");
    }
    assert_eq!(action_for(&layers, libc::SYS_clone3), [SeccompAction::Errno(libc::ENOSYS as u32)]);
    // Conditional: clone with namespace flags, socket of refused families or raw types.
    assert_eq!(layers[0].rules[&libc::SYS_clone].len(), CLONE_NEW_FLAGS.len());
    assert_eq!(layers[0].rules[&libc::SYS_socket].len(), REFUSED_FAMILIES.len() + 1);
    for nr in [libc::SYS_execve, libc::SYS_memfd_create, libc::SYS_fork] {
        assert!(action_for(&layers, nr).is_empty(), "{nr}");
    }
}

#[test]
fn strict_adds_process_socket_and_kill_rules() {
    let layers = layers(HardeningLevel::Strict).unwrap();
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    assert_eq!(action_for(&layers, libc::SYS_ptrace), [eperm.clone(), SeccompAction::KillProcess]);
    assert_eq!(action_for(&layers, libc::SYS_execveat), [SeccompAction::KillProcess]);
    assert_eq!(action_for(&layers, libc::SYS_clone3), [SeccompAction::Errno(libc::ENOSYS as u32)]);
    assert_eq!(action_for(&layers, libc::SYS_fork), [eperm]);
    // Conditional: clone also without CLONE_THREAD, socket also for other families.
    assert_eq!(layers[0].rules[&libc::SYS_clone].len(), CLONE_NEW_FLAGS.len() + 1);
    assert_eq!(layers[0].rules[&libc::SYS_socket].len(), REFUSED_FAMILIES.len() + 2);
    assert!(action_for(&layers, libc::SYS_execve).is_empty());
}

#[test]
fn programs_compile_for_both_levels_into_one_filter() {
    for level in [HardeningLevel::Baseline, HardeningLevel::Strict] {
        let programs = programs(level).unwrap();
        assert_eq!(programs.len(), 1, "{level:?}");
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() < MAX_INSTRUCTIONS));
    }
    assert_eq!(proxy_programs().unwrap().len(), 1);
}

#[test]
fn chaining_turns_each_allow_but_the_last_into_a_jump_to_the_next_program() {
    use bpf::{JA, JEQ_K, LD_W_ABS, NR, RET_K, op};
    let allow = || op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW);
    let first =
        vec![op(LD_W_ABS, 0, 0, NR), op(JEQ_K, 0, 1, 7), op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS), allow()];
    let second = vec![op(JEQ_K, 1, 0, 9), allow(), op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | 1)];
    let chained = chain(vec![first.clone(), second.clone()]).unwrap();
    // The first program's allow (its last instruction) jumps 0 ahead: to the second's start.
    assert_eq!(chained[..3], first[..3]);
    assert_eq!(chained[3], op(JA, 0, 0, 0));
    assert_eq!(chained[4..], second[..]);
    let too_long = vec![vec![allow(); MAX_INSTRUCTIONS], vec![allow()]];
    assert!(matches!(chain(too_long), Err(SeccompError::TooLong(n)) if n == MAX_INSTRUCTIONS + 1));
}

/// What a forked child gets from `call`: 0 when it succeeded, else its errno.
fn errno_of(result: libc::c_long) -> u8 {
    if result >= 0 {
        return 0;
    }
    // SAFETY: reads the calling thread's errno.
    #[allow(unsafe_code)]
    let errno = unsafe { *libc::__errno_location() };
    errno as u8
}

fn baseline_errnos(attempts: [fn() -> libc::c_long; 4]) -> [u8; 4] {
    errnos(HardeningLevel::Baseline, attempts)
}

/// Installs the programs of `level` in a forked child, makes each call in `attempts`, and
/// returns the errno each got (0: it succeeded).
#[allow(unsafe_code)]
fn errnos(level: HardeningLevel, attempts: [fn() -> libc::c_long; 4]) -> [u8; 4] {
    let programs = programs(level).unwrap();
    let mut pipe = [0; 2];
    // SAFETY: pipe() fills the two-element array it is given.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: the child makes system calls only (the programs were built before the fork)
    // and leaves with _exit, so nothing of the multi-threaded parent runs in it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut results = [u8::MAX; 4];
        if install(&programs).is_ok() {
            for (result, attempt) in results.iter_mut().zip(attempts) {
                *result = errno_of(attempt());
            }
        }
        // SAFETY: writes the array on this stack to the pipe, then leaves without unwinding.
        unsafe {
            libc::write(pipe[1], results.as_ptr().cast(), results.len());
            libc::_exit(0)
        }
    }
    let mut results = [0u8; 4];
    // SAFETY: reads into the array on this stack; waits for the child forked above.
    unsafe {
        libc::close(pipe[1]);
        assert_eq!(libc::read(pipe[0], results.as_mut_ptr().cast(), results.len()), 4);
        libc::close(pipe[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    results
}

#[test]
#[allow(unsafe_code)]
fn baseline_refuses_namespaces_and_raw_and_netlink_sockets_in_a_real_process() {
    // Each runs in the filtered child; a success leaves a descriptor or a namespace behind in
    // a child that exits at once.
    let attempts: [fn() -> libc::c_long; 4] = [
        // SAFETY: plain system calls with constant arguments.
        || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) },
        || unsafe {
            // SAFETY: a new network namespace child that exits at once; no stack is shared
            // since a null stack makes clone behave like fork.
            let pid = libc::syscall(libc::SYS_clone, libc::CLONE_NEWNET | libc::SIGCHLD, 0, 0, 0, 0);
            if pid == 0 {
                libc::_exit(0)
            }
            pid
        },
        // SAFETY: plain system calls with constant arguments.
        || unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0).into() },
        // SAFETY: plain system calls with constant arguments.
        || unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP).into() },
    ];
    let eperm = libc::EPERM as u8;
    assert_eq!(baseline_errnos(attempts), [eperm; 4], "unshare(NEWUSER), clone(NEWNET), netlink, raw");
}

#[test]
#[allow(unsafe_code)]
fn baseline_leaves_threads_processes_and_ordinary_sockets_alone() {
    let attempts: [fn() -> libc::c_long; 4] = [
        // SAFETY: a plain fork-like clone whose child exits at once.
        || unsafe {
            let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if pid == 0 {
                libc::_exit(0)
            }
            pid
        },
        // SAFETY: plain system calls with constant arguments.
        || unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).into() },
        || unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0).into() },
        || unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).into() },
    ];
    assert_eq!(baseline_errnos(attempts), [0; 4], "clone, tcp, udp6, unix");
}

/// Whether a forked child with `programs` installed dies of SIGSYS at `call`.
#[allow(unsafe_code)]
fn killed_at(programs: &[BpfProgram], call: fn()) -> bool {
    // SAFETY: the child makes system calls only (the programs and arguments were prepared
    // before the fork) and leaves with _exit if the call returns.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            if install(programs).is_err() {
                libc::_exit(2)
            }
            call();
            libc::_exit(3)
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
}

#[test]
#[allow(unsafe_code)]
fn the_proxy_process_dies_at_its_first_execve() {
    let execve = || {
        let path = c"/bin/true";
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: execve with a valid path and null-terminated argument arrays.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    };
    assert!(killed_at(&proxy_programs().unwrap(), execve));
}

#[test]
#[allow(unsafe_code)]
fn strict_in_one_filter_gives_each_layer_its_verdict_in_a_real_process() {
    let attempts: [fn() -> libc::c_long; 4] = [
        // SAFETY: clone3 with a null argument: refused before the kernel reads it.
        || unsafe { libc::syscall(libc::SYS_clone3, 0, 0) },
        // SAFETY: plain system calls with constant arguments.
        || unsafe { libc::syscall(libc::SYS_fork) },
        || unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0).into() },
        || unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).into() },
    ];
    let (enosys, eperm) = (libc::ENOSYS as u8, libc::EPERM as u8);
    assert_eq!(errnos(HardeningLevel::Strict, attempts), [enosys, eperm, eperm, 0], "clone3, fork, netlink, tcp");
}

#[test]
#[allow(unsafe_code)]
fn strict_kills_a_call_that_another_layer_only_refuses() {
    // ptrace is refused (EPERM) by the baseline layer and killed by strict's: as stacked
    // filters, the kill wins, and it must in the chained program too.
    // SAFETY: PTRACE_TRACEME takes no pointer.
    let ptrace = || _ = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    assert!(killed_at(&programs(HardeningLevel::Strict).unwrap(), ptrace));
    assert!(!killed_at(&programs(HardeningLevel::Baseline).unwrap(), ptrace));
}
