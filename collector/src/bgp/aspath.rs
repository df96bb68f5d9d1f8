//! AS paths as nkpath keeps them: the sequence and set segments of the (RFC 6793 merged) path,
//! written in bgpdump's notation (`3356 4837 131279`, sets as `{1,2}`).

use std::fmt;
use std::str::FromStr;

use bgpkit_parser::models::{AsPathSegment, Asn, Attributes};

/// One segment of an AS path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// AS_SEQUENCE: ASes in the order the route crossed them (nearest first).
    Seq(Vec<u32>),
    /// AS_SET: an unordered set left by aggregation (RFC 4271 §5.1.2, deprecated by RFC 6472).
    Set(Vec<u32>),
}

/// An AS path. Confederation segments (RFC 5065) are dropped: they never leave a confederation,
/// so collector data should not carry them, and they do not name inter-domain hops.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    segments: Vec<Segment>,
}

impl AsPath {
    /// A path from its segments; empty segments are dropped.
    pub fn new(segments: Vec<Segment>) -> Self {
        let segments = segments
            .into_iter()
            .filter(|s| match s {
                Segment::Seq(v) | Segment::Set(v) => !v.is_empty(),
            })
            .collect();
        Self { segments }
    }

    /// A path of one AS_SEQUENCE.
    pub fn from_sequence(asns: &[u32]) -> Self {
        Self::new(vec![Segment::Seq(asns.to_vec())])
    }

    /// The segments, nearest AS first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the path has no AS at all (a route originated inside the peer's own AS).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The origin AS set: the last AS of a final AS_SEQUENCE, or every member of a final AS_SET;
    /// empty for an empty path. Sorted, without duplicates.
    pub fn origins(&self) -> Vec<u32> {
        match self.segments.last() {
            Some(Segment::Seq(v)) => v.last().copied().into_iter().collect(),
            Some(Segment::Set(v)) => sorted_unique(v.clone()),
            None => Vec::new(),
        }
    }

    /// The path of a route's attributes: AS_PATH merged with AS4_PATH (RFC 6793 §4.2.3).
    /// `None` when the route has no AS_PATH attribute.
    pub fn from_attributes(attributes: &Attributes) -> Option<Self> {
        let path = match (attributes.as_path(), attributes.as4_path()) {
            (None, None) => return None,
            (Some(p), None) | (None, Some(p)) => convert(p),
            (Some(p), Some(p4)) => {
                convert(&bgpkit_parser::models::AsPath::merge_aspath_as4path(p, p4))
            }
        };
        Some(path)
    }
}

/// Writes the origin ASes of a route's attributes into `out` without building the whole path
/// (the hot path of a full-table load): the same set as
/// `AsPath::from_attributes(a).map(|p| p.origins())`. Returns whether the route has an AS path.
pub fn origins_of_attributes(attributes: &Attributes, out: &mut Vec<u32>) -> bool {
    out.clear();
    let Some(path) = attributes.as_path() else {
        return attributes
            .as4_path()
            .is_some_and(|p4| last_origins(p4, out));
    };
    if let Some(p4) = attributes.as4_path() {
        let merged = bgpkit_parser::models::AsPath::merge_aspath_as4path(path, p4);
        return last_origins(&merged, out);
    }
    last_origins(path, out)
}

fn last_origins(path: &bgpkit_parser::models::AsPath, out: &mut Vec<u32>) -> bool {
    let last = path
        .iter_segments()
        .rev()
        .find(|s| !s.is_confed() && !s.is_empty());
    match last {
        Some(AsPathSegment::AsSequence(v)) => out.extend(v.last().map(Asn::to_u32)),
        Some(AsPathSegment::AsSet(v)) => {
            out.extend(v.iter().map(Asn::to_u32));
            out.sort_unstable();
            out.dedup();
        }
        _ => {}
    }
    true
}

