//! The parsing step of `bgp load` on its own, with no database: the bytes of an MRT file
//! (plain, gzip or bzip2) decompressed in memory, parsed record by record with the parser
//! [`super::load_file`] uses, and each route read as the loader reads it (its origins, its
//! AS path, its adjacencies). The fuzz target of the parser runs this on arbitrary bytes,
//! thousands of times faster than a whole load.

use std::io::Read;

use bgpkit_parser::BgpkitParser;
use bgpkit_parser::models::{
    Attributes, Bgp4MpEnum, BgpMessage, LegacyBgp, MrtMessage, TableDumpV2Message,
};

use super::input::Compression;
use crate::bgp::adjacency::AdjacencyCollector;
use crate::bgp::aspath::{AsPath, origins_of_attributes};

/// What a parse of one file's bytes found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// The compression its first bytes say.
    pub compression: &'static str,
    /// Records parsed before the end or the first error.
    pub records: u64,
    /// Routes read (RIB entries and update messages).
    pub routes: u64,
    /// The first error, if the file did not parse to its end: what `bgp load` refuses.
    pub error: Option<String>,
}

/// Parses `bytes` as an MRT file, reading at most `max_records` records (the fuzz target's
/// bound on work per input).
pub fn parse_bytes(bytes: &[u8], max_records: u64) -> ParseReport {
    let compression = Compression::detect(bytes);
    let decoder: Box<dyn Read + Send + '_> = match compression {
        Compression::None => Box::new(bytes),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
    };
    let mut report = ParseReport {
        compression: compression.as_str(),
        ..ParseReport::default()
    };
    let mut routes = RouteReader::default();
    for next in BgpkitParser::from_reader(decoder).into_fallible_record_iter() {
        match next {
            Ok(record) => {
                report.records += 1;
                let time = i64::from(record.common_header.timestamp);
                routes.on_message(&record.message, time);
            }
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        }
        if report.records >= max_records {
            break;
        }
    }
    report.routes = routes.routes;
    report
}

/// Reads every route's attributes as the loader does.
#[derive(Default)]
struct RouteReader {
    routes: u64,
    origins: Vec<u32>,
    adjacency: AdjacencyCollector,
}

impl RouteReader {
    fn on_message(&mut self, message: &MrtMessage, time: i64) {
        match message {
            MrtMessage::TableDumpV2Message(TableDumpV2Message::RibAfi(rib)) => {
                for entry in &rib.rib_entries {
                    self.route(&entry.attributes, time);
                }
            }
            MrtMessage::TableDumpMessage(message) => self.route(&message.attributes, time),
            MrtMessage::TableDumpMessageBatch(messages) => {
                for message in messages {
                    self.route(&message.attributes, time);
                }
            }
            MrtMessage::Bgp4Mp(Bgp4MpEnum::Message(message)) => {
                if let BgpMessage::Update(update) = &message.bgp_message {
                    self.route(&update.attributes, time);
                }
            }
            MrtMessage::LegacyBgp(LegacyBgp::Message(message)) => {
                if let BgpMessage::Update(update) = &message.bgp_message {
                    self.route(&update.attributes, time);
                }
            }
            // Peer index tables and state changes carry no route.
            MrtMessage::TableDumpV2Message(_)
            | MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(_))
            | MrtMessage::LegacyBgp(LegacyBgp::StateChange(_)) => {}
        }
    }

    fn route(&mut self, attributes: &Attributes, time: i64) {
        self.routes += 1;
        origins_of_attributes(attributes, &mut self.origins);
        let path = AsPath::from_attributes(attributes).unwrap_or_default();
        let _ = path.to_string();
        let _ = attributes.validation_warnings();
        let _ = (
            attributes.get_reachable_nlri(),
            attributes.get_unreachable_nlri(),
        );
        self.adjacency.add_attributes(attributes, time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let report = parse_bytes(&[0xff; 64], 100);
        assert_eq!(report.compression, "none");
        assert!(report.error.is_some(), "{report:?}");
        assert_eq!(parse_bytes(&[], 100).records, 0);
    }
}
