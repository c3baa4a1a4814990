//! cgroup v2 device rules. v2 has no devices.allow file: access is decided by an eBPF program of
//! type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. [`program`] turns OCI rules into one
//! (pure, tested on an interpreter); [`attach`] loads it with bpf(2) and attaches it.
//!
//! Semantics match v1's devices.allow/deny sequence: the last rule that matches a request decides;
//! nothing matching means deny. An allow rule matches when the requested access is within its
//! access string, a deny rule when they overlap.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    /// Jump or memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// BPF_DEVCG_DEV_BLOCK / _CHAR.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// BPF_DEVCG_ACC_MKNOD / _READ / _WRITE.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(access: Option<&str>) -> i32 {
    let a = access.unwrap_or("");
    if a.is_empty() {
        return ACC_ALL;
    }
    a.chars()
        .map(|c| match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        })
        .fold(0, |x, y| x | y)
}

/// The device program for `rules` (OCI order: later rules override earlier ones).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    // Registers: r1 = ctx {access_type, major, minor}; r3 = type, r4 = access, r5 = major, r6 = minor.
    let mut out = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(MOV_X, 3, 2, 0, 0),
        ins(AND_K, 3, 0, 0, 0xffff),
        ins(MOV_X, 4, 2, 0, 0),
        ins(RSH_K, 4, 0, 0, 16),
        ins(LDX_W, 5, 1, 4, 0),
        ins(LDX_W, 6, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let typ = match r.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::A) | None => None,
            // FIFOs are not devices: the kernel never asks about them.
            Some(LinuxDeviceType::P) => continue,
        };
        // Entries marked `true` jump to the next rule; their offsets are set below.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        let skip = |code, reg, imm| (ins(code, reg, 0, 0, imm), true);
        if let Some(t) = typ {
            block.push(skip(JNE_K, 3, t));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            block.push(skip(JNE_K, 5, m as i32));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            block.push(skip(JNE_K, 6, m as i32));
        }
        let acc = access_bits(r.access().as_deref());
        if acc != ACC_ALL {
            block.push((ins(MOV_X, 7, 4, 0, 0), false));
            if r.allow() {
                block.push((ins(AND_K, 7, 0, 0, !acc & ACC_ALL), false));
                block.push(skip(JNE_K, 7, 0));
            } else {
                block.push((ins(AND_K, 7, 0, 0, acc), false));
                block.push(skip(JEQ_K, 7, 0));
            }
        }
        block.push((ins(MOV_K, 0, 0, 0, i32::from(r.allow())), false));
        block.push((ins(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        let unconditional = !block.iter().any(|(_, jumps)| *jumps);
        for (i, (mut insn, jumps)) in block.into_iter().enumerate() {
            if jumps {
                insn.off = (len - i - 1) as i16;
            }
            out.push(insn);
        }
        if unconditional {
            // Earlier rules can never be reached, and the verifier rejects unreachable code.
            return out;
        }
    }
    out.push(ins(MOV_K, 0, 0, 0, 0));
    out.push(ins(EXIT, 0, 0, 0, 0));
    out
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-filled buffer large enough for the union bpf_attr members these
    // commands read; the pointers stored inside it refer to memory alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(prog: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let bytes: Vec<u8> = prog
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = i.regs;
            b[2..4].copy_from_slice(&i.off.to_ne_bytes());
            b[4..8].copy_from_slice(&i.imm.to_ne_bytes());
            b
        })
        .collect();
    let license = b"Apache-2.0\0";
    let mut attr = [0u8; 128];
    // union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size,
    // log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex, expected_attach_type.
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 4, prog.len() as u32);
    put_u64(&mut attr, 8, bytes.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    if let Some(log) = log {
        put_u32(&mut attr, 24, 1);
        put_u32(&mut attr, 28, log.len() as u32);
        put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    }
    attr[48..54].copy_from_slice(b"berth\0");
    put_u32(&mut attr, 68, BPF_CGROUP_DEVICE);
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads `prog` and attaches it to the cgroup directory `dir`, replacing a program attached before.
pub fn attach(dir: &Path, prog: &[Insn]) -> Result<(), CgroupError> {
    let err = |action, source, log: String| CgroupError::DeviceFilter {
        dir: dir.to_owned(),
        action,
        source,
        log,
    };
    let fd = match load(prog, None) {
        Ok(fd) => fd,
        Err(e) => {
            // Load again with the verifier's log, for an error a person can act on.
            let mut log = vec![0u8; 16 * 1024];
            let _ = load(prog, Some(&mut log));
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            return Err(err(
                "loading the device program for",
                e,
                String::from_utf8_lossy(&log[..end]).into_owned(),
            ));
        }
    };
    let cg = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err("opening", e.into(), String::new()))?;
    let mut attr = [0u8; 128];
    // BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags (0: single program).
    put_u32(&mut attr, 0, cg.as_raw_fd() as u32);
    put_u32(&mut attr, 4, fd.as_raw_fd() as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| err("attaching the device program to", e, String::new()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs the program on one request, as the kernel would.
    fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> bool {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                MOV_X => r[dst] = r[src],
                MOV_K => r[dst] = i.imm as u64,
                AND_K => r[dst] &= i.imm as u64,
                RSH_K => r[dst] >>= i.imm,
                JEQ_K | JNE_K => {
                    if (r[dst] == i.imm as u64) == (i.code == JEQ_K) {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0] == 1,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn docker_like_rules() {
        use LinuxDeviceType::{A, B, C};
        let rules = [
            rule(false, A, None, None, "rwm"),
            rule(true, C, None, None, "m"),
            rule(true, B, None, None, "m"),
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(true, C, Some(136), None, "rwm"),
            rule(true, C, Some(1), Some(9), "rw"),
        ];
        let p = program(&rules);
        assert!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            "/dev/null rw"
        );
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 4, 1), "mknod any char");
        assert!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), "mknod any block");
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 0), "read a disk");
        assert!(!run(&p, DEV_CHAR, ACC_WRITE, 4, 1), "write a tty");
        assert!(run(&p, DEV_CHAR, ACC_WRITE, 136, 7), "pts");
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 9), "urandom read");
        assert!(
            !run(&p, DEV_CHAR, ACC_READ | ACC_MKNOD, 1, 9),
            "urandom rm: m not granted"
        );
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 5), "/dev/zero not listed");
    }

    #[test]
    fn later_deny_overrides_earlier_allow() {
        use LinuxDeviceType::C;
        let p = program(&[
            rule(true, C, Some(1), None, "rwm"),
            rule(false, C, Some(1), Some(5), "w"),
        ]);
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 5));
        assert!(!run(&p, DEV_CHAR, ACC_WRITE, 1, 5));
        assert!(!run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 5));
        assert!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(!run(&p, DEV_CHAR, ACC_READ, 2, 0), "nothing matches: deny");
    }

    #[test]
    fn rules_before_a_catch_all_are_dropped() {
        use LinuxDeviceType::{A, C};
        let p = program(&[
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(true, A, None, None, "rwm"),
        ]);
        assert_eq!(p.len(), 7 + 2, "prologue, then allow-all");
        assert!(run(&p, DEV_BLOCK, ACC_READ, 8, 0));
    }

    #[test]
    fn default_rules_keep_the_host_console_closed_in_v1_and_v2() {
        let rules = crate::defaults::device_rules();
        let p = program(&rules);
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 5, 1), "mknod stays allowed");
        assert!(!run(&p, DEV_CHAR, ACC_READ, 5, 1), "host console read");
        assert!(!run(&p, DEV_CHAR, ACC_WRITE, 5, 1), "host console write");
        assert!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 136, 3), "pty slave");
        assert!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 5, 0), "/dev/tty");
        assert!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 5, 2), "/dev/ptmx");
        let v1: Vec<String> = rules.iter().map(super::super::plan::device_rule).collect();
        assert!(!v1.iter().any(|l| l.starts_with("c 5:1 ")), "{v1:?}");
        assert!(v1.contains(&"c 136:* rwm".to_owned()), "{v1:?}");
    }

    #[test]
    fn no_rules_deny_everything() {
        let p = program(&[]);
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
    }
}
