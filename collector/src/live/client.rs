//! The RIS Live websocket client: connects, subscribes to the target prefixes and their
//! more-specifics at the chosen collectors, and hands the parsed messages on in batches.
//!
//! Faults are logged with the URL and never end the client: a connection that fails, is
//! closed, or stays silent for the stall timeout (websocket pings go out at a third of it,
//! so a live but quiet subscription still answers) is dropped and opened again after a
//! backoff (doubling from [`LiveOptions::backoff_min`] up to [`LiveOptions::backoff_max`],
//! with jitter; back to the minimum once a connection has delivered a message). A message
//! that does not parse is logged and skipped; a connection that sends nothing but garbage
//! ([`GARBAGE_LIMIT`] messages in a row) is dropped too.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use ipnet::Ipv4Net;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::message::{LiveMessage, parse};
use crate::text::escape_control;

/// The public RIS Live websocket endpoint.
pub const DEFAULT_URL: &str = "wss://ris-live.ripe.net/v1/ws/";
/// Default silence after which a connection is taken for dead.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_mins(2);
/// Messages that do not parse, in a row, after which a connection is dropped.
pub const GARBAGE_LIMIT: u32 = 100;
/// Messages gathered into one batch at most.
const BATCH_MAX: usize = 512;
/// How long a batch may wait before it is handed on.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// How often an empty batch says the connection is still heard from.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Longest time between two websocket pings.
const PING_MAX: Duration = Duration::from_secs(10);

/// What the client hands on: the messages that carry routes or session changes, and until
/// when the connection was heard from (nothing else arrived up to then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBatch {
    /// Updates and peer states, in the order received; empty for a heartbeat.
    pub messages: Vec<LiveMessage>,
    /// UNIX time at which the connection last delivered anything (a message or a pong).
    pub heard_at: i64,
}

/// What the client connects to and asks for.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The websocket URL (`?client=nkpath` is added when the URL names no client).
    pub url: String,
    /// RIS collectors to subscribe at (`host`), e.g. `rrc00`.
    pub hosts: Vec<String>,
    /// Prefixes to subscribe to, with their more-specifics.
    pub prefixes: Vec<Ipv4Net>,
    /// Silence after which a connection is taken for dead.
    pub stall_timeout: Duration,
    /// First wait before a reconnect.
    pub backoff_min: Duration,
    /// Longest wait before a reconnect.
    pub backoff_max: Duration,
}

impl LiveOptions {
    /// Options with the default timeouts.
    pub fn new(url: &str, hosts: Vec<String>, prefixes: Vec<Ipv4Net>) -> Self {
        Self {
            url: url.to_owned(),
            hosts,
            prefixes,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_mins(5),
        }
    }
}

/// `url` with `client=nkpath` added to its query, unless it names a client already.
pub fn client_url(url: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q);
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("client="))) {
        return url.to_owned();
    }
    let sep = match query {
        None => "?",
        Some("") => "",
        Some(_) => "&",
    };
    format!("{url}{sep}client=nkpath")
}

/// The `ris_subscribe` messages: one per collector and prefix, more-specifics included.
pub fn subscriptions(hosts: &[String], prefixes: &[Ipv4Net]) -> Vec<String> {
    let mut out = Vec::new();
    for host in hosts {
        for prefix in prefixes {
            let message = serde_json::json!({
                "type": "ris_subscribe",
                "data": {
                    "host": host,
                    "prefix": prefix.to_string(),
                    "moreSpecific": true,
                },
            });
            out.push(message.to_string());
        }
    }
    out
}

/// How a connection ended.
enum Ended {
    /// Shutdown was asked for, or nobody takes the messages any more.
    Stop,
    /// The connection failed (already logged); `delivered`: it delivered a message first.
    Failed { delivered: bool },
}

/// Runs the client until `shutdown` completes: connects, reconnects, and sends each batch of
/// route-bearing messages (updates, peer states) to `batches`.
pub async fn run(
    options: LiveOptions,
    batches: mpsc::Sender<LiveBatch>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = async {
        let url = client_url(&options.url);
        let mut backoff = options.backoff_min;
        loop {
            match connection(&options, &url, &batches, stop_rx.clone()).await {
                Ended::Stop => return,
                Ended::Failed { delivered } => {
                    if delivered {
                        backoff = options.backoff_min;
                    }
                    let wait = jittered(backoff);
                    tracing::warn!(url = %url, "RIS Live {url}: reconnecting in {:.1} s", wait.as_secs_f64());
                    let mut stop = stop_rx.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stopped(&mut stop) => return,
                    }
                    backoff = (backoff * 2).min(options.backoff_max);
                }
            }
        }
    };
    tokio::select! {
        () = client => {}
        () = async {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Let the connection close politely, briefly.
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {}
    }
}

/// Completes once a stop is asked for (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, never held across an await.
    let _ = stop.wait_for(|s| *s).await.is_ok();
}

/// A wait of between half and all of `d`, so that clients do not reconnect in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.5..=1.0))
}

