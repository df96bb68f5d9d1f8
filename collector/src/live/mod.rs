//! RIS Live: the BGP messages of the target prefixes as RIPE RIS collectors receive them,
//! stored as provisional rows until the archive's update files replace them.
//!
//! - [`message`]: the messages of today's RIS Live format, parsed (pure);
//! - [`ingest`]: parsed messages into the store, provisional;
//! - [`client`]: the websocket client (subscription, reconnects, stall detection);
//! - [`run`]: the client and a writer thread together, for `bgp live` and `serve`.

pub mod client;
pub mod ingest;
pub mod message;

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

pub use client::{DEFAULT_STALL_TIMEOUT, DEFAULT_URL, LiveBatch, LiveOptions};
pub use ingest::{Ingested, store_live};
pub use message::{LiveMessage, ParseError, parse};

use crate::store::Db;
use crate::text::escape_control;

/// Batches waiting for the writer at most (the client waits when they are more).
const QUEUE: usize = 64;

/// Stores each batch the client hands on, on a thread of its own (the store is blocking),
/// and calls `after` with the database, what the batch stored and until when the stored
/// state is known from the connection (its `heard_at`; heartbeats too, e.g. to evaluate
/// alerts).
pub fn spawn_writer(
    mut db: Db,
    mut batches: mpsc::Receiver<LiveBatch>,
    mut after: impl FnMut(&mut Db, &Ingested, i64) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ris-live-writer".into())
        .spawn(move || {
            while let Some(LiveBatch { messages: batch, heard_at }) = batches.blocking_recv() {
                if batch.is_empty() {
                    after(&mut db, &Ingested::default(), heard_at);
                    continue;
                }
                match store_live(&mut db, &batch) {
                    Ok(done) => {
                        if done.changed() {
                            tracing::info!(
                                updates = done.updates,
                                state_changes = done.state_changes,
                                "RIS Live: stored {} announcements or withdrawals and {} session changes (provisional)",
                                done.updates,
                                done.state_changes
                            );
                        }
                        if done.behind_archive > 0 {
                            tracing::info!(
                                "RIS Live: {} rows not stored: their collector's update files are loaded for that time",
                                done.behind_archive
                            );
                        }
                        after(&mut db, &done, heard_at);
                    }
                    Err(e) => tracing::error!(
                        "RIS Live: a batch of {} messages was not stored: {}",
                        batch.len(),
                        escape_control(&e.to_string())
                    ),
                }
            }
        })
}

/// Runs the client and the writer until `shutdown` completes; the writer stores what was
/// received before it returns.
pub async fn run(
    db: Db,
    options: LiveOptions,
    after: impl FnMut(&mut Db, &Ingested, i64) + Send + 'static,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = spawn_writer(db, rx, after)?;
    client::run(options, tx, shutdown).await;
    // The client dropped its sender: the writer ends once the queue is stored.
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| std::io::Error::other("the RIS Live writer thread failed"))
}

/// The RIS Live options of `bgp live` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct RisLiveArgs {
    /// RIS Live websocket URL to follow (`bgp live`: default the public service,
    /// wss://ris-live.ripe.net/v1/ws/; `serve`: off unless given). `?client=nkpath` is added.
    #[arg(long = "ris-live", value_name = "URL")]
    pub url: Option<String>,

    /// RIS collector to subscribe at (repeatable), e.g. rrc00 or rrc21. Default: the RIS
    /// collectors the archive sync fetches (`--collector rrcNN`; `serve --bgp-sync`), or
    /// for `bgp live`, those `bgp sync` has synced into the database; rrc00 when there is
    /// none.
    #[arg(long = "ris-live-host", value_name = "NAME", value_parser = parse_host)]
    pub hosts: Vec<String>,

    /// Seconds without any message (websocket pings are sent at a third of it) after which
    /// the connection is taken for dead and opened again.
    #[arg(long = "ris-live-stall", value_name = "SECONDS", default_value_t = DEFAULT_STALL_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_seconds: u64,
}

/// The RIS collector subscribed at when neither `--ris-live-host` nor a synced RIS collector
/// names one.
pub const DEFAULT_HOST: &str = "rrc00";

impl RisLiveArgs {
    /// `--ris-live-host` if given, else `synced_ris` (the RIS collectors the archive sync
    /// fetches), else [`DEFAULT_HOST`].
    pub fn hosts_or(&self, synced_ris: &[String]) -> Vec<String> {
        if !self.hosts.is_empty() {
            self.hosts.clone()
        } else if synced_ris.is_empty() {
            vec![DEFAULT_HOST.to_string()]
        } else {
            synced_ris.to_vec()
        }
    }
}

fn parse_host(s: &str) -> Result<String, String> {
    message::collector_of_host(s)
        .ok_or_else(|| format!("'{s}' is not a collector name (e.g. rrc00)"))
}

impl RisLiveArgs {
    /// The client's options for these arguments and the target prefixes; `url` stands in
    /// when no `--ris-live` is given. `synced_ris`: the RIS collectors the archive sync
    /// fetches, the hosts when no `--ris-live-host` is given, so that the live rows come from
    /// the collectors whose update files later replace them.
    pub fn options(
        &self,
        url: &str,
        prefixes: Vec<ipnet::Ipv4Net>,
        synced_ris: &[String],
    ) -> LiveOptions {
        let mut options = LiveOptions::new(
            self.url.as_deref().unwrap_or(url),
            self.hosts_or(synced_ris),
            prefixes,
        );
        options.stall_timeout = std::time::Duration::from_secs(self.stall_seconds);
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(hosts: &[&str]) -> RisLiveArgs {
        RisLiveArgs {
            url: None,
            hosts: hosts.iter().map(ToString::to_string).collect(),
            stall_seconds: 60,
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn hosts_default_to_the_synced_ris_collectors() {
        let synced = names(&["rrc00", "rrc21"]);
        assert_eq!(args(&[]).hosts_or(&synced), names(&["rrc00", "rrc21"]));
    }

    #[test]
    fn given_hosts_override_the_synced_collectors() {
        let synced = names(&["rrc00", "rrc21"]);
        assert_eq!(args(&["rrc03"]).hosts_or(&synced), names(&["rrc03"]));
    }

    #[test]
    fn no_synced_ris_collector_subscribes_at_rrc00() {
        assert_eq!(args(&[]).hosts_or(&[]), names(&["rrc00"]));
    }
}
