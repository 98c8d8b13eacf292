//! Classic libpcap capture files (the format `tcpdump -w` writes and every
//! analyser reads): a 24-byte global header, then per frame a 16-byte record
//! header and the frame bytes. We write little-endian, version 2.4, microsecond
//! timestamps, link type 1 (Ethernet, frames without FCS), snap length 65535.
//! [`read_file`] reads both byte orders and both microsecond and nanosecond
//! variants, validating every length.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// Magic number of microsecond-resolution pcap files.
pub const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
/// Magic number of nanosecond-resolution pcap files.
pub const MAGIC_NANOS: u32 = 0xA1B2_3C4D;
/// Link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame a capture stores whole; longer frames are truncated to this and
/// keep their original length in the record header.
pub const SNAPLEN: u32 = 65535;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// A capture file problem.
#[derive(Debug, Error)]
pub enum PcapError {
    #[error("{context} {path}: {source}")]
    /// Opening, reading or writing a capture file failed.
    Io {
        /// What was being done.
        context: &'static str,
        /// The capture file.
        path: PathBuf,
        #[source]
        /// The operating-system error.
        source: io::Error,
    },
    #[error("writing capture: {0}")]
    /// Writing a record to the capture sink failed.
    Write(#[source] io::Error),
    #[error("not a pcap file (magic {0:#010x}); pcapng is not supported, convert with `editcap -F pcap`")]
    /// The file does not start with a pcap magic number (given).
    NotPcap(u32),
    #[error("pcap link type {0} is not Ethernet (1)")]
    /// The link type (given) is not Ethernet.
    UnsupportedLinkType(u32),
    #[error("pcap file truncated at byte {offset}: {what}")]
    /// The file ends inside a header or record.
    Truncated {
        /// File offset where the cut part starts.
        offset: usize,
        /// The part that is cut short.
        what: &'static str,
    },
    #[error("pcap record at byte {offset} claims {incl_len} captured bytes, more than the snap length {snaplen}")]
    /// A record header with an impossible length.
    BadRecord {
        /// File offset of the record.
        offset: usize,
        /// Captured length the record claims.
        incl_len: u32,
        /// The file's snapshot length.
        snaplen: u32,
    },
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapRecord {
    /// Timestamp since the Unix epoch (or since whatever clock the writer used).
    pub ts: Duration,
    /// Length of the frame on the wire (may exceed `data.len()` if truncated).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Writes a classic pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the global header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref();
        let f = File::create(path).map_err(|source| PcapError::Io {
            context: "creating capture file",
            path: path.to_path_buf(),
            source,
        })?;
        PcapWriter::new(BufWriter::new(f))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header to `out`.
    pub fn new(mut out: W) -> Result<Self, PcapError> {
        let mut h = Vec::with_capacity(GLOBAL_HEADER_LEN);
        h.extend_from_slice(&MAGIC_MICROS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h).map_err(PcapError::Write)?;
        out.flush().map_err(PcapError::Write)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame with timestamp `ts` and flushes, so the file is readable
    /// while the capture runs. Seconds beyond `u32::MAX` saturate.
    pub fn write_frame(&mut self, ts: Duration, frame: &[u8]) -> Result<(), PcapError> {
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = frame.len().min(SNAPLEN as usize);
        let mut h = [0u8; RECORD_HEADER_LEN];
        let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&h).map_err(PcapError::Write)?;
        self.out
            .write_all(&frame[..incl])
            .map_err(PcapError::Write)?;
        self.out.flush().map_err(PcapError::Write)
    }

    /// Flushes buffered bytes.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.out.flush().map_err(PcapError::Write)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads every record of a classic pcap file with Ethernet link type.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<PcapRecord>, PcapError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        context: "reading capture file",
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes)
}

/// Parses a classic pcap image held in memory (see [`read_file`]).
pub fn parse(bytes: &[u8]) -> Result<Vec<PcapRecord>, PcapError> {
    if bytes.len() < GLOBAL_HEADER_LEN {
        return Err(PcapError::Truncated {
            offset: bytes.len(),
            what: "global header",
        });
    }
    let le =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let magic_le = le(0);
    let (swap, nanos) = match magic_le {
        MAGIC_MICROS => (false, false),
        MAGIC_NANOS => (false, true),
        m if m.swap_bytes() == MAGIC_MICROS => (true, false),
        m if m.swap_bytes() == MAGIC_NANOS => (true, true),
        m => return Err(PcapError::NotPcap(m)),
    };
    let word = |at: usize| if swap { le(at).swap_bytes() } else { le(at) };
    let snaplen = word(16);
    let linktype = word(20) & 0x0FFF_FFFF; // upper bits: FCS length flags
    if linktype != LINKTYPE_ETHERNET {
        return Err(PcapError::UnsupportedLinkType(linktype));
    }
    // Some writers store snaplen 0 or huge values; cap what we accept per record.
    let limit = if snaplen == 0 {
        SNAPLEN
    } else {
        snaplen.min(1 << 18)
    };
    let mut out = Vec::new();
    let mut at = GLOBAL_HEADER_LEN;
    while at < bytes.len() {
        if bytes.len() - at < RECORD_HEADER_LEN {
            return Err(PcapError::Truncated {
                offset: at,
                what: "record header",
            });
        }
        let secs = word(at);
        let frac = word(at + 4);
        let incl_len = word(at + 8);
        let orig_len = word(at + 12);
        if incl_len > limit {
            return Err(PcapError::BadRecord {
                offset: at,
                incl_len,
                snaplen: limit,
            });
        }
        let data_at = at + RECORD_HEADER_LEN;
        let end = data_at + incl_len as usize;
        if end > bytes.len() {
            return Err(PcapError::Truncated {
                offset: data_at,
                what: "record data",
            });
        }
        let nanos_part = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        out.push(PcapRecord {
            ts: Duration::from_secs(u64::from(secs)) + Duration::from_nanos(nanos_part),
            orig_len,
            data: bytes[data_at..end].to_vec(),
        });
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_then_parse() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(Duration::new(5, 123_456_789), &[1, 2, 3])
            .unwrap();
        w.write_frame(Duration::from_micros(7), &[9; 70]).unwrap();
        let img = w.into_inner();
        assert_eq!(&img[0..4], &[0xD4, 0xC3, 0xB2, 0xA1]);
        assert_eq!(img.len(), 24 + 16 + 3 + 16 + 70);
        let recs = parse(&img).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts, Duration::new(5, 123_456_000));
        assert_eq!(recs[0].data, vec![1, 2, 3]);
        assert_eq!(recs[0].orig_len, 3);
        assert_eq!(recs[1].ts, Duration::from_micros(7));
        assert_eq!(recs[1].data.len(), 70);
    }