#[allow(clippy::too_many_lines)]
async fn connection(
    options: &LiveOptions,
    url: &str,
    batches: &mpsc::Sender<LiveBatch>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let stall = options.stall_timeout;
    let connect = tokio::time::timeout(stall, tokio_tungstenite::connect_async(url));
    let mut ws = tokio::select! {
        connected = connect => match connected {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                tracing::warn!("RIS Live {url}: cannot connect: {e}");
                return Ended::Failed { delivered: false };
            }
            Err(_) => {
                tracing::warn!("RIS Live {url}: cannot connect: no answer within {} s", stall.as_secs());
                return Ended::Failed { delivered: false };
            }
        },
        () = stopped(&mut stop) => return Ended::Stop,
    };
    for subscription in subscriptions(&options.hosts, &options.prefixes) {
        if let Err(e) = ws.send(Message::text(subscription)).await {
            tracing::warn!("RIS Live {url}: cannot subscribe: {e}");
            return Ended::Failed { delivered: false };
        }
    }
    tracing::info!(
        "RIS Live {url}: connected; subscribed to {} and more-specifics at {}",
        join(&options.prefixes),
        options.hosts.join(", ")
    );
    let mut delivered = false;
    let mut garbage = 0u32;
    let mut batch: Vec<LiveMessage> = Vec::new();
    let mut batch_since = Instant::now();
    let mut last_heard = Instant::now();
    let mut heard_at = unix_now();
    let mut last_sent = Instant::now();
    let mut ping = tokio::time::interval((stall / 3).clamp(Duration::from_millis(100), PING_MAX));
    ping.tick().await;
    let mut tick = tokio::time::interval(BATCH_WAIT.min(stall / 4).max(Duration::from_millis(10)));
    let ended = loop {
        tokio::select! {
            () = stopped(&mut stop) => break Ended::Stop,
            _ = ping.tick() => {
                if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                    tracing::warn!("RIS Live {url}: connection failed: {e}");
                    break Ended::Failed { delivered };
                }
            }
            _ = tick.tick() => {
                if last_heard.elapsed() >= stall {
                    tracing::warn!(
                        "RIS Live {url}: nothing received for {} s: the connection is taken for dead",
                        stall.as_secs_f64()
                    );
                    break Ended::Failed { delivered };
                }
            }
            next = ws.next() => {
                last_heard = Instant::now();
                heard_at = unix_now();
                let text = match next {
                    None => {
                        tracing::warn!("RIS Live {url}: the connection was closed");
                        break Ended::Failed { delivered };
                    }
                    Some(Err(e)) => {
                        tracing::warn!("RIS Live {url}: connection failed: {e}");
                        break Ended::Failed { delivered };
                    }
                    Some(Ok(Message::Close(frame))) => {
                        tracing::warn!("RIS Live {url}: the server closed the connection{}", close_reason(frame.as_ref()));
                        break Ended::Failed { delivered };
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Binary(bytes))) => {
                        tracing::warn!("RIS Live {url}: a binary message of {} bytes skipped (RIS Live sends JSON text)", bytes.len());
                        garbage += 1;
                        if garbage >= GARBAGE_LIMIT { break garbage_limit(url, delivered); }
                        continue;
                    }
                    Some(Ok(Message::Text(text))) => text,
                };
                match parse(&text) {
                    Ok(LiveMessage::ServiceError(message)) => {
                        tracing::warn!("RIS Live {url}: the service reports an error: {}", escape_control(&message));
                    }
                    Ok(message @ (LiveMessage::Update(_) | LiveMessage::PeerState(_))) => {
                        garbage = 0;
                        delivered = true;
                        if batch.is_empty() {
                            batch_since = Instant::now();
                        }
                        batch.push(message);
                    }
                    Ok(_) => garbage = 0,
                    Err(e) => {
                        let excerpt: String = text.chars().take(120).collect();
                        tracing::warn!(
                            "RIS Live {url}: message skipped, not understood ({}): {}",
                            escape_control(&e.to_string()),
                            escape_control(&excerpt)
                        );
                        garbage += 1;
                        if garbage >= GARBAGE_LIMIT { break garbage_limit(url, delivered); }
                    }
                }
            }
        }
        let due = if batch.is_empty() {
            last_sent.elapsed() >= HEARTBEAT
        } else {
            batch.len() >= BATCH_MAX || batch_since.elapsed() >= BATCH_WAIT
        };
        if due {
            last_sent = Instant::now();
            let messages = std::mem::take(&mut batch);
            if batches
                .send(LiveBatch { messages, heard_at })
                .await
                .is_err()
            {
                break Ended::Stop;
            }
        }
    };
    // What was received before the end is still stored.
    if !batch.is_empty()
        && batches
            .send(LiveBatch {
                messages: batch,
                heard_at,
            })
            .await
            .is_err()
    {
        return Ended::Stop;
    }
    if matches!(ended, Ended::Stop) {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    ended
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn garbage_limit(url: &str, delivered: bool) -> Ended {
    tracing::warn!(
        "RIS Live {url}: {GARBAGE_LIMIT} messages in a row not understood: dropping the connection"
    );
    Ended::Failed { delivered }
}

fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => {
            format!(
                " (code {}: {})",
                u16::from(f.code),
                escape_control(&f.reason)
            )
        }
        Some(f) => format!(" (code {})", u16::from(f.code)),
        None => String::new(),
    }
}

fn join(prefixes: &[Ipv4Net]) -> String {
    prefixes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_client_once() {
        assert_eq!(
            client_url("wss://ris-live.ripe.net/v1/ws/"),
            "wss://ris-live.ripe.net/v1/ws/?client=nkpath"
        );
        assert_eq!(client_url("ws://h/ws?x=1"), "ws://h/ws?x=1&client=nkpath");
        assert_eq!(client_url("ws://h/ws?"), "ws://h/ws?client=nkpath");
        assert_eq!(client_url("ws://h/ws?client=me"), "ws://h/ws?client=me");
    }

    #[test]
    fn one_subscription_per_collector_and_prefix_with_more_specifics() {
        let subs = subscriptions(
            &["rrc00".into(), "rrc21".into()],
            &["175.45.176.0/22".parse().unwrap()],
        );
        assert_eq!(subs.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&subs[0]).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"type": "ris_subscribe", "data": {
                "host": "rrc00", "prefix": "175.45.176.0/22", "moreSpecific": true}})
        );
    }
}
