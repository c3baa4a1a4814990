//! Start-up cost of `/bin/true`, phase by phase: plan, clone+setup+exec (spawn returns after exec),
//! wait, cgroup destroy. Prints medians in µs (run with --nocapture to see them).

mod common;

use std::time::Instant;

use berth_runtime::{ExitStatus, LaunchConfig};
use common::*;

fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "e2e tier: needs root")]
fn spawn_true_timings() {
    let r = Rootfs::new();
    let rounds = 40;
    let (mut spawn_us, mut wait_us, mut destroy_us, mut total_us) =
        (vec![], vec![], vec![], vec![]);
    let seccomp = berth_runtime::seccomp::default_profile();
    for i in 0..rounds {
        let id = unique_id(&format!("bench{i}"));
        let mut s = spec(&r.path(), &["/bin/true"]);
        s.linux_mut()
            .as_mut()
            .unwrap()
            .set_seccomp(Some(seccomp.clone()));
        let prog = berth_runtime::seccomp::Program::compile(&seccomp).unwrap();
        let t0 = Instant::now();
        let mut child = berth_runtime::spawn(LaunchConfig {
            id: &id,
            spec: &s,
            overlay: None,
            stdio: berth_runtime::Stdio::Inherit,
            seccomp: Some(&prog),
            die_with_parent: false,
            signals_blocked: false,
        })
        .unwrap();
        let t1 = Instant::now();
        assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
        let t2 = Instant::now();
        let cg = child.into_cgroup();
        cg.destroy().unwrap();
        let t3 = Instant::now();
        assert_no_cgroup(&id);
        spawn_us.push((t1 - t0).as_micros());
        wait_us.push((t2 - t1).as_micros());
        destroy_us.push((t3 - t2).as_micros());
        total_us.push((t3 - t0).as_micros());
    }
    // Planning alone (no cgroup, no clone): a dry run of the same spec.
    let s = spec(&r.path(), &["/bin/true"]);
    let mut plan_us = vec![];
    let mut cg_create_us = vec![];
    let resources = s.linux().as_ref().and_then(|l| l.resources().as_ref());
    for i in 0..rounds {
        let t = Instant::now();
        berth_runtime::plan_only(&s).unwrap();
        plan_us.push(t.elapsed().as_micros());
        let path = format!("/berth/{}", unique_id(&format!("cg{i}")));
        let t = Instant::now();
        let cg = berth_runtime::cgroups::Cgroup::create(&path, resources).unwrap();
        cg_create_us.push(t.elapsed().as_micros());
        cg.destroy().unwrap();
    }
    // The same start split at the "ready" record: clone + setup, then start → execve → exit.
    let (mut setup_us, mut start_us) = (vec![], vec![]);
    for i in 0..rounds {
        let id = unique_id(&format!("gate{i}"));
        let fifo = r.dir.path().join(format!("gate{i}.fifo"));
        let t0 = Instant::now();
        let mut child = berth_runtime::create(
            LaunchConfig {
                id: &id,
                spec: &s,
                overlay: None,
                stdio: berth_runtime::Stdio::Inherit,
                seccomp: None,
                die_with_parent: false,
                signals_blocked: false,
            },
            &fifo,
        )
        .unwrap();
        let t1 = Instant::now();
        berth_runtime::start(&fifo).unwrap();
        assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
        let t2 = Instant::now();
        child.into_cgroup().destroy().unwrap();
        setup_us.push((t1 - t0).as_micros());
        start_us.push((t2 - t1).as_micros());
    }
    println!(
        "median µs over {rounds}: cgroup+clone+setup until ready {} | start+execve+exit+reap {}",
        median(&mut setup_us),
        median(&mut start_us)
    );
    println!(
        "median µs over {rounds}: plan {} | cgroup create alone {} | cgroup+clone+setup+exec {} | wait {} | cgroup destroy {} | total {}",
        median(&mut plan_us),
        median(&mut cg_create_us),
        median(&mut spawn_us),
        median(&mut wait_us),
        median(&mut destroy_us),
        median(&mut total_us)
    );
}
