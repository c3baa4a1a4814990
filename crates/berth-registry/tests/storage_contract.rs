//! The storage contract: what every [`Backend`](berth_registry::storage::Backend) must do, written
//! once per case as a function over a [`Storage`], and run against each backend — local disk
//! (plain tier, a temporary directory) and S3 (peers tier: one moto server for this whole binary).
//!
//! Each case gets a prefix of its own; after it, the teardown lists that prefix and fails the case
//! if it left any object behind (on disk, also any temporary file of an unfinished write), so a
//! case must clean up exactly what it made — which exercises delete as a side effect.
//!
//! This binary has its own small harness (`harness = false`) so that the S3 server is started once
//! and always stopped: arguments are the usual ones — name filters, `--exact`, `--list`,
//! `--ignored`/`--include-ignored` (run the S3 cases without the `peers` feature).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_registry::storage::Storage;
use bytes::Bytes;
use futures::StreamExt;

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One case of the contract: a name and the test, given a storage rooted at the case's own prefix.
struct Case {
    name: &'static str,
    run: fn(Storage) -> CaseFuture,
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$(Case { name: stringify!($name), run: |s| Box::pin($name(s)) }),*]
    };
}

const CASES: &[Case] = cases![
    put_get_round_trip,
    put_is_atomic_for_readers,
    streamed_write_is_invisible_until_finished,
    head_reports_size_and_time,
    missing_objects_read_as_none,
    list_is_sorted_recursive_and_bounded_by_prefix,
    list_pages_beyond_a_thousand_keys,
    list_dirs_names_common_prefixes,
    delete_is_idempotent,
    overwrite_replaces_content_and_size,
    create_writes_only_once,
    streamed_write_round_trips_and_serves_ranges,
    aborted_write_leaves_nothing,
    upload_parts_append_resume_and_commit,
    rename_moves_and_replaces,
    concurrent_writers_to_one_key_leave_one_whole_value,
    keys_with_odd_characters,
    touch_keeps_content,
];

// ---------------------------------------------------------------------------------------------
// The cases.

async fn put_get_round_trip(s: Storage) {
    let data = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>());
    s.put("a/b/obj", data.clone()).await.unwrap();
    assert_eq!(s.get("a/b/obj").await.unwrap(), Some(data));
    s.put("a/empty", Bytes::new()).await.unwrap();
    assert_eq!(s.get("a/empty").await.unwrap(), Some(Bytes::new()));
    assert_eq!(s.head("a/empty").await.unwrap().unwrap().size, 0);
    s.delete("a/b/obj").await.unwrap();
    s.delete("a/empty").await.unwrap();
}

