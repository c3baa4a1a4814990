//! Compression sniffing for layer blobs: the media type is not trusted, the magic bytes are.

use std::io::{self, Cursor, Read};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Wraps `r` in a streaming decompressor chosen from its first bytes: gzip (`1f 8b`, any number of
/// members), zstd (`28 b5 2f fd`), or none (an uncompressed tar). Nothing is written to disk.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = Cursor::new(head).take(got as u64).chain(r);
    if head[..got].starts_with(&GZIP_MAGIC) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)))
    } else if head[..got] == ZSTD_MAGIC {
        Ok(Box::new(zstd::stream::read::Decoder::new(whole)?))
    } else {
        Ok(Box::new(whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(r: &mut dyn Read) -> Vec<u8> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    }

    /// Yields one byte per read, to prove sniffing does not depend on read sizes.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn plain_gzip_multi_member_and_zstd() {
        let data = b"hello layer, hello layer, hello layer".to_vec();
        assert_eq!(read_all(&mut *decompress(&data[..]).unwrap()), data);
        assert_eq!(read_all(&mut *decompress(&b""[..]).unwrap()), b"");
        assert_eq!(read_all(&mut *decompress(&b"ab"[..]).unwrap()), b"ab");

        let mut gz = Vec::new();
        for part in [&data[..10], &data[10..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        assert_eq!(read_all(&mut *decompress(Trickle(&gz)).unwrap()), data);

        let zs = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(read_all(&mut *decompress(Trickle(&zs)).unwrap()), data);
    }
}
