//! Housekeeping that needs no lease: abandoned upload sessions, old change events, and what
//! writers that were killed left unfinished (the backend knows where, if anywhere).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::{Clock, GcError, StorageContext};
use crate::paths;
use crate::storage::Storage;

/// Events younger than this are kept (search indexes re-read the last seconds of them).
const EVENT_MAX_AGE: Duration = Duration::from_secs(3600);
/// The newest events are kept whatever their age.
const EVENTS_KEPT: usize = 1000;
/// How many deletions run at once.
const CONCURRENCY: usize = 16;

/// The session id of a key under `uploads/`.
fn upload_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(paths::UPLOADS)?.strip_prefix('/')?;
    let id = rest.split('/').next()?;
    let prefix = paths::upload(id);
    (!id.is_empty() && key.strip_prefix(prefix.as_str())?.starts_with('/')).then_some(id)
}

/// Removes every upload session whose newest object is older than `ttl`: its info first (so
/// the API answers "unknown upload" from then on), then its chunks. Returns how many sessions.
pub(super) async fn uploads(
    storage: &Storage,
    clock: &Clock,
    ttl: Duration,
    dry_run: bool,
) -> Result<u64, GcError> {
    let objects = storage
        .list(paths::UPLOADS)
        .await
        .during("listing upload sessions")?;
    let mut sessions: BTreeMap<String, (SystemTime, Vec<String>)> = BTreeMap::new();
    for o in objects {
        let Some(id) = upload_id(&o.key) else {
            continue;
        };
        let s = sessions
            .entry(id.to_string())
            .or_insert((SystemTime::UNIX_EPOCH, Vec::new()));
        s.0 = s.0.max(o.modified);
        s.1.push(o.key);
    }
    let mut n = 0;
    for (id, (newest, mut keys)) in sessions {
        if !clock.is_older(newest, ttl) {
            continue;
        }
        n += 1;
        if dry_run {
            continue;
        }
        let info = paths::upload_info(&id);
        keys.sort_by_key(|k| *k != info);
        for k in keys {
            storage
                .delete(&k)
                .await
                .during("deleting an abandoned upload")?;
        }
        storage
            .prune(&paths::upload(&id), None)
            .await
            .during("pruning an abandoned upload")?;
    }
    // A backend with directories keeps those of sessions that finished or were removed; drop the
    // empty ones that have not changed for a ttl.
    if !dry_run {
        let cutoff = SystemTime::now().checked_sub(ttl);
        let dirs = storage
            .list_dirs(paths::UPLOADS)
            .await
            .during("listing upload sessions")?;
        for id in dirs {
            storage
                .prune(&paths::upload(&id), cutoff)
                .await
                .during("pruning an upload session")?;
        }
    }
    Ok(n)
}

/// Removes change events older than an hour, keeping the newest [`EVENTS_KEPT`] whatever their
/// age. Event keys carry their time, so no object needs reading.
pub(super) async fn events(storage: &Storage, dry_run: bool) -> Result<u64, GcError> {
    let events = storage
        .list(paths::EVENTS)
        .await
        .during("listing change events")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let cutoff = now.saturating_sub(EVENT_MAX_AGE.as_nanos());
    let old: Vec<String> = events[..events.len().saturating_sub(EVENTS_KEPT)]
        .iter()
        .filter(|e| paths::event_time(&e.key).is_some_and(|t| t < cutoff))
        .map(|e| e.key.clone())
        .collect();
    let n = old.len() as u64;
    if dry_run {
        return Ok(n);
    }
    let mut dels = futures::stream::iter(old)
        .map(|k| async move { storage.delete(&k).await })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = dels.next().await {
        r.during("deleting an old change event")?;
    }
    Ok(n)
}

/// Removes what writers killed mid-write left behind (temporary files on disk) that has not been
/// written to for `ttl`. Nothing on S3, where an unfinished write is invisible.
pub(super) async fn temp_files(
    storage: &Storage,
    ttl: Duration,
    dry_run: bool,
) -> Result<u64, GcError> {
    let Some(cutoff) = SystemTime::now().checked_sub(ttl) else {
        return Ok(0);
    };
    storage
        .sweep_unfinished(cutoff, dry_run)
        .await
        .during("removing stale temporary files")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_come_from_the_layout() {
        assert_eq!(upload_id(&paths::upload_info("abc")), Some("abc"));
        assert_eq!(upload_id(&paths::upload_chunk("abc", 7)), Some("abc"));
        assert_eq!(upload_id("uploads/"), None);
        assert_eq!(upload_id("uploadsx/a/info"), None);
        assert_eq!(upload_id(&paths::upload("solo")), None);
    }
}
