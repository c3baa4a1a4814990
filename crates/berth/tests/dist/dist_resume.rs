//! A pull killed with SIGKILL in the middle of a big layer resumes from the bytes already on disk:
//! the layer comes through a throttling proxy, the pull is killed once its download in
//! `ROOT/ingest/` holds more than 1 MiB, and the next pull (proxy no longer slow) reports a
//! `resumed` event with the offset, moves fewer bytes than the layer holds, and the image runs.

use crate::dist_util::{Env, LayerSpec, Throttle, events, make_image};
use crate::registry_util::{Registry, Store, random_bytes};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BIG: usize = 64 << 20;

/// The largest file under `dir` (recursively).
fn largest_file(dir: &Path) -> u64 {
    let mut best = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            best = best.max(largest_file(&e.path()));
        } else {
            best = best.max(m.len());
        }
    }
    best
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn killed_pull_resumes_from_the_bytes_on_disk() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let big = random_bytes(BIG);
    let img = make_image(
        "localhost/test/big:1",
        &[LayerSpec::Busybox, LayerSpec::Files(&[("big.bin", &big)])],
    );
    drop(big);
    let direct = format!("{}/big/img:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &direct);
    pusher.ok(&["push", "-q", &direct]);

    // 4 MiB/s per connection: the 64 MiB layer takes 16 s, the test kills it after about 1 MiB.
    let proxy = Throttle::start(&reg.addr, 4 << 20);
    let name = format!("{}/big/img:1", proxy.addr);
    let env = Env::new();
    let mut c = env.cmd();
    c.args(["pull", "--progress", "json", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("spawn berth pull");
    let ingest = env.root().join("ingest");
    let start = Instant::now();
    loop {
        if largest_file(&ingest) > 1 << 20 {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "the pull ended ({st}) before 1 MiB of the big layer was in {}",
                ingest.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no download over 1 MiB appeared in {}",
            ingest.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let kept = largest_file(&ingest);
    assert!(kept > 1 << 20 && kept < BIG as u64, "kept {kept} bytes");
    // Nothing of the interrupted pull is visible.
    assert!(env.images().is_empty());
    env.assert_blobs_verified();

    // Again, at full speed, through the same registry name.
    proxy.slow.store(false, Ordering::SeqCst);
    let sent_before = proxy.sent.load(Ordering::SeqCst);
    let out = env.ok(&["pull", "--progress", "json", &name]).stdout;
    let sent = proxy.sent.load(Ordering::SeqCst) - sent_before;
    let ev = events(&out);
    let big_layer = &img.layers[1];
    let resumed: Vec<u64> = ev
        .iter()
        .filter(|e| e["digest"] == big_layer.as_str() && e["status"] == "resumed")
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        resumed.len(),
        1,
        "one resumed event for the big layer: {out}"
    );
    assert!(resumed[0] > 0, "{out}");
    assert!(
        sent < BIG as u64 + (4 << 20) - resumed[0] / 2,
        "the second pull moved {sent} bytes; the first had kept {} of the layer",
        resumed[0]
    );
    assert_eq!(ev.last().unwrap()["event"], "done", "{out}");
    env.assert_blobs_verified();
    let run = env.ok(&["run", "--rm", &name, "wc", "-c", "/big.bin"]);
    assert_eq!(run.stdout.split_whitespace().next(), Some("67108864"));
    env.t.assert_clean();
}
