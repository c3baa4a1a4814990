//! Following the storage's change events (protocol 4 of the registry): every poll re-lists
//! `events/` from 10 seconds before the newest key seen — another instance's event may land
//! late, with an older key — skips keys already applied, and names the repositories to rescan.

use std::collections::BTreeSet;
use std::time::Duration;

use super::SearchError;
use crate::paths::{self, Event};
use crate::storage::Storage;

/// How far back each poll re-lists, to catch events whose keys sort before the newest seen.
const LOOKBACK: Duration = Duration::from_secs(10);

/// The follower's position in the event stream.
#[derive(Debug, Default)]
pub(crate) struct Follower {
    /// Event keys already applied within the look-back window.
    seen: BTreeSet<String>,
    /// Time (unix nanos) of the newest key seen.
    newest: Option<u128>,
}

/// New events found by one poll: their keys and the repositories they name.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Keys to mark seen once the repositories are rescanned.
    pub keys: Vec<String>,
    /// Repositories to rescan.
    pub repos: BTreeSet<String>,
}

impl Follower {
    /// Marks every event present now as seen, without applying it (a full scan that starts
    /// after this call covers them).
    pub async fn skip_existing(&mut self, storage: &Storage) -> Result<(), SearchError> {
        let batch = self.poll(storage).await?;
        self.commit(batch.keys);
        Ok(())
    }

    /// Lists the events not yet applied.
    pub async fn poll(&self, storage: &Storage) -> Result<Batch, SearchError> {
        let from = self.newest.map(|t| {
            let t = t.saturating_sub(LOOKBACK.as_nanos());
            format!("{}/{t:020}", paths::EVENTS)
        });
        let listed = storage
            .list_after(paths::EVENTS, from.as_deref())
            .await
            .map_err(|source| SearchError::storage("list", paths::EVENTS, source))?;
        let mut batch = Batch::default();
        for obj in listed {
            if self.seen.contains(&obj.key) || paths::event_time(&obj.key).is_none() {
                continue;
            }
            let body = storage
                .get(&obj.key)
                .await
                .map_err(|source| SearchError::storage("read", &obj.key, source))?;
            // An event that vanished (expired by GC) or does not parse still counts as seen.
            match body.map(|b| serde_json::from_slice::<Event>(&b)) {
                Some(Ok(e)) => {
                    batch.repos.insert(event_repo(&e).to_string());
                }
                Some(Err(e)) => {
                    tracing::warn!(key = obj.key, error = %e, "search: unreadable change event");
                }
                None => {}
            }
            batch.keys.push(obj.key);
        }
        Ok(batch)
    }

    /// Records keys as applied and forgets those that fell out of the look-back window.
    pub fn commit(&mut self, keys: Vec<String>) {
        for k in keys {
            if let Some(t) = paths::event_time(&k) {
                self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
            }
            self.seen.insert(k);
        }
        if let Some(n) = self.newest {
            let floor = n.saturating_sub(LOOKBACK.as_nanos());
            self.seen
                .retain(|k| paths::event_time(k).is_some_and(|t| t >= floor));
        }
    }
}

/// The repository an event is about.
fn event_repo(e: &Event) -> &str {
    match e {
        Event::ManifestPut { repo, .. }
        | Event::ManifestDeleted { repo, .. }
        | Event::TagDeleted { repo, .. } => repo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn put_event(repo: &str) -> Event {
        Event::ManifestPut {
            repo: repo.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            tag: None,
        }
    }

    async fn write(storage: &Storage, key: &str, e: &Event) {
        storage
            .put(key, Bytes::from(serde_json::to_vec(e).unwrap()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn events_are_applied_once_and_late_ones_within_the_window_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let now = 1_000_000_000_000_000_000u128;
        write(
            &storage,
            "events/00000000000000000001-old",
            &put_event("before"),
        )
        .await;
        let mut f = Follower::default();
        f.skip_existing(&storage).await.unwrap();
        assert!(f.poll(&storage).await.unwrap().keys.is_empty());

        write(
            &storage,
            &format!("events/{now:020}-a"),
            &put_event("x/one"),
        )
        .await;
        write(
            &storage,
            &format!("events/{:020}-b", now + 1),
            &put_event("x/two"),
        )
        .await;
        let b = f.poll(&storage).await.unwrap();
        assert_eq!(b.keys.len(), 2);
        assert_eq!(b.repos.iter().collect::<Vec<_>>(), ["x/one", "x/two"]);
        // Not committed (say the rescan failed): the next poll offers them again.
        let b = f.poll(&storage).await.unwrap();
        assert_eq!(b.keys.len(), 2);
        f.commit(b.keys);
        assert!(f.poll(&storage).await.unwrap().keys.is_empty());

        // Another instance's event lands late with an older key, inside the look-back window.
        let late = now - 5_000_000_000;
        write(
            &storage,
            &format!("events/{late:020}-c"),
            &put_event("x/late"),
        )
        .await;
        // One older than the window is never seen (the periodic rebuild covers it).
        let ancient = now - 20_000_000_000;
        write(
            &storage,
            &format!("events/{ancient:020}-d"),
            &put_event("x/ancient"),
        )
        .await;
        let b = f.poll(&storage).await.unwrap();
        assert_eq!(b.repos.iter().collect::<Vec<_>>(), ["x/late"]);
        f.commit(b.keys);
        assert!(f.poll(&storage).await.unwrap().keys.is_empty());

        // Unreadable events count as seen but name nothing.
        storage
            .put(
                &format!("events/{:020}-e", now + 2),
                Bytes::from_static(b"junk"),
            )
            .await
            .unwrap();
        let b = f.poll(&storage).await.unwrap();
        assert_eq!(b.keys.len(), 1);
        assert!(b.repos.is_empty());
    }
}
