//! Compiler tests on a small BPF interpreter (no root), kernel tests in forked children, cache tests.

use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

use super::*;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Runs `p` on a seccomp_data {nr, arch, ip = 0, args}, as the kernel would.
fn run(p: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run_counting(p, arch, nr, args).0
}

/// [`run`], also returning how many instructions were executed.
fn run_counting(p: &Program, arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0usize);
    loop {
        let i = &p.filter[pc];
        pc += 1;
        steps += 1;
        match i.code {
            0x06 => return (i.k, steps),
            0x20 => {
                let o = i.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            0x54 => acc &= i.k,
            0x15 | 0x25 | 0x35 => {
                let t = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if t { i.jt } else { i.jf });
            }
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap_or_else(|| panic!("{name} not in the table"))
}

fn x86(p: &Program, name: &str, args: [u64; 6]) -> u32 {
    run(p, bpf::AUDIT_ARCH_X86_64, nr(name), args)
}

#[test]
fn every_built_in_name_is_an_x86_64_syscall() {
    for name in profile::ALLOWED
        .iter()
        .chain(profile::BY_CAPABILITY.iter().flat_map(|(_, c)| c.iter()))
    {
        nr(name);
    }
    let mut seen = std::collections::HashSet::new();
    for (n, nr) in table::X86_64 {
        assert!(seen.insert(*nr), "{n} duplicates number {nr}");
    }
}

#[test]
fn default_profile_semantics() {
    let p = Program::compile(&default_profile()).unwrap();
    assert!(p.len() < bpf::MAX_INSNS);
    let eperm = RET_ERRNO | libc::EPERM as u32;
    assert_eq!(x86(&p, "read", [0; 6]), RET_ALLOW);
    assert_eq!(x86(&p, "getpid", [0; 6]), RET_ALLOW);
    assert_eq!(
        x86(&p, "chroot", [0; 6]),
        RET_ALLOW,
        "CAP_SYS_CHROOT is a default capability"
    );
    for denied in [
        "kexec_load",
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "bpf",
        "io_uring_setup",
        "userfaultfd",
        "reboot",
    ] {
        assert_eq!(x86(&p, denied, [0; 6]), eperm, "{denied}");
    }
    assert_eq!(x86(&p, "clone3", [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(
        x86(
            &p,
            "clone",
            [
                sigchld | libc::CLONE_VM as u64 | libc::CLONE_THREAD as u64,
                0,
                0,
                0,
                0,
                0
            ]
        ),
        RET_ALLOW
    );
    assert_eq!(
        x86(
            &p,
            "clone",
            [sigchld | libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
        ),
        eperm
    );
    assert_eq!(
        x86(
            &p,
            "clone",
            [sigchld | libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0]
        ),
        eperm
    );
    assert_eq!(
        x86(&p, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        x86(&p, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        eperm,
        "READ_IMPLIES_EXEC"
    );
    assert_eq!(
        x86(&p, "socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        x86(&p, "socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
        eperm
    );
    // Other ABIs get the default action.
    assert_eq!(run(&p, 0x4000_0003, 20, [0; 6]), eperm, "i386 getpid");
    assert_eq!(
        run(&p, bpf::AUDIT_ARCH_X86_64, 0x4000_0000 | 39, [0; 6]),
        eperm,
        "x32 getpid"
    );
}

/// What the OCI profile says for `nr` with `args`: the first entry naming it whose conditions hold.
fn reference(p: &LinuxSeccomp, nr: u32, args: [u64; 6]) -> u32 {
    let default = action(p.default_action(), p.default_errno_ret()).unwrap();
    let Some((name, _)) = table::X86_64.iter().find(|(_, n)| *n == nr) else {
        return default;
    };
    for s in p.syscalls().iter().flatten() {
        if !s.names().iter().any(|n| n == name) {
            continue;
        }
        let holds = s.args().iter().flatten().all(|a| {
            let v = args[a.index()];
            match cmp(a.op(), a.value(), a.value_two()) {
                bpf::Cmp::Eq(k) => v == k,
                bpf::Cmp::Ne(k) => v != k,
                bpf::Cmp::Gt(k) => v > k,
                bpf::Cmp::Ge(k) => v >= k,
                bpf::Cmp::Lt(k) => v < k,
                bpf::Cmp::Le(k) => v <= k,
                bpf::Cmp::MaskedEq { mask, value } => v & mask == value,
            }
        });
        if holds {
            return action(s.action(), s.errno_ret()).unwrap();
        }
    }
    default
}

#[test]
fn compiled_programs_agree_with_the_profile_for_every_syscall() {
    let arg_sets: [[u64; 6]; 4] = [
        [0; 6],
        [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
        [0xffff_ffff, 1, 2, 3, 4, 5],
        [libc::AF_VSOCK as u64, u64::MAX, 0, 0, 0, 0],
    ];
    for profile in [
        default_profile(),
        profile_for_capabilities(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"]),
    ] {
        let p = Program::compile(&profile).unwrap();
        for nr in 0..520 {
            for args in arg_sets {
                assert_eq!(
                    run(&p, bpf::AUDIT_ARCH_X86_64, nr, args),
                    reference(&profile, nr, args),
                    "nr {nr} args {args:?}"
                );
            }
        }
    }
}

#[test]
fn default_program_is_compact() {
    let p = Program::compile(&default_profile()).unwrap();
    assert!(p.len() < 250, "{} instructions", p.len());
    // Common syscalls decide within a few instructions.
    for name in ["read", "write", "futex", "epoll_wait", "openat"] {
        let (ret, steps) = run_counting(&p, bpf::AUDIT_ARCH_X86_64, nr(name), [0; 6]);
        assert_eq!(ret, RET_ALLOW);
        assert!(steps <= 20, "{name} took {steps} instructions");
        eprintln!("{name}: {steps} instructions of {}", p.len());
    }
}

#[test]
fn sys_admin_grants_mount_but_never_new_user_namespaces() {
    let p = Program::compile(&profile_for_capabilities(&["SYS_ADMIN"])).unwrap();
    assert_eq!(x86(&p, "mount", [0; 6]), RET_ALLOW);
    assert_eq!(
        x86(&p, "unshare", [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        x86(
            &p,
            "unshare",
            [
                (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64,
                0,
                0,
                0,
                0,
                0
            ]
        ),
        RET_ERRNO | 1
    );
    assert_eq!(
        x86(&p, "clone", [libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        x86(&p, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        RET_ERRNO | 1
    );
    assert_eq!(
        x86(&p, "chroot", [0; 6]),
        RET_ERRNO | 1,
        "no CAP_SYS_CHROOT asked for"
    );
}

fn one_rule(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> Program {
    let mut arg = LinuxSeccompArgBuilder::default()
        .index(2usize)
        .op(op)
        .value(value);
    if let Some(v) = value_two {
        arg = arg.value_two(v);
    }
    let rule = LinuxSyscallBuilder::default()
        .names(vec!["getppid".to_owned()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(99u32)
        .args(vec![arg.build().unwrap()])
        .build()
        .unwrap();
    let profile = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![rule])
        .build()
        .unwrap();
    Program::compile(&profile).unwrap()
}

#[test]
fn operators_compare_all_64_bits() {
    use LinuxSeccompOperator::*;
    let k: u64 = 0x0000_0005_8000_0000;
    let probes = [
        0,
        1,
        k - 1,
        k,
        k + 1,
        k - (1 << 32),
        k + (1 << 32),
        0x8000_0000,
        u64::MAX,
    ];
    type Holds = fn(u64, u64) -> bool;
    let cases: [(LinuxSeccompOperator, Holds); 6] = [
        (ScmpCmpEq, |a, k| a == k),
        (ScmpCmpNe, |a, k| a != k),
        (ScmpCmpGt, |a, k| a > k),
        (ScmpCmpGe, |a, k| a >= k),
        (ScmpCmpLt, |a, k| a < k),
        (ScmpCmpLe, |a, k| a <= k),
    ];
    for (op, want) in cases {
        let p = one_rule(op, k, None);
        for a in probes {
            let hit = x86(&p, "getppid", [0, 0, a, 0, 0, 0]) == RET_ERRNO | 99;
            assert_eq!(hit, want(a, k), "{op:?} arg {a:#x} vs {k:#x}");
        }
    }
    let mask = 0xff00_0000_0000_00f0;
    let p = one_rule(ScmpCmpMaskedEq, mask, Some(0x1200_0000_0000_0030));
    for a in probes.into_iter().chain([
        0x1234_5678_9abc_de3f,
        0x1234_5678_9abc_de4f,
        0x1300_0000_0000_0030,
    ]) {
        let hit = x86(&p, "getppid", [0, 0, a, 0, 0, 0]) == RET_ERRNO | 99;
        assert_eq!(hit, a & mask == 0x1200_0000_0000_0030, "masked {a:#x}");
    }
    // Other syscalls and other argument slots are untouched.
    assert_eq!(
        x86(&one_rule(ScmpCmpEq, 0, None), "getpid", [0; 6]),
        RET_ALLOW
    );
}

#[test]
fn unsupported_features_are_refused() {
    let notify = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActNotify)
        .build()
        .unwrap();
    assert!(matches!(
        Program::compile(&notify),
        Err(SeccompError::UnsupportedAction { .. })
    ));
    let arm = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .architectures(vec![Arch::ScmpArchAarch64])
        .build()
        .unwrap();
    assert!(matches!(
        Program::compile(&arm),
        Err(SeccompError::NoX86_64 { .. })
    ));
    let bad_arg = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .syscalls(vec![
            LinuxSyscallBuilder::default()
                .names(vec!["read".to_owned()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(6usize)
                        .build()
                        .unwrap(),
                ])
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    assert!(matches!(
        Program::compile(&bad_arg),
        Err(SeccompError::ArgIndex { index: 6, .. })
    ));
}

/// Forks; the child sets no_new_privs, installs `p`, runs `check` and exits with its result
/// (0 = all good). The child only makes raw syscalls: no allocation after fork.
fn in_child(p: &Program, check: fn() -> i32) -> i32 {
    // SAFETY: the child calls only async-signal-safe functions (prctl, seccomp, raw syscalls,
    // _exit) before exiting, so forking a multi-threaded test process is sound.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(100);
            }
            if p.install().is_err() {
                libc::_exit(101);
            }
            libc::_exit(check());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

fn errno_of(r: libc::c_long) -> i32 {
    // SAFETY: reading the calling thread's errno.
    if r == -1 {
        unsafe { *libc::__errno_location() }
    } else {
        0
    }
}

#[test]
fn installed_default_profile_denies_in_the_kernel() {
    let p = Program::compile(&default_profile()).unwrap();
    let code = in_child(&p, || {
        // SAFETY: raw syscalls with scalar arguments; none that would succeed changes this process
        // in a way that matters (it exits right after).
        unsafe {
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 1;
            }
            if errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)) != libc::EPERM {
                return 2;
            }
            if errno_of(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)) != libc::EPERM {
                return 3;
            }
            if errno_of(libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0)) != libc::EPERM {
                return 4;
            }
            if errno_of(libc::syscall(libc::SYS_clone3, 0, 0)) != libc::ENOSYS {
                return 5;
            }
            let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
            if errno_of(libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)) != libc::EPERM {
                return 6;
            }
            let fd = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return 7;
            }
            if errno_of(libc::syscall(
                libc::SYS_socket,
                libc::AF_VSOCK,
                libc::SOCK_STREAM,
                0,
            )) != libc::EPERM
            {
                return 8;
            }
            0
        }
    });
    assert_eq!(code, 0, "check {code} failed in the filtered child");
}

#[test]
fn cache_hit_returns_identical_program() {
    let dir = tempfile::tempdir().unwrap();
    let profile = default_profile();
    let first = Program::cached(dir.path(), &profile).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "one file, no temp left: {files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let second = Program::cached(dir.path(), &profile).unwrap();
    assert_eq!(first, second);
    assert_eq!(first, Program::compile(&profile).unwrap());
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
    assert_eq!(cache::encode(&second), bytes);
}

#[test]
fn corrupt_cache_file_is_recompiled_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let good = Program::default_cached(dir.path()).unwrap();
    assert_eq!(good, Program::compile(&default_profile()).unwrap());
    let path = dir.path().join(format!("{}.bpf", cache::default_key()));
    let bytes = std::fs::read(&path).unwrap();
    // A flipped bit in an instruction (turning a jump or an action), then a truncated file.
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x01;
    for damaged in [flipped, bytes[..bytes.len() - 8].to_vec(), Vec::new()] {
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(Program::default_cached(dir.path()).unwrap(), good);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "rewritten");
    }
}

#[test]
fn cache_keys_differ_by_profile() {
    let a = cache::profile_key(&default_profile()).unwrap();
    let b = cache::profile_key(&profile_for_capabilities(&["CAP_SYS_ADMIN"])).unwrap();
    assert_ne!(a, b);
    assert_eq!(a, cache::profile_key(&default_profile()).unwrap());
    assert_eq!(a.len(), 64);
}

#[test]
fn large_profiles_still_compile_and_agree() {
    use LinuxSeccompOperator::*;
    // 80 syscalls with three argument conditions each: too large for the tree's 8-bit jumps.
    let rules: Vec<_> = table::X86_64[..80]
        .iter()
        .map(|(name, nr)| {
            let arg = |i: usize, op, v| {
                LinuxSeccompArgBuilder::default()
                    .index(i)
                    .op(op)
                    .value(v)
                    .build()
                    .unwrap()
            };
            LinuxSyscallBuilder::default()
                .names(vec![(*name).to_owned()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    arg(0, ScmpCmpEq, u64::from(*nr)),
                    arg(1, ScmpCmpNe, 7),
                    arg(2, ScmpCmpGt, 5),
                ])
                .build()
                .unwrap()
        })
        .collect();
    let profile = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .syscalls(rules)
        .build()
        .unwrap();
    let p = Program::compile(&profile).unwrap();
    assert!(
        p.len() > 255 * 2,
        "large enough to need the fallback: {}",
        p.len()
    );
    for nr in 0..100u32 {
        for args in [
            [u64::from(nr), 0, 6, 0, 0, 0],
            [u64::from(nr), 7, 6, 0, 0, 0],
            [u64::from(nr), 0, 5, 0, 0, 0],
            [1, 0, 9, 0, 0, 0],
        ] {
            assert_eq!(
                run(&p, bpf::AUDIT_ARCH_X86_64, nr, args),
                reference(&profile, nr, args),
                "nr {nr} {args:?}"
            );
        }
    }
}

/// Docker's `includes: {caps: [...]}` rules for x86_64 (its i386-only names left out: umount,
/// stime, clock_settime64), and the calls open to everyone that Docker also lists there.
const DOCKER_CAP_RULES: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "clock_settime", "clock_adjtime"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

#[test]
fn each_added_capability_opens_the_syscalls_docker_opens_for_it() {
    let none = Program::compile(&profile_for_capabilities(&[])).unwrap();
    for (cap, calls) in DOCKER_CAP_RULES {
        let short = cap.strip_prefix("CAP_").unwrap();
        let p = Program::compile(&profile_for_capabilities(&[short])).unwrap();
        for call in *calls {
            assert_eq!(x86(&p, call, [0; 6]), RET_ALLOW, "{call} with {cap}");
        }
        // Only what the capability needs: the other capabilities' calls stay shut.
        let own = calls_of(cap);
        for (_, others) in profile::BY_CAPABILITY {
            for call in others.iter().filter(|c| !own.contains(c)) {
                assert_eq!(x86(&p, call, [0; 6]), RET_ERRNO | 1, "{call} with {cap}");
            }
        }
    }
    // Without any capability, every capability-gated call is refused.
    for (_, calls) in profile::BY_CAPABILITY {
        for call in *calls {
            assert_eq!(
                x86(&none, call, [0; 6]),
                RET_ERRNO | 1,
                "{call} with no caps"
            );
        }
    }
}

/// The calls berth's table grants for `cap`.
fn calls_of(cap: &str) -> Vec<&'static str> {
    profile::BY_CAPABILITY
        .iter()
        .filter(|(c, _)| *c == cap)
        .flat_map(|(_, l)| l.iter().copied())
        .collect()
}

#[test]
fn capability_sets_that_open_the_same_calls_share_the_default_program() {
    let dir = tempfile::tempdir().unwrap();
    let mut defaults: Vec<&str> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.strip_prefix("CAP_").unwrap())
        .collect();
    defaults.reverse();
    let default = Program::default_cached(dir.path()).unwrap();
    assert_eq!(
        Program::for_capabilities_cached(dir.path(), &defaults).unwrap(),
        default
    );
    defaults.push("NET_ADMIN");
    assert_eq!(
        Program::for_capabilities_cached(dir.path(), &defaults).unwrap(),
        default
    );
    let count = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(count(), 1, "one cached program so far");
    // An added capability that opens syscalls: its own profile, its own cache file.
    for (i, extra) in ["SYS_ADMIN", "DAC_READ_SEARCH"].into_iter().enumerate() {
        let mut caps = defaults.clone();
        caps.push(extra);
        let p = Program::for_capabilities_cached(dir.path(), &caps).unwrap();
        assert_ne!(p, default, "{extra}");
        assert_eq!(
            p,
            Program::compile(&profile_for_capabilities(&caps)).unwrap()
        );
        assert_eq!(count(), 2 + i, "{extra} gets a cache file of its own");
    }
    // Dropping a capability closes its calls (Docker: chroot only with CAP_SYS_CHROOT).
    let dropped: Vec<&str> = defaults
        .iter()
        .copied()
        .filter(|c| *c != "SYS_CHROOT")
        .collect();
    let p = Program::for_capabilities_cached(dir.path(), &dropped).unwrap();
    assert_eq!(x86(&p, "chroot", [0; 6]), RET_ERRNO | 1);
    assert_eq!(x86(&default, "chroot", [0; 6]), RET_ALLOW);
    assert_eq!(
        seccomp_capabilities(&["sys_admin", "CAP_SYS_ADMIN", "NET_ADMIN", "SYSLOG"]),
        vec!["CAP_SYS_ADMIN", "CAP_SYSLOG"]
    );
}

#[test]
fn cache_keys_differ_by_capability_set() {
    let keys: Vec<String> = [
        &["CAP_SYS_ADMIN"][..],
        &["CAP_DAC_READ_SEARCH"],
        &["CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"],
        &["CAP_SYS_PTRACE"],
        &[],
    ]
    .iter()
    .map(|c| cache::profile_key(&profile_for_capabilities(c)).unwrap())
    .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
}
