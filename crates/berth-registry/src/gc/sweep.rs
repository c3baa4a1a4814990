//! The sweep, run under a lease (or, dry, without one): blob bytes nothing references, links to
//! blobs that are gone, and (with `delete_untagged`) manifests nothing reaches.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;

use super::lease::Lease;
use super::mark::{Cache, Hex, Link, Snapshot, digest_hex, parse_hex};
use super::{Clock, GcError, GcReport, StorageContext};
use crate::paths::{self, Event, TagLink};
use crate::storage::{ObjectInfo, Storage};

/// How many deletions (each a head then a delete) run at once.
const DELETE_CONCURRENCY: usize = 16;
/// An untagged manifest is collected only once its link is at least this old, whatever
/// `grace_secs` says: between its link and its tag, a manifest PUT in flight *is* an untagged
/// manifest, and that window includes the PUT's wait for a running sweep (at most
/// [`super::lease::SWEEP_BUDGET`]).
pub(super) const UNTAGGED_MIN_GRACE: Duration = Duration::from_secs(600);

/// What one deletion did.
enum Outcome {
    /// Deleted: bytes freed and links removed with it.
    Deleted { bytes: u64, links: u64 },
    /// Left alone: gone already, or young again when looked at once more.
    Kept,
    /// The sweep's budget is spent; the next run continues.
    Stopped,
}

/// What removing a blob's links came to: stopped by the budget, or the links it removed.
fn links_outcome(removed: u64, stopped: bool) -> Outcome {
    if stopped {
        Outcome::Stopped
    } else {
        Outcome::Deleted {
            bytes: 0,
            links: removed,
        }
    }
}

/// Runs deletions [`DELETE_CONCURRENCY`] at a time, handing each one's freed bytes and removed
/// links to `tally`. Returns false when the budget stopped any of them; the others still run to
/// the end, so no deletion is cut off halfway.
async fn run_deletions<F>(
    deletions: impl IntoIterator<Item = F>,
    mut tally: impl FnMut(u64, u64),
) -> Result<bool, GcError>
where
    F: Future<Output = Result<Outcome, GcError>>,
{
    let mut runs = futures::stream::iter(deletions).buffer_unordered(DELETE_CONCURRENCY);
    let mut complete = true;
    while let Some(r) = runs.next().await {
        match r? {
            Outcome::Deleted { bytes, links } => tally(bytes, links),
            Outcome::Kept => {}
            Outcome::Stopped => complete = false,
        }
    }
    Ok(complete)
}

/// One sweep's context.
pub(super) struct Sweep<'a> {
    /// The storage.
    pub storage: &'a Storage,
    /// The held lease; `None` for a dry run, which deletes nothing.
    pub lease: Option<&'a Lease>,
    /// The storage's clock.
    pub clock: Clock,
    /// `grace_secs`.
    pub grace: Duration,
}

/// The blob hex of a key under `blobs/sha256/`.
pub(super) fn blob_key_hex(key: &str) -> Option<Hex> {
    let s = key.strip_prefix(paths::BLOBS)?.strip_prefix('/')?;
    let hex = parse_hex(s)?;
    (paths::blob(s) == key).then_some(hex)
}

