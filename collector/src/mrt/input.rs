//! Opening an MRT file: compression detected by magic bytes, decompression through flate2 or
//! bzip2 on a thread of its own, and a byte-counting tap that gives the loader the
//! decompressed offset of every record and the first I/O error.
//!
//! Decompression runs beside parsing (bzip2 costs about as much as parsing a full table), and
//! hands over the stream in chunks with its SHA-256. Errors keep their place: the bytes that
//! decompressed before a failure reach the parser first, then the error.
//!
//! The tap keeps the first error because bgpkit-parser reads a stream that ends exactly at a
//! record boundary with an `UnexpectedEof` as a clean end of file. A gzip file cut inside its
//! trailer, or a bzip2 stream cut between blocks, ends that way: the decoder reports it, and
//! the loader must see that report even though the parser does not.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest, Sha256};

/// How an MRT file is compressed, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain MRT.
    None,
    /// gzip (RFC 1952), possibly several members: `1f 8b`.
    Gzip,
    /// bzip2, possibly several streams: `BZh`.
    Bzip2,
}

impl Compression {
    /// Detects the compression from the first bytes of a file.
    pub fn detect(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if magic.starts_with(b"BZh") {
            Self::Bzip2
        } else {
            Self::None
        }
    }

    /// The name stored in `mrt_files.compression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the tap saw of the decompressed stream.
#[derive(Default)]
pub struct TapState {
    bytes: Cell<u64>,
    error: RefCell<Option<(io::ErrorKind, String)>>,
}

impl TapState {
    /// Bytes that passed through so far: the offset of the next byte.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// The first I/O error the stream returned, if any.
    pub fn error(&self) -> Option<(io::ErrorKind, String)> {
        self.error.borrow().clone()
    }
}

/// A reader that counts the bytes read through it and keeps the first error.
pub struct Tap<R> {
    inner: R,
    state: Rc<TapState>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.state.bytes.set(self.state.bytes.get() + n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let mut slot = self.state.error.borrow_mut();
                if slot.is_none() {
                    *slot = Some((e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// What the decompression thread sends.
enum Chunk {
    Data(Vec<u8>),
    Failed(io::ErrorKind, String),
    End { sha256: String },
}

const CHUNK: usize = 1 << 20;

/// The receiving end of the decompression thread.
pub struct StreamReader {
    rx: Receiver<Chunk>,
    current: Vec<u8>,
    pos: usize,
    finished: Option<Result<(), (io::ErrorKind, String)>>,
    sha256: Rc<RefCell<Option<String>>>,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match &self.finished {
                Some(Ok(())) => return Ok(0),
                Some(Err((kind, message))) => return Err(io::Error::new(*kind, message.clone())),
                None => {}
            }
            match self.rx.recv() {
                Ok(Chunk::Data(data)) => {
                    self.current = data;
                    self.pos = 0;
                }
                Ok(Chunk::Failed(kind, message)) => self.finished = Some(Err((kind, message))),
                Ok(Chunk::End { sha256 }) => {
                    *self.sha256.borrow_mut() = Some(sha256);
                    self.finished = Some(Ok(()));
                }
                Err(_) => {
                    self.finished = Some(Err((
                        io::ErrorKind::Other,
                        "the decompression thread stopped unexpectedly".to_string(),
                    )));
                }
            }
        }
    }
}

/// An opened MRT file: `reader` yields the decompressed MRT stream.
pub struct MrtInput {
    /// The detected compression.
    pub compression: Compression,
    /// Size of the file.
    pub file_bytes: u64,
    /// File bytes consumed so far by the decompressor (for progress).
    pub file_read: Arc<AtomicU64>,
    /// Decompressed bytes consumed by the parser: record offsets and errors.
    pub mrt_tap: Rc<TapState>,
    /// SHA-256 (lowercase hex) of the whole decompressed stream, once it ended cleanly.
    pub mrt_sha256: Rc<RefCell<Option<String>>>,
    /// The decompressed stream.
    pub reader: Tap<StreamReader>,
}

/// Opens `path`, detects its compression and starts decompressing it on a thread.
pub fn open(path: &Path) -> io::Result<MrtInput> {
    let mut file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut magic = [0u8; 3];
    let got = read_up_to(&mut file, &mut magic)?;
    let compression = Compression::detect(&magic[..got]);
    // Put the magic bytes back in front of the stream rather than seeking, so that
    // non-seekable inputs (named pipes) work too.
    let file = io::Cursor::new(magic[..got].to_vec()).chain(file);
    let file_read = Arc::new(AtomicU64::new(0));
    let counted = CountingReader {
        inner: BufReader::with_capacity(1 << 16, file),
        count: Arc::clone(&file_read),
    };
    let decoder: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(counted)),
    };
    let (tx, rx) = sync_channel(4);
    std::thread::Builder::new()
        .name("mrt-decompress".into())
        .spawn(move || decompress(decoder, &tx))?;
    let mrt_sha256 = Rc::new(RefCell::new(None));
    let stream = StreamReader {
        rx,
        current: Vec::new(),
        pos: 0,
        finished: None,
        sha256: Rc::clone(&mrt_sha256),
    };
    let mrt_tap = Rc::new(TapState::default());
    let reader = Tap {
        inner: stream,
        state: Rc::clone(&mrt_tap),
    };
    Ok(MrtInput {
        compression,
        file_bytes,
        file_read,
        mrt_tap,
        mrt_sha256,
        reader,
    })
}

/// The decompression thread: sends the stream in chunks, then its end or its error. Stops
/// early when the loader hangs up.
fn decompress(mut decoder: Box<dyn Read + Send>, tx: &SyncSender<Chunk>) {
    let mut hasher = Sha256::new();
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut failure = None;
        while filled < CHUNK {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        buf.truncate(filled);
        hasher.update(&buf);
        if filled > 0 && tx.send(Chunk::Data(buf)).is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = tx.send(Chunk::Failed(e.kind(), e.to_string()));
            return;
        }
        if filled < CHUNK {
            let sha256 = hex(&hasher.finalize());
            let _ = tx.send(Chunk::End { sha256 });
            return;
        }
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// SHA-256 (lowercase hex, as `sha256sum` prints it) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_by_magic_not_name() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::detect(b"BZh9"), Compression::Bzip2);
        assert_eq!(Compression::detect(&[0, 0, 0]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn stream_and_hash_come_through_in_order() {
        // More than one chunk, so the hand-over between chunks is exercised.
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mrt"); // no .gz suffix on purpose
        std::fs::write(&path, gzip(&data)).unwrap();
        let mut input = open(&path).unwrap();
        assert_eq!(input.compression, Compression::Gzip);
        let mut out = Vec::new();
        input.reader.read_to_end(&mut out).unwrap();
        assert!(out == data);
        assert_eq!(input.mrt_tap.bytes(), data.len() as u64);
        assert_eq!(input.mrt_tap.error(), None);
        assert_eq!(
            input.mrt_sha256.borrow().as_deref(),
            Some(hex(&Sha256::digest(&data)).as_str())
        );
        assert_eq!(input.file_read.load(Ordering::Relaxed), input.file_bytes);
    }

    #[test]
    fn gzip_cut_in_trailer_reports_error_after_all_data() {
        let mut gz = gzip(&[7u8; 1000]);
        gz.truncate(gz.len() - 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mrt");
        std::fs::write(&path, &gz).unwrap();
        let mut input = open(&path).unwrap();
        let mut out = Vec::new();
        assert!(input.reader.read_to_end(&mut out).is_err());
        assert_eq!(out.len(), 1000, "all data came out before the trailer");
        assert_eq!(
            input.mrt_tap.error().unwrap().0,
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            *input.mrt_sha256.borrow(),
            None,
            "no hash for a damaged stream"
        );
    }

    #[test]
    fn file_hash_matches_known_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let (sha, len) = sha256_file(&path).unwrap();
        assert_eq!(len, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
