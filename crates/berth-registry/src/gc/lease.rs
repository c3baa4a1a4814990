//! Sweep leases: how a collector tells manifest PUTs that it is deleting, and how a PUT waits.
//!
//! A lease is the object `gc/sweeping/<id>`, rewritten every [`HEARTBEAT`] while its collector
//! sweeps. Other instances treat a lease whose modification time is older than [`LEASE_STALE`] as
//! the remains of a dead collector. The collector *fences itself*: once it has gone [`FENCE`]
//! without a successful renewal (a slow storage, a paused process), it never deletes again in that
//! run, so by the time anyone ignores its lease it has stopped. The margin between [`FENCE`] and
//! [`LEASE_STALE`] absorbs clock skew between instances and the storage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Clock, GcError, StorageContext};
use crate::paths;
use crate::storage::{Storage, StorageError};

/// A lease not renewed for this long belongs to a collector that died; it blocks nobody and the
/// next collection removes it.
pub const LEASE_STALE: Duration = Duration::from_secs(60);
/// How often a sweeping collector renews its lease.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(5);
/// A collector whose lease has gone unrenewed this long stops deleting for good.
pub(super) const FENCE: Duration = Duration::from_secs(30);
/// The longest a collector holds its lease; the rest of its work waits for the next run. This
/// bounds how long a manifest PUT can wait in [`await_sweeps`].
pub(super) const SWEEP_BUDGET: Duration = Duration::from_secs(120);

/// How long a cancelled collector keeps its lease for deletions in flight to land.
const CANCEL_DRAIN: Duration = Duration::from_secs(2);
/// Longest pause between two polls of [`await_sweeps`].
const POLL_MAX: Duration = Duration::from_millis(200);

