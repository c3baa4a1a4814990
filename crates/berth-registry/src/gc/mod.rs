//! Online garbage collection: unreferenced blobs, their links, abandoned uploads, old events and
//! (optionally) untagged manifests are removed while pushes go on, from any number of registry
//! instances and any number of collectors sharing one storage — local disk or S3, where there is
//! no rename, no lock and no atomic multi-object operation, only strongly consistent reads and
//! lists and a conditional put-if-absent.
//!
//! # The invariant
//!
//! **Every manifest a PUT answered 201 for stays fully pullable for as long as its manifest link
//! exists**: the collector never deletes a blob that a manifest linked in any repository
//! references (its config, layers, child manifests, or the manifest's own bytes).
//!
//! A blob is deleted only when, all at once:
//! 1. no manifest link in any repository names it or a manifest referencing it, in a mark made
//!    *after* the collector's lease `gc/sweeping/<id>` became visible;
//! 2. its bytes are older than `grace_secs` (looked at again right before the delete);
//! 3. no blob link to it in any repository is younger than `grace_secs`.
//!
//! # Why concurrent pushes are safe (protocol 2 and 3 together)
//!
//! A manifest PUT writes the manifest bytes, then its manifest link (time `t1`), then calls
//! [`await_sweeps`] (which first lists leases at `t2 > t1`), then checks that every referenced
//! blob (bytes, not only the link) and child manifest exists (`t3 > t2`), and only then answers.
//! Take any collector C that deletes a blob B the manifest references:
//! - If C's lease was visible at `t2`, the PUT waits until C released it (or C's lease went
//!   stale, by which time C has fenced itself, see below). C deletes only while holding the
//!   lease, so B was already gone at `t3`: the PUT answers 400 `MANIFEST_BLOB_UNKNOWN` and the
//!   client pushes B again. Nothing that got 201 is lost.
//! - If C's lease was not visible at `t2`, C wrote it after `t1`; C's mark lists the
//!   repositories after its lease is written, so it sees the manifest link written at `t1`, and
//!   rule 1 keeps B.
//!
//! The storage's strong read-after-write and list-after-write consistency (local disk; S3 since
//! 2020; moto) is the only thing this needs: no rename, no lock, no conditional write. The mark is
//! rooted in the listing of `repositories/`, not in the catalog: a repository's catalog marker is
//! written at the end of its first PUT, after the manifest link.
//!
//! [`await_sweeps`] waits only for the leases its first listing saw — any later lease belongs to
//! a collector that sees the caller's link — so a PUT waits for at most one sweep, and a sweep
//! holds its lease for at most two minutes (its remaining work waits for the next run).
//!
//! # Blob uploads, HEAD-then-skip and the grace period
//!
//! A blob pushed but not yet referenced (the client is about to PUT its manifest) is protected
//! only by its age: its bytes or its link are younger than `grace_secs`. A client that HEADs an
//! existing blob and skips the upload makes [`refresh_link`] rewrite the link when it is older
//! than half the grace, so the link is young again. A collector that decided just before such a
//! refresh (or just before a re-upload wrote a new link beside old bytes) may still delete the
//! bytes; then the manifest PUT's existence check fails with 400 and the client pushes the blob
//! again — an error, never a lost blob. With `grace_secs = 0` every unreferenced blob is fair
//! game at once, which is only sensible in tests.
//!
//! **A repository link alone does not keep a blob alive**: a blob pushed but never referenced by
//! a manifest lives `grace_secs` after its last upload or HEAD, then goes with all its links. Nor
//! does it keep a repository's access: a blob link older than `grace_secs` in a repository none
//! of whose manifests reference the blob is removed even when other repositories keep the blob.
//! (Same argument as above: a PUT in that repository either has its link seen by the mark, which
//! then keeps the blob link, or waited for the sweep and finds the link gone.)
//!
//! # Referrers and untagged manifests
//!
//! A referrer's `subject` is not a reference: a signature does not keep the image it signs alive.
//! With `delete_untagged`, a manifest is kept when a tag names it, when a kept index lists it,
//! when it is a referrer of a kept manifest (of the same repository), or when its link is younger
//! than `grace_secs` and at least 10 minutes (a manifest PUT in flight is untagged until its tag
//! is written, and that window includes its wait for a sweep; every PUT rewrites its manifest
//! link, so the age counts from the latest PUT). Everything else loses its referrer
//! entry, then its link, and publishes [`Event::ManifestDeleted`](crate::paths::Event). A
//! repository with a tag that cannot be read keeps all its manifests. The blobs of a manifest
//! deleted this way go in a later run: this run's mark still counted them.
//!
//! # Leases, crashes and clocks
//!
//! A collector renews its lease every 5 s. Once it has gone 30 s without a successful renewal
//! (slow storage, a paused process) it never deletes again in that run. Leases older than 60 s
//! are ignored by [`await_sweeps`] and removed by the next collection, so a collector killed with
//! SIGKILL blocks manifest PUTs for at most a minute. A collection cancelled in-process keeps its
//! lease two more seconds, for deletions already in flight to land before any waiting PUT
//! checks. A kill at any other moment leaves only states the next run handles: bytes deleted
//! before their links leave dangling links (removed once old, by a later run, after checking
//! again that the bytes are missing); a manifest's referrer entry is removed before its link.
//!
//! Ages are measured against the storage's own clock: the lease's modification time, read back
//! after writing it (on S3, with one extra second of slack for Last-Modified's whole seconds).
//! The lease timeouts assume clocks of instances and storage agree within 30 s.
//!
//! # Cost
//!
//! The marked set is a hash set of 32-byte digests; manifests are read once per run and cached by
//! digest, and a first mark before the lease warms the cache, so the mark under the lease reads
//! only manifests pushed meanwhile.

