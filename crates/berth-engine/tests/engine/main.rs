//! The engine as a library: containers created, started, watched, exec'd into, logged, stopped,
//! listed with Docker's filters and removed through `Engine`, with no CLI in between; and images
//! listed and inspected. Each test has its own state root and checks that nothing is left behind.
//! They run real containers (namespaces, overlay, cgroups), so they need root: the e2e tier.

mod support;

use berth_engine::filter::{ContainerFilter, Filters, ImageFilter};
use berth_engine::logs::LogsOptions;
use berth_engine::{Error, ExecOptions, ListOptions};
use std::time::{Duration, Instant};
use support::Root;

/// Names of the containers `ps` would list with `all` and filter `args`.
fn names(r: &Root, all: bool, args: &[&str]) -> Vec<String> {
    let opts = ListOptions {
        all,
        filter: ContainerFilter::from_args(args).expect("valid filter"),
        limit: None,
    };
    r.engine
        .list_containers(&opts)
        .expect("list containers")
        .into_iter()
        .map(|c| c.record.short_name().to_owned())
        .collect()
}

/// The container's log, split into stdout and stderr.
fn logs(r: &Root, id: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    r.engine
        .logs(id, &LogsOptions::default(), &mut out, &mut err)
        .expect("read logs");
    (
        String::from_utf8(out).expect("utf-8 stdout"),
        String::from_utf8(err).expect("utf-8 stderr"),
    )
}

