//! The search index: every repository, tag and manifest of the storage with its size, platforms,
//! creation time, labels and annotations, held in memory by each instance.
//!
//! The storage is the source of truth; the index is a view of it, built by a full scan when the
//! instance starts, kept current by following the storage's change events (so a push through any
//! instance shows up here within a poll interval), and rebuilt every few minutes to heal from
//! lost events. Not for: ranking or full-text search of layer contents.
//!
//! The query language is in [`query`]; `GET /v2/_berth/search` (the HTTP layer's `http::search`)
//! answers with JSON over this index.

pub mod query;
pub mod scan;

mod follow;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::paths;
use crate::storage::{Storage, StorageError};

pub use query::{Position, Query, QueryError};
pub use scan::{ManifestSummary, Repository};

/// How often the whole storage is rescanned, to heal from lost events.
const FULL_RESCAN: Duration = Duration::from_secs(300);
/// Results per page when `n` is not given.
pub const DEFAULT_PAGE: usize = 50;
/// The largest page a client may ask for.
pub const MAX_PAGE: usize = 1000;

/// A failure while reading the storage into the index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A storage call failed.
    #[error("search index: {doing} {key}: {source}")]
    Storage {
        /// What was being done.
        doing: &'static str,
        /// The key it was done to.
        key: String,
        /// The storage's error.
        #[source]
        source: StorageError,
    },
}

impl SearchError {
    fn storage(doing: &'static str, key: &str, source: StorageError) -> Self {
        SearchError::Storage {
            doing,
            key: key.to_string(),
            source,
        }
    }
}

/// One search result: a tag (or an untagged manifest) of a repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    /// The repository.
    pub repository: String,
    /// The tag; `null` for a manifest no tag points at.
    pub tag: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Config plus layers, or the children's total for an index.
    pub size: u64,
    /// `os/arch[/variant]` values.
    pub platforms: Vec<String>,
    /// The image's creation time, as its config says.
    pub created: Option<String>,
    /// The image config's labels.
    pub labels: BTreeMap<String, String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// Number of layers.
    pub layers: usize,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The results on this page, in order.
    pub hits: Vec<Hit>,
    /// How many results match in all.
    pub total: usize,
    /// The cursor of the next page, when there is one.
    pub next: Option<Position>,
}

/// A repository's line in the repository list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLine {
    /// Its name.
    pub name: String,
    /// Number of tags.
    pub tags: usize,
    /// Number of manifests.
    pub manifests: usize,
    /// Total size of its distinct blobs.
    pub size: u64,
}

/// One instance's in-memory index.
#[derive(Default)]
pub struct Index {
    repos: RwLock<BTreeMap<String, Arc<Repository>>>,
    cache: scan::ParseCache,
    /// Serialises scans, so an older read of a repository never overwrites a newer one.
    follower: tokio::sync::Mutex<follow::Follower>,
    ready: AtomicBool,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Whether the first full scan has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Rebuilds the whole index from the storage: every repository of the catalog.
    pub async fn rebuild(&self, storage: &Storage) -> Result<(), SearchError> {
        let _guard = self.follower.lock().await;
        self.rebuild_locked(storage).await
    }

