//! berth against the peers: distribution 2.8 (Debian's docker-registry, on disk and on S3) as the
//! registry berth pushes to and pulls from; skopeo- (from OCI layouts and `berth save` archives) and
//! podman-pushed images (OCI and Docker schema 2 manifests) pulled and run by berth; berth-pushed
//! images pulled and run by podman.

use crate::dist_util::{Distribution, Env, Podman, busybox_image, layer_lines, skopeo_copy};
use crate::registry_util::{Registry, S3, Store};
use std::sync::Arc;

fn berth_through_distribution(s3: Option<Arc<S3>>, label: &str) {
    let dist = Distribution::start(s3);
    let img = busybox_image("localhost/test/dist:1", label);
    let name = format!("{}/team/app:1", dist.addr);

    let env = Env::new();
    env.load(&img, &name);
    let out = env.ok(&["push", &name]).stdout;
    for l in &img.layers {
        assert_eq!(
            layer_lines(&out, l).last().map(|s| &s[14..]),
            Some("Pushed"),
            "{out}"
        );
    }
    let out = env.ok(&["push", &name]).stdout;
    for l in &img.layers {
        assert_eq!(
            layer_lines(&out, l).last().map(|s| &s[14..]),
            Some("Layer already exists"),
            "{out}"
        );
    }
    // Another repository of the same registry: the layers are mounted, not sent.
    let other = format!("{}/team/other:1", dist.addr);
    env.ok(&["tag", &name, &other]);
    let out = env.ok(&["push", &other]).stdout;
    for l in &img.layers {
        assert_eq!(
            layer_lines(&out, l).last().map(|s| &s[14..]),
            Some("Mounted from team/app"),
            "{out}"
        );
    }

    for n in [&name, &other] {
        let env2 = Env::new();
        let out = env2.ok(&["pull", n]).stdout;
        assert!(out.contains("Pull complete"), "{out}");
        assert_eq!(
            env2.ok(&["run", "--rm", n, "cat", "/hello.txt"]).stdout,
            format!("hello from {label}\n")
        );
        env2.t.assert_clean();
    }
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn berth_to_distribution_on_disk_and_back() {
    berth_through_distribution(None, "distribution fs");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn berth_to_distribution_on_s3_and_back() {
    let s3 = Arc::new(S3::start());
    berth_through_distribution(Some(s3), "distribution s3");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn skopeo_and_podman_pushed_images_run_in_berth() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/peers:1", "peers");

    // skopeo: the OCI manifest as it is, and converted to Docker schema 2.
    let oci = format!("{}/skopeo/oci:1", reg.addr);
    skopeo_copy(
        &format!("oci-archive:{}", img.archive.display()),
        &format!("docker://{oci}"),
    );
    let v2s2 = format!("{}/skopeo/v2s2:1", reg.addr);
    let mut c = std::process::Command::new("skopeo");
    c.args(["copy", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{}", img.layout.display(), img.tag))
        .arg(format!("docker://{v2s2}"));
    let f = crate::registry_util::run_limited(c, crate::dist_util::LIMIT).unwrap();
    assert_eq!(f.code, Some(0), "skopeo --format v2s2: {}", f.stderr);

    // skopeo from a `docker save`-style archive, as `berth save` writes it.
    let saver = Env::new();
    saver.load(&img, "saved/img:1");
    let saved = saver.home.path().join("saved.tar");
    saver.ok(&["save", "-o", saved.to_str().unwrap(), "saved/img:1"]);
    let from_docker_archive = format!("{}/skopeo/docker-archive:1", reg.addr);
    skopeo_copy(
        &format!("docker-archive:{}:saved/img:1", saved.display()),
        &format!("docker://{from_docker_archive}"),
    );

    // podman: pulled from the archive into its own store, pushed from there (it recompresses).
    let podman = Podman::new();
    let pulled = podman.ok(&["pull", &format!("oci-archive:{}", img.archive.display())]);
    let id = pulled.stdout.lines().last().unwrap().trim().to_owned();
    let by_podman = format!("{}/podman/img:1", reg.addr);
    podman.ok(&[
        "push",
        "--tls-verify=false",
        &id,
        &format!("docker://{by_podman}"),
    ]);

    for n in [&oci, &v2s2, &from_docker_archive, &by_podman] {
        let env = Env::new();
        let out = env.ok(&["pull", n]).stdout;
        assert!(out.contains("Pull complete"), "{n}: {out}");
        assert_eq!(
            env.ok(&["run", "--rm", n, "cat", "/hello.txt"]).stdout,
            "hello from peers\n",
            "{n}"
        );
        assert_eq!(env.ok(&["run", "--rm", n, "echo", "hi"]).stdout, "hi\n");
        env.t.assert_clean();
    }
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "peers tier: needs podman, skopeo, crane, distribution"
)]
fn berth_pushed_images_run_in_podman() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let img = busybox_image("localhost/test/topodman:1", "berth");
    let name = format!("{}/berth/img:1", reg.addr);
    let env = Env::new();
    env.load(&img, &name);
    env.ok(&["push", &name]);
    // An image imported from a rootfs tarball (one layer, stored by berth itself) too.
    let imported = format!("{}/berth/imported:1", reg.addr);
    env.ok(&[
        "import",
        crate::common::busybox_tar().to_str().unwrap(),
        &imported,
    ]);
    env.ok(&["push", &imported]);

    let podman = Podman::new();
    for (n, cmd, want) in [
        (&name, "cat /hello.txt", "hello from berth\n"),
        (&imported, "echo hi", "hi\n"),
    ] {
        podman.ok(&["pull", "--tls-verify=false", n]);
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            n.as_str(),
        ];
        args.extend(cmd.split(' '));
        let out = podman.ok(&args);
        assert_eq!(out.stdout, want, "podman run {n}: {}", out.stderr);
    }
}
