//! berth → berth registry → berth, through the real binary: push with Docker's lines, re-push sends
//! nothing, pull into a fresh root and run, `berth tag` then push to a second registry, `run` of a
//! missing image pulls it, `--pull` policies, `--quiet` and the JSON progress stream. On local disk
//! and on S3 (moto).

use crate::dist_util::{Env, busybox_image, events, layer_lines};
use crate::registry_util::{Registry, S3, Store};
use std::sync::Arc;

/// Pushes a two-layer busybox image to a registry on `store` and back, and on to a second
/// registry on `store2`.
fn round_trip(store: Store, store2: Store, label: &str) {
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/app:1", label);
    let name = format!("{}/team/app:1", reg.addr);

    let env = Env::new();
    env.load(&img, &name);
    let out = env.ok(&["push", &name]).stdout;
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/team/app]\n",
            reg.addr
        )),
        "{out}"
    );
    for l in &img.layers {
        let lines = layer_lines(&out, l);
        assert_eq!(lines.first().map(|s| &s[14..]), Some("Preparing"), "{out}");
        assert_eq!(lines.last().map(|s| &s[14..]), Some("Pushed"), "{out}");
    }
    // The config is no layer: Docker does not show it.
    assert!(layer_lines(&out, &img.config).is_empty(), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("1: digest: {} size: ", img.manifest)),
        "the manifest goes up byte for byte, so its digest is the layout's: {out}"
    );

    // Again: the registry has every blob, so no layer data moves.
    let out = env.ok(&["push", &name]).stdout;
    for l in &img.layers {
        assert_eq!(
            layer_lines(&out, l).last().map(|s| &s[14..]),
            Some("Layer already exists"),
            "{out}"
        );
    }
    assert!(!out.contains("Pushed"), "{out}");

    // A fresh root pulls it with Docker's lines and runs it.
    let env2 = Env::new();
    let out = env2.ok(&["pull", &name]).stdout;
    assert!(
        out.starts_with("1: Pulling from team/app\n"),
        "first line names tag and repository: {out}"
    );
    for l in &img.layers {
        let lines = layer_lines(&out, l);
        assert_eq!(
            lines.first().map(|s| &s[14..]),
            Some("Pulling fs layer"),
            "{out}"
        );
        assert_eq!(
            lines.last().map(|s| &s[14..]),
            Some("Pull complete"),
            "{out}"
        );
    }
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    assert_eq!(tail[0], name, "{out}");
    assert_eq!(
        tail[1],
        format!("Status: Downloaded newer image for {name}"),
        "{out}"
    );
    assert_eq!(tail[2], format!("Digest: {}", img.manifest), "{out}");
    let run = env2.ok(&["run", "--rm", &name, "echo", "hi"]);
    assert_eq!(run.stdout, "hi\n");
    let run = env2.ok(&["run", "--rm", &name, "cat", "/hello.txt"]);
    assert_eq!(run.stdout, format!("hello from {label}\n"));
    env2.t.assert_clean();

    // Pulled again: nothing new.
    let out = env2.ok(&["pull", &name]).stdout;
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}\n")),
        "{out}"
    );
    assert!(!out.contains("Pull complete"), "{out}");

    // The same root after rmi pulls it back and runs it.
    env.ok(&["rmi", &name, &img.name]);
    env.ok(&["pull", "-q", &name]);
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "hi"]).stdout, "hi\n");

    // `berth tag` + push to a second registry; a third root pulls it from there.
    let reg2 = Registry::start(&store2, &[]);
    let name2 = format!("{}/other/copy:2", reg2.addr);
    env2.ok(&["tag", &name, &name2]);
    let out = env2.ok(&["push", &name2]).stdout;
    for l in &img.layers {
        assert_eq!(
            layer_lines(&out, l).last().map(|s| &s[14..]),
            Some("Pushed"),
            "{out}"
        );
    }
    let env3 = Env::new();
    env3.ok(&["pull", &name2]);
    assert_eq!(
        env3.ok(&["run", "--rm", &name2, "cat", "/hello.txt"])
            .stdout,
        format!("hello from {label}\n")
    );
    env3.t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn berth_registry_round_trip_on_disk() {
    round_trip(Store::local(), Store::local(), "disk");
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn berth_registry_round_trip_on_s3() {
    let s3 = Arc::new(S3::start());
    round_trip(Store::s3(&s3, "one"), Store::s3(&s3, "two"), "s3");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn run_pulls_a_missing_image_and_follows_pull_policies() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/auto:1", "auto");
    let name = format!("{}/team/auto:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &name);
    pusher.ok(&["push", "-q", &name]);

    let env = Env::new();
    // never: no pull, the engine reports the missing image.
    env.fails(&["run", "--rm", "--pull", "never", &name, "echo", "hi"]);
    assert!(env.images().is_empty());

    // missing (the default): pulled first, progress on stderr, the container alone on stdout.
    let run = env.ok(&["run", "--rm", &name, "cat", "/hello.txt"]);
    assert_eq!(run.stdout, "hello from auto\n");
    assert!(
        run.stderr
            .starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Pull complete"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("Status: Downloaded newer image for {name}")),
        "{}",
        run.stderr
    );

    // Present: no pull, nothing on stderr.
    let run = env.ok(&["run", "--rm", &name, "echo", "hi"]);
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("hi\n", ""));

    // always: pulls (up to date), then runs; `create` does the same.
    let run = env.ok(&["run", "--rm", "--pull", "always", &name, "echo", "hi"]);
    assert_eq!(run.stdout, "hi\n");
    assert!(
        run.stderr
            .contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        run.stderr
    );
    let env2 = Env::new();
    let created = env2.ok(&["create", &name, "true"]);
    assert_eq!(created.stdout.trim().len(), 64, "{}", created.stdout);
    env2.ok(&["rm", created.stdout.trim()]);

    // A missing image on a reachable registry: exit 125 with the registry's word.
    let msg = env.fails(&["run", "--rm", &format!("{}/team/nope:1", reg.addr), "true"]);
    assert!(msg.contains("not found"), "{msg}");
    env.t.assert_clean();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn quiet_and_json_progress() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/json:1", "json");
    let name = format!("{}/team/json:1", reg.addr);
    let pusher = Env::new();
    pusher.load(&img, &name);
    let q = pusher.ok(&["push", "-q", &name]);
    assert_eq!(q.stdout, format!("{name}\n"));

    let env = Env::new();
    let out = env.ok(&["pull", "--progress", "json", &name]).stdout;
    let ev = events(&out);
    assert_eq!(ev.len(), out.lines().count(), "only JSON lines: {out}");
    assert_eq!(ev.first().unwrap()["event"], "resolved", "{out}");
    assert_eq!(ev.first().unwrap()["digest"], img.manifest.as_str());
    let done = ev.last().unwrap();
    assert_eq!(done["event"], "done", "{out}");
    assert_eq!(done["reference"], name.as_str());
    for l in &img.layers {
        let mine: Vec<_> = ev.iter().filter(|e| e["digest"] == l.as_str()).collect();
        assert_eq!(
            mine.last().unwrap()["status"],
            "complete",
            "layer {l}: {out}"
        );
        assert!(mine.iter().all(|e| e["size"].as_u64().is_some()), "{out}");
    }

    let env2 = Env::new();
    let q = env2.ok(&["pull", "-q", &name]);
    assert_eq!(q.stdout, format!("{name}\n"));
    // By digest.
    let env3 = Env::new();
    let by_digest = format!("{}/team/json@{}", reg.addr, img.manifest);
    let out = env3.ok(&["pull", &by_digest]).stdout;
    assert!(
        out.starts_with(&format!("{}: Pulling from team/json\n", img.manifest)),
        "{out}"
    );
    assert_eq!(out.lines().last().unwrap(), by_digest);
    assert_eq!(
        env3.ok(&["run", "--rm", &by_digest, "cat", "/hello.txt"])
            .stdout,
        "hello from json\n"
    );
    env3.t.assert_clean();
}