    async fn rebuild_locked(&self, storage: &Storage) -> Result<(), SearchError> {
        let markers = storage
            .list(paths::CATALOG)
            .await
            .map_err(|source| SearchError::storage("list", paths::CATALOG, source))?;
        let names: BTreeSet<String> = markers
            .iter()
            .filter_map(|m| paths::catalog_name(&m.key))
            .map(str::to_string)
            .collect();
        let mut fresh = BTreeMap::new();
        for name in &names {
            let prev = self.repository(name);
            if let Some(r) =
                scan::scan_repository(storage, &self.cache, name, prev.as_deref()).await?
            {
                fresh.insert(name.clone(), Arc::new(r));
            }
        }
        let keep: BTreeSet<String> = fresh
            .values()
            .flat_map(|r| r.manifests.keys())
            .filter_map(|d| scan::digest_hex(d).map(str::to_string))
            .collect();
        *self.repos.write().expect("index lock") = fresh;
        self.cache.retain(&keep);
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Rereads one repository from the storage (after an event named it).
    pub async fn rescan_repository(
        &self,
        storage: &Storage,
        name: &str,
    ) -> Result<(), SearchError> {
        let _guard = self.follower.lock().await;
        self.rescan_locked(storage, name).await
    }

    async fn rescan_locked(&self, storage: &Storage, name: &str) -> Result<(), SearchError> {
        let prev = self.repository(name);
        let r = scan::scan_repository(storage, &self.cache, name, prev.as_deref()).await?;
        let mut repos = self.repos.write().expect("index lock");
        match r {
            Some(r) => repos.insert(name.to_string(), Arc::new(r)),
            None => repos.remove(name),
        };
        Ok(())
    }

    /// Applies the change events that appeared since the last call; returns how many.
    pub async fn follow_events(&self, storage: &Storage) -> Result<usize, SearchError> {
        let mut follower = self.follower.lock().await;
        let batch = follower.poll(storage).await?;
        for repo in &batch.repos {
            // Names come from other instances' events: never let one build a key outside the
            // repository's prefix.
            if crate::names::check_name(repo).is_err() {
                tracing::warn!(repo, "search: change event names an invalid repository");
                continue;
            }
            self.rescan_locked(storage, repo).await?;
        }
        let n = batch.keys.len();
        follower.commit(batch.keys);
        Ok(n)
    }

    /// Marks the events present now as applied and scans everything (what an instance does
    /// when it starts).
    pub async fn start(&self, storage: &Storage) -> Result<(), SearchError> {
        let mut follower = self.follower.lock().await;
        follower.skip_existing(storage).await?;
        self.rebuild_locked(storage).await
    }

    /// One repository's current view.
    pub fn repository(&self, name: &str) -> Option<Arc<Repository>> {
        self.repos.read().expect("index lock").get(name).cloned()
    }

    /// Every repository with its tag count and size, by name.
    pub fn repositories(&self, visible: &dyn Fn(&str) -> bool) -> Vec<RepoLine> {
        self.repos
            .read()
            .expect("index lock")
            .values()
            .filter(|r| visible(&r.name))
            .map(|r| RepoLine {
                name: r.name.clone(),
                tags: r.tags.len(),
                manifests: r.manifests.len(),
                size: r.size,
            })
            .collect()
    }

    /// The results of a query after a position, at most `n` of them.
    pub fn search(
        &self,
        q: &Query,
        after: Option<&Position>,
        n: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> Page {
        let repos: Vec<Arc<Repository>> = self
            .repos
            .read()
            .expect("index lock")
            .values()
            .filter(|r| visible(&r.name))
            .cloned()
            .collect();
        let mut page = Page {
            hits: Vec::new(),
            total: 0,
            next: None,
        };
        let mut last: Option<Position> = None;
        for r in &repos {
            let tagged = r.tags.iter().filter_map(|(t, d)| {
                r.manifests
                    .get(d)
                    .map(|m| (Some(t.as_str()), m, false, t.as_str()))
            });
            let untagged = r
                .untagged()
                .into_iter()
                .map(|m| (None, m, true, m.digest.as_str()));
            for (tag, m, is_untagged, key) in tagged.chain(untagged) {
                if !q.matches(&r.name, tag, m) {
                    continue;
                }
                page.total += 1;
                let pos = || Position {
                    repo: r.name.clone(),
                    untagged: is_untagged,
                    key: key.to_string(),
                };
                if after.is_some_and(|a| pos() <= *a) {
                    continue;
                }
                if page.hits.len() < n {
                    page.hits.push(hit(&r.name, tag, m));
                    last = Some(pos());
                } else if page.next.is_none() {
                    page.next = last.clone();
                }
            }
        }
        page
    }
}

fn hit(repo: &str, tag: Option<&str>, m: &ManifestSummary) -> Hit {
    Hit {
        repository: repo.to_string(),
        tag: tag.map(str::to_string),
        digest: m.digest.clone(),
        media_type: m.media_type.clone(),
        size: m.size,
        platforms: m.platforms.clone(),
        created: m.created.clone(),
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
        layers: m.layers,
    }
}

/// Builds the index from the storage, then follows its change events every `poll`, and rescans
/// everything every few minutes. The task ends when the index is dropped.
pub fn spawn(index: Arc<Index>, storage: Storage, poll: Duration) {
    let weak = Arc::downgrade(&index);
    drop(index);
    tokio::spawn(run(weak, storage, poll));
}

async fn run(index: Weak<Index>, storage: Storage, poll: Duration) {
    let poll = poll.max(Duration::from_millis(1));
    let mut started = false;
    let mut last_full = Instant::now();
    loop {
        let Some(ix) = index.upgrade() else {
            return;
        };
        let res = if !started {
            ix.start(&storage).await.map(|()| 0)
        } else if last_full.elapsed() >= FULL_RESCAN {
            ix.rebuild(&storage).await.map(|()| 0)
        } else {
            ix.follow_events(&storage).await
        };
        match res {
            Ok(_) if !started => {
                started = true;
                last_full = Instant::now();
            }
            Ok(_) => {
                if last_full.elapsed() >= FULL_RESCAN {
                    last_full = Instant::now();
                }
            }
            Err(e) => tracing::warn!(error = %e, "search index update failed; retrying"),
        }
        drop(ix);
        tokio::time::sleep(poll).await;
    }
}