mod lease;
mod mark;
mod sweep;
mod tidy;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;

pub use lease::{LEASE_STALE, await_sweeps};

use crate::config::GcConfig;
use crate::paths;
use crate::storage::{ObjectInfo, Storage, StorageError};

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A storage operation failed.
    #[error("garbage collection: {during}: {source}")]
    Storage {
        /// What the collector was doing.
        during: &'static str,
        /// The storage's error (naming the key).
        #[source]
        source: Box<StorageError>,
    },
    /// The sweep lease could not be renewed in time; the collector stopped deleting so that a
    /// push that no longer waits for it cannot lose a blob.
    #[error(
        "garbage collection: sweep lease {key} was not renewed for {secs} s; stopped deleting (what was deleted before is fine)"
    )]
    LeaseLost {
        /// The lease's key.
        key: String,
        /// Seconds since its last renewal.
        secs: u64,
    },
}

/// Adds what the collector was doing to a storage error.
trait StorageContext<T> {
    fn during(self, what: &'static str) -> Result<T, GcError>;
}

impl<T> StorageContext<T> for Result<T, StorageError> {
    fn during(self, what: &'static str) -> Result<T, GcError> {
        self.map_err(|source| GcError::Storage {
            during: what,
            source: Box::new(source),
        })
    }
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    /// Nothing was deleted; the counts say what would have been.
    pub dry_run: bool,
    /// Repositories seen.
    pub repositories: u64,
    /// Manifest links seen (across repositories).
    pub manifests: u64,
    /// Blobs in the storage.
    pub blobs_scanned: u64,
    /// Distinct blobs referenced by manifests (manifests included).
    pub blobs_referenced: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes freed by deleting blobs.
    pub bytes_freed: u64,
    /// Blob links removed (of deleted or missing blobs, or unreferenced in their repository).
    pub links_removed: u64,
    /// Untagged manifests removed (with `delete_untagged`).
    pub manifests_removed: u64,
    /// Abandoned upload sessions removed.
    pub uploads_removed: u64,
    /// Stale temporary files removed (local disk).
    pub temp_files_removed: u64,
    /// Old change events removed.
    pub events_removed: u64,
    /// Leases of dead collectors removed.
    pub stale_leases_removed: u64,
    /// The sweep stopped at its time budget; the next run continues.
    pub incomplete: bool,
    /// How long the sweep lease was held (manifest PUTs wait at most this), in milliseconds.
    pub lease_ms: u64,
    /// How long the whole collection took, in milliseconds.
    pub duration_ms: u64,
}

/// "Now" on the storage's clock, and how old things are against it.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: SystemTime,
    slack: Duration,
}

impl Clock {
    /// A clock reading; `coarse` adds a second of slack for stores with whole-second times.
    fn at(now: SystemTime, coarse: bool) -> Clock {
        Clock {
            now,
            slack: if coarse {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            },
        }
    }

    /// This machine's clock, for a run that writes nothing to read the storage's from.
    fn local(storage: &Storage) -> Clock {
        Clock::at(SystemTime::now(), storage.coarse_times())
    }

    /// Whether something last written at `t` is older than `limit`.
    fn is_older(&self, t: SystemTime, limit: Duration) -> bool {
        self.now
            .duration_since(t)
            .is_ok_and(|age| age > limit + self.slack)
    }
}