    #[test]
    fn big_endian_nanosecond_files_parse() {
        let mut img = Vec::new();
        img.extend_from_slice(&MAGIC_NANOS.to_be_bytes());
        img.extend_from_slice(&2u16.to_be_bytes());
        img.extend_from_slice(&4u16.to_be_bytes());
        img.extend_from_slice(&[0; 8]);
        img.extend_from_slice(&65535u32.to_be_bytes());
        img.extend_from_slice(&1u32.to_be_bytes());
        img.extend_from_slice(&3u32.to_be_bytes());
        img.extend_from_slice(&999u32.to_be_bytes());
        img.extend_from_slice(&2u32.to_be_bytes());
        img.extend_from_slice(&60u32.to_be_bytes());
        img.extend_from_slice(&[0xAB, 0xCD]);
        let recs = parse(&img).unwrap();
        assert_eq!(
            recs,
            vec![PcapRecord {
                ts: Duration::new(3, 999),
                orig_len: 60,
                data: vec![0xAB, 0xCD]
            }]
        );
    }

    #[test]
    fn bad_files_are_rejected() {
        assert!(matches!(parse(&[0; 10]), Err(PcapError::Truncated { .. })));
        // pcapng section header block.
        let mut ng = vec![0x0A, 0x0D, 0x0D, 0x0A];
        ng.resize(24, 0);
        assert!(matches!(parse(&ng), Err(PcapError::NotPcap(_))));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(Duration::ZERO, &[1; 20]).unwrap();
        let img = w.into_inner();
        for cut in GLOBAL_HEADER_LEN + 1..img.len() {
            assert!(parse(&img[..cut]).is_err(), "cut {cut}");
        }
        let mut raw_ip = img.clone();
        raw_ip[20] = 101;
        assert!(matches!(
            parse(&raw_ip),
            Err(PcapError::UnsupportedLinkType(101))
        ));
        let mut huge = img;
        huge[GLOBAL_HEADER_LEN + 8..GLOBAL_HEADER_LEN + 12]
            .copy_from_slice(&0x7000_0000u32.to_le_bytes());
        assert!(matches!(parse(&huge), Err(PcapError::BadRecord { .. })));
        let missing = read_file("/nonexistent/dir/x.pcap").unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/dir/x.pcap"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
            let mut img = PcapWriter::new(Vec::new()).unwrap().into_inner();
            img.extend_from_slice(&bytes);
            let _ = parse(&img);
        }
    }
}
