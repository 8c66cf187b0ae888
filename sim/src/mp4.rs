//! Just enough ISO-BMFF to loop the committed fixture as a live H.264 stream: parse the
//! fixture's init segment and samples once, build `moof`+`mdat` fragments for any run of
//! samples, and read recorded files back for the playback server.

use std::ops::Range;

/// The fixture, made by `fixtures/make-fixture.sh` (fragmented MP4, 1 s GOPs).
const FIXTURE: &[u8] = include_bytes!("../fixtures/fixture.mp4");
/// The live view's media (WebRTC and HLS): 640x360, 25 fps, a keyframe every 2 s, a
/// 30 s loop with the loop position burned in (see `fixtures/make-live-fixture.sh`).
const LIVE_FIXTURE: &[u8] = include_bytes!("../fixtures/live.mp4");

/// One box: its type and byte ranges (whole box, payload).
#[derive(Clone, Debug)]
pub struct BoxRef {
    pub kind: [u8; 4],
    pub range: Range<usize>,
    pub payload: Range<usize>,
}

/// Walks the boxes directly inside `data[range]`. Stops at the first malformed box.
pub fn boxes(data: &[u8], range: Range<usize>) -> Vec<BoxRef> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos + 8 <= range.end {
        let size32 = be32(&data[pos..]) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let (size, header) = match size32 {
            1 => {
                if pos + 16 > range.end {
                    break;
                }
                (be64(&data[pos + 8..]) as usize, 16)
            }
            0 => (range.end - pos, 8),
            s => (s, 8),
        };
        if size < header || pos + size > range.end {
            break;
        }
        out.push(BoxRef {
            kind,
            range: pos..pos + size,
            payload: pos + header..pos + size,
        });
        pos += size;
    }
    out
}

/// Finds a child box by a path of types, e.g. `[b"trak", b"mdia", b"mdhd"]`.
pub fn find(data: &[u8], range: Range<usize>, path: &[&[u8; 4]]) -> Option<BoxRef> {
    let (first, rest) = path.split_first()?;
    let b = boxes(data, range).into_iter().find(|b| &b.kind == *first)?;
    if rest.is_empty() {
        Some(b)
    } else {
        find(data, b.payload.clone(), rest)
    }
}

pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}
pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// A sample of the fixture.
#[derive(Clone, Debug)]
pub struct Sample {
    pub data: Range<usize>,
    pub duration: u32,
    pub cto: i32,
    pub key: bool,
    /// Decode time within one loop of the fixture, in track timescale units.
    pub dts: u64,
}

/// The parsed fixture.
#[derive(Debug)]
pub struct Fixture {
    /// `ftyp` + `moov`, written at the start of every recorded file.
    pub init: Vec<u8>,
    /// Offset of the duration field of `mvhd` inside `init`, and its width (4 or 8).
    pub mvhd_duration_at: (usize, usize),
    pub movie_timescale: u32,
    pub timescale: u32,
    pub track_id: u32,
    pub samples: Vec<Sample>,
    pub data: Vec<u8>,
    /// Duration of one loop, in timescale units.
    pub loop_duration: u64,
    pub width: u16,
    pub height: u16,
    /// RFC 6381 codec string, e.g. `avc1.42c01e`.
    pub codec: String,
    pub profile: &'static str,
    pub level: String,
    /// Average bitrate in bit/s.
    pub bitrate: u64,
    /// SPS and PPS NAL units from `avcC`.
    pub param_sets: Vec<Vec<u8>>,
    /// Size of the NAL length prefixes of the samples (`avcC` lengthSizeMinusOne + 1).
    pub nal_length_size: usize,
}

impl Fixture {
    pub fn load() -> Result<Fixture, String> {
        Self::parse(FIXTURE)
    }

    pub fn load_live() -> Result<Fixture, String> {
        Self::parse(LIVE_FIXTURE)
    }

    /// Frames per second (the fixture has a constant frame duration).
    pub fn fps(&self) -> f64 {
        self.samples.len() as f64 * self.timescale as f64 / self.loop_duration as f64
    }

