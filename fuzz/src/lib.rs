//! Shared pieces of berth's fuzz targets: a tar writer that emits whatever names, links and
//! types it is given (the `tar` crate refuses `..`, which is exactly what we want to send),
//! structured inputs built from it, and a sandbox that detects writes outside its work dir.

#![deny(missing_docs)]

use arbitrary::Arbitrary;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Name of the file hostile paths try to create outside the sandbox's work dir.
pub const ESCAPED: &str = "berth-fuzz-escaped";

/// One component of a generated path.
#[derive(Arbitrary, Debug, Clone)]
pub enum Comp {
    /// `a`.
    A,
    /// `b`.
    B,
    /// `link` (the name symlinks are most often given).
    Link,
    /// `.`.
    Dot,
    /// `..`.
    DotDot,
    /// An empty component (`a//b`).
    Empty,
    /// The sandbox's parent directory, as an absolute path.
    Parent,
    /// [`ESCAPED`].
    Escaped,
    /// `sentinel`, the file next to the work dir.
    Sentinel,
    /// `.wh.` + the component (a whiteout of it).
    Whiteout(Box<Comp>),
    /// `.wh..wh..opq` (an opaque-directory marker).
    Opaque,
    /// Any string.
    Raw(String),
}

/// A generated path.
#[derive(Arbitrary, Debug, Clone)]
pub struct PathSpec {
    /// Starts with `/`.
    pub absolute: bool,
    /// The components, joined by `/`.
    pub comps: Vec<Comp>,
    /// Ends with `/`.
    pub trailing_slash: bool,
}

impl Comp {
    fn render(&self, parent: &str) -> String {
        match self {
            Comp::A => "a".into(),
            Comp::B => "b".into(),
            Comp::Link => "link".into(),
            Comp::Dot => ".".into(),
            Comp::DotDot => "..".into(),
            Comp::Empty => String::new(),
            Comp::Parent => parent.trim_start_matches('/').into(),
            Comp::Escaped => ESCAPED.into(),
            Comp::Sentinel => "sentinel".into(),
            Comp::Whiteout(c) => format!(".wh.{}", c.render(parent)),
            Comp::Opaque => ".wh..wh..opq".into(),
            Comp::Raw(s) => s.clone(),
        }
    }
}

impl PathSpec {
    /// The path as bytes, with [`Comp::Parent`] replaced by `parent`.
    pub fn render(&self, parent: &str) -> Vec<u8> {
        let mut s = String::new();
        if self.absolute {
            s.push('/');
        }
        let comps: Vec<String> = self.comps.iter().take(12).map(|c| c.render(parent)).collect();
        s.push_str(&comps.join("/"));
        if self.trailing_slash {
            s.push('/');
        }
        s.into_bytes()
    }
}

/// The type of a generated tar entry.
#[derive(Arbitrary, Debug, Clone)]
pub enum Kind {
    /// A regular file (`0`).
    File,
    /// An old-style regular file (NUL type flag).
    OldFile,
    /// A directory (`5`).
    Dir,
    /// A symlink (`2`) to the path.
    Symlink(PathSpec),
    /// A hard link (`1`) to the path.
    Hardlink(PathSpec),
    /// A FIFO (`6`).
    Fifo,
    /// A character device (`3`).
    Char(u8, u8),
    /// A block device (`4`), minor only (major 7, loop devices, harmless unless written).
    Block(u8),
    /// A contiguous file (`7`).
    Contiguous,
    /// Any type flag.
    Other(u8),
}

/// A PAX extended-header record.
#[derive(Arbitrary, Debug, Clone)]
pub enum Pax {
    /// `path=`.
    Path(PathSpec),
    /// `linkpath=`.
    LinkPath(PathSpec),
    /// `size=` (may lie about the data).
    Size(String),
    /// `mtime=`.
    Mtime(String),
    /// `uid=`.
    Uid(String),
    /// `gid=`.
    Gid(String),
    /// `SCHILY.xattr.<name>=<value>`.
    Xattr(String, Vec<u8>),
    /// Any key and value.
    Other(String, Vec<u8>),
}

/// One generated tar entry.
#[derive(Arbitrary, Debug, Clone)]
pub struct Entry {
    /// The entry's path.
    pub name: PathSpec,
    /// Its type.
    pub kind: Kind,
    /// Mode bits (12 bits used).
    pub mode: u16,
    /// Owner.
    pub uid: u16,
    /// Group.
    pub gid: u16,
    /// Modification time.
    pub mtime: u32,
    /// Content (written for every type, as the header's size says).
    pub data: Vec<u8>,
    /// PAX records sent in an `x` header before this entry.
    pub pax: Vec<Pax>,
    /// Always put the name in a PAX record, even when it fits the header.
    pub pax_name: bool,
}

