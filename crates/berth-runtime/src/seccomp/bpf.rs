//! OCI seccomp rules → classic BPF for x86_64, with first-match-wins semantics per syscall.
//!
//! seccompiler's `SeccompFilter` has one match action per filter, which cannot express OCI profiles
//! (ALLOW for most rules, ERRNO(ENOSYS) for clone3, ...). So the program is laid out here, in
//! seccompiler's `sock_filter` format with its opcodes and action encodings:
//!
//! ```text
//!   check arch == x86_64, else default; nr >= X32 bit → default
//!   for each syscall: nr == N ? [rule: args ok ? ret action : next rule]... ret default : next syscall
//!   ret default
//! ```

use seccompiler::sock_filter;

use super::SeccompError;

// Opcodes (linux/filter.h): class | size/op | source; BPF_LD, BPF_W and BPF_K are all 0.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_RET_K: u16 = 0x06;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
/// AUDIT_ARCH_X86_64.
pub(super) const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on a filter's length.
pub(super) const MAX_INSNS: usize = 4096;

/// An argument comparison, on the full 64-bit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq(u64),
    Ne(u64),
    Gt(u64),
    Ge(u64),
    Lt(u64),
    Le(u64),
    /// (arg & mask) == value.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// One rule: all conditions hold → return `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub conds: Vec<(u8, Cmp)>,
    pub action: u32,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

enum Ins {
    Stmt(u16, u32),
    Jump(u16, u32, Target, Target),
    Label(usize),
}

