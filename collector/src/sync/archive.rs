//! The public archives' directory layouts, and their directory listings read back.
//!
//! - RouteViews: `BASE/bgpdata/YYYY.MM/{RIBS/rib,UPDATES/updates}.YYYYMMDD.HHMM.bz2` for
//!   route-views2, `BASE/COLLECTOR/bgpdata/...` for the others; a RIB every 2 h, an update
//!   file every 15 min.
//! - RIPE RIS: `BASE/rrcNN/YYYY.MM/{bview,updates}.YYYYMMDD.HHMM.gz`; a RIB (`bview`) every
//!   8 h, an update file every 5 min.
//!
//! Both archives serve plain directory listings (HTML pages of links): what a listing links
//! is what is published, so no slot is guessed and no unpublished slot is asked for.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The collector route-views2's files sit at the top of the RouteViews archive.
const ROUTEVIEWS_TOP: &str = "route-views2";

/// Which archive a collector publishes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// RouteViews (`route-views*`), bzip2 files.
    RouteViews,
    /// RIPE RIS (`rrcNN`), gzip files.
    Ris,
}

impl Archive {
    /// The archive of `collector`, by its name; `None` for a name neither archive uses.
    pub fn of(collector: &str) -> Option<Self> {
        let rest = collector.strip_prefix("rrc");
        if let Some(digits) = rest {
            return (digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then_some(Self::Ris);
        }
        let valid = collector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        (collector.starts_with("route-views") && valid).then_some(Self::RouteViews)
    }

    /// The RIPE RIS collectors among `collectors` (the hosts RIS Live is asked about).
    pub fn ris_only(collectors: &[String]) -> Vec<String> {
        collectors
            .iter()
            .filter(|c| Self::of(c) == Some(Self::Ris))
            .cloned()
            .collect()
    }

    /// Seconds between two update files.
    pub fn update_period(self) -> i64 {
        match self {
            Self::RouteViews => 15 * 60,
            Self::Ris => 5 * 60,
        }
    }

    /// The archive's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::RouteViews => "RouteViews",
            Self::Ris => "RIPE RIS",
        }
    }
}

/// The kind of an archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A RIB dump (`rib`, `bview`). Ordered before updates of the same slot.
    Rib,
    /// An update file.
    Updates,
}

impl Kind {
    /// As `mrt_files.kind` and `sync_files.kind` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rib => "rib",
            Self::Updates => "updates",
        }
    }
}

/// Where a collector's files are in its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The collector.
    pub collector: String,
    /// Its archive.
    pub archive: Archive,
    /// The directory holding its month directories, without a trailing slash.
    pub root: String,
}

impl Layout {
    /// The layout of `collector` under the given archive bases; `None` for a collector
    /// neither archive names so.
    pub fn new(collector: &str, routeviews_base: &str, ris_base: &str) -> Option<Self> {
        let archive = Archive::of(collector)?;
        let root = match archive {
            Archive::RouteViews if collector == ROUTEVIEWS_TOP => {
                format!("{}/bgpdata", routeviews_base.trim_end_matches('/'))
            }
            Archive::RouteViews => {
                format!(
                    "{}/{collector}/bgpdata",
                    routeviews_base.trim_end_matches('/')
                )
            }
            Archive::Ris => format!("{}/{collector}", ris_base.trim_end_matches('/')),
        };
        Some(Self {
            collector: collector.to_string(),
            archive,
            root,
        })
    }

    /// The directory listing the months.
    pub fn months_url(&self) -> String {
        format!("{}/", self.root)
    }

    /// The directories of one month that hold files of `kind`.
    pub fn month_dir(&self, month: YearMonth, kind: Kind) -> String {
        let month = format!("{}/{:04}.{:02}/", self.root, month.year, month.month);
        match (self.archive, kind) {
            (Archive::RouteViews, Kind::Rib) => format!("{month}RIBS/"),
            (Archive::RouteViews, Kind::Updates) => format!("{month}UPDATES/"),
            (Archive::Ris, _) => month,
        }
    }

