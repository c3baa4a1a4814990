//! Image commands: import, load, save, images, tag, rmi, image inspect, system prune, system df.

use crate::Globals;
use anyhow::{Context, bail};
use berth_engine::filter::ImageFilter;
use berth_engine::{Engine, ImageSummary};
use berth_oci::{Digest, Reference};
use berth_store::{Image, ImportOptions, Store};
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Image subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Import the contents of a tarball (plain, gzip or zstd) as a filesystem image.
    Import(ImportArgs),
    /// Load images from an OCI image-layout or `docker save` tar archive (or STDIN).
    Load(LoadArgs),
    /// Save images to a tar archive (OCI layout plus Docker's manifest.json).
    Save(SaveArgs),
    /// List images.
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageGroup),
    /// Manage berth's data.
    #[command(subcommand)]
    System(SystemGroup),
}

/// `berth image …`.
#[derive(clap::Subcommand, Debug)]
pub enum ImageGroup {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Import the contents of a tarball as a filesystem image.
    Import(ImportArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove unused images.
    Prune(PruneArgs),
}

/// `berth system …`.
#[derive(clap::Subcommand, Debug)]
pub enum SystemGroup {
    /// Remove unused data (dangling images; with -a every image no container uses).
    Prune(PruneArgs),
    /// Show disk usage.
    Df,
}

/// Arguments of `import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Tarball path, or "-" for STDIN.
    pub file: String,
    /// Name for the image, REPOSITORY[:TAG].
    pub reference: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL).
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// Commit message for the imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
}

/// Arguments of `load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Read from a tar archive file instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `save`.
#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Write to a file instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Images to save (names or ids).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `images` / `image ls`.
#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only images of this repository (REPOSITORY[:TAG]).
    pub repository: Option<String>,
    /// Show all images (berth keeps no intermediate images, so this is the default list).
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Format: table (default), json (one object a line), or a template ({{.Repository}}:{{.Tag}},
    /// table {{.ID}}\t{{.Size}}).
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output (Docker's keys): dangling=true|false, label=KEY[=VALUE], reference=GLOB,
    /// before=IMAGE, since=IMAGE.
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
}

/// Arguments of `tag`.
#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Existing image (name or id).
    pub source: String,
    /// New name, REPOSITORY[:TAG].
    pub target: String,
}

/// Arguments of `rmi` / `image rm`.
#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Images to remove.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `image inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format the output using a Go template subset ({{.Id}}, {{json .Config}}).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `system prune` / `image prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs an image command.
pub fn run(g: &Globals, c: ImageCommand) -> anyhow::Result<u8> {
    let store = || {
        Store::open(&g.root).with_context(|| format!("opening image store {}", g.root.display()))
    };
    let engine = || {
        Engine::open(&g.root, &g.run_root)
            .with_context(|| format!("opening state root {}", g.root.display()))
    };
    match c {
        ImageCommand::Import(a) | ImageCommand::Image(ImageGroup::Import(a)) => {
            import(&store()?, a)
        }
        ImageCommand::Load(a) | ImageCommand::Image(ImageGroup::Load(a)) => load(&store()?, a),
        ImageCommand::Save(a) | ImageCommand::Image(ImageGroup::Save(a)) => save(&store()?, a),
        ImageCommand::Images(a) | ImageCommand::Image(ImageGroup::Ls(a)) => images(&engine()?, a),
        ImageCommand::Tag(a) | ImageCommand::Image(ImageGroup::Tag(a)) => {
            let target = Reference::parse(&a.target)?;
            store()?.tag(&a.source, &target)?;
            Ok(0)
        }
        ImageCommand::Rmi(a) | ImageCommand::Image(ImageGroup::Rm(a)) => {
            rmi(&store()?, &engine()?, a)
        }
        ImageCommand::Image(ImageGroup::Inspect(a)) => inspect(&engine()?, a),
        ImageCommand::Image(ImageGroup::Prune(a)) | ImageCommand::System(SystemGroup::Prune(a)) => {
            prune(&store()?, &engine()?, a)
        }
        ImageCommand::System(SystemGroup::Df) => df(&store()?, &engine()?),
    }
}

fn import(store: &Store, a: ImportArgs) -> anyhow::Result<u8> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let opts = ImportOptions {
        changes: a.changes,
        message: a.message,
        platform: a.platform,
    };
    let image = if a.file == "-" {
        store.import(std::io::stdin().lock(), reference.as_ref(), &opts)?
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("open {}", a.file))?;
        store.import(f, reference.as_ref(), &opts)?
    };
    println!("{}", image.id);
    Ok(0)
}

