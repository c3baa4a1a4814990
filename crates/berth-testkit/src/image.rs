//! Layers and images built for a test: a layer tar of some files, compressed as asked ([`layer`]), and a
//! whole OCI image layout, as a directory and as a tar archive ([`oci_image`]).

use crate::digest;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use berth_oci::media_type::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

/// How a [`Layer`]'s blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => berth_oci::media_type::OCI_LAYER_TAR,
            Compression::Gzip => berth_oci::media_type::OCI_LAYER_GZIP,
            Compression::Zstd => berth_oci::media_type::OCI_LAYER_ZSTD,
        }
    }

    /// `tar` compressed this way.
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip in memory");
                e.finish().expect("gzip in memory")
            }
            Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd in memory"),
        }
    }
}

/// A layer as a registry or a layout holds it.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob, compressed as `media_type` says.
    pub blob: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    /// A layer whose uncompressed content is `tar`.
    pub fn from_tar(tar: &[u8], compression: Compression) -> Layer {
        Layer {
            blob: compression.compress(tar),
            media_type: compression.media_type(),
            diff_id: digest(tar),
        }
    }

    /// The blob's digest.
    pub fn digest(&self) -> String {
        digest(&self.blob)
    }
}

/// A tar of regular files `(path, content)`, mode 0644, owned by root, mtime 0; parents are implied.
pub fn files_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path.trim_start_matches('/'), *data)
            .expect("append to a layer tar");
    }
    b.into_inner().expect("finish a layer tar")
}

/// A layer holding `files`, compressed as asked.
pub fn layer(files: &[(&str, &[u8])], compression: Compression) -> Layer {
    Layer::from_tar(&files_tar(files), compression)
}

/// An image config for `os/arch` whose command is `cmd` and whose layers are `layers`.
pub fn config_json(layers: &[Layer], platform: (&str, &str), cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": platform.1,
        "os": platform.0,
        "config": {
            "Cmd": cmd,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "berth-testkit"})).collect::<Vec<_>>(),
    }))
    .expect("config JSON")
}

/// An image manifest naming a config blob and `layers`.
pub fn manifest_json(config: &[u8], layers: &[Layer]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest(), "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    }))
    .expect("manifest JSON")
}

/// An OCI image layout built for a test, as a directory and as a tar archive of it.
pub struct OciImage {
    /// The layout directory (`skopeo copy oci:DIR:TAG`).
    pub layout: PathBuf,
    /// The same as a tar archive (`berth load -i`, `oci-archive:`).
    pub archive: PathBuf,
    /// The full reference the index names (`io.containerd.image.name`).
    pub name: String,
    /// The tag (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    /// The manifest's digest.
    pub manifest: String,
    /// The config's digest (the image id).
    pub config: String,
    _dir: tempfile::TempDir,
}

fn write_blob(layout: &Path, data: &[u8]) -> String {
    let d = digest(data);
    let p = layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    d
}

/// Builds the OCI layout of an amd64 Linux image named `name` (a full reference such as
/// `localhost/test/app:1`) whose command is `sh`, with `layers` bottom first, under
/// [`crate::scratch_dir`].
pub fn oci_image(name: &str, layers: &[Layer]) -> OciImage {
    let dir = tempfile::Builder::new()
        .prefix("img-")
        .tempdir_in(crate::scratch_dir())
        .expect("temp dir for an image");
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir blobs");
    let digests = layers
        .iter()
        .map(|l| write_blob(&layout, &l.blob))
        .collect();
    let config = config_json(layers, ("linux", "amd64"), &["sh"]);
    let cd = write_blob(&layout, &config);
    let manifest = manifest_json(&config, layers);
    let md = write_blob(&layout, &manifest);
    let tag = name
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t)
        .unwrap_or("latest");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .expect("write index.json");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
    let archive = dir.path().join("image.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).expect("create image.tar"));
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", &layout).expect("tar the layout");
    b.into_inner().expect("finish image.tar");
    OciImage {
        layout,
        archive,
        name: name.to_owned(),
        tag: tag.to_owned(),
        layers: digests,
        manifest: md,
        config: cd,
        _dir: dir,
    }
}

/// The busybox root filesystem as a gzip layer.
pub fn busybox_layer() -> Layer {
    Layer::from_tar(
        &std::fs::read(crate::busybox::tar()).expect("read busybox.tar"),
        Compression::Gzip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_keeps_its_diff_id_whatever_the_compression() {
        let files: &[(&str, &[u8])] = &[("a.txt", b"a"), ("/d/b.txt", b"b")];
        let plain = layer(files, Compression::None);
        for c in [Compression::Gzip, Compression::Zstd] {
            let l = layer(files, c);
            assert_eq!(l.diff_id, plain.diff_id);
            assert_ne!(l.blob, plain.blob);
            assert_eq!(l.media_type, c.media_type());
        }
        let mut a = tar::Archive::new(&plain.blob[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.txt", "d/b.txt"]);
    }

    #[test]
    fn an_oci_image_layout_is_consistent() {
        let img = oci_image(
            "localhost/t/app:1",
            &[layer(&[("x", b"x")], Compression::Gzip)],
        );
        assert_eq!(img.tag, "1");
        let blob = |d: &str| {
            std::fs::read(
                img.layout
                    .join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let m: serde_json::Value = serde_json::from_slice(&blob(&img.manifest)).unwrap();
        assert_eq!(m["config"]["digest"], img.config.as_str());
        assert_eq!(m["layers"][0]["digest"], img.layers[0].as_str());
        assert_eq!(digest(&blob(&img.layers[0])), img.layers[0]);
        assert!(img.archive.metadata().unwrap().len() > 0);
        let port = oci_image("localhost:5000/t/app", &[]);
        assert_eq!(port.tag, "latest");
    }
}
