//! Digests computed on the way: a reader and a writer that hash every byte passing through, and
//! the OCI chain ID. The store's one copy of these (content, snapshots, import and load use them).

use berth_oci::{Digest, Digester};
use std::io::{self, Read, Write};

/// The OCI image-spec chain ID of a layer: its diff ID for the bottom layer, otherwise
/// `sha256(parent_chain_id + " " + diff_id)` over the `sha256:<hex>` strings.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// Reads through, hashing every byte: the diff ID is the digest of the uncompressed stream, the
/// blob digest that of the compressed one.
pub(crate) struct HashingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            digester: Digester::new(),
        }
    }

    /// The reader inside.
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The length and digest of everything read.
    pub(crate) fn finish(self) -> (u64, Digest) {
        let len = self.digester.len();
        (len, self.digester.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes through, hashing every byte written.
pub(crate) struct HashingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            digester: Digester::new(),
        }
    }

    /// The length and digest of everything written.
    pub(crate) fn finish(self) -> (u64, Digest) {
        let len = self.digester.len();
        (len, self.digester.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_and_writer_hash_exactly_what_passed() {
        let data = b"some layer bytes";
        let mut r = HashingReader::new(&data[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish(), (data.len() as u64, Digest::of(data)));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data[..5]).unwrap();
        assert_eq!(w.finish(), (5, Digest::of(&data[..5])));
    }

    #[test]
    fn chain_id_of_the_bottom_layer_is_its_diff_id() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(None, &a), a);
        assert_eq!(
            chain_id(Some(&a), &b),
            Digest::of(format!("{a} {b}").as_bytes())
        );
        assert_ne!(chain_id(Some(&a), &b), chain_id(Some(&b), &a));
    }
}