fn exec(r: &Root, id: &str, cmd: &[&str], env: &[&str]) -> i32 {
    let opts = ExecOptions {
        cmd: cmd.iter().map(|c| c.to_string()).collect(),
        env: env.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    };
    r.engine.exec(id, &opts).expect("exec")
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn a_detached_container_runs_execs_logs_stops_and_goes() {
    let r = Root::with_busybox();
    let id = r
        .create(
            "web",
            &[
                "sh",
                "-c",
                "echo hello; echo oops >&2; while true; do sleep 1; done",
            ],
            &["tier=web"],
        )
        .record
        .id;
    assert_eq!(names(&r, true, &[]), ["web"]);
    assert_eq!(
        names(&r, false, &[]),
        Vec::<String>::new(),
        "created is not running"
    );
    r.engine.start_detached(&id).expect("start");
    r.engine
        .start_detached(&id)
        .expect("starting a running container is a no-op");
    assert_eq!(names(&r, false, &[]), ["web"]);
    assert_eq!(
        names(&r, false, &["status=running", "label=tier=web"]),
        ["web"]
    );

    // The monitor writes the log while the container runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = logs(&r, &id);
    while seen.0.is_empty() || seen.1.is_empty() {
        assert!(Instant::now() < deadline, "no log after 10 s: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
        seen = logs(&r, &id);
    }
    assert_eq!(seen, ("hello\n".to_owned(), "oops\n".to_owned()));

    assert_eq!(exec(&r, "web", &["test", "-f", "/etc/passwd"], &[]), 0);
    assert_eq!(exec(&r, &id[..12], &["sh", "-c", "exit 3"], &[]), 3);
    assert_eq!(exec(&r, &id, &["sh", "-c", "test \"$X\" = 1"], &["X=1"]), 0);

    assert!(matches!(
        r.engine.kill(&id, "NOPE"),
        Err(Error::BadSignal(_))
    ));
    assert!(matches!(
        r.engine.remove(&id, false),
        Err(Error::RemoveRunning(_))
    ));
    // The shell is pid 1 and ignores SIGTERM: stop ends with SIGKILL after the grace period.
    r.engine.stop("web", Duration::from_secs(1)).expect("stop");
    assert_eq!(r.engine.wait(&id).expect("wait"), 137);
    assert_eq!(names(&r, false, &[]), Vec::<String>::new());
    assert_eq!(names(&r, true, &["exited=137"]), ["web"]);
    assert!(matches!(
        r.engine.exec(&id, &ExecOptions::default()),
        Err(Error::NotRunning(_))
    ));
    r.engine.remove(&id, false).expect("rm");
    assert!(r.engine.resolve("web").is_err());
    r.assert_clean(&[id]);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn foreground_runs_then_docker_filters_pick_containers() {
    let r = Root::with_busybox();
    let other = r.import("other", &["CMD [\"x\"]"]);
    let run = |name: &str, cmd: &[&str], labels: &[&str]| {
        let p = r.create(name, cmd, labels);
        let id = p.record.id.clone();
        (id, r.engine.run_foreground(p).expect("run"))
    };
    let (ok, code) = run("ok-1", &["true"], &["tier=web", "app=a"]);
    assert_eq!(code, 0);
    let (fail, code) = run("fail-3", &["sh", "-c", "exit 3"], &["tier=web"]);
    assert_eq!(code, 3);
    let idle = r.create("idle", &["true"], &["tier=db"]).record.id;

    assert_eq!(names(&r, false, &[]), Vec::<String>::new());
    assert_eq!(
        names(&r, true, &[]),
        ["idle", "fail-3", "ok-1"],
        "newest first"
    );
    // status reaches stopped containers without --all; exited does not (as in Docker).
    assert_eq!(names(&r, false, &["status=exited"]), ["fail-3", "ok-1"]);
    assert_eq!(
        names(&r, false, &["status=created", "status=running"]),
        ["idle"]
    );
    assert_eq!(names(&r, false, &["exited=3"]), Vec::<String>::new());
    assert_eq!(names(&r, true, &["exited=3"]), ["fail-3"]);
    assert_eq!(
        names(&r, true, &["exited=0", "exited=3"]),
        ["fail-3", "ok-1"]
    );
    assert_eq!(names(&r, true, &["name=^ok"]), ["ok-1"]);
    assert_eq!(names(&r, true, &["name=-"]), ["fail-3", "ok-1"]);
    assert_eq!(
        names(&r, true, &[&format!("id={}", &fail[..8])]),
        ["fail-3"]
    );
    assert_eq!(names(&r, true, &["label=tier=web"]), ["fail-3", "ok-1"]);
    assert_eq!(
        names(&r, true, &["label=tier=web", "label=app=a"]),
        ["ok-1"]
    );
    assert_eq!(names(&r, true, &["label=tier", "name=idle"]), ["idle"]);
    assert_eq!(names(&r, true, &["ancestor=bb"]).len(), 3);
    assert_eq!(names(&r, true, &["ancestor=other"]), Vec::<String>::new());
    assert_eq!(names(&r, true, &["ancestor=nope"]), Vec::<String>::new());
    let bb = r.engine.list(true).unwrap()[0].record.image.clone();
    assert_ne!(bb, other);
    assert_eq!(
        names(
            &r,
            true,
            &[&format!("ancestor={}", &bb["sha256:".len()..][..12])]
        )
        .len(),
        3
    );
    assert_eq!(names(&r, false, &["before=fail-3"]), ["ok-1"]);
    assert_eq!(names(&r, false, &["since=ok-1"]), ["idle", "fail-3"]);
    assert_eq!(names(&r, false, &["network=none"]), Vec::<String>::new());
    let latest = ListOptions {
        limit: Some(1),
        ..Default::default()
    };
    let got = r.engine.list_containers(&latest).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record.id, idle);

    // The API's JSON filters mean the same as the CLI's.
    let json = Filters::from_json(r#"{"label":{"tier=web":true},"status":["exited"]}"#).unwrap();
    let api = ListOptions {
        filter: ContainerFilter::new(&json).unwrap(),
        ..Default::default()
    };
    let got: Vec<String> = r
        .engine
        .list_containers(&api)
        .unwrap()
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(got, [fail.clone(), ok.clone()]);

    let bad = ListOptions {
        filter: ContainerFilter::from_args(&["before=nope"]).unwrap(),
        ..Default::default()
    };
    let e = r.engine.list_containers(&bad).unwrap_err();
    assert_eq!(e.to_string(), "No such container: nope");

    for id in [&ok, &fail, &idle] {
        r.engine.remove(id, false).expect("rm");
    }
    assert_eq!(names(&r, true, &[]), Vec::<String>::new());
    r.assert_clean(&[ok, fail, idle]);
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn images_are_listed_inspected_and_known_in_use() {
    let r = Root::with_busybox();
    let web = r.import("web:v1", &["LABEL tier=web"]);
    let dangling = r.import_untagged(&["CMD [\"b\"]"]);
    let list = |args: &[&str]| -> Vec<(String, Vec<String>)> {
        r.engine
            .list_images(&ImageFilter::from_args(args).unwrap())
            .unwrap()
            .into_iter()
            .map(|s| {
                let refs = s.references.iter().map(|r| r.familiar()).collect();
                (s.image.id.to_string(), refs)
            })
            .collect()
    };
    assert_eq!(list(&[]).len(), 3);
    assert_eq!(list(&["dangling=true"]), [(dangling.clone(), vec![])]);
    assert_eq!(list(&["dangling=false"]).len(), 2);
    assert_eq!(
        list(&["label=tier=web"]),
        [(web.clone(), vec!["web:v1".to_owned()])]
    );
    assert_eq!(list(&["label=tier=db"]), vec![]);
    assert_eq!(
        list(&["reference=web:*"]),
        [(web.clone(), vec!["web:v1".to_owned()])]
    );
    assert_eq!(list(&["reference=bb"]).len(), 1);
    assert_eq!(list(&["reference=docker.io/library/bb"]).len(), 1);
    assert_eq!(list(&["reference=bb", "reference=web"]).len(), 2);
    assert!(
        list(&["since=bb"])
            .iter()
            .all(|(_, refs)| refs != &["bb:latest"])
    );
    let e = r
        .engine
        .list_images(&ImageFilter::from_args(&["before=nope"]).unwrap())
        .unwrap_err();
    assert!(e.is_no_such_image(), "{e}");

    let v = r.engine.inspect_image("web:v1").unwrap();
    assert_eq!(v["Id"], web.as_str());
    assert_eq!(v["RepoTags"], serde_json::json!(["web:v1"]));
    assert_eq!(v["Config"]["Labels"]["tier"], "web");
    assert!(
        r.engine
            .inspect_image("nope")
            .unwrap_err()
            .is_no_such_image()
    );

    // A container pins its image, from its creation until its removal.
    assert!(r.engine.images_in_use().unwrap().is_empty());
    let opts = berth_engine::CreateOptions {
        image: "web:v1".into(),
        cmd: vec!["true".into()],
        ..Default::default()
    };
    let id = r.engine.create(&opts, false).unwrap().record.id;
    let used = r.engine.images_in_use().unwrap();
    assert_eq!(used.len(), 1);
    assert!(used.contains(&web.parse().unwrap()));
    r.engine.remove(&id, false).unwrap();
    assert!(r.engine.images_in_use().unwrap().is_empty());
    r.assert_clean(&[id]);
}
