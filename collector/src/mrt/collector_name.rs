//! The route collector a file comes from, read from its name or its directories as
//! RouteViews and RIPE RIS name them.

use std::path::Path;

/// The collector name given to files whose name and path name none.
pub const UNKNOWN_COLLECTOR: &str = "unknown";

/// The collector named by a file's name or one of its directories (`rrc00`,
/// `route-views.sg`, `route-views2`), or `unknown`.
pub fn derive_collector(path: &Path) -> String {
    path.ancestors()
        .take(6)
        .filter_map(|p| p.file_name())
        .find_map(|n| collector_in_name(&n.to_string_lossy()))
        .unwrap_or_else(|| UNKNOWN_COLLECTOR.to_string())
}

fn collector_in_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("rrc")
        && rest.len() >= 2
        && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && !rest.as_bytes().get(2).is_some_and(u8::is_ascii_digit)
    {
        return Some(lower[..5].to_string());
    }
    if lower.starts_with("route-views") {
        let end = [
            "_", "-rib", "-updates", "-bview", ".rib", ".updates", ".bview",
        ]
        .iter()
        .filter_map(|sep| lower.find(sep))
        .min()
        .unwrap_or(lower.len());
        return Some(lower[..end].trim_end_matches(['.', '-']).to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_names_from_files_and_directories() {
        let cases = [
            ("/data/rrc00/2024.01/bview.20240101.0000.gz", "rrc00"),
            ("rrc21-updates.20240101.0000.gz", "rrc21"),
            (
                "/archive/route-views.sg/bgpdata/2024.01/RIBS/rib.20240101.0000.bz2",
                "route-views.sg",
            ),
            ("route-views2_rib.20240101.0000.bz2", "route-views2"),
            (
                "route-views.amsix-rib.20240101.0000.bz2",
                "route-views.amsix",
            ),
            ("/data/ribs/rib.20140523.0600.bz2", "unknown"),
            ("rrc123.gz", "unknown"),
        ];
        for (path, want) in cases {
            assert_eq!(derive_collector(Path::new(path)), want, "{path}");
        }
    }
}
