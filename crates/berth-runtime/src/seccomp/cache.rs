//! Compiled programs on disk: `<dir>/<sha256 hex>.bpf`, written atomically, checked on read.
//!
//! File layout: magic "BERTHBPF", format u32, flags u32, count u32, count × 8-byte instructions
//! (little endian), then the SHA-256 of everything before it. A file whose length or checksum is
//! wrong is ignored and rewritten, never trusted.

use std::io::{self, Write as _};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use oci_spec::runtime::LinuxSeccomp;
use seccompiler::sock_filter;
use sha2::{Digest as _, Sha256};

use super::{Program, SeccompError};

const MAGIC: &[u8; 8] = b"BERTHBPF";
const FORMAT: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 4;
const SUM: usize = 32;

/// The cache key of `profile`: its JSON together with what decides how it compiles.
pub(super) fn profile_key(profile: &LinuxSeccomp) -> Result<String, SeccompError> {
    let json = serde_json::to_vec(profile).map_err(SeccompError::Key)?;
    let mut h = Sha256::new();
    h.update(codegen_id().as_bytes());
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

/// Identifies this build's compiler: crate version plus the sources of the code generator.
fn codegen_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut h = Sha256::new();
        for src in [
            include_str!("bpf.rs"),
            include_str!("table.rs"),
            include_str!("mod.rs"),
        ] {
            h.update(src.as_bytes());
        }
        format!(
            "berth-seccomp {} {}\n",
            env!("CARGO_PKG_VERSION"),
            hex::encode(h.finalize())
        )
    })
}

/// The key of the built-in default profile, from the sources that define it (computed once, without
/// building the profile).
pub(super) fn default_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut h = Sha256::new();
        h.update(b"default\n");
        h.update(codegen_id().as_bytes());
        h.update(include_str!("profile.rs").as_bytes());
        hex::encode(h.finalize())
    })
}

/// Reads `dir/<key>.bpf`, or compiles with `compile` and stores the result.
pub(super) fn get_or_compile(
    dir: &Path,
    key: &str,
    compile: impl FnOnce() -> Result<Program, SeccompError>,
) -> Result<Program, SeccompError> {
    let path = dir.join(format!("{key}.bpf"));
    match std::fs::read(&path) {
        Ok(bytes) => {
            if let Some(p) = decode(&bytes) {
                return Ok(p);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SeccompError::Cache {
                action: "reading",
                path,
                source,
            });
        }
    }
    let program = compile()?;
    store(dir, &path, &encode(&program))?;
    Ok(program)
}

pub(super) fn encode(p: &Program) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 8 * p.filter.len() + SUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&p.flags.to_le_bytes());
    out.extend_from_slice(&(p.filter.len() as u32).to_le_bytes());
    for i in &p.filter {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

pub(super) fn decode(b: &[u8]) -> Option<Program> {
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    if b.get(..8)? != MAGIC || u32_at(8)? != FORMAT {
        return None;
    }
    let flags = u32_at(12)?;
    let n = u32_at(16)? as usize;
    if n == 0 || n > super::bpf::MAX_INSNS || b.len() != HEADER + 8 * n + SUM {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - SUM);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let filter = body[HEADER..]
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Program { filter, flags })
}

/// Writes `bytes` to `path` atomically: a unique temp name in the same directory, fsync, rename,
/// fsync of the directory.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SeccompError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let err = |action, source| SeccompError::Cache {
        action,
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| err("creating the directory of", e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}.bpf",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::File::create_new(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("writing", e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err("syncing the directory of", e))
}
