//! Structured archives: OCI image layouts or `docker save` tars whose blobs, digests, sizes,
//! media types, names and layer contents are fuzzed, so the input gets past the tar framing and
//! the digest checks. `Store::load` must never panic, must record nothing on failure, must
//! leave everything outside the store alone, and what it loads must be usable.
#![no_main]

use arbitrary::Arbitrary;
use berth_fuzz::{Layer, Sandbox, write_end, write_file};
use berth_oci::{Digest, media_type};
use berth_store::Store;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::io::Write;

#[derive(Arbitrary, Debug)]
struct ArchLayer {
    layer: Layer,
    gzip: bool,
    media: u8,
    /// Replace the diff ID in the config with the digest of these bytes.
    wrong_diff_id: Option<Vec<u8>>,
    size_delta: i8,
}

#[derive(Arbitrary, Debug)]
struct Archive {
    docker: bool,
    layers: Vec<ArchLayer>,
    config_extra: Vec<(String, String)>,
    config_raw: Option<Vec<u8>>,
    config_size_delta: i8,
    manifest_media: u8,
    names: Vec<String>,
    nested_index: bool,
    platform: Option<(String, String)>,
    omit: Option<u8>,
    extras: Vec<(String, Vec<u8>)>,
    gzip_outer: bool,
}

const LAYER_MEDIA: [&str; 6] = [
    media_type::OCI_LAYER_TAR,
    media_type::OCI_LAYER_GZIP,
    media_type::OCI_LAYER_ZSTD,
    media_type::DOCKER_LAYER_GZIP,
    media_type::DOCKER_LAYER_TAR,
    "application/x-bogus",
];
const MANIFEST_MEDIA: [&str; 4] = [
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST,
    media_type::OCI_INDEX,
    "text/plain",
];

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

fn desc(media: &str, bytes: &[u8], delta: i8) -> Value {
    json!({
        "mediaType": media,
        "digest": Digest::of(bytes).to_string(),
        "size": (bytes.len() as i64 + i64::from(delta)).max(0),
    })
}

fn build(a: &Archive, parent: &str) -> Vec<u8> {
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_files = Vec::new();
    for l in a.layers.iter().take(3) {
        let tar = l.layer.render(parent);
        let diff = match &l.wrong_diff_id {
            Some(b) => Digest::of(b),
            None => Digest::of(&tar),
        };
        diff_ids.push(diff.to_string());
        let blob = if l.gzip { gzip(&tar) } else { tar };
        let media = LAYER_MEDIA[usize::from(l.media) % LAYER_MEDIA.len()];
        layer_descs.push(desc(media, &blob, l.size_delta));
        layer_files.push(format!("blobs/sha256/{}", Digest::of(&blob).hex()));
        blobs.push(blob);
    }
    let config = match &a.config_raw {
        Some(raw) => raw.clone(),
        None => {
            let mut c = json!({
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            for (k, v) in a.config_extra.iter().take(4) {
                let v = serde_json::from_str(v).unwrap_or(Value::String(v.clone()));
                c["config"][k] = v;
            }
            serde_json::to_vec(&c).expect("config json")
        }
    };
    let config_file = format!("blobs/sha256/{}", Digest::of(&config).hex());
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": desc(media_type::OCI_CONFIG, &config, a.config_size_delta),
        "layers": layer_descs,
    }))
    .expect("manifest json");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, blob) in layer_files.iter().zip(&blobs) {
        files.push((name.clone(), blob.clone()));
    }
    files.push((config_file.clone(), config.clone()));
    if a.docker {
        let tags: Vec<&String> = a.names.iter().take(3).collect();
        let m = json!([{"Config": config_file, "RepoTags": tags, "Layers": layer_files}]);
        files.push(("manifest.json".into(), serde_json::to_vec(&m).expect("json")));
    } else {
        let media = MANIFEST_MEDIA[usize::from(a.manifest_media) % MANIFEST_MEDIA.len()];
        let mut mdesc = desc(media, &manifest, 0);
        if let Some((os, arch)) = &a.platform {
            mdesc["platform"] = json!({"os": os, "architecture": arch});
        }
        let names: Vec<&String> = a.names.iter().take(3).collect();
        if let Some(n) = names.first() {
            mdesc["annotations"] = json!({"org.opencontainers.image.ref.name": n});
        }
        files.push((
            format!("blobs/sha256/{}", Digest::of(&manifest).hex()),
            manifest,
        ));
        let mut index = json!({"schemaVersion": 2, "manifests": [mdesc]});
        if a.nested_index {
            let inner = serde_json::to_vec(&index).expect("json");
            let idesc = desc(media_type::OCI_INDEX, &inner, 0);
            files.push((format!("blobs/sha256/{}", Digest::of(&inner).hex()), inner));
            index = json!({"schemaVersion": 2, "manifests": [idesc]});
        }
        files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
        files.push(("index.json".into(), serde_json::to_vec(&index).expect("json")));
    }
    if let Some(i) = a.omit {
        let i = usize::from(i) % files.len();
        files.remove(i);
    }
    for (n, d) in a.extras.iter().take(3) {
        files.push((n.clone(), d[..d.len().min(1024)].to_vec()));
    }
    let mut out = Vec::new();
    for (name, data) in &files {
        write_file(&mut out, name, data);
    }
    write_end(&mut out);
    if a.gzip_outer { gzip(&out) } else { out }
}

fuzz_target!(|a: Archive| {
    let sb = Sandbox::new();
    let bytes = build(&a, &sb.parent_str());
    let store = Store::open(&sb.work()).expect("open store");
    let result = store.load(&bytes[..]);
    sb.check();
    let images = store.images().expect("list images after load");
    match result {
        Ok(loaded) => {
            assert!(!loaded.is_empty());
            if std::env::var_os("BERTH_FUZZ_VERBOSE").is_some() {
                eprintln!("loaded {} image(s)", loaded.len());
            }
            for img in &loaded {
                let found = store.image(img.id.hex()).expect("a loaded image is found by id");
                for path in store.rootfs_paths(&found) {
                    assert!(path.is_dir(), "missing snapshot {}", path.display());
                }
            }
        }
        Err(e) => assert!(images.is_empty(), "load failed ({e}) but recorded {images:?}"),
    }
});