/// A generated layer tar.
#[derive(Arbitrary, Debug, Clone)]
pub struct Layer {
    /// The entries, in order.
    pub entries: Vec<Entry>,
    /// Ends with the two zero blocks.
    pub end_blocks: bool,
    /// Bytes appended after everything.
    pub trailer: Vec<u8>,
}

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{v:0n$o}");
    let b = s.as_bytes();
    let b = &b[b.len().saturating_sub(n)..];
    field[..b.len()].copy_from_slice(b);
    field[n] = 0;
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while format!("{len}").len() + body != len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Fields of one ustar header.
pub struct Header<'a> {
    /// Path.
    pub name: &'a [u8],
    /// Link target.
    pub link: &'a [u8],
    /// Type flag.
    pub typeflag: u8,
    /// Mode.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of the data that follows.
    pub size: u64,
    /// Modification time.
    pub mtime: u64,
    /// Device major and minor.
    pub dev: (u32, u32),
}

/// Appends a ustar header (names longer than the fields are cut: send a PAX record too) and
/// the padded data.
pub fn write_entry(out: &mut Vec<u8>, h: &Header<'_>, data: &[u8]) {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    octal(&mut b[100..108], u64::from(h.mode));
    octal(&mut b[108..116], u64::from(h.uid));
    octal(&mut b[116..124], u64::from(h.gid));
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.typeflag;
    let l = h.link.len().min(100);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], u64::from(h.dev.0));
    octal(&mut b[337..345], u64::from(h.dev.1));
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    octal(&mut b[148..155], u64::from(sum));
    b[155] = b' ';
    out.extend_from_slice(&b);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// Appends a regular file with a PAX path record if the name is long.
pub fn write_file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    if name.len() > 100 {
        let mut pax = Vec::new();
        pax_record(&mut pax, "path", name.as_bytes());
        write_entry(out, &plain(b"././@PaxHeader", b'x', pax.len() as u64), &pax);
    }
    write_entry(out, &plain(name.as_bytes(), b'0', data.len() as u64), data);
}

/// Appends the two zero blocks.
pub fn write_end(out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, 1024));
}

fn plain(name: &[u8], typeflag: u8, size: u64) -> Header<'_> {
    Header {
        name,
        link: b"",
        typeflag,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        mtime: 0,
        dev: (0, 0),
    }
}

impl Layer {
    /// The tar stream, with [`Comp::Parent`] replaced by `parent`.
    pub fn render(&self, parent: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.entries.iter().take(24) {
            let name = e.name.render(parent);
            let (typeflag, link, dev) = match &e.kind {
                Kind::File => (b'0', Vec::new(), (0, 0)),
                Kind::OldFile => (0, Vec::new(), (0, 0)),
                Kind::Dir => (b'5', Vec::new(), (0, 0)),
                Kind::Symlink(p) => (b'2', p.render(parent), (0, 0)),
                Kind::Hardlink(p) => (b'1', p.render(parent), (0, 0)),
                Kind::Fifo => (b'6', Vec::new(), (0, 0)),
                Kind::Char(a, b) => (b'3', Vec::new(), (u32::from(*a), u32::from(*b))),
                Kind::Block(m) => (b'4', Vec::new(), (7, u32::from(*m))),
                Kind::Contiguous => (b'7', Vec::new(), (0, 0)),
                Kind::Other(t) => (*t, Vec::new(), (0, 0)),
            };
            let mut pax = Vec::new();
            if e.pax_name || name.len() > 100 {
                pax_record(&mut pax, "path", &name);
            }
            if link.len() > 100 {
                pax_record(&mut pax, "linkpath", &link);
            }
            for p in e.pax.iter().take(6) {
                match p {
                    Pax::Path(s) => pax_record(&mut pax, "path", &s.render(parent)),
                    Pax::LinkPath(s) => pax_record(&mut pax, "linkpath", &s.render(parent)),
                    Pax::Size(v) => pax_record(&mut pax, "size", v.as_bytes()),
                    Pax::Mtime(v) => pax_record(&mut pax, "mtime", v.as_bytes()),
                    Pax::Uid(v) => pax_record(&mut pax, "uid", v.as_bytes()),
                    Pax::Gid(v) => pax_record(&mut pax, "gid", v.as_bytes()),
                    Pax::Xattr(k, v) => pax_record(&mut pax, &format!("SCHILY.xattr.{k}"), v),
                    Pax::Other(k, v) => pax_record(&mut pax, k, v),
                }
            }
            if !pax.is_empty() {
                write_entry(&mut out, &plain(b"././@PaxHeader", b'x', pax.len() as u64), &pax);
            }
            let data = &e.data[..e.data.len().min(4096)];
            write_entry(
                &mut out,
                &Header {
                    name: &name,
                    link: &link,
                    typeflag,
                    mode: u32::from(e.mode & 0o7777),
                    uid: u32::from(e.uid),
                    gid: u32::from(e.gid),
                    size: data.len() as u64,
                    mtime: u64::from(e.mtime),
                    dev,
                },
                data,
            );
        }
        if self.end_blocks {
            write_end(&mut out);
        }
        out.extend_from_slice(&self.trailer[..self.trailer.len().min(1024)]);
        out
    }
}