    /// The file name of the slot, as the archive names it.
    pub fn file_name(&self, kind: Kind, slot: i64) -> Option<String> {
        let t = OffsetDateTime::from_unix_timestamp(slot).ok()?;
        let stem = match (self.archive, kind) {
            (Archive::RouteViews, Kind::Rib) => "rib",
            (Archive::Ris, Kind::Rib) => "bview",
            (_, Kind::Updates) => "updates",
        };
        let ext = match self.archive {
            Archive::RouteViews => "bz2",
            Archive::Ris => "gz",
        };
        Some(format!(
            "{stem}.{:04}{:02}{:02}.{:02}{:02}.{ext}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ))
    }

    /// The kind and slot time of an archive file name of this layout, if it is one.
    pub fn parse_file_name(&self, name: &str) -> Option<(Kind, i64)> {
        let (kind, rest) = match self.archive {
            Archive::RouteViews => {
                let rest = name.strip_suffix(".bz2")?;
                if let Some(r) = rest.strip_prefix("rib.") {
                    (Kind::Rib, r)
                } else {
                    (Kind::Updates, rest.strip_prefix("updates.")?)
                }
            }
            Archive::Ris => {
                let rest = name.strip_suffix(".gz")?;
                if let Some(r) = rest.strip_prefix("bview.") {
                    (Kind::Rib, r)
                } else {
                    (Kind::Updates, rest.strip_prefix("updates.")?)
                }
            }
        };
        Some((kind, parse_slot(rest)?))
    }
}

/// `YYYYMMDD.HHMM` as UNIX seconds (UTC).
fn parse_slot(text: &str) -> Option<i64> {
    let (day, hm) = text.split_once('.')?;
    if day.len() != 8 || hm.len() != 4 || !day.bytes().chain(hm.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n = |s: &str| s.parse::<u32>().ok();
    let month = Month::try_from(u8::try_from(n(&day[4..6])?).ok()?).ok()?;
    let date = Date::from_calendar_date(i32::try_from(n(&day[..4])?).ok()?, month, {
        u8::try_from(n(&day[6..])?).ok()?
    })
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(n(&hm[..2])?).ok()?,
        u8::try_from(n(&hm[2..])?).ok()?,
        0,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// A month of the archive's `YYYY.MM` directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct YearMonth {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u8,
}

impl YearMonth {
    /// The month holding `t` (UNIX seconds).
    pub fn of(t: i64) -> Option<Self> {
        let t = OffsetDateTime::from_unix_timestamp(t).ok()?;
        Some(Self {
            year: t.year(),
            month: u8::from(t.month()),
        })
    }

    /// A directory name `YYYY.MM` (with or without a trailing slash) read back.
    pub fn parse_dir(name: &str) -> Option<Self> {
        let name = name.trim_end_matches('/');
        let (y, m) = name.split_once('.')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let year = y.parse().ok()?;
        let month: u8 = m.parse().ok()?;
        (1..=12).contains(&month).then_some(Self { year, month })
    }
}

/// The names a directory listing links to, relative to the listing: link targets with any
/// directory part, query or fragment removed; links up or off the site are left out.
pub fn listing_names(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("href=") {
        let start = at + found + "href=".len();
        let rest = &html[start..];
        let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''));
        let (value, used) = if let Some(q) = quote {
            let Some(end) = rest[1..].find(q) else { break };
            (&rest[1..=end], end + 2)
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>')
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        at = start + used;
        let value = value.split(['?', '#']).next().unwrap_or("");
        if value.is_empty() || value.starts_with("..") || value.contains("://") {
            continue;
        }
        // A directory link keeps its trailing slash; a path keeps its last component.
        let trimmed = value.trim_end_matches('/');
        let Some(last) = trimmed.rsplit('/').next().filter(|l| !l.is_empty()) else {
            continue;
        };
        let name = if value.ends_with('/') {
            format!("{last}/")
        } else {
            last.to_string()
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RV: &str = "https://archive.routeviews.org";
    const RIS: &str = "https://data.ris.ripe.net";

    #[test]
    fn layouts_of_both_archives() {
        let rv2 = Layout::new("route-views2", RV, RIS).unwrap();
        let slot = parse_slot("20250101.0615").unwrap();
        let month = YearMonth::of(slot).unwrap();
        assert_eq!(
            format!(
                "{}{}",
                rv2.month_dir(month, Kind::Updates),
                rv2.file_name(Kind::Updates, slot).unwrap()
            ),
            "https://archive.routeviews.org/bgpdata/2025.01/UPDATES/updates.20250101.0615.bz2"
        );
        let sg = Layout::new("route-views.sg", RV, RIS).unwrap();
        assert_eq!(
            format!(
                "{}{}",
                sg.month_dir(month, Kind::Rib),
                sg.file_name(Kind::Rib, slot).unwrap()
            ),
            "https://archive.routeviews.org/route-views.sg/bgpdata/2025.01/RIBS/rib.20250101.0615.bz2"
        );
        let rrc = Layout::new("rrc00", RV, RIS).unwrap();
        assert_eq!(
            format!(
                "{}{}",
                rrc.month_dir(month, Kind::Rib),
                rrc.file_name(Kind::Rib, slot).unwrap()
            ),
            "https://data.ris.ripe.net/rrc00/2025.01/bview.20250101.0615.gz"
        );
        assert_eq!(
            rrc.parse_file_name("updates.20250101.0615.gz"),
            Some((Kind::Updates, slot))
        );
        assert_eq!(rrc.parse_file_name("updates.20250101.0615.bz2"), None);
        assert_eq!(
            rv2.parse_file_name("rib.20250101.0615.bz2"),
            Some((Kind::Rib, slot))
        );
        assert_eq!(rv2.parse_file_name("rib.20251301.0615.bz2"), None);
        assert_eq!(rv2.parse_file_name("rib.2025010.0615.bz2"), None);
    }

    #[test]
    fn collector_names() {
        assert_eq!(Archive::of("rrc00"), Some(Archive::Ris));
        assert_eq!(Archive::of("rrc26"), Some(Archive::Ris));
        assert_eq!(Archive::of("rrc"), None);
        assert_eq!(Archive::of("rrc123"), None);
        assert_eq!(Archive::of("route-views.amsix"), Some(Archive::RouteViews));
        assert_eq!(Archive::of("route-views/../x"), None);
        assert_eq!(Archive::of("bgpmon"), None);
    }

    #[test]
    fn apache_and_nginx_listings() {
        let html = r#"<html><body><h1>Index of /rrc00/2025.01</h1>
            <a href="?C=N;O=D">Name</a> <a href="/rrc00/">Parent Directory</a>
            <a href="../">../</a>
            <a href="bview.20250101.0000.gz">bview.20250101.0000.gz</a>
            <A HREF='updates.20250101.0005.gz'>x</A>
            <a href=2025.02/>2025.02/</a>
            <a href="https://elsewhere.example/x.gz">off site</a>"#;
        assert_eq!(
            listing_names(html),
            vec![
                "rrc00/",
                "bview.20250101.0000.gz",
                "updates.20250101.0005.gz",
                "2025.02/"
            ]
        );
        assert_eq!(
            YearMonth::parse_dir("2025.02/"),
            Some(YearMonth {
                year: 2025,
                month: 2
            })
        );
        assert_eq!(YearMonth::parse_dir("2025.13/"), None);
        assert_eq!(YearMonth::parse_dir("rrc00/"), None);
    }
}
