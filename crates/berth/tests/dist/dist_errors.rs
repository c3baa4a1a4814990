//! Pull and push failures through the CLI: each exits 125 with one clear `berth: …` line and leaves
//! the store as it was (nothing half-written visible): an unreachable registry, a missing tag, a
//! corrupt or truncated layer in the registry's storage. And four concurrent pulls of one image
//! into one root all succeed.

use crate::dist_util::{Env, busybox_image, listing_diff};
use crate::registry_util::{Registry, Store, free_port};

/// A root that already holds an image, so "unchanged" means something.
fn env_with_an_image() -> Env {
    let env = Env::new();
    env.t.busybox_image("already/here:1");
    env
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn unreachable_registry_fails_cleanly() {
    let env = env_with_an_image();
    let port = free_port(); // nothing listens there
    let name = format!("127.0.0.1:{port}/team/app:1");
    let before = env.listing();
    let msg = env.fails(&["pull", &name]);
    assert!(
        msg.contains("unreachable") && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    assert_eq!(listing_diff(&before, &env.listing()), "");

    env.ok(&["tag", "already/here:1", &name]);
    let before = env.listing();
    let msg = env.fails(&["push", &name]);
    assert!(msg.contains("unreachable"), "{msg}");
    assert_eq!(listing_diff(&before, &env.listing()), "");

    // `run` of it: the pull's failure is the run's.
    let missing = format!("127.0.0.1:{port}/team/missing:1");
    let msg = env.fails(&["run", "--rm", &missing, "true"]);
    assert!(msg.contains("unreachable"), "{msg}");
    assert!(env.t.container_ids().is_empty());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn missing_tag_and_repository_fail_cleanly() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/tags:1", "tags");
    let name = format!("{}/team/app:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &name);
    pusher.ok(&["push", "-q", &name]);

    let env = env_with_an_image();
    let before = env.listing();
    for missing in [
        format!("{}/team/app:nope", reg.addr),
        format!("{}/team/nothing:1", reg.addr),
        format!("{}/team/app@sha256:{}", reg.addr, "0".repeat(64)),
    ] {
        let msg = env.fails(&["pull", &missing]);
        assert!(msg.contains("not found"), "{missing}: {msg}");
        assert_eq!(listing_diff(&before, &env.listing()), "", "{missing}");
    }
}

/// Overwrites 64 bytes in the middle of `path` with their complement; returns the original.
fn corrupt(path: &std::path::Path) -> Vec<u8> {
    let orig = std::fs::read(path).unwrap();
    let mut bad = orig.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b = !*b;
    }
    std::fs::write(path, &bad).unwrap();
    orig
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn corrupt_and_truncated_layers_are_refused() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/corrupt:1", "corrupt");
    let name = format!("{}/team/app:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &name);
    pusher.ok(&["push", "-q", &name]);
    // The busybox layer (gzip), as the registry stores it.
    let layer = &img.layers[0];
    let blob = store
        .dir()
        .unwrap()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    assert!(
        blob.exists(),
        "{} not in the registry's storage",
        blob.display()
    );

    let env = env_with_an_image();
    let before = env.listing();
    let orig = corrupt(&blob);
    let msg = env.fails(&["pull", &name]);
    assert!(
        msg.contains(&layer[..19]) || msg.contains("digest") || msg.contains("corrupt"),
        "the message names the bad layer or its digest: {msg}"
    );
    env.assert_blobs_verified();
    assert!(
        !env.root()
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .exists(),
        "the corrupt layer is in the store"
    );
    let after = env.listing();
    // A layer that verified may stay (it is whole); nothing else may change, and no image appears.
    let diff = listing_diff(&before, &after);
    for l in diff.lines() {
        assert!(
            l.trim_start().starts_with("added   blobs/")
                || l.trim_start().starts_with("added   snapshots/")
                || l.trim_start().starts_with("changed blobs")
                || l.trim_start().starts_with("changed snapshots"),
            "unexpected change after a refused pull: {l}\n{diff}"
        );
        assert!(!l.contains("<image"), "{diff}");
    }
    assert_eq!(env.images().len(), 1, "{:?}", env.images());

    // Truncated: the registry serves fewer bytes than the manifest says.
    std::fs::write(&blob, &orig[..orig.len() / 2]).unwrap();
    let msg = env.fails(&["pull", &name]);
    assert!(!msg.is_empty());
    env.assert_blobs_verified();
    assert_eq!(env.images().len(), 1, "{:?}", env.images());

    // Repaired: the same root pulls it and runs it.
    std::fs::write(&blob, &orig).unwrap();
    env.ok(&["pull", &name]);
    assert_eq!(
        env.ok(&["run", "--rm", &name, "cat", "/hello.txt"]).stdout,
        "hello from corrupt\n"
    );
    env.t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn four_concurrent_pulls_of_one_image_all_succeed() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/conc:1", "concurrent");
    let name = format!("{}/team/app:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &name);
    pusher.ok(&["push", "-q", &name]);

    let env = Env::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut c = env.cmd();
            c.args(["pull", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn berth pull")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent pull failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().last(), Some(name.as_str()), "{text}");
    }
    env.assert_blobs_verified();
    assert_eq!(env.images().len(), 1, "{:?}", env.images());
    assert_eq!(
        env.ok(&["run", "--rm", &name, "cat", "/hello.txt"]).stdout,
        "hello from concurrent\n"
    );
    env.t.assert_clean();
}
