//! Running the binary: `--root` on a temp state root, bundles from `berth-runtime spec`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::rootfs::Rootfs;

/// The runc-compatible binary with `--root ROOT` and stdin on /dev/null, ready for more arguments.
pub fn rt(root: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_berth-runtime"));
    c.arg("--root").arg(root).stdin(std::process::Stdio::null());
    c
}

/// Runs `c`, asserts success and returns standard output.
pub fn ok(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bundle in `r`'s directory from `berth-runtime spec`, running `args` (in `cwd` if given) without a
/// terminal on a writable root; the runtime's state root is `state/` next to it.
pub fn bundle(r: &Rootfs, args: &[&str], cwd: Option<&str>) -> PathBuf {
    let b = r.dir.path().to_owned();
    let _ = std::fs::remove_file(b.join("config.json"));
    ok(rt(&b.join("state")).args(["spec", "--bundle"]).arg(&b));
    let mut s = Spec::load(b.join("config.json")).unwrap();
    assert_eq!(s.root().as_ref().unwrap().path(), Path::new("rootfs"));
    let p = s.process_mut().as_mut().unwrap();
    p.set_terminal(Some(false));
    p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    if let Some(cwd) = cwd {
        p.set_cwd(cwd.into());
    }
    let mut root = s.root().clone().unwrap();
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    s.save(b.join("config.json")).unwrap();
    b
}