    /// A sample as an Annex-B access unit, what RTP packetizers and browsers' WebRTC
    /// decoders want: every length prefix becomes a start code, and a keyframe is
    /// preceded by SPS and PPS (a browser given length-prefixed NAL units, or an IDR
    /// without parameter sets, decodes nothing).
    pub fn annexb(&self, s: &Sample) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.data.len() + 64);
        if s.key {
            for p in &self.param_sets {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(p);
            }
        }
        let d = &self.data[s.data.clone()];
        let w = self.nal_length_size;
        let mut i = 0;
        while i + w <= d.len() {
            let n = d[i..i + w].iter().fold(0usize, |a, b| a << 8 | *b as usize);
            i += w;
            let end = (i + n).min(d.len());
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&d[i..end]);
            i = end;
        }
        out
    }

    pub fn parse(data: &[u8]) -> Result<Fixture, String> {
        let top = boxes(data, 0..data.len());
        let ftyp = top.iter().find(|b| &b.kind == b"ftyp").ok_or("no ftyp")?;
        let moov = top.iter().find(|b| &b.kind == b"moov").ok_or("no moov")?;
        let mut init = data[ftyp.range.clone()].to_vec();
        let moov_at = init.len();
        init.extend_from_slice(&data[moov.range.clone()]);

        let mvhd = find(data, moov.payload.clone(), &[b"mvhd"]).ok_or("no mvhd")?;
        let p = mvhd.payload.start;
        let (movie_timescale, dur_at, dur_w) = if data[p] == 1 {
            (be32(&data[p + 20..]), p + 24, 8)
        } else {
            (be32(&data[p + 12..]), p + 16, 4)
        };
        let mvhd_duration_at = (dur_at - moov.range.start + moov_at, dur_w);

        let trak = find(data, moov.payload.clone(), &[b"trak"]).ok_or("no trak")?;
        let tkhd = find(data, trak.payload.clone(), &[b"tkhd"]).ok_or("no tkhd")?;
        let t = tkhd.payload.start;
        let track_id = if data[t] == 1 {
            be32(&data[t + 20..])
        } else {
            be32(&data[t + 12..])
        };
        let mdhd = find(data, trak.payload.clone(), &[b"mdia", b"mdhd"]).ok_or("no mdhd")?;
        let m = mdhd.payload.start;
        let timescale = if data[m] == 1 {
            be32(&data[m + 20..])
        } else {
            be32(&data[m + 12..])
        };
        let stsd = find(
            data,
            trak.payload.clone(),
            &[b"mdia", b"minf", b"stbl", b"stsd"],
        )
        .ok_or("no stsd")?;
        let avc1 = boxes(data, stsd.payload.start + 8..stsd.payload.end)
            .into_iter()
            .find(|b| &b.kind == b"avc1")
            .ok_or("no avc1")?;
        let a = avc1.payload.start;
        let width = be16(&data[a + 24..]);
        let height = be16(&data[a + 26..]);
        let avcc = boxes(data, a + 78..avc1.payload.end)
            .into_iter()
            .find(|b| &b.kind == b"avcC")
            .ok_or("no avcC")?;
        let c = avcc.payload.start;
        let (prof, compat, lvl) = (data[c + 1], data[c + 2], data[c + 3]);
        let nal_length_size = (data[c + 4] & 3) as usize + 1;
        let mut param_sets = Vec::new();
        let mut at = c + 5;
        for count_mask in [0x1f, 0xff] {
            let count = (data.get(at).ok_or("short avcC")? & count_mask) as usize;
            at += 1;
            for _ in 0..count {
                let len = be16(data.get(at..at + 2).ok_or("short avcC")?) as usize;
                at += 2;
                param_sets.push(data.get(at..at + len).ok_or("short avcC")?.to_vec());
                at += len;
            }
        }
        let codec = format!("avc1.{prof:02x}{compat:02x}{lvl:02x}");
        let profile = match prof {
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4",
            _ => "unknown",
        };
        let level = if lvl % 10 == 0 {
            format!("{}", lvl / 10)
        } else {
            format!("{}.{}", lvl / 10, lvl % 10)
        };

        // trex defaults
        let (mut def_dur, mut def_size, mut def_flags) = (0u32, 0u32, 0u32);
        if let Some(trex) = find(data, moov.payload.clone(), &[b"mvex", b"trex"]) {
            let q = trex.payload.start;
            def_dur = be32(&data[q + 12..]);
            def_size = be32(&data[q + 16..]);
            def_flags = be32(&data[q + 20..]);
        }

        let mut samples = Vec::new();
        let mut out_data = Vec::new();
        let mut dts = 0u64;
        for moof in top.iter().filter(|b| &b.kind == b"moof") {
            for traf in boxes(data, moof.payload.clone())
                .into_iter()
                .filter(|b| &b.kind == b"traf")
            {
                let tfhd = find(data, traf.payload.clone(), &[b"tfhd"]).ok_or("no tfhd")?;
                let f = be32(&data[tfhd.payload.start..]) & 0xFF_FFFF;
                let mut q = tfhd.payload.start + 8;
                let mut base = moof.range.start as u64;
                let (mut t_dur, mut t_size, mut t_flags) = (def_dur, def_size, def_flags);
                if f & 0x1 != 0 {
                    base = be64(&data[q..]);
                    q += 8;
                }
                if f & 0x2 != 0 {
                    q += 4;
                }
                if f & 0x8 != 0 {
                    t_dur = be32(&data[q..]);
                    q += 4;
                }
                if f & 0x10 != 0 {
                    t_size = be32(&data[q..]);
                    q += 4;
                }
                if f & 0x20 != 0 {
                    t_flags = be32(&data[q..]);
                }
                let _ = t_flags;
                for trun in boxes(data, traf.payload.clone())
                    .into_iter()
                    .filter(|b| &b.kind == b"trun")
                {
                    let r = trun.payload.start;
                    let tf = be32(&data[r..]) & 0xFF_FFFF;
                    let count = be32(&data[r + 4..]);
                    let mut q = r + 8;
                    let mut off = base;
                    if tf & 0x1 != 0 {
                        off = (base as i64 + be32(&data[q..]) as i32 as i64) as u64;
                        q += 4;
                    }
                    if tf & 0x4 != 0 {
                        q += 4;
                    }
                    let mut pos = off as usize;
                    for _ in 0..count {
                        let mut d = t_dur;
                        let mut s = t_size;
                        let mut cto = 0i32;
                        if tf & 0x100 != 0 {
                            d = be32(&data[q..]);
                            q += 4;
                        }
                        if tf & 0x200 != 0 {
                            s = be32(&data[q..]);
                            q += 4;
                        }
                        if tf & 0x400 != 0 {
                            q += 4;
                        }
                        if tf & 0x800 != 0 {
                            cto = be32(&data[q..]) as i32;
                            q += 4;
                        }
                        let bytes = data
                            .get(pos..pos + s as usize)
                            .ok_or("sample out of range")?;
                        let start = out_data.len();
                        out_data.extend_from_slice(bytes);
                        samples.push(Sample {
                            data: start..out_data.len(),
                            duration: d,
                            cto,
                            key: has_idr(bytes),
                            dts,
                        });
                        dts += d as u64;
                        pos += s as usize;
                    }
                }
            }
        }
        if samples.is_empty() || !samples[0].key {
            return Err("the fixture must start with a keyframe".into());
        }
        let bitrate = out_data.len() as u64 * 8 * timescale as u64 / dts.max(1);
        Ok(Fixture {
            init,
            mvhd_duration_at,
            movie_timescale,
            timescale,
            track_id,
            samples,
            data: out_data,
            loop_duration: dts,
            width,
            height,
            codec,
            profile,
            level,
            bitrate,
            param_sets,
            nal_length_size,
        })
    }

    /// The `i`-th sample of the endless loop, with its absolute decode time.
    pub fn sample_at(&self, i: u64) -> (&Sample, u64) {
        let n = self.samples.len() as u64;
        let s = &self.samples[(i % n) as usize];
        (s, (i / n) * self.loop_duration + s.dts)
    }

    /// Number of GOPs in one loop (the fixture has one keyframe per GOP).
    pub fn gops(&self) -> Vec<Range<usize>> {
        let mut out: Vec<Range<usize>> = Vec::new();
        for (i, s) in self.samples.iter().enumerate() {
            if s.key || out.is_empty() {
                out.push(i..i + 1);
            } else {
                out.last_mut().unwrap().end = i + 1;
            }
        }
        out
    }

    /// Builds `moof`+`mdat` for samples (given as loop indices) starting at `base_dts`.
    pub fn fragment(&self, seq: u32, base_dts: u64, samples: &[&Sample]) -> Vec<u8> {
        let n = samples.len();
        let trun_len = 8 + 4 + 4 + 4 + n * 16;
        let tfdt_len = 8 + 4 + 8;
        let tfhd_len = 8 + 4 + 4;
        let traf_len = 8 + tfhd_len + tfdt_len + trun_len;
        let mfhd_len = 16;
        let moof_len = 8 + mfhd_len + traf_len;
        let mdat_len: usize = 8 + samples.iter().map(|s| s.data.len()).sum::<usize>();
        let mut b = Vec::with_capacity(moof_len + mdat_len);
        put_header(&mut b, moof_len, b"moof");
        put_header(&mut b, mfhd_len, b"mfhd");
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        put_header(&mut b, traf_len, b"traf");
        put_header(&mut b, tfhd_len, b"tfhd");
        b.extend_from_slice(&0x0002_0000u32.to_be_bytes()); // default-base-is-moof
        b.extend_from_slice(&self.track_id.to_be_bytes());
        put_header(&mut b, tfdt_len, b"tfdt");
        b.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // version 1
        b.extend_from_slice(&base_dts.to_be_bytes());
        put_header(&mut b, trun_len, b"trun");
        b.extend_from_slice(&0x0000_0F01u32.to_be_bytes());
        b.extend_from_slice(&(n as u32).to_be_bytes());
        b.extend_from_slice(&((moof_len + 8) as u32).to_be_bytes());
        for s in samples {
            b.extend_from_slice(&s.duration.to_be_bytes());
            b.extend_from_slice(&(s.data.len() as u32).to_be_bytes());
            let flags: u32 = if s.key { 0x0200_0000 } else { 0x0101_0000 };
            b.extend_from_slice(&flags.to_be_bytes());
            b.extend_from_slice(&(s.cto as u32).to_be_bytes());
        }
        put_header(&mut b, mdat_len, b"mdat");
        for s in samples {
            b.extend_from_slice(&self.data[s.data.clone()]);
        }
        b
    }
}

