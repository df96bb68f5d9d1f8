//! `nkpath-agent enroll COLLECTOR_URL`: the collector's URL, the agent's id and its token
//! (read from standard input, never from the command line, where other users could see
//! it) written into the drop-in directory beside the configuration file. The packaged
//! configuration file is left as shipped.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::dropin;

/// The drop-in `enroll` writes.
pub const ENROLL_FILE: &str = "50-enroll.toml";
/// The token file `enroll` writes, beside it: mode 0640, group of the configured `user`
/// (the service starts as that user and reads it), else 0600.
pub const TOKEN_FILE: &str = "token";

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The URL is not an http(s) URL.
    #[error("{0:?} is not a collector URL; give it as https://collector.example.org")]
    Url(String),
    /// No token on standard input.
    #[error("no token on standard input; pipe it in: echo TOKEN | nkpath-agent enroll URL")]
    NoToken,
    /// The agent id is not 1..=64 characters of [A-Za-z0-9._-].
    #[error(
        "agent id {0:?} is not 1 to 64 characters of A-Z a-z 0-9 . _ -; pass --agent-id NAME \
         (the name the collector's operator gave with `agent add`)"
    )]
    AgentId(String),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug)]
pub struct Enrolled {
    /// The drop-in.
    pub drop_in: PathBuf,
    /// The token file.
    pub token_file: PathBuf,
    /// The agent id written.
    pub agent_id: String,
}

/// The agent id to use when none is given: this machine's short host name, with
/// characters an agent id cannot hold replaced by `-`.
pub fn default_agent_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let short = host.split('.').next().unwrap_or_default();
    short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// The first line of `input`, trimmed: the token.
pub fn token_from(input: &str) -> Result<String, EnrollError> {
    let token = input.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(EnrollError::NoToken);
    }
    Ok(token.to_owned())
}

/// Writes the drop-in and the token beside the configuration file `config`.
pub fn enroll(
    config: &Path,
    url: &str,
    agent_id: &str,
    token: &str,
) -> Result<Enrolled, EnrollError> {
    let parsed: reqwest::Url = url.parse().map_err(|_| EnrollError::Url(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(EnrollError::Url(url.to_owned()));
    }
    let id_ok = (1..=64).contains(&agent_id.len())
        && agent_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !id_ok {
        return Err(EnrollError::AgentId(agent_id.to_owned()));
    }
    let dir = dropin::dir_of(config);
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| EnrollError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(write_err(&dir))?;
    let token_file = dir.join(TOKEN_FILE);
    write_atomically(&token_file, &format!("{token}\n"), 0o600)?;
    if let Some(account) = configured_account(config) {
        // Readable by the service's group only; root keeps ownership.
        let shared =
            std::os::unix::fs::chown(&token_file, None, Some(account.gid)).and_then(|()| {
                std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640))
            });
        shared.map_err(write_err(&token_file))?;
    }
    let drop_in = dir.join(ENROLL_FILE);
    let text = format!(
        "# Written by `nkpath-agent enroll`; run it again to change the collector.\n\
         agent_id = {agent_id:?}\n\n[collector]\nurl = {url:?}\ntoken_file = {token:?}\n",
        url = parsed.as_str(),
        token = token_file.display().to_string(),
    );
    write_atomically(&drop_in, &text, 0o644)?;
    Ok(Enrolled {
        drop_in,
        token_file,
        agent_id: agent_id.to_owned(),
    })
}

/// The account of the configuration's `user` key (the packaged file's `nkpath`), when the
/// file names one that exists here and is not root.
fn configured_account(config: &Path) -> Option<crate::probing::accounts::Account> {
    let text = std::fs::read_to_string(config).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let user = table.get("user")?.as_str()?;
    crate::probing::accounts::resolve(user).filter(|a| a.uid != 0)
}

/// Writes `path` through a temporary file renamed over it, created with `mode`.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), EnrollError> {
    let tmp = path.with_extension("tmp");
    let err = |source| EnrollError::Write {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_completes_the_shipped_file_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        // No `user` key: the token stays root's alone (0600).
        let shipped = "[spool]\npath = \"/var/lib/nkpath/spool.db\"\n";
        std::fs::write(&config, shipped).unwrap();
        let token = token_from("s3cret-token\nrest ignored\n").unwrap();
        let done = enroll(&config, "https://collector.example.org", "vp-1", &token).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap(), shipped);
        let mode = std::fs::metadata(&done.token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = super::super::load(&config).unwrap();
        assert_eq!(loaded.agent_id, "vp-1");
        assert_eq!(
            loaded.collector.url.as_str(),
            "https://collector.example.org/"
        );
        assert_eq!(loaded.collector.token.expose(), "s3cret-token");
    }

    #[test]
    fn bad_input_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        assert!(matches!(token_from("\n"), Err(EnrollError::NoToken)));
        assert!(matches!(
            enroll(&config, "collector.example.org", "vp", "t"),
            Err(EnrollError::Url(_))
        ));
        assert!(matches!(
            enroll(&config, "https://c.example", "bad id", "t"),
            Err(EnrollError::AgentId(_))
        ));
    }
}