#[derive(Default)]
struct Asm {
    code: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push(Ins::Stmt(code, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.code.push(Ins::Jump(code, k, jt, jf));
    }
    fn place(&mut self, l: usize) {
        self.code.push(Ins::Label(l));
    }

    fn finish(self) -> Result<Vec<sock_filter>, SeccompError> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for i in &self.code {
            match i {
                Ins::Label(l) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        if pc > MAX_INSNS {
            return Err(SeccompError::TooLong { insns: pc });
        }
        let mut out = Vec::with_capacity(pc);
        for i in &self.code {
            let pc = out.len();
            match *i {
                Ins::Label(_) => {}
                Ins::Stmt(code, k) => out.push(sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Ins::Jump(code, k, jt, jf) => {
                    let off = |t: Target| -> Result<u8, SeccompError> {
                        match t {
                            Target::Next => Ok(0),
                            Target::Label(l) => u8::try_from(at[l] - pc - 1)
                                .map_err(|_| SeccompError::JumpTooFar { at: pc }),
                        }
                    };
                    out.push(sock_filter {
                        code,
                        jt: off(jt)?,
                        jf: off(jf)?,
                        k,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn lo(v: u64) -> u32 {
    v as u32
}
fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

/// Emits the test of one condition: falls through when it holds, jumps to `fail` otherwise.
fn cond(a: &mut Asm, index: u8, cmp: Cmp, fail: usize) {
    use Target::{Label as L, Next as N};
    let off_lo = OFF_ARGS + 8 * u32::from(index);
    let off_hi = off_lo + 4;
    let f = L(fail);
    match cmp {
        Cmp::Eq(v) => {
            a.stmt(BPF_LD_W_ABS, off_hi);
            a.jump(BPF_JEQ_K, hi(v), N, f);
            a.stmt(BPF_LD_W_ABS, off_lo);
            a.jump(BPF_JEQ_K, lo(v), N, f);
        }
        Cmp::MaskedEq { mask, value } => {
            a.stmt(BPF_LD_W_ABS, off_hi);
            a.stmt(BPF_ALU_AND_K, hi(mask));
            a.jump(BPF_JEQ_K, hi(value), N, f);
            a.stmt(BPF_LD_W_ABS, off_lo);
            a.stmt(BPF_ALU_AND_K, lo(mask));
            a.jump(BPF_JEQ_K, lo(value), N, f);
        }
        Cmp::Ne(v) => {
            let ok = a.label();
            a.stmt(BPF_LD_W_ABS, off_hi);
            a.jump(BPF_JEQ_K, hi(v), N, L(ok));
            a.stmt(BPF_LD_W_ABS, off_lo);
            a.jump(BPF_JEQ_K, lo(v), f, N);
            a.place(ok);
        }
        Cmp::Gt(v) | Cmp::Ge(v) => {
            // hi > vhi → ok; hi < vhi → fail; equal → compare the low words.
            let ok = a.label();
            let last = if matches!(cmp, Cmp::Gt(_)) {
                BPF_JGT_K
            } else {
                BPF_JGE_K
            };
            a.stmt(BPF_LD_W_ABS, off_hi);
            a.jump(BPF_JGT_K, hi(v), L(ok), N);
            a.jump(BPF_JEQ_K, hi(v), N, f);
            a.stmt(BPF_LD_W_ABS, off_lo);
            a.jump(last, lo(v), N, f);
            a.place(ok);
        }
        Cmp::Lt(v) | Cmp::Le(v) => {
            // The negation of Ge / Gt.
            let ok = a.label();
            let last = if matches!(cmp, Cmp::Lt(_)) {
                BPF_JGE_K
            } else {
                BPF_JGT_K
            };
            a.stmt(BPF_LD_W_ABS, off_hi);
            a.jump(BPF_JGT_K, hi(v), f, N);
            a.jump(BPF_JEQ_K, hi(v), N, L(ok));
            a.stmt(BPF_LD_W_ABS, off_lo);
            a.jump(last, lo(v), f, N);
            a.place(ok);
        }
    }
}

/// (lo, hi, rules): every syscall number in lo..=hi has exactly `rules`.
type Range<'a> = (u32, u32, &'a [Rule]);

/// Builds the program for `syscalls`, each with its rules in order (first match wins).
///
/// Runs of consecutive syscall numbers with identical rules share one block behind a range check
/// (Docker's allowlist becomes a few dozen ranges instead of ~350 comparisons), and the ranges are
/// searched as a binary tree, so any syscall is decided in a dozen or so instructions. If a huge
/// profile makes a tree jump exceed BPF's 255-instruction reach, the ranges are laid out linearly.
pub(super) fn generate(
    syscalls: &[(u32, Vec<Rule>)],
    default: u32,
) -> Result<Vec<sock_filter>, SeccompError> {
    let mut sorted: Vec<&(u32, Vec<Rule>)> = syscalls.iter().collect();
    sorted.sort_by_key(|(nr, _)| *nr);
    let mut ranges: Vec<Range<'_>> = Vec::new();
    for (nr, rules) in sorted {
        match ranges.last_mut() {
            Some((_, hi, r)) if *hi + 1 == *nr && *r == rules.as_slice() => *hi = *nr,
            _ => ranges.push((*nr, *nr, rules)),
        }
    }
    match layout(&ranges, default, true) {
        Err(SeccompError::JumpTooFar { .. }) => layout(&ranges, default, false),
        r => r,
    }
}

fn layout(
    ranges: &[Range<'_>],
    default: u32,
    tree: bool,
) -> Result<Vec<sock_filter>, SeccompError> {
    use Target::{Label as L, Next as N};
    let mut a = Asm::default();
    let arch_ok = a.label();
    let native = a.label();
    a.stmt(BPF_LD_W_ABS, OFF_ARCH);
    a.jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, L(arch_ok), N);
    a.stmt(BPF_RET_K, default);
    a.place(arch_ok);
    a.stmt(BPF_LD_W_ABS, OFF_NR);
    // x32 calls share the arch value and are told apart by this bit: not allowed here.
    a.jump(BPF_JGE_K, X32_SYSCALL_BIT, N, L(native));
    a.stmt(BPF_RET_K, default);
    a.place(native);
    if tree {
        search(&mut a, ranges, 0, default);
    } else {
        linear(&mut a, ranges, 0, default);
    }
    a.finish()
}

/// Binary search over `ranges`, knowing nr >= `lb` and nr below the next range's start.
fn search(a: &mut Asm, ranges: &[Range<'_>], lb: u32, default: u32) {
    if ranges.len() <= 3 {
        return linear(a, ranges, lb, default);
    }
    let mid = ranges.len() / 2;
    let right = a.label();
    a.jump(BPF_JGE_K, ranges[mid].0, Target::Label(right), Target::Next);
    search(a, &ranges[..mid], lb, default);
    a.place(right);
    search(a, &ranges[mid..], ranges[mid].0, default);
}

/// Checks `ranges` one after the other, knowing nr >= `lb`; ends with `ret default`.
fn linear(a: &mut Asm, ranges: &[Range<'_>], mut lb: u32, default: u32) {
    use Target::{Label as L, Next as N};
    for &(lo, hi, rules) in ranges {
        let next_range = a.label();
        a.jump(BPF_JGT_K, hi, L(next_range), N);
        if lo > lb {
            let block = a.label();
            a.jump(BPF_JGE_K, lo, L(block), N);
            a.stmt(BPF_RET_K, default);
            a.place(block);
        }
        let mut falls_through = true;
        for r in rules {
            let next_rule = a.label();
            for (i, c) in &r.conds {
                cond(a, *i, *c, next_rule);
            }
            a.stmt(BPF_RET_K, r.action);
            a.place(next_rule);
            falls_through = !r.conds.is_empty();
            if !falls_through {
                break; // later rules for these numbers can never match
            }
        }
        if falls_through {
            a.stmt(BPF_RET_K, default);
        }
        a.place(next_range);
        lb = hi + 1;
    }
    a.stmt(BPF_RET_K, default);
}