async fn put_is_atomic_for_readers(s: Storage) {
    // Two values of different sizes written in turn; a reader never sees anything but one of them.
    let a = Bytes::from(vec![b'a'; 3 << 20]);
    let b = Bytes::from(vec![b'b'; (3 << 20) + 12345]);
    s.put("k", a.clone()).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, a, b, stop) = (s.clone(), a.clone(), b.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let got = s.get("k").await.unwrap().expect("the key always exists");
                assert!(
                    got == a || got == b,
                    "read a partial value of {} bytes",
                    got.len()
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 0..6 {
        let v = if i % 2 == 0 { b.clone() } else { a.clone() };
        s.put("k", v).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    s.delete("k").await.unwrap();
}

async fn streamed_write_is_invisible_until_finished(s: Storage) {
    let mut w = s.writer("big").await.unwrap();
    w.write(Bytes::from(vec![1u8; 6 << 20])).await.unwrap();
    w.write(Bytes::from(vec![2u8; 3 << 20])).await.unwrap();
    assert_eq!(s.head("big").await.unwrap(), None);
    assert_eq!(s.list("").await.unwrap(), vec![]);
    assert_eq!(w.finish().await.unwrap(), 9 << 20);
    assert_eq!(s.head("big").await.unwrap().unwrap().size, 9 << 20);
    s.delete("big").await.unwrap();
}

async fn head_reports_size_and_time(s: Storage) {
    // Allow for whole-second times (S3 truncates) and a little clock skew to a server.
    let before = SystemTime::now() - Duration::from_secs(2);
    s.put("x/y", Bytes::from_static(b"twelve bytes"))
        .await
        .unwrap();
    let after = SystemTime::now() + Duration::from_secs(2);
    let h = s.head("x/y").await.unwrap().expect("exists");
    assert_eq!(h.key, "x/y");
    assert_eq!(h.size, 12);
    assert!(h.modified >= before && h.modified <= after, "{h:?}");
    let listed = s.list("x").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 12);
    // A prefix is not an object.
    assert_eq!(s.head("x").await.unwrap(), None);
    assert_eq!(s.get("x").await.unwrap(), None);
    s.delete("x/y").await.unwrap();
}

async fn missing_objects_read_as_none(s: Storage) {
    assert_eq!(s.head("no/such").await.unwrap(), None);
    assert_eq!(s.get("no/such").await.unwrap(), None);
    assert!(s.get_stream("no/such", None).await.unwrap().is_none());
    assert!(s.get_stream("no/such", Some(0..1)).await.unwrap().is_none());
    assert_eq!(s.list("no").await.unwrap(), vec![]);
    assert_eq!(s.list_dirs("no").await.unwrap(), Vec::<String>::new());
    // Moving what is not there is an error naming the key, and creates nothing.
    let e = s.rename("no/such", "no/other").await.unwrap_err();
    assert!(e.to_string().contains("no/such"), "{e}");
    assert_eq!(s.head("no/other").await.unwrap(), None);
    // Touching what is not there never claims to have touched it.
    assert!(!matches!(s.touch("no/such").await, Ok(true)));
    assert_eq!(s.head("no/such").await.unwrap(), None);
}

async fn list_is_sorted_recursive_and_bounded_by_prefix(s: Storage) {
    let keys = ["p/b", "p/a/2", "p/a/1", "p/c/d/e", "pq/x", "p-x/y", "q"];
    for k in keys {
        s.put(k, Bytes::from(k.as_bytes().to_vec())).await.unwrap();
    }
    let listed: Vec<String> = s
        .list("p")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    // `p` is a path prefix: `pq/x` and `p-x/y` are not under it.
    assert_eq!(listed, ["p/a/1", "p/a/2", "p/b", "p/c/d/e"]);
    let after: Vec<String> = s
        .list_after("p", Some("p/a/2"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(after, ["p/b", "p/c/d/e"]);
    let all = s.list("").await.unwrap();
    assert_eq!(all.len(), keys.len());
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    for o in &all {
        assert_eq!(o.size, o.key.len() as u64);
    }
    for k in keys {
        s.delete(k).await.unwrap();
    }
}

async fn list_pages_beyond_a_thousand_keys(s: Storage) {
    // S3 answers a listing 1000 keys at a time; the storage must follow every page.
    const N: usize = 1234;
    let keys: Vec<String> = (0..N).map(|i| format!("many/{i:05}")).collect();
    for_each(&keys, |k| {
        let s = s.clone();
        async move { s.put(&k, Bytes::from_static(b"x")).await.unwrap() }
    })
    .await;
    let listed: Vec<String> = s
        .list("many")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, keys);
    let tail = s.list_after("many", Some(&keys[1099])).await.unwrap();
    assert_eq!(tail.len(), N - 1100);
    assert_eq!(tail[0].key, keys[1100]);
    for_each(&keys, |k| {
        let s = s.clone();
        async move { s.delete(&k).await.unwrap() }
    })
    .await;
    assert_eq!(s.list("many").await.unwrap(), vec![]);
}

async fn list_dirs_names_common_prefixes(s: Storage) {
    let keys = ["r/b/1", "r/b/2", "r/a/x/y", "r/file", "r2/c/1"];
    for k in keys {
        s.put(k, Bytes::from_static(b"1")).await.unwrap();
    }
    assert_eq!(s.list_dirs("r").await.unwrap(), ["a", "b"]);
    assert_eq!(s.list_dirs("r/a").await.unwrap(), ["x"]);
    assert_eq!(s.list_dirs("r/b").await.unwrap(), Vec::<String>::new());
    assert_eq!(s.list_dirs("").await.unwrap(), ["r", "r2"]);
    for k in keys {
        s.delete(k).await.unwrap();
    }
    // Once its objects are gone and it is pruned, a prefix is no longer listed.
    for d in ["r/a/x", "r/a", "r/b", "r", "r2/c", "r2"] {
        s.prune(d, None).await.unwrap();
    }
    assert_eq!(s.list_dirs("").await.unwrap(), Vec::<String>::new());
}

async fn delete_is_idempotent(s: Storage) {
    s.put("d/one", Bytes::from_static(b"1")).await.unwrap();
    s.delete("d/one").await.unwrap();
    s.delete("d/one").await.unwrap();
    s.delete("d/never").await.unwrap();
    assert_eq!(s.head("d/one").await.unwrap(), None);
    assert_eq!(s.list("d").await.unwrap(), vec![]);
}

async fn overwrite_replaces_content_and_size(s: Storage) {
    s.put("o", Bytes::from(vec![9u8; 5000])).await.unwrap();
    s.put("o", Bytes::from_static(b"short")).await.unwrap();
    assert_eq!(s.get("o").await.unwrap().unwrap(), "short");
    assert_eq!(s.head("o").await.unwrap().unwrap().size, 5);
    let mut w = s.writer("o").await.unwrap();
    w.write(Bytes::from_static(b"streamed")).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(s.get("o").await.unwrap().unwrap(), "streamed");
    assert_eq!(s.list("").await.unwrap().len(), 1);
    s.delete("o").await.unwrap();
}

async fn create_writes_only_once(s: Storage) {
    assert!(s.create("c/k", Bytes::from_static(b"first")).await.unwrap());
    assert!(
        !s.create("c/k", Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(s.get("c/k").await.unwrap().unwrap(), "first");
    // Racing creators: exactly one wins, and its value is the one stored.
    let results = futures::future::join_all((0..8u8).map(|i| {
        let s = s.clone();
        async move {
            (
                i,
                s.create("c/race", Bytes::from(vec![i; 64])).await.unwrap(),
            )
        }
    }))
    .await;
    let winners: Vec<u8> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        s.get("c/race").await.unwrap().unwrap(),
        vec![winners[0]; 64]
    );
    s.delete("c/k").await.unwrap();
    s.delete("c/race").await.unwrap();
}

async fn streamed_write_round_trips_and_serves_ranges(s: Storage) {
    let data: Vec<u8> = (0..(11 << 20) + 7).map(|i| (i * 31 % 251) as u8).collect();
    let mut w = s.writer("blob").await.unwrap();
    assert_eq!(w.key(), "blob");
    // Small pieces, then one bigger than any buffer or part size, then small again.
    let (small, rest) = data.split_at(1 << 20);
    for piece in small.chunks(100_000) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let (big, tail) = rest.split_at(9 << 20);
    w.write(Bytes::copy_from_slice(big)).await.unwrap();
    w.write(Bytes::copy_from_slice(tail)).await.unwrap();
    assert_eq!(w.written(), data.len() as u64);
    assert_eq!(w.finish().await.unwrap(), data.len() as u64);
    assert_eq!(read_all(&s, "blob", None).await, data);
    let r = 5_000_000..5_300_001u64;
    let part = read_all(&s, "blob", Some(r.clone())).await;
    assert_eq!(part, &data[r.start as usize..r.end as usize]);
    let st = s.get_stream("blob", Some(10..20)).await.unwrap().unwrap();
    // The facts are the whole object's, not the range's.
    assert_eq!(st.info.size, data.len() as u64);
    s.delete("blob").await.unwrap();
}

async fn aborted_write_leaves_nothing(s: Storage) {
    let mut w = s.writer("gone").await.unwrap();
    w.write(Bytes::from(vec![3u8; 6 << 20])).await.unwrap();
    w.write(Bytes::from(vec![4u8; 1000])).await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(s.head("gone").await.unwrap(), None);
    // A writer dropped without finishing publishes nothing either.
    let mut w = s.writer("dropped").await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(s.head("dropped").await.unwrap(), None);
    // (The teardown checks that no object, and on disk no temporary file, is left.)
}

async fn upload_parts_append_resume_and_commit(s: Storage) {
    // The way blob uploads use the storage: each PATCH is a part object named by its offset; a
    // later request (maybe on another instance) resumes by listing the parts.
    let parts = [vec![1u8; 700_000], vec![2u8; 1_300_000], vec![3u8; 5]];
    let mut offset = 0u64;
    for p in &parts {
        let listed = s.list("uploads/u1/chunks").await.unwrap();
        assert_eq!(listed.iter().map(|o| o.size).sum::<u64>(), offset);
        let mut w = s
            .writer(&format!("uploads/u1/chunks/{offset:020}"))
            .await
            .unwrap();
        for piece in p.chunks(64 << 10) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        offset += w.finish().await.unwrap();
    }
    let listed = s.list("uploads/u1/chunks").await.unwrap();
    let offsets: Vec<String> = listed.iter().map(|o| o.key.clone()).collect();
    assert_eq!(
        offsets,
        [0u64, 700_000, 2_000_000].map(|o| format!("uploads/u1/chunks/{o:020}"))
    );
    let mut joined = Vec::new();
    for o in &listed {
        joined.extend(read_all(&s, &o.key, None).await);
    }
    assert_eq!(joined, parts.concat());
    // A single-part upload commits by a move into place.
    let mut w = s.writer("uploads/u2/chunks/0").await.unwrap();
    w.write(Bytes::from_static(b"whole")).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(s.list_dirs("uploads").await.unwrap(), ["u1", "u2"]);
    s.rename("uploads/u2/chunks/0", "blobs/whole")
        .await
        .unwrap();
    assert_eq!(s.get("blobs/whole").await.unwrap().unwrap(), "whole");
    for o in listed {
        s.delete(&o.key).await.unwrap();
    }
    s.delete("blobs/whole").await.unwrap();
    for id in ["u1", "u2"] {
        s.prune(&format!("uploads/{id}"), None).await.unwrap();
    }
    assert_eq!(s.list_dirs("uploads").await.unwrap(), Vec::<String>::new());
}

async fn rename_moves_and_replaces(s: Storage) {
    s.put("m/from", Bytes::from_static(b"payload"))
        .await
        .unwrap();
    s.rename("m/from", "n/deep/to").await.unwrap();
    assert_eq!(s.head("m/from").await.unwrap(), None);
    assert_eq!(s.get("n/deep/to").await.unwrap().unwrap(), "payload");
    s.put("m/other", Bytes::from_static(b"new")).await.unwrap();
    s.rename("m/other", "n/deep/to").await.unwrap();
    assert_eq!(s.get("n/deep/to").await.unwrap().unwrap(), "new");
    assert_eq!(s.list("").await.unwrap().len(), 1);
    s.delete("n/deep/to").await.unwrap();
}

async fn concurrent_writers_to_one_key_leave_one_whole_value(s: Storage) {
    let value = |i: u8| Bytes::from(vec![i; (1 << 20) + i as usize * 1000]);
    let puts = (0..6u8).map(|i| {
        let s = s.clone();
        async move { s.put("same", value(i)).await.unwrap() }
    });
    let streams = (6..10u8).map(|i| {
        let s = s.clone();
        async move {
            let mut w = s.writer("same").await.unwrap();
            let v = value(i);
            for piece in v.chunks(200_000) {
                w.write(Bytes::copy_from_slice(piece)).await.unwrap();
            }
            w.finish().await.unwrap();
        }
    });
    futures::future::join(
        futures::future::join_all(puts),
        futures::future::join_all(streams),
    )
    .await;
    let got = s.get("same").await.unwrap().unwrap();
    let i = got[0];
    assert!(i < 10);
    assert_eq!(got, value(i), "the stored value is a mix of writers");
    assert_eq!(
        s.head("same").await.unwrap().unwrap().size,
        got.len() as u64
    );
    assert_eq!(s.list("").await.unwrap().len(), 1);
    s.delete("same").await.unwrap();
}

async fn keys_with_odd_characters(s: Storage) {
    // What registry keys are made of (repository paths, tags, digests, offsets) and then some.
    // ASCII only: the distribution grammar keeps every registry key ASCII, and the S3 server used
    // here (moto) lists a non-ASCII key percent-encoded, so such keys are outside the contract.
    let keys = [
        "repositories/library/ubuntu/_tags/v1.2.3-rc_1",
        "repositories/a.b/c-d/e_f/_manifests/0123abcdef",
        "k/with space",
        "k/plus+equals=at@colon:",
        "k/UPPER/lower",
        "k/.dotfile",
        "k/a..b",
    ];
    for k in keys {
        s.put(k, Bytes::from(k.as_bytes().to_vec())).await.unwrap();
    }
    for k in keys {
        assert_eq!(
            s.get(k).await.unwrap().as_deref(),
            Some(k.as_bytes()),
            "{k}"
        );
        assert_eq!(s.head(k).await.unwrap().map(|h| h.key).as_deref(), Some(k));
    }
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    let listed: Vec<String> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        listed, want,
        "keys come back from a listing as they were written"
    );
    for k in keys {
        s.delete(k).await.unwrap();
    }
}

async fn touch_keeps_content(s: Storage) {
    s.put("t", Bytes::from_static(b"same")).await.unwrap();
    let first = s.head("t").await.unwrap().unwrap();
    // A backend that cannot touch says so; the caller then rewrites the object.
    if s.touch("t").await.unwrap() {
        let after = s.head("t").await.unwrap().unwrap();
        assert!(after.modified >= first.modified);
    } else {
        s.put("t", Bytes::from_static(b"same")).await.unwrap();
    }
    assert_eq!(s.get("t").await.unwrap().unwrap(), "same");
    s.delete("t").await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Helpers.

async fn read_all(s: &Storage, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let mut st = s.get_stream(key, range).await.unwrap().expect("exists");
    let mut out = Vec::new();
    while let Some(c) = st.stream.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

async fn for_each<F, Fut>(keys: &[String], f: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::stream::iter(keys.iter().cloned().map(f))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// What is left under a case's prefix: objects, and on disk the files of unfinished writes.
async fn leftovers(s: &Storage) -> Vec<String> {
    let mut left: Vec<String> = match s.list("").await {
        Ok(l) => l.into_iter().map(|o| o.key).collect(),
        Err(e) => vec![format!("(listing failed: {e})")],
    };
    if let Some(root) = s.root_dir()
        && let Ok(rd) = std::fs::read_dir(root.join(".tmp"))
    {
        left.extend(
            rd.flatten()
                .map(|e| format!(".tmp/{}", e.file_name().to_string_lossy())),
        );
    }
    left
}

// ---------------------------------------------------------------------------------------------
// The harness.

/// A backend the suite runs against: how to open a storage at a fresh prefix for a case.
struct Target {
    name: &'static str,
    /// Why the target does not run by default (its tier), if it does not.
    ignored: Option<&'static str>,
    open: Box<dyn Fn(&str) -> Storage>,
}

struct Args {
    filters: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
    include_ignored: bool,
}

fn args() -> Args {
    let mut a = Args {
        filters: Vec::new(),
        exact: false,
        list: false,
        ignored: false,
        include_ignored: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "--ignored" => a.ignored = true,
            "--include-ignored" => a.include_ignored = true,
            // libtest options that take a value; the value is not a filter.
            "--test-threads" | "--format" | "--color" | "--skip" | "--logfile" => {
                it.next();
            }
            o if o.starts_with('-') => {}
            f => a.filters.push(f.to_string()),
        }
    }
    a
}

fn main() {
    let args = args();
    let selected = |full: &str| {
        args.filters.is_empty()
            || args.filters.iter().any(|f| {
                if args.exact {
                    full == f
                } else {
                    full.contains(f.as_str())
                }
            })
    };
    let runs_s3 = cfg!(feature = "peers") || args.ignored || args.include_ignored;
    let s3_wanted = runs_s3 && CASES.iter().any(|c| selected(&format!("s3::{}", c.name)));
    if args.list {
        for t in ["disk", "s3"] {
            for c in CASES {
                println!("{t}::{}: test", c.name);
            }
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    // One moto for the whole binary (berth-testkit's), started only if an S3 case will run.
    let moto = s3_wanted.then(common::S3::start);
    let mut targets = vec![Target {
        name: "disk",
        ignored: None,
        open: Box::new(move |case| Storage::local(&root.join(case)).unwrap()),
    }];
    targets.push(Target {
        name: "s3",
        ignored: (!cfg!(feature = "peers")).then_some("peers tier: needs moto"),
        open: match &moto {
            Some(m) => {
                let spec = common::s3_spec(m, "");
                Box::new(move |case| {
                    let mut spec = spec.clone();
                    spec.location = format!("{}contract/{case}", spec.location);
                    Storage::open(&spec).unwrap()
                })
            }
            None => Box::new(|_| unreachable!("no S3 server was started")),
        },
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut passed, mut failed, mut ignored, mut filtered) = (0, Vec::new(), 0, 0);
    let total: usize = targets.len() * CASES.len();
    println!("\nrunning {total} tests");
    for t in &targets {
        for c in CASES {
            let full = format!("{}::{}", t.name, c.name);
            if !selected(&full) {
                filtered += 1;
                continue;
            }
            match t.ignored {
                // `--ignored` runs only what is ignored by default.
                None if args.ignored => {
                    filtered += 1;
                    continue;
                }
                Some(why) if !(args.ignored || args.include_ignored) => {
                    println!("test {full} ... ignored, {why}");
                    ignored += 1;
                    continue;
                }
                _ => {}
            }
            let storage = (t.open)(c.name);
            let outcome = rt.block_on(async {
                let run = tokio::spawn((c.run)(storage.clone())).await;
                match run {
                    Err(e) if e.is_panic() => Err("the case panicked (see above)".to_string()),
                    Err(e) => Err(format!("the case did not finish: {e}")),
                    Ok(()) => {
                        let left = leftovers(&storage).await;
                        if left.is_empty() {
                            Ok(())
                        } else {
                            Err(format!("teardown: the case left objects behind: {left:?}"))
                        }
                    }
                }
            });
            match outcome {
                Ok(()) => {
                    println!("test {full} ... ok");
                    passed += 1;
                }
                Err(why) => {
                    println!("test {full} ... FAILED\n    {why}");
                    failed.push(full);
                }
            }
        }
    }
    drop(rt);
    drop(moto);
    if !failed.is_empty() {
        println!("\nfailures:");
        for f in &failed {
            println!("    {f}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored; 0 measured; {filtered} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