/// What is recorded of each path to notice a change: type and mode, owner, size, link count,
/// times (ctime moves on chmod, chown, link), and the content or link target.
type Fingerprint = (u32, u32, u32, u64, u64, i64, i64, i64, i64, Vec<u8>);

/// A temp directory `BASE/parent/{sentinel, sentinel_dir/inner, work/}`: the code under test
/// gets `work`; [`Sandbox::check`] panics if anything outside `work` changed.
pub struct Sandbox {
    base: tempfile::TempDir,
    parent: PathBuf,
    before: BTreeMap<PathBuf, Fingerprint>,
}

fn fingerprint(path: &Path) -> Fingerprint {
    let m = fs::symlink_metadata(path).expect("stat in sandbox");
    let body = if m.file_type().is_file() {
        fs::read(path).expect("read in sandbox")
    } else if m.file_type().is_symlink() {
        fs::read_link(path)
            .expect("readlink in sandbox")
            .into_os_string()
            .into_encoded_bytes()
    } else {
        Vec::new()
    };
    (
        m.mode(),
        m.uid(),
        m.gid(),
        m.size(),
        m.nlink(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        body,
    )
}

fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Fingerprint>) {
    out.insert(dir.to_owned(), fingerprint(dir));
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("list sandbox dir")
        .map(|e| e.expect("sandbox dir entry").path())
        .collect();
    names.sort();
    for p in names {
        if p == skip {
            continue;
        }
        let ft = fs::symlink_metadata(&p).expect("stat").file_type();
        if ft.is_dir() {
            walk(&p, skip, out);
        } else {
            out.insert(p.clone(), fingerprint(&p));
        }
    }
}

impl Sandbox {
    /// Makes the sandbox in the system temp dir.
    pub fn new() -> Sandbox {
        let base = tempfile::Builder::new()
            .prefix("berth-fuzz-")
            .tempdir()
            .expect("create temp dir");
        let parent = base.path().join("parent");
        fs::create_dir(&parent).expect("mkdir parent");
        fs::write(parent.join("sentinel"), b"sentinel\n").expect("write sentinel");
        fs::create_dir(parent.join("sentinel_dir")).expect("mkdir sentinel_dir");
        fs::write(parent.join("sentinel_dir/inner"), b"inner\n").expect("write inner");
        fs::create_dir(parent.join("work")).expect("mkdir work");
        let mut before = BTreeMap::new();
        walk(base.path(), &parent.join("work"), &mut before);
        Sandbox {
            base,
            parent,
            before,
        }
    }

    /// The directory the code under test may write in.
    pub fn work(&self) -> PathBuf {
        self.parent.join("work")
    }

    /// The parent of the work dir, as a string (what [`Comp::Parent`] becomes).
    pub fn parent_str(&self) -> String {
        self.parent.to_string_lossy().into_owned()
    }

    /// Panics if anything outside the work dir was created, removed or changed, or if
    /// [`ESCAPED`] appeared at the file system root or in the temp dir.
    pub fn check(&self) {
        let mut after = BTreeMap::new();
        walk(self.base.path(), &self.work(), &mut after);
        if after != self.before {
            let added: Vec<_> = after.keys().filter(|k| !self.before.contains_key(*k)).collect();
            let changed: Vec<_> = self
                .before
                .iter()
                .filter(|(k, v)| after.get(*k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            panic!("escape: outside the work dir, added {added:?}, changed or removed {changed:?}");
        }
        for p in [Path::new("/").join(ESCAPED), std::env::temp_dir().join(ESCAPED)] {
            assert!(fs::symlink_metadata(&p).is_err(), "escape: {} exists", p.display());
        }
    }
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox::new()
    }
}
