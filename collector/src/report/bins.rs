//! Time bins of the per-bin reports and the charts: a period cut into equal UTC intervals,
//! and a piecewise-constant visibility averaged over each of them.

use crate::bgp::Visibility;

/// Most bins one report draws or lists: a year of hours. More says the bin is too small.
pub const MAX_BINS: usize = 366 * 24;

/// How long one bin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinSize {
    /// Chosen from the period: an hour up to a week, a day beyond.
    #[default]
    Auto,
    /// This many seconds.
    Seconds(i64),
}

impl BinSize {
    /// The bin length in seconds for a period of `span_s` seconds.
    pub fn seconds_for(self, span_s: i64) -> i64 {
        match self {
            Self::Seconds(s) => s,
            Self::Auto if span_s <= 7 * 86_400 => 3_600,
            Self::Auto => 86_400,
        }
    }
}

/// Parses `--bin`: `auto`, or a number with unit `m`, `h` or `d` (`15m`, `1h`, `1d`).
pub fn parse_bin_size(s: &str) -> Result<BinSize, String> {
    if s == "auto" {
        return Ok(BinSize::Auto);
    }
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let factor = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': write auto, or a length like 15m, 1h or 1d")),
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 && n <= 366 => Ok(BinSize::Seconds(n * factor)),
        _ => Err(format!(
            "'{s}': the number must be a whole number from 1 to 366 (15m, 1h, 1d)"
        )),
    }
}

/// Equal bins covering a period, aligned to multiples of their length since the UNIX epoch
/// (so an hour bin starts on the hour, a day bin at 00:00 UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bins {
    /// Start of the first bin (UNIX seconds).
    pub start: i64,
    /// Length of a bin in seconds.
    pub size_s: i64,
    /// Number of bins.
    pub count: usize,
}

/// The period would need more than [`MAX_BINS`] bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the period needs {needed} bins of {size_s} s, more than {MAX_BINS}: choose a larger --bin"
)]
pub struct TooManyBins {
    /// Bins the period would need.
    pub needed: i64,
    /// The bin length asked for.
    pub size_s: i64,
}

impl Bins {
    /// Bins of `size` covering `[from, to]` (UNIX seconds; `to` before `from` counts as
    /// `from`).
    pub fn over(from: i64, to: i64, size: BinSize) -> Result<Self, TooManyBins> {
        let to = to.max(from);
        let size_s = size.seconds_for(to - from).max(1);
        let start = from.div_euclid(size_s) * size_s;
        let needed = (to - start) / size_s + 1;
        if needed > MAX_BINS as i64 {
            return Err(TooManyBins { needed, size_s });
        }
        Ok(Self {
            start,
            size_s,
            count: needed as usize,
        })
    }

    /// The bin holding time `t`, if any.
    pub fn index(&self, t: i64) -> Option<usize> {
        let i = (t - self.start).div_euclid(self.size_s);
        (0..self.count as i64).contains(&i).then_some(i as usize)
    }

    /// `[start, end)` of bin `i`.
    pub fn bounds(&self, i: usize) -> (i64, i64) {
        let a = self.start + i as i64 * self.size_s;
        (a, a + self.size_s)
    }

    /// The end of the last bin.
    pub fn end(&self) -> i64 {
        self.bounds(self.count).0
    }

    /// `1 h`, `1 d`, `15 min`: the bin length for captions.
    pub fn label(&self) -> String {
        match self.size_s {
            s if s % 86_400 == 0 => format!("{} d", s / 86_400),
            s if s % 3_600 == 0 => format!("{} h", s / 3_600),
            s if s % 60 == 0 => format!("{} min", s / 60),
            s => format!("{s} s"),
        }
    }
}

/// The visibility of an upstream over one bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinVisibility {
    /// Time-weighted mean of the ratio over the seconds of the bin with BGP data, in [0, 1];
    /// `None` when the bin has none.
    pub mean: Option<f64>,
    /// Seconds of the bin with BGP data (a route for the prefix at some collector peer).
    pub covered_s: i64,
    /// The state at the end of the bin's covered part: peers via the upstream, peers with a
    /// route.
    pub last: Option<Visibility>,
}

