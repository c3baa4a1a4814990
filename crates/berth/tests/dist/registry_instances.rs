//! Two `berth registry serve` processes on one storage (a moto bucket, and separately one
//! directory): 50 concurrent pushes whose requests alternate between the instances within each
//! upload, then every image is pulled and verified from both, and the tag lists and catalog are
//! complete on both. Proves that the instances keep no state of their own.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::registry_util::{Api, Image, Registry, S3, Store, random_bytes};

/// Images pushed concurrently.
const IMAGES: usize = 50;
/// Repositories they are spread over (so tags of one repository are written concurrently).
const REPOS: usize = 10;

fn fifty_pushes_across_two_instances(store: &Store) {
    let a = Registry::start(store, &[]);
    let b = Registry::start(store, &[]);
    let api = Api::new();
    // One base layer shared by every image: after the first push of it, the others meet the
    // "blob exists" paths (HEAD 200 in the same repository, bytes already stored in another).
    let base = random_bytes(3000);
    let results: Vec<anyhow::Result<Image>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..IMAGES)
            .map(|i| {
                let api = api.clone();
                let base = base.clone();
                let (x, y) = if i % 2 == 0 {
                    (a.base.as_str(), b.base.as_str())
                } else {
                    (b.base.as_str(), a.base.as_str())
                };
                s.spawn(move || {
                    let layers = vec![base, random_bytes(1000 + i * 37), random_bytes(2048)];
                    api.push_image_across(
                        x,
                        y,
                        &format!("e2e/r{}", i % REPOS),
                        &format!("t{i}"),
                        &layers,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("push thread"))
            .collect()
    });
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(img) => images.push(img),
            Err(e) => failures.push(format!("image {i}: {e:#}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {IMAGES} pushes failed:\n{}\n--- instance A log tail:\n{}\n--- instance B log tail:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&a.log()),
        tail(&b.log())
    );
    for reg in [&a, &b] {
        let mut errors = Vec::new();
        for img in &images {
            if let Err(e) = api.pull_and_verify(&reg.base, img) {
                errors.push(format!("{e:#}"));
            }
        }
        assert!(
            errors.is_empty(),
            "pull from {} failed for {} images:\n{}",
            reg.base,
            errors.len(),
            errors.join("\n")
        );
        let catalog: BTreeSet<String> = api
            .list_all(&reg.base, "/v2/_catalog", "repositories")
            .expect("catalog")
            .into_iter()
            .collect();
        for r in 0..REPOS {
            let repo = format!("e2e/r{r}");
            assert!(
                catalog.contains(&repo),
                "catalog on {} lacks {repo}: {catalog:?}",
                reg.base
            );
            let tags: BTreeSet<String> = api
                .list_all(&reg.base, &format!("/v2/{repo}/tags/list"), "tags")
                .expect("tags list")
                .into_iter()
                .collect();
            let want: BTreeSet<String> = (0..IMAGES)
                .filter(|i| i % REPOS == r)
                .map(|i| format!("t{i}"))
                .collect();
            assert_eq!(tags, want, "tags of {repo} on {}", reg.base);
        }
        assert_eq!(catalog.len(), REPOS, "catalog on {}: {catalog:?}", reg.base);
    }
    store
        .check_blobs()
        .expect("every stored blob matches its name");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn two_instances_on_one_bucket_serve_fifty_concurrent_pushes() {
    let s3 = Arc::new(S3::start());
    let store = Store::s3(&s3, "reg");
    fifty_pushes_across_two_instances(&store);
}

#[test]
fn two_instances_on_one_directory_serve_fifty_concurrent_pushes() {
    let store = Store::local();
    fifty_pushes_across_two_instances(&store);
}