impl Sweep<'_> {
    fn dry(&self) -> bool {
        self.lease.is_none()
    }

    /// The fence before every deletion.
    fn may_delete(&self) -> Result<bool, GcError> {
        match self.lease {
            Some(l) => l.may_delete(),
            None => Ok(true),
        }
    }

    /// Deletes `key` if it still exists and is still older than `age` when looked at now.
    async fn remove_if_old(&self, key: &str, age: Duration) -> Result<Outcome, GcError> {
        if !self.may_delete()? {
            return Ok(Outcome::Stopped);
        }
        let Some(info) = self.storage.head(key).await.during("checking a link")? else {
            return Ok(Outcome::Kept);
        };
        if !self.clock.is_older(info.modified, age) {
            return Ok(Outcome::Kept);
        }
        if !self.dry() {
            self.storage
                .delete(key)
                .await
                .during("deleting an unused link")?;
        }
        Ok(Outcome::Deleted { bytes: 0, links: 1 })
    }

    /// Deletes a blob's bytes if they are still old, then its (still old) links.
    async fn delete_blob(&self, hex: Hex, snap: &Snapshot) -> Result<Outcome, GcError> {
        if !self.may_delete()? {
            return Ok(Outcome::Stopped);
        }
        let hs = hex::encode(hex);
        let key = paths::blob(&hs);
        let Some(info) = self.storage.head(&key).await.during("checking a blob")? else {
            return Ok(Outcome::Kept);
        };
        if !self.clock.is_older(info.modified, self.grace) {
            return Ok(Outcome::Kept);
        }
        if !self.dry() {
            self.storage
                .delete(&key)
                .await
                .during("deleting an unreferenced blob")?;
        }
        // If the budget stops this, the bytes are gone anyway; the leftover links are dangling
        // and go next time.
        let (removed, _stopped) = self.remove_links(hex, snap, |_| false).await?;
        Ok(Outcome::Deleted {
            bytes: info.size,
            links: removed,
        })
    }

    /// Removes the blob's links that `keep` does not spare and that are still older than grace
    /// when looked at again. Returns how many went, and whether the budget stopped it early.
    async fn remove_links(
        &self,
        hex: Hex,
        snap: &Snapshot,
        keep: impl Fn(&Link) -> bool,
    ) -> Result<(u64, bool), GcError> {
        let hs = hex::encode(hex);
        let mut removed = 0;
        for l in snap.links_to(&hex) {
            if keep(l) {
                continue;
            }
            let lk = paths::blob_link(snap.repo(l.repo), &hs);
            match self.remove_if_old(&lk, self.grace).await? {
                Outcome::Deleted { links, .. } => removed += links,
                Outcome::Kept => {}
                Outcome::Stopped => return Ok((removed, true)),
            }
        }
        Ok((removed, false))
    }

    /// Deletes every blob that is unreferenced, older than grace and has no link younger than
    /// grace, with its links; then links whose blob is gone; then old links in repositories that
    /// do not reference their blob. Returns false when it stopped early.
    pub(super) async fn blobs(
        &self,
        blobs: &[ObjectInfo],
        snap: &Snapshot,
        referenced: &HashSet<Hex>,
        repo_refs: &HashSet<(u32, Hex)>,
        report: &mut GcReport,
    ) -> Result<bool, GcError> {
        let mut listed: HashSet<Hex> = HashSet::with_capacity(blobs.len());
        let mut candidates = Vec::new();
        for b in blobs {
            let Some(hex) = blob_key_hex(&b.key) else {
                continue;
            };
            listed.insert(hex);
            report.blobs_scanned += 1;
            if referenced.contains(&hex) || !self.clock.is_older(b.modified, self.grace) {
                continue;
            }
            if snap
                .links_to(&hex)
                .iter()
                .any(|l| !self.clock.is_older(l.modified, self.grace))
            {
                continue;
            }
            candidates.push(hex);
        }
        let doomed: HashSet<Hex> = candidates.iter().copied().collect();
        let deletions = candidates
            .into_iter()
            .map(|hex| self.delete_blob(hex, snap));
        let complete = run_deletions(deletions, |bytes, links| {
            report.blobs_deleted += 1;
            report.bytes_freed += bytes;
            report.links_removed += links;
        })
        .await?;
        if !complete {
            return Ok(false);
        }
        // Links whose blob is missing (a crash between deleting bytes and links, or a link
        // refreshed just after its blob went): they would only ever answer 404.
        let suspects: Vec<Hex> = snap
            .blob_links
            .iter()
            .filter(|(hex, links)| {
                !listed.contains(*hex)
                    && links
                        .iter()
                        .any(|l| self.clock.is_older(l.modified, self.grace))
            })
            .map(|(hex, _)| *hex)
            .collect();
        let deletions = suspects.into_iter().map(|hex| self.dangling(hex, snap));
        let complete = run_deletions(deletions, |_, links| report.links_removed += links).await?;
        if !complete {
            return Ok(false);
        }
        // Links of blobs that stay, in repositories none of whose manifests reference them.
        let strays: Vec<Hex> = snap
            .blob_links
            .iter()
            .filter(|(hex, links)| {
                listed.contains(*hex)
                    && !doomed.contains(*hex)
                    && links.iter().any(|l| {
                        !repo_refs.contains(&(l.repo, **hex))
                            && self.clock.is_older(l.modified, self.grace)
                    })
            })
            .map(|(hex, _)| *hex)
            .collect();
        let deletions = strays
            .into_iter()
            .map(|hex| self.strays(hex, snap, repo_refs));
        run_deletions(deletions, |_, links| report.links_removed += links).await
    }

    /// Removes a kept blob's old links in repositories whose manifests do not reference it: a
    /// link alone keeps a repository's access to a blob for `grace_secs`, no longer.
    async fn strays(
        &self,
        hex: Hex,
        snap: &Snapshot,
        repo_refs: &HashSet<(u32, Hex)>,
    ) -> Result<Outcome, GcError> {
        let (removed, stopped) = self
            .remove_links(hex, snap, |l| {
                repo_refs.contains(&(l.repo, hex)) || !self.clock.is_older(l.modified, self.grace)
            })
            .await?;
        Ok(links_outcome(removed, stopped))
    }

    /// Removes the old links of a blob that (looked at now) does not exist.
    async fn dangling(&self, hex: Hex, snap: &Snapshot) -> Result<Outcome, GcError> {
        let hs = hex::encode(hex);
        if self
            .storage
            .head(&paths::blob(&hs))
            .await
            .during("checking a linked blob")?
            .is_some()
        {
            return Ok(Outcome::Kept);
        }
        let (removed, stopped) = self.remove_links(hex, snap, |_| false).await?;
        Ok(links_outcome(removed, stopped))
    }

    /// Deletes the manifests no tag reaches, directly or through an index, that are not referrers
    /// of a reachable manifest and whose link is older than [`UNTAGGED_MIN_GRACE`] (or grace, if
    /// longer). Their blobs go in a later run: this run's mark still counts them.
    pub(super) async fn untagged(
        &self,
        snap: &Snapshot,
        cache: &Cache,
        report: &mut GcReport,
    ) -> Result<bool, GcError> {
        let min_age = self.grace.max(UNTAGGED_MIN_GRACE);
        let (tagged, unreadable) = self.read_tags(snap).await?;
        let mut by_repo: HashMap<u32, Vec<&Link>> = HashMap::new();
        for m in &snap.manifests {
            by_repo.entry(m.repo).or_default().push(m);
        }
        let mut doomed: Vec<(u32, Hex)> = Vec::new();
        for (repo, links) in by_repo {
            if unreadable.contains(&repo) {
                continue;
            }
            let roots = links.iter().filter(|l| {
                tagged.contains(&(repo, l.hex)) || !self.clock.is_older(l.modified, min_age)
            });
            let present: HashSet<Hex> = links.iter().map(|l| l.hex).collect();
            let reachable = reach(
                roots.map(|l| l.hex),
                &present,
                links.iter().map(|l| l.hex),
                cache,
            );
            doomed.extend(
                links
                    .iter()
                    .filter(|l| !reachable.contains(&l.hex))
                    .map(|l| (repo, l.hex)),
            );
        }
        let deletions = doomed
            .into_iter()
            .map(|(repo, hex)| self.delete_manifest(snap.repo(repo), hex, cache, min_age));
        run_deletions(deletions, |_, _| report.manifests_removed += 1).await
    }

    /// Which manifest each tag names; repositories with a tag that cannot be read are left alone.
    async fn read_tags(
        &self,
        snap: &Snapshot,
    ) -> Result<(HashSet<(u32, Hex)>, HashSet<u32>), GcError> {
        let mut tagged = HashSet::new();
        let mut unreadable = HashSet::new();
        let mut reads = futures::stream::iter(0..snap.tags.len())
            .map(|i| self.read_tag(snap, i))
            .buffer_unordered(DELETE_CONCURRENCY);
        while let Some((repo, r)) = reads.next().await {
            let Some(bytes) = r.during("reading a tag")? else {
                continue;
            };
            match serde_json::from_slice::<TagLink>(&bytes)
                .ok()
                .and_then(|t| digest_hex(&t.digest))
            {
                Some(hex) => {
                    tagged.insert((repo, hex));
                }
                None => {
                    unreadable.insert(repo);
                }
            }
        }
        Ok((tagged, unreadable))
    }

    /// One tag's repository and content.
    async fn read_tag(
        &self,
        snap: &Snapshot,
        i: usize,
    ) -> (
        u32,
        Result<Option<bytes::Bytes>, crate::storage::StorageError>,
    ) {
        let t = &snap.tags[i];
        (t.repo, self.storage.get(&t.key).await)
    }

    /// Deletes one manifest of a repository: its referrer entry, then its link; then tells the
    /// search indexes.
    async fn delete_manifest(
        &self,
        repo: &str,
        hex: Hex,
        cache: &Cache,
        min_age: Duration,
    ) -> Result<Outcome, GcError> {
        if !self.may_delete()? {
            return Ok(Outcome::Stopped);
        }
        let hs = hex::encode(hex);
        let link = paths::manifest_link(repo, &hs);
        let Some(info) = self
            .storage
            .head(&link)
            .await
            .during("checking a manifest link")?
        else {
            return Ok(Outcome::Kept);
        };
        if !self.clock.is_older(info.modified, min_age) {
            return Ok(Outcome::Kept);
        }
        if self.dry() {
            return Ok(Outcome::Deleted { bytes: 0, links: 1 });
        }
        // The referrer entry first: a crash in between leaves an unreachable manifest (collected
        // next time), never a referrers answer naming a manifest that is gone.
        if let Some(subject) = cache.get(&hex).and_then(|r| r.subject) {
            self.storage
                .delete(&paths::referrer(repo, &hex::encode(subject), &hs))
                .await
                .during("deleting a referrer entry")?;
        }
        self.storage
            .delete(&link)
            .await
            .during("deleting an untagged manifest")?;
        crate::events::publish(
            self.storage,
            Event::ManifestDeleted {
                repo: repo.to_string(),
                digest: format!("sha256:{hs}"),
            },
        )
        .await;
        Ok(Outcome::Deleted { bytes: 0, links: 1 })
    }
}