/// Cuts a piecewise-constant visibility (`segments`: start and value, each holding until the
/// next start, the last until `end`) into `bins`.
pub fn visibility_per_bin(
    segments: &[(i64, Option<Visibility>)],
    end: i64,
    bins: &Bins,
) -> Vec<BinVisibility> {
    let mut out = vec![
        BinVisibility {
            mean: None,
            covered_s: 0,
            last: None,
        };
        bins.count
    ];
    let mut weighted = vec![0.0f64; bins.count];
    for (k, (start, value)) in segments.iter().enumerate() {
        let Some(v) = value else { continue };
        let seg_end = segments.get(k + 1).map_or(end, |(next, _)| *next);
        let ratio = v.ratio().unwrap_or(0.0);
        for (i, bin) in out.iter_mut().enumerate() {
            let (a, b) = bins.bounds(i);
            let overlap = seg_end.min(b) - start.max(&a);
            // A segment that starts and ends in the same second still shows its state.
            if overlap > 0 || (overlap == 0 && *start >= a && *start < b) {
                bin.covered_s += overlap;
                weighted[i] += ratio * overlap as f64;
                bin.last = Some(*v);
                if bin.mean.is_none() {
                    bin.mean = Some(ratio);
                }
            }
        }
    }
    for (bin, w) in out.iter_mut().zip(weighted) {
        if bin.covered_s > 0 {
            bin.mean = Some(w / bin.covered_s as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_size_is_an_hour_up_to_a_week_and_a_day_beyond() {
        let week = 7 * 86_400;
        assert_eq!(Bins::over(0, week, BinSize::Auto).unwrap().size_s, 3_600);
        assert_eq!(
            Bins::over(0, week + 1, BinSize::Auto).unwrap().size_s,
            86_400
        );
    }

    #[test]
    fn bins_are_aligned_and_cover_the_period() {
        let b = Bins::over(3_700, 7_300, BinSize::Seconds(3_600)).unwrap();
        assert_eq!((b.start, b.count), (3_600, 2));
        assert_eq!(b.index(3_600), Some(0));
        assert_eq!(b.index(7_199), Some(0));
        assert_eq!(b.index(7_300), Some(1));
        assert_eq!(b.index(10_800), None);
        assert_eq!(b.index(3_599), None);
        assert_eq!(b.label(), "1 h");
    }

    #[test]
    fn too_many_bins_is_an_error() {
        assert!(Bins::over(0, 400 * 86_400, BinSize::Seconds(3_600)).is_err());
    }

    #[test]
    fn bin_sizes_parse() {
        assert_eq!(parse_bin_size("auto"), Ok(BinSize::Auto));
        assert_eq!(parse_bin_size("15m"), Ok(BinSize::Seconds(900)));
        assert_eq!(parse_bin_size("1d"), Ok(BinSize::Seconds(86_400)));
        assert!(parse_bin_size("0h").is_err());
        assert!(parse_bin_size("h").is_err());
        assert!(parse_bin_size("1w").is_err());
        assert!(parse_bin_size("").is_err());
    }

    #[expect(clippy::unnecessary_wraps, reason = "segments hold Option<Visibility>")]
    fn v(n: usize, d: usize) -> Option<Visibility> {
        Some(Visibility {
            peers_via_upstream: n,
            peers_with_route: d,
        })
    }

    #[test]
    fn visibility_is_time_weighted_within_each_bin() {
        let bins = Bins::over(0, 150, BinSize::Seconds(100)).unwrap();
        // [0,50): no data; [50,150): 1/4; [150,200): 3/4.
        let per = visibility_per_bin(&[(0, None), (50, v(1, 4)), (150, v(3, 4))], 200, &bins);
        assert_eq!(per.len(), 2);
        assert_eq!(per[0].covered_s, 50);
        assert_eq!(per[0].mean, Some(0.25));
        assert_eq!(per[1].covered_s, 100);
        assert_eq!(per[1].mean, Some(0.5));
        assert_eq!(per[1].last, v(3, 4));
    }
}