fn convert(path: &bgpkit_parser::models::AsPath) -> AsPath {
    AsPath::new(
        path.iter_segments()
            .filter_map(|s| match s {
                AsPathSegment::AsSequence(v) => {
                    Some(Segment::Seq(v.iter().map(Asn::to_u32).collect()))
                }
                AsPathSegment::AsSet(v) => Some(Segment::Set(v.iter().map(Asn::to_u32).collect())),
                AsPathSegment::ConfedSequence(_) | AsPathSegment::ConfedSet(_) => None,
            })
            .collect(),
    )
}

fn sorted_unique(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v.dedup();
    v
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.segments {
            match segment {
                Segment::Seq(v) => {
                    for asn in v {
                        if !first {
                            f.write_str(" ")?;
                        }
                        write!(f, "{asn}")?;
                        first = false;
                    }
                }
                Segment::Set(v) => {
                    if !first {
                        f.write_str(" ")?;
                    }
                    f.write_str("{")?;
                    for (i, asn) in v.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "{asn}")?;
                    }
                    f.write_str("}")?;
                    first = false;
                }
            }
        }
        Ok(())
    }
}

/// An AS path that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid AS path {text:?}: {reason}")]
pub struct AsPathParseError {
    text: String,
    reason: &'static str,
}

impl FromStr for AsPath {
    type Err = AsPathParseError;

    /// Parses bgpdump's notation: ASNs separated by spaces, AS_SETs as `{a,b}`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AsPathParseError {
            text: s.to_string(),
            reason,
        };
        let mut segments = Vec::new();
        let mut seq = Vec::new();
        for token in s.split_ascii_whitespace() {
            if let Some(inner) = token.strip_prefix('{') {
                let inner = inner
                    .strip_suffix('}')
                    .ok_or_else(|| err("unclosed AS_SET"))?;
                if !seq.is_empty() {
                    segments.push(Segment::Seq(std::mem::take(&mut seq)));
                }
                let set = inner
                    .split(',')
                    .map(|a| {
                        a.parse::<u32>()
                            .map_err(|_| err("AS_SET member is not an ASN"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                segments.push(Segment::Set(set));
            } else {
                seq.push(
                    token
                        .parse::<u32>()
                        .map_err(|_| err("token is not an ASN"))?,
                );
            }
        }
        if !seq.is_empty() {
            segments.push(Segment::Seq(seq));
        }
        Ok(Self::new(segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for text in ["3356 4837 131279", "1 2 {3,4}", "{7}", "", "1 {2,3} 4"] {
            let path: AsPath = text.parse().unwrap();
            assert_eq!(path.to_string(), text);
        }
        assert!("1 x".parse::<AsPath>().is_err());
        assert!("1 {2,3".parse::<AsPath>().is_err());
    }

    #[test]
    fn origins_of_sequence_set_and_empty() {
        assert_eq!(
            "3356 4837 131279".parse::<AsPath>().unwrap().origins(),
            vec![131_279]
        );
        assert_eq!(
            "3356 {9,4,9}".parse::<AsPath>().unwrap().origins(),
            vec![4, 9]
        );
        assert!(AsPath::default().origins().is_empty());
    }

    #[test]
    fn attributes_fast_path_agrees_with_full_conversion() {
        use bgpkit_parser::models::{AttributeValue, Attributes};
        let bgpkit_path = bgpkit_parser::models::AsPath::from_segments(vec![
            AsPathSegment::sequence([3356, 4837]),
            AsPathSegment::set([131_279, 20485]),
        ]);
        let mut attrs = Attributes::default();
        attrs.add_attr(AttributeValue::AsPath(bgpkit_path).into());
        let full = AsPath::from_attributes(&attrs).unwrap();
        assert_eq!(full.to_string(), "3356 4837 {131279,20485}");
        let mut out = Vec::new();
        assert!(origins_of_attributes(&attrs, &mut out));
        assert_eq!(out, full.origins());
    }
}