fn load(store: &Store, a: LoadArgs) -> anyhow::Result<u8> {
    let src: Box<dyn Read> = match &a.input {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let loaded = store.load(std::io::BufReader::with_capacity(256 * 1024, src))?;
    if !a.quiet {
        let mut out = std::io::stdout().lock();
        for img in &loaded {
            if img.references.is_empty() {
                writeln!(out, "Loaded image ID: {}", img.id)?;
            }
            for r in &img.references {
                writeln!(out, "Loaded image: {}", r.familiar())?;
            }
        }
    }
    Ok(0)
}

fn save(store: &Store, a: SaveArgs) -> anyhow::Result<u8> {
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    match &a.output {
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = std::io::stdout().lock();
            store.save(&names, std::io::BufWriter::with_capacity(256 * 1024, out))?;
        }
        Some(path) => {
            // Written under a temporary name and renamed, so a failed save leaves no half file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            remove_abandoned_saves(dir, &name);
            let tmp = tempfile_in(dir, &name);
            let result = (|| -> anyhow::Result<()> {
                let f = std::fs::File::create_new(&tmp)
                    .with_context(|| format!("create {}", tmp.display()))?;
                // Held while it is written: a later save of the same file can tell it is in use.
                rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
                    .with_context(|| format!("lock {}", tmp.display()))?;
                let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
                store.save(&names, &mut w)?;
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
    }
    Ok(0)
}

/// The temporary name `save -o DIR/NAME` writes under: `.NAME.berth-save-<pid>-<nanos>.tmp`.
fn tempfile_in(dir: &Path, name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    dir.join(format!(
        ".{name}{SAVE_TMP}{}-{nanos:08x}.tmp",
        std::process::id()
    ))
}

const SAVE_TMP: &str = ".berth-save-";

/// Removes what killed saves of `dir/name` left: temporaries no live save holds locked (a writer
/// keeps its own locked until the rename) and that have not been written for a while (so one just
/// created, not yet locked, is spared).
fn remove_abandoned_saves(dir: &Path, name: &str) {
    let prefix = format!(".{name}{SAVE_TMP}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(n) = file.to_str() else { continue };
        if !(n.starts_with(&prefix) && n.ends_with(".tmp")) {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() >= 2));
        let Ok(f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if stale
            && rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Docker's `HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{}", UNITS[unit])
}

fn created_since(img: &Image) -> String {
    match &img.created {
        Some(c) => format!(
            "{} ago",
            berth_engine::time::human_duration(berth_engine::time::since(c))
        ),
        None => "N/A".to_owned(),
    }
}

fn created_at(img: &Image) -> String {
    // "2026-11-28T09:30:00.123Z" → "2026-11-28 09:30:00 +0000 UTC", as Docker's json format prints.
    match &img.created {
        Some(c) => {
            let base = c.split('.').next().unwrap_or(c).trim_end_matches('Z');
            format!("{} +0000 UTC", base.replacen('T', " ", 1))
        }
        None => String::new(),
    }
}

/// Rows of `docker images`: one per kept reference, or one `<none>` row for an untagged image.
fn rows(list: &[ImageSummary]) -> Vec<(String, String, &Image)> {
    let mut out = Vec::new();
    for s in list {
        if s.references.is_empty() {
            out.push(("<none>".to_owned(), "<none>".to_owned(), &s.image));
        }
        for r in &s.references {
            out.push((
                r.familiar_name(),
                r.tag().unwrap_or("<none>").to_owned(),
                &s.image,
            ));
        }
    }
    out
}

fn images(engine: &Engine, a: ImagesArgs) -> anyhow::Result<u8> {
    // As in Docker's CLI, `images REPOSITORY[:TAG]` is one more `reference=` filter.
    let mut filter = ImageFilter::from_args(&a.filter)?;
    if let Some(r) = &a.repository {
        filter = filter.with_reference(r)?;
    }
    let list = engine.list_images(&filter)?;
    let rows = rows(&list);
    let id_of = |img: &Image| {
        if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_owned()
        }
    };
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let mut seen = HashSet::new();
        for (_, _, img) in &rows {
            if seen.insert(&img.id) {
                writeln!(out, "{}", id_of(img))?;
            }
        }
        return Ok(0);
    }
    match a.format.as_deref() {
        None | Some("table") => {
            let mut table =
                vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"].map(str::to_owned)];
            for (repo, tag, img) in &rows {
                table.push([
                    repo.clone(),
                    tag.clone(),
                    id_of(img),
                    created_since(img),
                    human_size(img.size),
                ]);
            }
            super::format::write_table(&mut out, &table)?;
        }
        Some(format) => {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|(repo, tag, img)| {
                    json!({
                        "Containers": "N/A",
                        "CreatedAt": created_at(img),
                        "CreatedSince": created_since(img),
                        "Digest": "<none>",
                        "ID": id_of(img),
                        "Repository": repo,
                        "SharedSize": "N/A",
                        "Size": human_size(img.size),
                        "Tag": tag,
                        "UniqueSize": "N/A",
                        "VirtualSize": human_size(img.size),
                    })
                })
                .collect();
            super::format::write_rows(&mut out, format, IMAGES_TABLE, &rows, images_header)?;
        }
    }
    Ok(0)
}

/// Docker's default `images` table, as a template (for `--format table`).
const IMAGES_TABLE: &str = "{{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}";

/// Column titles of `images --format 'table …'`, as Docker names them.
fn images_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".to_owned(),
        "CreatedSince" => "CREATED".to_owned(),
        "CreatedAt" => "CREATED AT".to_owned(),
        "SharedSize" => "SHARED SIZE".to_owned(),
        "UniqueSize" => "UNIQUE SIZE".to_owned(),
        "VirtualSize" => "VIRTUAL SIZE".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

fn rmi(store: &Store, engine: &Engine, a: RmiArgs) -> anyhow::Result<u8> {
    // Asked afresh for each image, under the store's lock; if the containers cannot be read,
    // every image counts as used.
    let in_use = |d: &Digest| engine.images_in_use().map_or(true, |u| u.contains(d));
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for name in &a.images {
        match store.remove_image(name, a.force, &in_use) {
            Ok(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn inspect(engine: &Engine, a: InspectArgs) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    let mut failed = false;
    for name in &a.images {
        match engine.inspect_image(name) {
            Ok(v) => out.push(v),
            Err(e) if e.is_no_such_image() => {
                eprintln!("Error: No such image: {name}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    match &a.format {
        Some(f) => {
            let f = super::format::unescape(f);
            let mut so = std::io::stdout().lock();
            for v in &out {
                writeln!(so, "{}", super::format::render(&f, v)?)?;
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(if failed { 1 } else { 0 })
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn prune(store: &Store, engine: &Engine, a: PruneArgs) -> anyhow::Result<u8> {
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        if !confirm(&format!(
            "WARNING! This will remove:\n  - {what}\n\nAre you sure you want to continue?"
        ))? {
            return Ok(0);
        }
    }
    // Read once here so that an unreadable container directory stops the prune; if it fails
    // again under the store's lock, every image the store held before counts as used.
    engine.images_in_use()?;
    let every: HashSet<Digest> = store.images()?.into_iter().map(|i| i.id).collect();
    let report = store.prune(a.all, &|| {
        engine.images_in_use().unwrap_or_else(|_| every.clone())
    })?;
    let mut out = std::io::stdout().lock();
    if !report.deleted.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for l in &report.deleted {
            writeln!(out, "{l}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(report.reclaimed)
    )?;
    Ok(0)
}

fn df(store: &Store, engine: &Engine) -> anyhow::Result<u8> {
    let du = store.disk_usage(&engine.images_in_use()?)?;
    let (containers, running) = (
        engine.list(true).map(|l| l.len()).unwrap_or(0),
        engine.list(false).map(|l| l.len()).unwrap_or(0),
    );
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let table = vec![
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(str::to_owned),
        [
            "Images".to_owned(),
            du.images.to_string(),
            du.active.to_string(),
            human_size(du.size),
            format!(
                "{} ({}%)",
                human_size(du.reclaimable),
                pct(du.reclaimable, du.size)
            ),
        ],
        [
            "Containers".to_owned(),
            containers.to_string(),
            running.to_string(),
            "0B".to_owned(),
            "0B".to_owned(),
        ],
        ["Local Volumes", "0", "0", "0B", "0B"].map(str::to_owned),
        ["Build Cache", "0", "0", "0B", "0B"].map(str::to_owned),
    ];
    super::format::write_table(&mut std::io::stdout().lock(), &table)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(725), "725B");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(123_400_000), "123MB");
    }
}