/// Runs one collection; with `dry_run`, deletes nothing (and takes no lease) but reports what it
/// would delete. See the module documentation for why this is safe beside concurrent pushes.
pub async fn collect(
    storage: &Storage,
    config: &GcConfig,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let started = Instant::now();
    let grace = Duration::from_secs(config.grace_secs);
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };

    // A first mark, before the lease: it reads (and caches) nearly every manifest, so that the
    // mark that counts, under the lease, is short. Blobs listed now and not later are only ever
    // kept, which is safe.
    let mut cache = mark::Cache::default();
    let first = mark::Snapshot::take(storage).await?;
    cache.load(storage, &first).await?;
    let blobs = storage.list(paths::BLOBS).await.during("listing blobs")?;

    let lease = if dry_run {
        None
    } else {
        Some(lease::Lease::acquire(storage).await?)
    };
    let clock = lease
        .as_ref()
        .map(|l| l.clock())
        .unwrap_or_else(|| Clock::local(storage));
    let swept = async {
        let snap = match &lease {
            // Protocol 3: the mark that decides is made after the lease is visible. It is cut
            // off at the sweep budget (it deletes nothing, so cancelling it is harmless); every
            // deletion checks the budget itself. So no lease is held much longer than the
            // budget, which bounds a PUT's wait (the untagged-manifest rule relies on that).
            Some(_) => {
                let mark = async {
                    let snap = mark::Snapshot::take(storage).await?;
                    cache.load(storage, &snap).await?;
                    Ok::<_, GcError>(snap)
                };
                match tokio::time::timeout(lease::SWEEP_BUDGET, mark).await {
                    Ok(snap) => snap?,
                    Err(_) => return Ok(false),
                }
            }
            None => first,
        };
        let referenced = snap.referenced(&cache);
        let repo_refs = snap.referenced_by_repo(&cache);
        report.repositories = snap.repos.len() as u64;
        report.manifests = snap.manifests.len() as u64;
        report.blobs_referenced = referenced.len() as u64;
        let sweep = sweep::Sweep {
            storage,
            lease: lease.as_ref(),
            clock,
            grace,
        };
        let mut complete = sweep
            .blobs(&blobs, &snap, &referenced, &repo_refs, &mut report)
            .await?;
        if complete && config.delete_untagged {
            complete = sweep.untagged(&snap, &cache, &mut report).await?;
        }
        Ok::<bool, GcError>(complete)
    };
    let swept = swept.await;
    if let Some(l) = lease {
        report.lease_ms = l.held().as_millis() as u64;
        l.release().await?;
    }
    report.incomplete = !swept?;

    let ttl = Duration::from_secs(config.upload_ttl_secs);
    report.uploads_removed = tidy::uploads(storage, &clock, ttl, dry_run).await?;
    report.temp_files_removed = tidy::temp_files(storage, ttl, dry_run).await?;
    report.events_removed = tidy::events(storage, dry_run).await?;
    report.stale_leases_removed = lease::remove_stale(storage, &clock, dry_run).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        storage = storage.describe(),
        dry_run,
        blobs_deleted = report.blobs_deleted,
        bytes_freed = report.bytes_freed,
        links_removed = report.links_removed,
        manifests_removed = report.manifests_removed,
        uploads_removed = report.uploads_removed,
        events_removed = report.events_removed,
        incomplete = report.incomplete,
        lease_ms = report.lease_ms,
        duration_ms = report.duration_ms,
        "garbage collection finished"
    );
    Ok(report)
}

/// Starts collecting every `interval_secs` (± 10 % at random, so instances started together do
/// not sweep in step) in a background task; nothing when the interval is 0. Any number of
/// instances may do this on one storage. Must be called inside a tokio runtime.
pub fn spawn_periodic(storage: Storage, config: GcConfig) {
    if config.interval_secs == 0 {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("periodic garbage collection needs a tokio runtime; not started");
        return;
    };
    rt.spawn(async move {
        let base = config.interval_secs.saturating_mul(1000);
        loop {
            let jitter = rand::random::<u64>() % (base / 5 + 1);
            let pause = base - base / 10 + jitter;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if let Err(e) = collect(&storage, &config, false).await {
                tracing::warn!(storage = storage.describe(), error = %e, "garbage collection failed");
            }
        }
    });
}

/// Keeps a blob link young while clients use it: rewrites the (empty) link when it is older than
/// half the grace period, so a blob that clients HEAD and then skip uploading is not collected
/// between their HEAD and their manifest PUT. A cheap no-op otherwise (and with no grace at all).
pub async fn refresh_link(
    storage: &Storage,
    link: &ObjectInfo,
    grace_secs: u64,
) -> Result<(), StorageError> {
    if grace_secs == 0 {
        return Ok(());
    }
    let age = SystemTime::now()
        .duration_since(link.modified)
        .unwrap_or(Duration::ZERO);
    if age < Duration::from_millis(grace_secs.saturating_mul(500)) {
        return Ok(());
    }
    // Local disk: a new mtime on the same file (a link deleted meanwhile stays deleted).
    match storage.touch(&link.key).await {
        Ok(true) => Ok(()),
        Ok(false) => storage.put(&link.key, Bytes::new()).await,
        Err(StorageError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
