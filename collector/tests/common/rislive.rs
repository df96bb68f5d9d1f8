//! A local RIS Live server for tests (websocket on 127.0.0.1, any free port) replaying
//! messages in today's format, and those messages built by hand or from MRT records.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgpkit_parser::models::{Bgp4MpEnum, BgpMessage, BgpState, MrtMessage};
use futures_util::{SinkExt as _, StreamExt as _};
use nkpath_collector::bgp::aspath::Segment;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// What the server does on one connection, in order, after the client's subscriptions.
#[derive(Debug, Clone)]
pub enum Step {
    /// Sends a text message.
    Text(String),
    /// Sends a binary message.
    Binary,
    /// Waits.
    Wait(Duration),
    /// Closes the connection (a close frame).
    Close,
    /// Stops reading and sending, the connection left open (pings go unanswered).
    Stall,
}

/// What the server saw of one connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The request URI.
    pub uri: String,
    /// The text messages the client sent.
    pub texts: Vec<String>,
}

/// A running server. Connection `n` plays `scripts[n]`; connections past the scripts only
/// read (answering pings) until the client goes. Stops when dropped.
pub struct ReplayServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Steps to append to the script of the connection currently playing, or of the next.
    pub more: Arc<Mutex<Vec<Step>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ReplayServer {
    pub fn start(scripts: Vec<Vec<Step>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let more: Arc<Mutex<Vec<Step>>> = Arc::default();
        let (seen2, more2) = (Arc::clone(&seen), Arc::clone(&more));
        runtime.spawn(async move {
            let mut n = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                let script = scripts.get(n).cloned();
                n += 1;
                let seen = Arc::clone(&seen2);
                let more = Arc::clone(&more2);
                tokio::spawn(async move { connection(tcp, script, seen, more).await });
            }
        });
        Self {
            addr,
            seen,
            more,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws/", self.addr)
    }

    /// Queues steps for the live connection (played within 50 ms).
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.more.lock().unwrap().extend(steps);
    }

    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    script: Option<Vec<Step>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    more: Arc<Mutex<Vec<Step>>>,
) {
    let uri = Arc::new(Mutex::new(String::new()));
    let uri2 = Arc::clone(&uri);
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| {
        *uri2.lock().unwrap() = req.uri().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            uri: uri.lock().unwrap().clone(),
            texts: Vec::new(),
        });
        seen.len() - 1
    };
    let (mut sink, mut stream) = ws.split();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // Reading answers pings (tungstenite queues the pong, sent with the next write).
    let reader_seen = Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(Message::Text(t))) => {
                        reader_seen.lock().unwrap()[index].texts.push(t.to_string());
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                _ = stop_rx.changed() => {
                    // Stalled: hold the connection without reading.
                    std::future::pending::<()>().await;
                }
            }
        }
    });
    // Let the subscriptions arrive first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut steps: std::collections::VecDeque<Step> = script.unwrap_or_default().into();
    loop {
        let Some(step) = steps.pop_front() else {
            let queued: Vec<Step> = std::mem::take(&mut *more.lock().unwrap());
            if queued.is_empty() {
                // Flush queued pongs now and then.
                if sink.flush().await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                if reader.is_finished() {
                    break;
                }
            }
            steps.extend(queued);
            continue;
        };
        let sent = match step {
            Step::Text(t) => sink.send(Message::text(t)).await,
            Step::Binary => sink.send(Message::binary(vec![0u8, 159, 146, 150])).await,
            Step::Wait(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Step::Close => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            Step::Stall => {
                let _ = stop_tx.send(true);
                std::future::pending::<()>().await;
                Ok(())
            }
        };
        if sent.is_err() {
            break;
        }
    }
    reader.abort();
}

/// A RIS Live UPDATE in today's format.
pub fn ris_update(
    time: f64,
    host: &str,
    peer: &str,
    peer_asn: u32,
    path: &[u32],
    announce: &[&str],
    withdraw: &[&str],
) -> String {
    let mut data = json!({
        "timestamp": time,
        "peer": peer,
        "peer_asn": peer_asn.to_string(),
        "id": format!("{peer}-{time}"),
        "host": format!("{host}.ripe.net"),
        "type": "UPDATE",
        "withdrawals": withdraw,
    });
    if !announce.is_empty() {
        data["path"] = json!(path);
        data["origin"] = json!("IGP");
        data["announcements"] = json!([{"next_hop": peer, "prefixes": announce}]);
    }
    json!({"type": "ris_message", "data": data}).to_string()
}

/// A RIS Live RIS_PEER_STATE message.
pub fn ris_peer_state(time: f64, host: &str, peer: &str, peer_asn: u32, up: bool) -> String {
    json!({"type": "ris_message", "data": {
        "timestamp": time, "peer": peer, "peer_asn": peer_asn.to_string(),
        "host": format!("{host}.ripe.net"), "type": "RIS_PEER_STATE",
        "state": if up { "connected" } else { "down" }}})
    .to_string()
}

/// The records of an MRT update file with time `>= since`, as RIS Live messages of
/// collector `host` (updates and session changes to or from Established), in file order.
pub fn messages_from_mrt(file: &Path, host: &str, since: u32) -> Vec<String> {
    let mut out = Vec::new();
    let parser = bgpkit_parser::BgpkitParser::from_reader(std::fs::File::open(file).unwrap());
    for record in parser.into_record_iter() {
        let time = record.common_header.timestamp;
        if time < since {
            continue;
        }
        let at = f64::from(time) + 0.25;
        match record.message {
            MrtMessage::Bgp4Mp(Bgp4MpEnum::Message(m)) => {
                let BgpMessage::Update(u) = m.bgp_message else {
                    continue;
                };
                let v4 = |p: &bgpkit_parser::models::NetworkPrefix| {
                    p.prefix.addr().is_ipv4().then(|| p.prefix.to_string())
                };
                let mut withdrawn: Vec<String> =
                    u.withdrawn_prefixes.iter().filter_map(v4).collect();
                if let Some(n) = u.attributes.get_unreachable_nlri() {
                    withdrawn.extend(n.prefixes.iter().filter_map(v4));
                }
                let mut announced: Vec<String> =
                    u.announced_prefixes.iter().filter_map(v4).collect();
                if let Some(n) = u.attributes.get_reachable_nlri() {
                    announced.extend(n.prefixes.iter().filter_map(v4));
                }
                if withdrawn.is_empty() && announced.is_empty() {
                    continue;
                }
                let path: Vec<u32> = nkpath_collector::bgp::AsPath::from_attributes(&u.attributes)
                    .map(|p| {
                        p.segments()
                            .iter()
                            .flat_map(|s| match s {
                                Segment::Seq(v) | Segment::Set(v) => v.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let announce: Vec<&str> = announced.iter().map(String::as_str).collect();
                let withdraw: Vec<&str> = withdrawn.iter().map(String::as_str).collect();
                out.push(ris_update(
                    at,
                    host,
                    &m.peer_ip.to_string(),
                    m.peer_asn.to_u32(),
                    &path,
                    &announce,
                    &withdraw,
                ));
            }
            MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(c)) => {
                let up = c.new_state == BgpState::Established;
                let down = c.old_state == BgpState::Established && !up;
                if up || down {
                    out.push(ris_peer_state(
                        at,
                        host,
                        &c.peer_ip.to_string(),
                        c.peer_asn.to_u32(),
                        up,
                    ));
                }
            }
            _ => {}
        }
    }
    out
}
