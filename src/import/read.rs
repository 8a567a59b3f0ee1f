//! Import layer: reading a file of results — one streaming pass that
//! hashes the bytes as the parser consumes them, and the merging of what
//! the parsers give (newest wins, duplicates counted, texts cut to size).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use super::{ImportError, MAX_NAME, inert};
use crate::model::{Observation, Proto};

/// A buffered reader that hashes every byte the parser consumes: the
/// input's hash comes from the one pass that parsed it.
pub(super) struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: BufRead> Hashing<R> {
    /// Reads what the parser left (nothing, for a parser that reads to the
    /// end) into the hash, and returns it in hex.
    pub(super) fn finish(mut self) -> std::io::Result<String> {
        use sha2::Digest;
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(hex::encode(self.hash.finalize()))
    }
}

impl<R: BufRead> Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        read_through(self, out)
    }
}

/// `Read::read` of a reader whose [`BufRead::consume`] does the work (the
/// hashing and guarding readers of this layer): copy from `fill_buf`, then
/// consume what was copied.
pub(crate) fn read_through<R: BufRead + ?Sized>(
    r: &mut R,
    out: &mut [u8],
) -> std::io::Result<usize> {
    let n = {
        let buf = r.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        n
    };
    r.consume(n);
    Ok(n)
}

impl<R: BufRead> BufRead for Hashing<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        use sha2::Digest;
        // The bytes being consumed are still in the buffer fill_buf gave.
        if let Ok(b) = self.inner.fill_buf() {
            self.hash.update(&b[..amt.min(b.len())]);
        }
        self.inner.consume(amt);
    }
}

pub(super) fn open(path: &Path) -> Result<Hashing<BufReader<std::fs::File>>, ImportError> {
    let read_err = |source| ImportError::Read {
        file: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    if f.metadata().map_err(read_err)?.is_dir() {
        return Err(read_err(std::io::Error::other("is a directory")));
    }
    let mut input = Hashing {
        inner: BufReader::with_capacity(1 << 16, f),
        hash: <sha2::Sha256 as sha2::Digest>::new(),
    };
    // A UTF-8 byte order mark (editors on Windows write one) is not part
    // of the first line; it is still part of what is hashed.
    if input
        .fill_buf()
        .map_err(read_err)?
        .starts_with(b"\xEF\xBB\xBF")
    {
        input.consume(3);
    }
    Ok(input)
}

/// Longest banner kept from an import, in bytes (identification keeps
/// 256 bytes, escaped: at most four times that).
pub const MAX_BANNER: usize = 1 << 10;
/// Longest product, version, extra fact, host name or error kept.
pub const MAX_FIELD: usize = 1 << 10;
/// Extra facts and host names kept per observation.
pub const MAX_ENTRIES: usize = 64;

/// Cuts what an imported observation carries to the sizes identification
/// itself produces, as soon as it is read: a 300 MB banner costs a line's
/// buffer while it is parsed, never a copy in the results or the report.
fn bound_texts(o: &mut Observation) {
    let cut = |s: &mut String, max: usize| {
        if s.len() > max {
            *s = inert(s, max);
        }
    };
    o.hostnames.truncate(MAX_ENTRIES);
    o.hostnames.iter_mut().for_each(|h| cut(h, MAX_FIELD));
    if let Some(e) = o.error.as_mut() {
        cut(e, MAX_FIELD);
    }
    if let Some(svc) = o.service.as_mut() {
        cut(&mut svc.name, MAX_NAME);
        for t in [&mut svc.product, &mut svc.version].into_iter().flatten() {
            cut(t, MAX_FIELD);
        }
        if let Some(b) = svc.banner.as_mut() {
            cut(b, MAX_BANNER);
        }
        if svc.extra.len() > MAX_ENTRIES
            || svc
                .extra
                .iter()
                .any(|(k, v)| k.len() > MAX_NAME || v.len() > MAX_FIELD)
        {
            svc.extra = std::mem::take(&mut svc.extra)
                .into_iter()
                .take(MAX_ENTRIES)
                .map(|(k, v)| (inert(&k, MAX_NAME), inert(&v, MAX_FIELD)))
                .collect();
        }
    }
}

/// One observation per (address, port, protocol), merged as results are
/// read: the newest wins (on a tie, the one read last), and a duplicate is
/// counted, never kept. Each one's texts are cut as it arrives
/// ([`bound_texts`]).
#[derive(Default)]
pub(super) struct Merged {
    all: Vec<Observation>,
    index: HashMap<(IpAddr, u16, Proto), usize>,
    /// Results read (duplicates included).
    pub(super) read: u64,
    /// Results that repeated an (address, port, protocol) already read.
    pub(super) duplicates: u64,
}

impl Merged {
    pub(super) fn push(&mut self, mut o: Observation) {
        use std::collections::hash_map::Entry;
        bound_texts(&mut o);
        self.read += 1;
        match self.index.entry((o.ip, o.port, o.proto)) {
            Entry::Occupied(e) => {
                self.duplicates += 1;
                let kept = &mut self.all[*e.get()];
                if kept.time <= o.time {
                    *kept = o;
                }
            }
            Entry::Vacant(e) => {
                e.insert(self.all.len());
                self.all.push(o);
            }
        }
    }

    /// The observations, sorted by (address, port, protocol).
    pub(super) fn finish(self) -> Vec<Observation> {
        let Merged { mut all, index, .. } = self;
        drop(index);
        // Keys are unique: an unstable sort (no buffer) is exact.
        all.sort_unstable_by_key(|o| (o.ip, o.port, o.proto));
        all.shrink_to_fit();
        all
    }
}
