//! Drop-in files: `agent.d/*.toml` beside the configuration file, read in name order over
//! it. `nkpath-agent enroll` writes its collector settings there, so that the packaged
//! configuration file stays as shipped and upgrades never ask about it.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// The drop-in directory's name, beside the configuration file.
pub const DROP_IN_DIR: &str = "agent.d";

/// The drop-in directory of the configuration file `config`.
pub fn dir_of(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(DROP_IN_DIR)
}

/// The `*.toml` files of `dir`, in name order (none when it does not exist).
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// `base` with every drop-in's keys set over it (tables merged key by key), as TOML text.
/// A drop-in that is not TOML is an error naming it.
pub fn merge(base_text: &str, drop_ins: &[PathBuf]) -> Result<Option<String>, ConfigError> {
    if drop_ins.is_empty() {
        return Ok(None);
    }
    // The base's own syntax errors are reported against it by the caller.
    let Ok(mut base) = base_text.parse::<toml::Table>() else {
        return Ok(None);
    };
    for path in drop_ins {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                problems: vec![super::error::syntax_problem(&text, &e)],
            })?;
        merge_into(&mut base, table);
    }
    Ok(Some(base.to_string()))
}

fn merge_into(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => {
                merge_into(mine, theirs);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_ins_set_keys_over_the_file_table_by_table() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("10-a.toml");
        let b = dir.path().join("20-b.toml");
        std::fs::write(&a, "agent_id = \"a\"\n[collector]\nurl = \"https://a\"\n").unwrap();
        std::fs::write(&b, "[collector]\ntoken_file = \"/t\"\n").unwrap();
        let base = "agent_id = \"base\"\nuser = \"nkpath\"\n[collector]\nurl = \"https://base\"\n";
        let merged: toml::Table = merge(base, &files(dir.path()).unwrap())
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(merged["agent_id"].as_str(), Some("a"));
        assert_eq!(merged["user"].as_str(), Some("nkpath"));
        assert_eq!(merged["collector"]["url"].as_str(), Some("https://a"));
        assert_eq!(merged["collector"]["token_file"].as_str(), Some("/t"));
    }

    #[test]
    fn a_broken_drop_in_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("50-bad.toml");
        std::fs::write(&bad, "[collector\n").unwrap();
        let err = merge("", &[bad]).unwrap_err().to_string();
        assert!(err.contains("50-bad.toml"), "{err}");
    }
}