/// Waits until every sweep that was running when this was called has finished (its lease is
/// gone or stale). Protocol 3: a manifest PUT calls this after writing its manifest link and
/// before checking that the blobs it references exist.
///
/// Only the leases seen by the first listing are waited for: a lease written after that listing
/// began belongs to a collector whose mark runs after the caller's link was written, so that
/// collector sees the link and keeps everything it references. So a PUT never waits for more than
/// one sweep, however often collectors run.
pub async fn await_sweeps(storage: &Storage) -> Result<(), StorageError> {
    let mut waiting: Option<HashSet<String>> = None;
    let mut pause = Duration::from_millis(10);
    loop {
        let now = SystemTime::now();
        let live: HashSet<String> = storage
            .list(paths::GC_SWEEPING)
            .await?
            .into_iter()
            .filter(|l| now.duration_since(l.modified).unwrap_or(Duration::ZERO) < LEASE_STALE)
            .map(|l| l.key)
            .collect();
        let still: HashSet<String> = match waiting {
            None => live,
            Some(w) => w.intersection(&live).cloned().collect(),
        };
        if still.is_empty() {
            return Ok(());
        }
        waiting = Some(still);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Removes leases left by collectors that died (older than [`LEASE_STALE`] by the storage's
/// clock); returns how many there were.
pub(super) async fn remove_stale(
    storage: &Storage,
    clock: &Clock,
    dry_run: bool,
) -> Result<u64, GcError> {
    let mut n = 0;
    for l in storage
        .list(paths::GC_SWEEPING)
        .await
        .during("listing sweep leases")?
    {
        if clock.is_older(l.modified, LEASE_STALE) {
            if !dry_run {
                storage
                    .delete(&l.key)
                    .await
                    .during("removing a stale sweep lease")?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// What the heartbeat and the sweep share.
struct Health {
    /// When the last successful renewal (or the acquisition) started.
    last_ok: Instant,
    /// Set once a renewal gap reached [`FENCE`]; never cleared.
    lost: bool,
}

impl Health {
    /// Whether the lease may still be relied on at `now`; records a loss for good.
    fn alive(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last_ok) >= FENCE {
            self.lost = true;
        }
        !self.lost
    }
}

/// A held sweep lease, renewed in the background until released or dropped.
pub(super) struct Lease {
    key: String,
    storage: Storage,
    health: Arc<Mutex<Health>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<Notify>,
    acquired: Instant,
    clock: Clock,
    released: bool,
}

impl Lease {
    /// Writes a new lease and starts renewing it. Its modification time, read back, is the
    /// storage's "now" for this run, so object ages are measured on one clock.
    pub(super) async fn acquire(storage: &Storage) -> Result<Lease, GcError> {
        let key = paths::gc_sweeping(&hex::encode(rand::random::<[u8; 8]>()));
        let body = Bytes::from(
            serde_json::json!({
                "started": SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                "pid": std::process::id(),
            })
            .to_string(),
        );
        let start = Instant::now();
        storage
            .put(&key, body.clone())
            .await
            .during("writing the sweep lease")?;
        let info = storage
            .head(&key)
            .await
            .during("reading the sweep lease back")?
            .ok_or_else(|| GcError::LeaseLost {
                key: key.clone(),
                secs: 0,
            })?;
        let health = Arc::new(Mutex::new(Health {
            last_ok: start,
            lost: false,
        }));
        let stop = Arc::new(Notify::new());
        let heartbeat = tokio::spawn(renew(
            storage.clone(),
            key.clone(),
            body,
            Arc::clone(&health),
            Arc::clone(&stop),
        ));
        Ok(Lease {
            key,
            storage: storage.clone(),
            health,
            heartbeat: Some(heartbeat),
            stop,
            acquired: start,
            clock: Clock::at(info.modified, storage.coarse_times()),
            released: false,
        })
    }

    /// The storage's clock as of the acquisition.
    pub(super) fn clock(&self) -> Clock {
        self.clock
    }

    /// Call before every deletion: `Ok(true)` to go on, `Ok(false)` when the sweep has used its
    /// budget (stop quietly; the next run continues), an error when the lease was lost.
    pub(super) fn may_delete(&self) -> Result<bool, GcError> {
        let now = Instant::now();
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if !h.alive(now) {
            return Err(GcError::LeaseLost {
                key: self.key.clone(),
                secs: now.duration_since(h.last_ok).as_secs(),
            });
        }
        Ok(now.duration_since(self.acquired) < SWEEP_BUDGET)
    }

    /// How long the lease has been held.
    pub(super) fn held(&self) -> Duration {
        self.acquired.elapsed()
    }

    /// Stops renewing and removes the lease. The heartbeat is stopped, not aborted, and waited
    /// for: a renewal still in flight would otherwise land after the delete and leave a fresh
    /// lease behind that makes pushes wait until it goes stale.
    pub(super) async fn release(mut self) -> Result<(), GcError> {
        self.released = true;
        stop_and_remove(
            self.storage.clone(),
            self.key.clone(),
            self.stop.clone(),
            self.heartbeat.take(),
        )
        .await
        .during("removing the sweep lease")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Cancelled mid-sweep: remove the lease so pushes need not wait for it to go stale — but
        // only after the deletions that were in flight (a blocking unlink, an S3 request already
        // sent) have had time to land, so none lands after a waiting PUT has checked.
        let (storage, key, stop, heartbeat) = (
            self.storage.clone(),
            self.key.clone(),
            self.stop.clone(),
            self.heartbeat.take(),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(CANCEL_DRAIN).await;
                    if let Err(e) = stop_and_remove(storage, key.clone(), stop, heartbeat).await {
                        tracing::warn!(lease = %key, error = %e, "could not remove sweep lease");
                    }
                });
            }
            Err(_) => {
                if let Some(h) = heartbeat {
                    h.abort();
                }
            }
        }
    }
}

/// Stops the heartbeat, waits until it has finished any renewal, then deletes the lease.
async fn stop_and_remove(
    storage: Storage,
    key: String,
    stop: Arc<Notify>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
) -> Result<(), StorageError> {
    stop.notify_one();
    if let Some(h) = heartbeat {
        let _ = h.await;
    }
    storage.delete(&key).await
}

/// The heartbeat: rewrites the lease every [`HEARTBEAT`] until a renewal gap reaches [`FENCE`].
async fn renew(
    storage: Storage,
    key: String,
    body: Bytes,
    health: Arc<Mutex<Health>>,
    stop: Arc<Notify>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.notified() => return,
        }
        let start = Instant::now();
        if !health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .alive(start)
        {
            tracing::warn!(lease = %key, "sweep lease lapsed; this collector deletes nothing more");
            return;
        }
        match storage.put(&key, body.clone()).await {
            Ok(()) => {
                let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
                if !h.lost {
                    h.last_ok = start;
                }
            }
            Err(e) => tracing::warn!(lease = %key, error = %e, "could not renew sweep lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_of_fence_loses_the_lease_for_good() {
        let t0 = Instant::now();
        let mut h = Health {
            last_ok: t0,
            lost: false,
        };
        assert!(h.alive(t0 + Duration::from_secs(1)));
        assert!(!h.alive(t0 + FENCE));
        h.last_ok = t0 + FENCE;
        assert!(!h.alive(t0 + FENCE + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn a_held_lease_is_renewed_and_removed_on_release_or_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path()).unwrap();
        let lease = Lease::acquire(&s).await.unwrap();
        let first = s.list(paths::GC_SWEEPING).await.unwrap();
        assert_eq!(first.len(), 1);
        tokio::time::sleep(HEARTBEAT + Duration::from_millis(700)).await;
        let later = s.head(&first[0].key).await.unwrap().unwrap();
        assert!(later.modified > first[0].modified, "renewed");
        assert!(lease.may_delete().unwrap());
        lease.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(s.list(paths::GC_SWEEPING).await.unwrap().is_empty());

        let lease = Lease::acquire(&s).await.unwrap();
        drop(lease);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            s.list(paths::GC_SWEEPING).await.unwrap().len(),
            1,
            "drains first"
        );
        tokio::time::sleep(CANCEL_DRAIN).await;
        assert!(
            s.list(paths::GC_SWEEPING).await.unwrap().is_empty(),
            "a cancelled collection removes its lease"
        );
    }
}