fn put_header(b: &mut Vec<u8>, len: usize, kind: &[u8; 4]) {
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(kind);
}

/// True if an AVCC (length-prefixed) access unit contains an IDR NAL unit.
fn has_idr(mut au: &[u8]) -> bool {
    while au.len() > 4 {
        let len = be32(au) as usize;
        if len == 0 || 4 + len > au.len() {
            return false;
        }
        if au[4] & 0x1F == 5 {
            return true;
        }
        au = &au[4 + len..];
    }
    false
}

/// One fragment of a recorded file.
#[derive(Clone, Debug)]
pub struct Part {
    /// `moof` start .. `mdat` end.
    pub range: Range<usize>,
    pub base_dts: u64,
    pub duration: u64,
}

/// A recorded file read back: its init and fragments.
#[derive(Debug)]
pub struct Recorded {
    pub init: Range<usize>,
    pub timescale: u32,
    pub parts: Vec<Part>,
}

impl Recorded {
    /// Parses a recorded fMP4 file; a truncated tail (file still being written) is ignored.
    pub fn parse(data: &[u8]) -> Option<Recorded> {
        let top = boxes(data, 0..data.len());
        let ftyp = top.iter().find(|b| &b.kind == b"ftyp")?;
        let moov = top.iter().find(|b| &b.kind == b"moov")?;
        let mdhd = find(data, moov.payload.clone(), &[b"trak", b"mdia", b"mdhd"])?;
        let m = mdhd.payload.start;
        let timescale = if data[m] == 1 {
            be32(&data[m + 20..])
        } else {
            be32(&data[m + 12..])
        };
        let mut parts = Vec::new();
        let mut i = 0;
        while i < top.len() {
            if &top[i].kind == b"moof" && i + 1 < top.len() && &top[i + 1].kind == b"mdat" {
                let moof = &top[i];
                let tfdt = find(data, moof.payload.clone(), &[b"traf", b"tfdt"])?;
                let t = tfdt.payload.start;
                let base_dts = if data[t] == 1 {
                    be64(&data[t + 4..])
                } else {
                    be32(&data[t + 4..]) as u64
                };
                let mut duration = 0u64;
                let traf = find(data, moof.payload.clone(), &[b"traf"])?;
                let tfhd = find(data, traf.payload.clone(), &[b"tfhd"])?;
                let tf = be32(&data[tfhd.payload.start..]) & 0xFF_FFFF;
                let mut def_dur = 0u32;
                if tf & 0x8 != 0 {
                    let mut q = tfhd.payload.start + 8;
                    if tf & 0x1 != 0 {
                        q += 8;
                    }
                    if tf & 0x2 != 0 {
                        q += 4;
                    }
                    def_dur = be32(&data[q..]);
                }
                for trun in boxes(data, traf.payload.clone())
                    .into_iter()
                    .filter(|b| &b.kind == b"trun")
                {
                    let r = trun.payload.start;
                    let f = be32(&data[r..]) & 0xFF_FFFF;
                    let count = be32(&data[r + 4..]) as usize;
                    let mut q = r + 8;
                    if f & 0x1 != 0 {
                        q += 4;
                    }
                    if f & 0x4 != 0 {
                        q += 4;
                    }
                    let per = [0x100, 0x200, 0x400, 0x800]
                        .iter()
                        .filter(|b| f & **b != 0)
                        .count()
                        * 4;
                    for _ in 0..count {
                        duration += if f & 0x100 != 0 {
                            be32(&data[q..]) as u64
                        } else {
                            def_dur as u64
                        };
                        q += per;
                    }
                }
                parts.push(Part {
                    range: moof.range.start..top[i + 1].range.end,
                    base_dts,
                    duration,
                });
                i += 2;
            } else {
                i += 1;
            }
        }
        Some(Recorded {
            init: ftyp.range.start..moov.range.end,
            timescale,
            parts,
        })
    }

