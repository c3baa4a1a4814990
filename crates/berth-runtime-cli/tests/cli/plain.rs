//! What the binary does without root: `spec`, lookups of unknown containers, ids that would leave
//! the state root.

use std::process::Output;

use oci_spec::runtime::Spec;

use crate::harness::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn spec_writes_dockers_defaults_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    ok(rt(&root).args(["spec", "--bundle"]).arg(tmp.path()));
    let s = Spec::load(tmp.path().join("config.json")).unwrap();
    assert_eq!(s.hostname().as_deref(), Some("berth"));
    assert_eq!(
        s.linux().as_ref().unwrap().masked_paths().as_ref().unwrap(),
        &berth_runtime::defaults::masked_paths()
    );
    let again = rt(&root)
        .args(["spec", "--bundle"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert!(!root.exists(), "spec needs no state root");
}

#[test]
fn unknown_containers_are_reported_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    for args in [
        vec!["state", "nope"],
        vec!["start", "nope"],
        vec!["kill", "nope"],
        vec!["delete", "nope"],
        vec!["exec", "nope", "true"],
    ] {
        let o = rt(&root).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("container nope does not exist"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let listed = ok(rt(&root).arg("list"));
    assert_eq!(
        listed.lines().count(),
        1,
        "a missing root lists only the header: {listed}"
    );
}

/// `delete --force ..` once removed the state root's parent: an id that is not one directory
/// under the root is refused before anything is removed.
#[test]
fn forced_delete_of_dot_ids_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    std::fs::create_dir(&root).unwrap();
    let keep = tmp.path().join("keep");
    std::fs::write(&keep, b"x").unwrap();
    for id in ["..", "."] {
        let o = rt(&root).args(["delete", "--force", id]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{id}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("invalid container id"),
            "{}",
            stderr(&o)
        );
    }
    assert!(keep.exists() && root.is_dir());
}

#[test]
fn create_refuses_an_invalid_id_before_reading_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let o = rt(&root)
        .args(["create", "--bundle"])
        .arg(tmp.path().join("missing"))
        .arg("../x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid container id \"../x\""),
        "{}",
        stderr(&o)
    );
    assert!(!root.exists());
}
