//! A command killed in the middle of a write leaves at most a temporary, and the next command that owns
//! it (under the lock that guards it) removes it: each test SIGKILLs a real `berth` the moment its
//! temporary appears (inotify), checks the temporary is there, runs the owner, and checks it is gone
//! and the state the killed command started from is intact.

use crate::common::{TestRoot, ok};
use rustix::fs::inotify;
use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd`, and kills it with SIGKILL as soon as a file or directory whose name starts with
/// `prefix` is created in `dir`. Returns that entry's name if the kill landed while it still existed
/// (the command may win the race and rename it first: then `None`, and the caller tries again).
fn kill_when_created(mut cmd: Command, dir: &Path, prefix: &str) -> Option<String> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify_init");
    inotify::add_watch(&fd, dir, inotify::WatchFlags::CREATE).expect("inotify_add_watch");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth");
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut hit = None;
    'watch: while Instant::now() < deadline {
        let mut r = inotify::Reader::new(&fd, &mut buf);
        loop {
            match r.next() {
                Ok(ev) => {
                    let name = ev.file_name().map(|n| n.to_string_lossy().into_owned());
                    if let Some(n) = name.filter(|n| n.starts_with(prefix)) {
                        child.kill().expect("SIGKILL berth");
                        hit = Some(n);
                        break 'watch;
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("read inotify: {e}"),
            }
        }
        if child.try_wait().expect("wait berth").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let status = child.wait().expect("wait berth");
    let name = hit?;
    (status.signal() == Some(libc_sigkill()) && dir.join(&name).exists()).then_some(name)
}

fn libc_sigkill() -> i32 {
    rustix::process::Signal::KILL.as_raw()
}

/// Tries up to 40 times to kill `make()`'s command while its temporary exists.
fn leave_a_temporary(make: impl Fn() -> Command, dir: &Path, prefix: &str) -> String {
    for _ in 0..40 {
        if let Some(n) = kill_when_created(make(), dir, prefix) {
            return n;
        }
    }
    panic!("never caught a {prefix}* in {} in 40 tries", dir.display());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_killed_tag_leaves_an_index_temporary_that_the_next_tag_removes() {
    let t = TestRoot::new();
    let id = t.busybox_image("bb");
    let n = leave_a_temporary(
        || {
            let mut c = t.berth_std();
            c.args(["tag", "bb", "bb:killed"]);
            c
        },
        t.root(),
        ".index.json.tmp-",
    );
    assert!(t.root().join(&n).exists());
    ok(&t, &["tag", "bb", "bb:next"]);
    assert!(
        !t.root().join(&n).exists(),
        "{n} is still there after the next tag"
    );
    let images = ok(
        &t,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    assert!(
        images.contains("bb:latest") && images.contains("bb:next"),
        "{images}"
    );
    let short = id.trim_start_matches("sha256:");
    assert!(images.contains(&short[..12]), "{images}");
    // The store still works for everything else too.
    ok(&t, &["rmi", "bb:next"]);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_killed_save_leaves_a_temporary_that_the_next_save_of_that_file_removes() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("bb.tar");
    let n = leave_a_temporary(
        || {
            let mut c = t.berth_std();
            c.args(["save", "-o"]).arg(&file).arg("bb");
            c
        },
        out.path(),
        ".bb.tar.berth-save-",
    );
    assert!(!file.exists(), "a killed save published its file");
    // A save only sweeps what has not been written for a while (it cannot tell a live save's new
    // temporary from a dead one before the writer locks it).
    std::thread::sleep(Duration::from_millis(2100));
    ok(&t, &["save", "-o", file.to_str().unwrap(), "bb"]);
    assert!(
        !out.path().join(&n).exists(),
        "{n} is still there after the next save"
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["bb.tar"]);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_killed_import_leaves_an_ingest_blob_that_prune_removes() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let ingest = t.root().join("ingest");
    assert!(ingest.is_dir(), "the store has an ingest area");
    // A bigger layer than busybox's, so the kill lands mid-write.
    let big = tempfile::tempdir().unwrap();
    let tar = big.path().join("big.tar");
    let data = berth_testkit::random_bytes(32 << 20);
    let files: &[(&str, &[u8])] = &[("big.bin", &data)];
    std::fs::write(&tar, berth_testkit::image::files_tar(files)).unwrap();
    let n = leave_a_temporary(
        || {
            let mut c = t.berth_std();
            c.arg("import").arg(&tar).arg("big");
            c
        },
        &ingest,
        "",
    );
    assert!(ingest.join(&n).exists());
    ok(&t, &["system", "prune", "-f"]);
    assert!(
        !ingest.join(&n).exists(),
        "{n} is still in ingest/ after prune"
    );
    assert!(
        ok(&t, &["images", "-q"]).lines().count() == 1,
        "bb is still there"
    );
    ok(&t, &["import", tar.to_str().unwrap(), "big"]);
    t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_killed_first_open_leaves_an_oci_layout_temporary_that_the_next_open_removes() {
    let t = TestRoot::new();
    let n = leave_a_temporary(
        || {
            // Each try starts from a root that was never opened.
            let _ = std::fs::remove_file(t.root().join("oci-layout"));
            let mut c = t.berth_std();
            c.arg("images");
            c
        },
        t.root(),
        ".oci-layout.tmp-",
    );
    assert!(!t.root().join("oci-layout").exists());
    ok(&t, &["images"]);
    assert!(
        !t.root().join(&n).exists(),
        "{n} is still there after the next open"
    );
    assert!(t.root().join("oci-layout").is_file());
}
