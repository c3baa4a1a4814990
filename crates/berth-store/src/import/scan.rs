//! Reading a layer stream once: sniff its compression, check that it decompresses to a tar
//! stream, and compute its diff ID and uncompressed size.

use crate::error::{Error, Result};
use crate::hashing::HashingReader;
use crate::snapshot;
use berth_oci::Digest;
use berth_oci::media_type::LayerCompression;
use std::io::{self, BufRead, BufReader, Read, Write};

/// What one pass over a layer stream learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerScan {
    /// How the stream was compressed.
    pub compression: LayerCompression,
    /// Digest of the uncompressed stream.
    pub diff_id: Digest,
    /// Length of the uncompressed stream.
    pub unpacked_size: u64,
    /// Number of tar entries.
    pub entries: u64,
    /// Bytes of file content (regular files, symlink targets; hard links once), which is how
    /// Docker counts an image's size.
    pub content_size: u64,
}

/// The compression a stream starts with, judged from its magic bytes.
pub fn sniff(head: &[u8]) -> LayerCompression {
    if head.starts_with(&[0x1f, 0x8b]) {
        LayerCompression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        LayerCompression::Zstd
    } else {
        LayerCompression::None
    }
}

/// The OCI media type for a layer with this compression.
pub fn layer_media_type(c: LayerCompression) -> &'static str {
    match c {
        LayerCompression::None => berth_oci::media_type::OCI_LAYER_TAR,
        LayerCompression::Gzip => berth_oci::media_type::OCI_LAYER_GZIP,
        LayerCompression::Zstd => berth_oci::media_type::OCI_LAYER_ZSTD,
    }
}

/// A reader that copies everything it reads into a writer (used to store a blob while it is
/// being decompressed and checked, in one pass over the input).
pub(crate) struct Tee<R, W> {
    src: R,
    sink: W,
    /// The sink's failure, kept so it is not mistaken for bad input.
    sink_error: Option<io::Error>,
}

impl<R, W> Tee<R, W> {
    pub(crate) fn new(src: R, sink: W) -> Self {
        Tee {
            src,
            sink,
            sink_error: None,
        }
    }

    /// Why writing to the sink failed, if it did.
    pub(crate) fn take_sink_error(&mut self) -> Option<io::Error> {
        self.sink_error.take()
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.sink_error = Some(e);
            return Err(copy);
        }
        Ok(n)
    }
}

/// Reads `input` to its end, checking that it is a (gzip/zstd-compressed or plain) tar stream.
pub fn scan_layer(input: impl Read) -> Result<LayerScan> {
    let not_tar = |e: io::Error| Error::NotATar(e.to_string());
    let mut buf = BufReader::with_capacity(256 * 1024, input);
    let head = buf.fill_buf().map_err(not_tar)?;
    if head.is_empty() {
        return Err(Error::NotATar("the input is empty".into()));
    }
    let compression = sniff(head);
    let (diff_id, unpacked_size, entries, content_size) = {
        let decoder = snapshot::decompress(&mut buf).map_err(not_tar)?;
        let mut hashed = HashingReader::new(decoder);
        let mut entries = 0u64;
        let mut content_size = 0u64;
        {
            let mut archive = tar::Archive::new(&mut hashed);
            // Iterating skips each entry's data, which reads (and so hashes) all of it.
            for entry in archive.entries().map_err(not_tar)? {
                let entry = entry.map_err(not_tar)?;
                entries += 1;
                let kind = entry.header().entry_type();
                if kind.is_file() || kind == tar::EntryType::Continuous {
                    content_size += entry.size();
                } else if kind.is_symlink() {
                    content_size += entry.link_name_bytes().map_or(0, |l| l.len() as u64);
                }
            }
        }
        // The end-of-archive blocks and any padding after them are part of the diff ID.
        io::copy(&mut hashed, &mut io::sink()).map_err(not_tar)?;
        let (len, diff_id) = hashed.finish();
        if len == 0 {
            return Err(Error::NotATar("it decompresses to nothing".into()));
        }
        (diff_id, len, entries, content_size)
    };
    // Bytes after the end of the compressed stream still belong to the blob.
    io::copy(&mut buf, &mut io::sink()).map_err(|e| Error::Read {
        what: "layer".into(),
        source: e,
    })?;
    Ok(LayerScan {
        compression,
        diff_id,
        unpacked_size,
        entries,
        content_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn plain_gzip_and_zstd_give_the_same_diff_id() {
        let tar = tar_with("hello.txt", b"hi there");
        let plain = scan_layer(&tar[..]).unwrap();
        assert_eq!(plain.compression, LayerCompression::None);
        assert_eq!(plain.diff_id, Digest::of(&tar));
        assert_eq!(plain.entries, 1);
        assert_eq!(plain.content_size, 8);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let g = scan_layer(&gz[..]).unwrap();
        assert_eq!(
            (g.compression, &g.diff_id),
            (LayerCompression::Gzip, &plain.diff_id)
        );
        let zs = zstd::encode_all(&tar[..], 1).unwrap();
        let z = scan_layer(&zs[..]).unwrap();
        assert_eq!(
            (z.compression, &z.diff_id),
            (LayerCompression::Zstd, &plain.diff_id)
        );
    }

    #[test]
    fn garbage_and_truncation_are_not_tar() {
        assert!(matches!(
            scan_layer(&b"this is not a tar file at all"[..]),
            Err(Error::NotATar(_))
        ));
        assert!(matches!(scan_layer(&b""[..]), Err(Error::NotATar(_))));
        let tar = tar_with("big", &vec![7u8; 100_000]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        assert!(matches!(scan_layer(cut), Err(Error::NotATar(_))));
        assert!(matches!(scan_layer(&tar[..5000]), Err(Error::NotATar(_))));
    }

    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_blob_write_is_told_apart_from_bad_input() {
        let tar = tar_with("f", b"x");
        let mut tee = Tee::new(&tar[..], FullDisk);
        assert!(scan_layer(&mut tee).is_err());
        let e = tee.take_sink_error().expect("sink error kept");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    }
}