/// The manifests of one repository reachable from `roots` through index children, plus the
/// referrers (transitively) of reachable manifests. `all` is every manifest of the repository.
fn reach(
    roots: impl Iterator<Item = Hex>,
    present: &HashSet<Hex>,
    all: impl Iterator<Item = Hex> + Clone,
    cache: &Cache,
) -> HashSet<Hex> {
    let mut reachable: HashSet<Hex> = HashSet::new();
    let mut stack: Vec<Hex> = Vec::new();
    for r in roots {
        if reachable.insert(r) {
            stack.push(r);
        }
    }
    loop {
        while let Some(h) = stack.pop() {
            for c in cache.get(&h).map(|r| r.children.as_slice()).unwrap_or(&[]) {
                if present.contains(c) && reachable.insert(*c) {
                    stack.push(*c);
                }
            }
        }
        for h in all.clone() {
            let about_reachable = cache
                .get(&h)
                .and_then(|r| r.subject)
                .is_some_and(|s| reachable.contains(&s));
            if about_reachable && reachable.insert(h) {
                stack.push(h);
            }
        }
        if stack.is_empty() {
            return reachable;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_follows_children_and_referrers_of_what_is_reachable() {
        use super::super::mark::Refs;
        let h = |b: u8| [b; 32];
        let mut cache = Cache::default();
        // 1 = tagged index of 2; 3 refers to 2; 4 refers to 3; 5 refers to 6 (unreachable);
        // 6 untagged and unreferenced.
        cache.insert(
            h(1),
            Refs {
                refs: vec![h(2)],
                children: vec![h(2)],
                subject: None,
            },
        );
        cache.insert(
            h(3),
            Refs {
                subject: Some(h(2)),
                ..Refs::default()
            },
        );
        cache.insert(
            h(4),
            Refs {
                subject: Some(h(3)),
                ..Refs::default()
            },
        );
        cache.insert(
            h(5),
            Refs {
                subject: Some(h(6)),
                ..Refs::default()
            },
        );
        let all: Vec<Hex> = (1..=6).map(h).collect();
        let present: HashSet<Hex> = all.iter().copied().collect();
        let r = reach([h(1)].into_iter(), &present, all.iter().copied(), &cache);
        let mut got: Vec<u8> = r.iter().map(|x| x[0]).collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 4]);
    }
}