    /// Total duration in seconds (sum of the parts).
    pub fn duration_secs(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum::<u64>() as f64 / self.timescale as f64
    }
}

/// Rewrites the sequence number and base decode time of a fragment copied from a file.
pub fn retime_fragment(frag: &mut [u8], seq: u32, base_dts: u64) {
    let len = frag.len();
    let Some(moof) = boxes(frag, 0..len).into_iter().find(|b| &b.kind == b"moof") else {
        return;
    };
    if let Some(mfhd) = find(frag, moof.payload.clone(), &[b"mfhd"]) {
        let at = mfhd.payload.start + 4;
        frag[at..at + 4].copy_from_slice(&seq.to_be_bytes());
    }
    if let Some(tfdt) = find(frag, moof.payload.clone(), &[b"traf", b"tfdt"]) {
        let t = tfdt.payload.start;
        if frag[t] == 1 {
            frag[t + 4..t + 12].copy_from_slice(&base_dts.to_be_bytes());
        } else {
            frag[t + 4..t + 8].copy_from_slice(&(base_dts as u32).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_parses() {
        let f = Fixture::load().unwrap();
        assert_eq!((f.width, f.height), (320, 180));
        assert!(f.samples.len() >= 20);
        assert!(f.samples[0].key);
        assert!(f.gops().len() >= 2);
        assert!(f.codec.starts_with("avc1.42"));
        let frag = f.fragment(1, 0, &f.samples.iter().take(10).collect::<Vec<_>>());
        let mut file = f.init.clone();
        file.extend_from_slice(&frag);
        let r = Recorded::parse(&file).unwrap();
        assert_eq!(r.parts.len(), 1);
        assert!((r.duration_secs() - 1.0).abs() < 0.01);
    }

    #[test]
    fn live_fixture_is_640x360_25fps_with_2s_gops() {
        let f = Fixture::load_live().unwrap();
        assert_eq!((f.width, f.height), (640, 360));
        assert!((f.fps() - 25.0).abs() < 0.01, "{}", f.fps());
        assert!((f.loop_duration as f64 / f.timescale as f64 - 30.0).abs() < 0.01);
        assert_eq!(f.gops().len(), 15);
        assert!(f.gops().iter().all(|g| g.len() == 50));
    }

    #[test]
    fn annexb_has_start_codes_and_parameter_sets_before_every_idr() {
        let f = Fixture::load_live().unwrap();
        assert_eq!(f.param_sets.len(), 2);
        assert_eq!(f.param_sets[0][0] & 0x1f, 7, "SPS first");
        assert_eq!(f.param_sets[1][0] & 0x1f, 8, "PPS second");
        // NAL unit types in order, split on start codes.
        let types = |au: &[u8]| -> Vec<u8> {
            let mut t = Vec::new();
            let mut i = 0;
            while i + 4 < au.len() {
                if au[i..i + 4] == [0, 0, 0, 1] {
                    t.push(au[i + 4] & 0x1f);
                    i += 4;
                } else {
                    i += 1;
                }
            }
            t
        };
        let key = f.annexb(&f.samples[0]);
        let t = types(&key);
        assert_eq!(&t[..2], &[7, 8]);
        assert!(t.contains(&5), "an IDR slice: {t:?}");
        let p = f.annexb(&f.samples[1]);
        assert_eq!(&p[..4], &[0, 0, 0, 1]);
        assert!(!types(&p).contains(&7));
        // Same payload bytes as the length-prefixed sample, plus the start codes.
        let s = &f.samples[1];
        let nals = types(&p).len();
        assert_eq!(p.len(), s.data.len() - nals * f.nal_length_size + nals * 4);
    }
}
