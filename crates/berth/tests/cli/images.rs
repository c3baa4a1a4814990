//! End-to-end tests of the image commands: import, images, tag, rmi, image inspect, save/load,
//! docker-save archives, malformed input, prune, and a kill -9 in the middle of an import.

use crate::common::{TestRoot, busybox_tar, scratch_dir};
use berth_oci::Digest;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs berth and asserts success; returns stdout.
fn ok(t: &TestRoot, args: &[&str]) -> String {
    let out = t.berth().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Runs berth and asserts it failed with `code`; returns stderr.
fn fails(t: &TestRoot, args: &[&str], code: i32) -> String {
    let out = t.berth().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "berth {args:?}: {} {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd} failed");
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("img-")
        .tempdir_in(scratch_dir())
        .unwrap()
}

/// Files in a directory (recursively counted), to prove a failed command stored nothing.
fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        file_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn inspect(t: &TestRoot, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(t, &["image", "inspect", name])).unwrap();
    v[0].clone()
}

/// The store is as a fresh one: no images, no blobs, nothing in ingest.
fn assert_store_empty(t: &TestRoot) {
    assert_eq!(ok(t, &["images", "-q"]), "");
    assert_eq!(file_count(&t.root().join("blobs")), 0, "blobs left behind");
    assert_eq!(file_count(&t.root().join("ingest")), 0, "ingest leftovers");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn import_plain_gzip_and_zstd_give_one_layer_with_the_same_diff_id() {
    let t = TestRoot::new();
    let dir = scratch();
    let gz = dir.path().join("bb.tar.gz");
    let zst = dir.path().join("bb.tar.zst");
    let src = busybox_tar().display().to_string();
    sh(&format!("gzip -c {src} > {}", gz.display()));
    sh(&format!("zstd -q -c {src} > {}", zst.display()));
    let diff = Digest::of(&std::fs::read(busybox_tar()).unwrap()).to_string();
    for (name, file, media) in [
        (
            "plain",
            PathBuf::from(&src),
            "application/vnd.oci.image.layer.v1.tar",
        ),
        ("gz", gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zst", zst, "application/vnd.oci.image.layer.v1.tar+zstd"),
    ] {
        let id = ok(&t, &["import", file.to_str().unwrap(), name])
            .trim()
            .to_owned();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        let v = inspect(&t, name);
        assert_eq!(v["Id"], id);
        assert_eq!(v["RootFS"]["Layers"], serde_json::json!([diff]), "{name}");
        // The OCI manifest names the layer with its compression.
        let m: Value =
            serde_json::from_slice(&std::fs::read(t.root().join("index.json")).unwrap()).unwrap();
        let entry = m["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["annotations"]["io.containerd.image.name"]
                    == format!("docker.io/library/{name}:latest")
            })
            .unwrap()
            .clone();
        let hex = entry["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(t.root().join("blobs/sha256").join(hex)).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], media);
    }
    // Stdin works too, and `-c` changes land in the config.
    let out = t
        .berth()
        .args([
            "import",
            "-c",
            r#"CMD ["sh"]"#,
            "-c",
            "ENV A=b",
            "-c",
            "WORKDIR /tmp",
            "-",
            "stdin:1",
        ])
        .pipe_stdin(busybox_tar())
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = inspect(&t, "stdin:1");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["RepoTags"], serde_json::json!(["stdin:1"]));
    // The snapshot is unpacked at import time.
    let lower = v["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&lower).join("bin/busybox").is_file(), "{lower}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn images_tag_rmi_and_inspect_print_like_docker() {
    let t = TestRoot::new();
    let id = t.busybox_image("bb");
    let short = &id["sha256:".len().."sha256:".len() + 12];
    ok(&t, &["tag", "bb", "example.com/team/app:v1"]);
    let table = ok(&t, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("IMAGE ID")
            && lines[0].ends_with("SIZE")
    );
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        table.contains("bb ") && table.contains("latest") && table.contains(short),
        "{table}"
    );
    assert!(
        table.contains("example.com/team/app") && table.contains("v1"),
        "{table}"
    );
    assert!(
        lines[1].contains("seconds ago") || lines[1].contains("Less than a second ago"),
        "{table}"
    );
    assert_eq!(ok(&t, &["images", "-q"]), format!("{short}\n"));
    assert_eq!(ok(&t, &["images", "-q", "--no-trunc"]), format!("{id}\n"));
    // Go templates, as `ps` takes them: a bare one, and `table` with Docker's column titles.
    let mut names: Vec<String> = ok(&t, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["bb:latest", "example.com/team/app:v1"]);
    let custom = ok(
        &t,
        &[
            "images",
            "--format",
            "table {{.ID}}\\t{{.Repository}}",
            "bb",
        ],
    );
    let lines: Vec<&str> = custom.lines().collect();
    assert_eq!(lines.len(), 2, "{custom}");
    assert!(
        lines[0].starts_with("IMAGE ID") && lines[0].ends_with("REPOSITORY"),
        "{custom}"
    );
    assert!(
        lines[1].starts_with(short) && lines[1].ends_with("bb"),
        "{custom}"
    );
    let bad = t
        .berth()
        .args(["images", "--format", "{{.Nope}}"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("Nope"), "{}", stderr(&bad));
    let json = ok(&t, &["images", "--format", "json", "bb"]);
    let row: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(row["Repository"], "bb");
    assert_eq!(row["Tag"], "latest");
    assert_eq!(row["ID"], short);
    assert!(row["Size"].as_str().unwrap().ends_with("MB"), "{row}");
    assert_eq!(json.lines().count(), 1);

    let v = inspect(&t, short);
    assert_eq!(v["Id"], id);
    assert_eq!(
        v["RepoTags"],
        serde_json::json!(["bb:latest", "example.com/team/app:v1"])
    );
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert!(v["Size"].as_u64().unwrap() > 1_000_000);
    assert!(v["Created"].as_str().unwrap().ends_with('Z'));
    let err = fails(&t, &["image", "inspect", "nope"], 1);
    assert!(err.contains("No such image: nope"), "{err}");

    // Removing by id with two tags needs force; a tag with siblings is only untagged.
    let err = fails(&t, &["rmi", short], 1);
    assert!(err.contains("referenced in multiple repositories"), "{err}");
    assert_eq!(
        ok(&t, &["rmi", "example.com/team/app:v1"]),
        "Untagged: example.com/team/app:v1\n"
    );
    let out = ok(&t, &["image", "rm", "bb"]);
    assert!(
        out.starts_with(&format!("Untagged: bb:latest\nDeleted: {id}\n")),
        "{out}"
    );
    assert_store_empty(&t);
    let err = fails(&t, &["rmi", "bb"], 1);
    assert!(err.contains("No such image: bb"), "{err}");
    let err = fails(&t, &["tag", "bb", "x"], 125);
    assert!(err.contains("No such image: bb"), "{err}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn save_then_load_round_trips_into_a_fresh_root() {
    let t = TestRoot::new();
    let id = t.busybox_image("bb:1");
    ok(&t, &["tag", "bb:1", "other"]);
    let dir = scratch();
    let archive = dir.path().join("bb.tar");
    ok(
        &t,
        &["save", "-o", archive.to_str().unwrap(), "bb:1", "other"],
    );
    // The archive is an OCI layout with Docker's manifest.json.
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = stdout(&listing);
    for f in [
        "oci-layout",
        "index.json",
        "manifest.json",
        &format!("blobs/sha256/{}", &id[7..]),
    ] {
        assert!(
            listing.lines().any(|l| l == f),
            "{f} missing from {listing}"
        );
    }
    let fresh = TestRoot::new();
    let out = ok(&fresh, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: bb:1\nLoaded image: other:latest\n");
    assert_eq!(inspect(&fresh, "bb:1")["Id"], id);
    assert_eq!(inspect(&fresh, "other")["Id"], id);
    // save to stdout piped into load.
    let piped = TestRoot::new();
    let saved = t.berth().args(["save", "bb:1"]).output().unwrap();
    assert!(saved.status.success(), "{}", stderr(&saved));
    let out = piped
        .berth()
        .arg("load")
        .write_stdin(saved.stdout)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Loaded image: bb:1\n", "{}", stderr(&out));
    // From stdin, into a third root; an image saved by id loads without a name.
    let third = TestRoot::new();
    let by_id = dir.path().join("byid.tar");
    ok(&t, &["save", "-o", by_id.to_str().unwrap(), &id]);
    let out = third
        .berth()
        .arg("load")
        .pipe_stdin(&by_id)
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Loaded image ID: {id}\n"));
    let lower = inspect(&third, &id)["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&lower).join("bin/sh").exists());
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn docker_save_archives_load() {
    // Build what `docker save` wrote before Docker 25: <id>.json, <layer>/layer.tar, manifest.json.
    let dir = scratch();
    let d = dir.path().join("archive");
    let layer = std::fs::read(busybox_tar()).unwrap();
    let diff = Digest::of(&layer);
    std::fs::create_dir_all(d.join("abc123/")).unwrap();
    std::fs::write(d.join("abc123/layer.tar"), &layer).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, "docker_version": "20.10.0",
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cid = Digest::of(&config);
    std::fs::write(d.join(format!("{}.json", cid.hex())), &config).unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", cid.hex()),
        "RepoTags": ["docker/saved:old"],
        "Layers": ["abc123/layer.tar"],
    }]);
    std::fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let archive = dir.path().join("docker.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        d.display(),
        archive.display()
    ));
    let t = TestRoot::new();
    let out = ok(&t, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker/saved:old\n");
    let v = inspect(&t, "docker/saved:old");
    assert_eq!(v["Id"], cid.to_string());
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Created"], "2024-01-02T03:04:05Z");
    // The config blob is stored byte for byte: the id is unchanged.
    assert_eq!(
        std::fs::read(t.root().join("blobs/sha256").join(cid.hex())).unwrap(),
        config
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn malformed_inputs_fail_with_125_and_change_nothing() {
    let t = TestRoot::new();
    let dir = scratch();
    // Truncated gzip.
    let gz = dir.path().join("bb.tar.gz");
    sh(&format!(
        "gzip -c {} > {}",
        busybox_tar().display(),
        gz.display()
    ));
    let bytes = std::fs::read(&gz).unwrap();
    let cut = dir.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&t, &["import", cut.to_str().unwrap(), "cut"], 125);
    assert!(err.contains("tarball layer is not a tar stream"), "{err}");
    assert_store_empty(&t);
    // Not a tar at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are some notes, not an archive\n".repeat(40)).unwrap();
    let err = fails(&t, &["import", text.to_str().unwrap(), "notes"], 125);
    assert!(err.contains("tarball layer is not a tar stream"), "{err}");
    let err = fails(&t, &["load", "-i", text.to_str().unwrap()], 125);
    assert!(err.contains("invalid image archive"), "{err}");
    assert_store_empty(&t);

    // An archive whose manifest names a blob that is not there, and one whose blob was altered.
    let src = TestRoot::new();
    let id = src.busybox_image("bb");
    let good = dir.path().join("good.tar");
    ok(&src, &["save", "-o", good.to_str().unwrap(), "bb"]);
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    sh(&format!(
        "tar -C {} -xf {}",
        unpacked.display(),
        good.display()
    ));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let layer_path = unpacked.join(manifest[0]["Layers"][0].as_str().unwrap());
    let layer_bytes = std::fs::read(&layer_path).unwrap();

    std::fs::remove_file(&layer_path).unwrap();
    let missing = dir.path().join("missing.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        unpacked.display(),
        missing.display()
    ));
    let err = fails(&t, &["load", "-i", missing.to_str().unwrap()], 125);
    assert!(err.contains("not in the archive"), "{err}");
    assert_store_empty(&t);

    let mut altered = layer_bytes.clone();
    let n = altered.len();
    altered[n / 2] ^= 0xff;
    std::fs::write(&layer_path, &altered).unwrap();
    let tampered = dir.path().join("tampered.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        unpacked.display(),
        tampered.display()
    ));
    let err = fails(&t, &["load", "-i", tampered.to_str().unwrap()], 125);
    assert!(
        err.contains("in archive does not match its digest"),
        "{err}"
    );
    assert_store_empty(&t);

    // A truncated archive.
    let good_bytes = std::fs::read(&good).unwrap();
    let short = dir.path().join("short.tar");
    std::fs::write(&short, &good_bytes[..good_bytes.len() / 3]).unwrap();
    fails(&t, &["load", "-i", short.to_str().unwrap()], 125);
    assert_store_empty(&t);

    // The intact archive still loads after all that.
    std::fs::write(&layer_path, &layer_bytes).unwrap();
    assert_eq!(
        ok(&t, &["load", "-i", good.to_str().unwrap()]),
        "Loaded image: bb:latest\n"
    );
    assert_eq!(inspect(&t, "bb")["Id"], id);
}

/// Pretends a container uses `image_id`, through the on-disk contract with the engine.
fn fake_container(t: &TestRoot, cid: &str, image_id: &str) {
    let dir = t.root().join("containers").join(cid);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"Id": cid, "Image": image_id}).to_string(),
    )
    .unwrap();
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn prune_keeps_tagged_and_in_use_images() {
    let t = TestRoot::new();
    let tagged = t.busybox_image("keep");
    let used = ok(
        &t,
        &[
            "import",
            "-c",
            "CMD [\"a\"]",
            busybox_tar().to_str().unwrap(),
        ],
    )
    .trim()
    .to_owned();
    let dangling = ok(
        &t,
        &[
            "import",
            "-c",
            "CMD [\"b\"]",
            busybox_tar().to_str().unwrap(),
        ],
    )
    .trim()
    .to_owned();
    let cid = "c".repeat(64);
    fake_container(&t, &cid, &used);
    let out = ok(&t, &["system", "df"]);
    assert!(
        out.lines().nth(1).unwrap().starts_with("Images") && out.contains(" 3 "),
        "{out}"
    );

    let out = ok(&t, &["system", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(!out.contains(&used) && !out.contains(&tagged), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let left = ok(&t, &["images", "-q", "--no-trunc"]);
    assert_eq!(
        ok(&t, &["images", "-q", "--no-trunc", "-f", "dangling=true"]),
        format!("{used}\n")
    );
    assert_eq!(
        ok(
            &t,
            &["images", "-q", "--no-trunc", "--filter", "reference=keep"]
        ),
        format!("{tagged}\n")
    );
    assert!(
        left.contains(&tagged) && left.contains(&used) && !left.contains(&dangling),
        "{left}"
    );
    // rmi of an image a container uses is refused.
    let err = fails(&t, &["rmi", &used], 1);
    assert!(err.contains("being used by a container"), "{err}");

    let out = ok(&t, &["image", "prune", "-a", "-f"]);
    assert!(
        out.contains("untagged: keep:latest") && out.contains(&format!("deleted: {tagged}")),
        "{out}"
    );
    assert_eq!(ok(&t, &["images", "-q", "--no-trunc"]), format!("{used}\n"));
    // The used image still has its layers.
    let lower = inspect(&t, &used)["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&lower).join("bin/busybox").is_file());
    std::fs::remove_dir_all(t.root().join("containers")).unwrap();
    // Without confirmation nothing is removed.
    let out = t
        .berth()
        .args(["system", "prune", "-a"])
        .write_stdin("n\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(ok(&t, &["images", "-q", "--no-trunc"]), format!("{used}\n"));
    ok(&t, &["system", "prune", "-a", "-f"]);
    assert_store_empty(&t);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_during_a_large_import_leaves_a_usable_store() {
    let t = TestRoot::new();
    let dir = scratch();
    // ~400 MB tar of incompressible-looking data, so the import takes a while.
    let big = dir.path().join("big.tar");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    sh(&format!(
        "head -c 400000000 /dev/urandom > {}/blob && tar -C {} -cf {} .",
        data.display(),
        data.display(),
        big.display()
    ));
    std::fs::remove_dir_all(&data).unwrap();
    let mut child = t
        .berth_std()
        .args(["import", big.to_str().unwrap(), "big"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let finished = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished,
        "import finished before it could be killed; make the input larger"
    );
    // The store answers, shows no half image, and takes a fresh import.
    assert_eq!(ok(&t, &["images", "-q"]), "");
    t.busybox_image("after");
    assert_eq!(ok(&t, &["images", "--format", "json"]).lines().count(), 1);
    // Prune removes what the killed import left in ingest/ and snapshots/.
    ok(&t, &["system", "prune", "-f"]);
    assert_eq!(file_count(&t.root().join("ingest")), 0);
    assert_eq!(
        inspect(&t, "after")["RepoTags"],
        serde_json::json!(["after:latest"])
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn kill_during_a_large_load_leaves_a_usable_store() {
    // A docker-save archive with one ~200 MB layer.
    let dir = scratch();
    let d = dir.path().join("archive");
    std::fs::create_dir_all(d.join("layer")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    sh(&format!(
        "head -c 200000000 /dev/urandom > {0}/blob && tar -C {0} -cf {1}/layer/layer.tar .",
        data.display(),
        d.display()
    ));
    std::fs::remove_dir_all(&data).unwrap();
    let sum = Command::new("sha256sum")
        .arg(d.join("layer/layer.tar"))
        .output()
        .unwrap();
    let diff = format!("sha256:{}", &stdout(&sum)[..64]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .unwrap();
    std::fs::write(d.join("config.json"), &config).unwrap();
    let manifest = serde_json::json!([{
        "Config": "config.json", "RepoTags": ["big:1"], "Layers": ["layer/layer.tar"],
    }]);
    std::fs::write(d.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = dir.path().join("big.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        d.display(),
        archive.display()
    ));
    std::fs::remove_dir_all(&d).unwrap();

    let t = TestRoot::new();
    let mut child = t
        .berth_std()
        .args(["load", "-i", archive.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let finished = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished,
        "load finished before it could be killed; make the input larger"
    );
    assert_eq!(ok(&t, &["images", "-q"]), "");
    assert!(
        file_count(&t.root().join("ingest")) > 0,
        "the killed load left its staging files"
    );
    ok(&t, &["system", "prune", "-f"]);
    assert_store_empty(&t);
    // The same archive loads completely afterwards.
    assert_eq!(
        ok(&t, &["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: big:1\n"
    );
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn inspect_falls_back_to_images_like_docker() {
    let t = TestRoot::new();
    let id = t.busybox_image("bb:1");
    let out = ok(&t, &["inspect", "bb:1"]);
    let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(v[0]["Id"], Value::String(id));
    assert_eq!(v[0]["RepoTags"][0], "bb:1");
    let err = fails(&t, &["inspect", "nothing-here"], 1);
    assert!(err.contains("no such object: nothing-here"), "{err}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn save_removes_what_a_killed_save_of_the_same_file_left() {
    let t = TestRoot::new();
    t.busybox_image("bb");
    let dir = tempfile::tempdir_in(crate::common::scratch_dir()).unwrap();
    let out = dir.path().join("out.tar");
    let abandoned = dir.path().join(".out.tar.berth-save-99999-0000abcd.tmp");
    let in_use = dir.path().join(".out.tar.berth-save-99998-0000abcd.tmp");
    let other = dir.path().join(".other.tar.berth-save-99999-0000abcd.tmp");
    for p in [&abandoned, &in_use, &other] {
        std::fs::write(p, b"half an archive").unwrap();
        sh(&format!("touch -d '1 hour ago' {}", p.display()));
    }
    // A save still writing holds its temporary locked.
    let held = std::fs::File::open(&in_use).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    ok(&t, &["save", "-o", out.to_str().unwrap(), "bb"]);
    assert!(out.is_file());
    assert!(
        !abandoned.exists(),
        "the abandoned temporary is still there"
    );
    assert!(in_use.exists(), "a temporary a live save holds was removed");
    assert!(other.exists(), "another file's temporary was removed");
    drop(held);
    t.assert_clean();
}
