//! Team Cymru answers are stored in the database with their lookup time and reused by the
//! next run without DNS; stale entries are looked up again; failed lookups are not stored.
//! The DNS server is a minimal hand-written responder on 127.0.0.1 that answers TXT queries
//! from a fixed table and counts them.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nkpath_collector::Db;
use nkpath_collector::analysis::cymru::{CymruAnswer, OriginLookup};
use nkpath_collector::sources::cymru::CymruLookup;
use nkpath_collector::sources::cymru_cache::{CYMRU_CACHE_TTL, CymruCache};
use nkpath_collector::sources::dns::DnsTxtResolver;
use time::OffsetDateTime;

/// What the responder does with a name.
#[derive(Clone, Copy)]
enum Reply {
    /// One TXT record with this text.
    Txt(&'static str),
    /// NXDOMAIN: the server knows nothing of the name.
    NxDomain,
}

/// A UDP DNS server answering TXT queries from `table`; names not in it get no reply (the
/// client times out). Counts the queries it receives.
struct Responder {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(table: HashMap<String, Reply>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queries, stop) = (queries.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    queries.fetch_add(1, Ordering::Relaxed);
                    if let Some(reply) = respond(&buf[..n], &table) {
                        socket.send_to(&reply, from).unwrap();
                    }
                }
            })
        };
        Self {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reply to one query (header, one question), or `None` for names not in `table`.
fn respond(query: &[u8], table: &HashMap<String, Reply>) -> Option<Vec<u8>> {
    // The question: labels from offset 12 up to the root label, then QTYPE and QCLASS.
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let question = query.get(12..at + 4)?;
    let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
    let reply = *table.get(&labels.join("."))?;
    let (rcode, record) = match reply {
        Reply::Txt(text) if qtype == 16 => (0, Some(text)),
        Reply::Txt(_) => (0, None),
        Reply::NxDomain => (3, None),
    };
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]); // id
    out.extend_from_slice(&[0x81, 0x80 | rcode]); // response, RD, RA, rcode
    out.extend_from_slice(&[0, 1, 0, u8::from(record.is_some()), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let Some(text) = record {
        out.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0x0e, 0x10]); // name, TXT, IN, TTL
        let len = u8::try_from(text.len()).unwrap();
        out.extend_from_slice(&(u16::from(len) + 1).to_be_bytes());
        out.push(len);
        out.extend_from_slice(text.as_bytes());
    }
    Some(out)
}

const KNOWN: &str = "62.115.1.9";
const NOTHING: &str = "62.115.1.10";
const SILENT: &str = "62.115.1.11";

fn responder() -> Responder {
    Responder::start(HashMap::from([
        (
            "9.1.115.62.origin.asn.cymru.com".to_string(),
            Reply::Txt("4837 4134 | 62.115.1.0/24 | CN | apnic | 2009-12-18"),
        ),
        (
            "10.1.115.62.origin.asn.cymru.com".to_string(),
            Reply::NxDomain,
        ),
    ]))
}

/// One report run's lookups: DNS at `server`, cache in `db`.
fn run(db: &Db, server: SocketAddr) -> CymruLookup<'_> {
    CymruLookup::new(
        DnsTxtResolver::new(Some(server)).unwrap(),
        Some(CymruCache::new(db)),
    )
}

fn stored(db: &Db, addr: &str) -> Option<(Option<String>, Option<String>, String)> {
    db.sql_for_tests()
        .query_row(
            "SELECT origins, prefix, looked_up_at FROM cymru_cache WHERE address = ?1",
            [addr],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn answers_are_stored_with_their_time_and_reused_without_dns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let dns = responder();
    let before = OffsetDateTime::now_utc();
    {
        let db = Db::open(&path).unwrap();
        let mut lookup = run(&db, dns.addr);
        assert_eq!(lookup.origins(ip(KNOWN)), vec![4837, 4134]);
        assert_eq!(lookup.origins(ip(NOTHING)), Vec::<u32>::new());
        assert_eq!(dns.queries(), 2);
        // Within a run, memory answers again.
        assert_eq!(lookup.origins(ip(KNOWN)), vec![4837, 4134]);
        assert_eq!(dns.queries(), 2);
    }
    let after = OffsetDateTime::now_utc();

    let db = Db::open(&path).unwrap();
    let (origins, prefix, at) = stored(&db, KNOWN).expect("answer stored");
    assert_eq!(origins.as_deref(), Some("4837 4134"));
    assert_eq!(prefix.as_deref(), Some("62.115.1.0/24"));
    let at = nkpath_proto::timestamp::parse(&at).unwrap();
    assert!(before <= at && at <= after, "{at} not in {before}..{after}");
    // "Nothing known" is an answer too, stored without origins.
    let (origins, prefix, _) = stored(&db, NOTHING).expect("empty answer stored");
    assert_eq!((origins, prefix), (None, None));

    // The next run answers from the database: the DNS server is not asked (nor needed).
    let gone = dns.addr;
    drop(dns);
    let mut lookup = run(&db, gone);
    assert_eq!(lookup.origins(ip(KNOWN)), vec![4837, 4134]);
    assert_eq!(lookup.origins(ip(NOTHING)), Vec::<u32>::new());
}

#[test]
fn a_stale_entry_is_looked_up_again_and_replaced() {
    let db = Db::open_in_memory().unwrap();
    let dns = responder();
    let cache = CymruCache::new(&db);
    let old = OffsetDateTime::now_utc() - CYMRU_CACHE_TTL - time::Duration::hours(1);
    // An old answer that has since changed: the stale entry must not be used.
    cache
        .put(
            ip(KNOWN),
            &CymruAnswer {
                origins: vec![64_500],
                prefix: Some("62.115.0.0/16".parse().unwrap()),
            },
            old,
        )
        .unwrap();
    // A fresh one is used as it is.
    let recent = OffsetDateTime::now_utc() - CYMRU_CACHE_TTL + time::Duration::hours(1);
    cache
        .put(
            ip(NOTHING),
            &CymruAnswer {
                origins: vec![64_501],
                prefix: Some("62.115.1.0/24".parse().unwrap()),
            },
            recent,
        )
        .unwrap();

    let mut lookup = run(&db, dns.addr);
    assert_eq!(lookup.origins(ip(KNOWN)), vec![4837, 4134]);
    assert_eq!(lookup.origins(ip(NOTHING)), vec![64_501]);
    assert_eq!(dns.queries(), 1);
    let entry = cache.get(ip(KNOWN)).unwrap().unwrap();
    assert_eq!(entry.answer.origins, vec![4837, 4134]);
    assert!(OffsetDateTime::now_utc() - entry.looked_up_at < time::Duration::minutes(1));
}

#[test]
fn a_failed_lookup_is_not_stored() {
    let db = Db::open_in_memory().unwrap();
    let dns = responder();
    let mut lookup = run(&db, dns.addr);
    // The responder never answers this name: the resolver times out.
    assert_eq!(lookup.origins(ip(SILENT)), Vec::<u32>::new());
    assert!(dns.queries() >= 1);
    assert_eq!(stored(&db, SILENT), None);
    let n: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM cymru_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

/// The mapper of a report run with `--resolver` or `--no-dns`.
fn report_args(no_dns: bool, server: SocketAddr) -> nkpath_collector::report::cli::AnalysisArgs {
    nkpath_collector::report::cli::AnalysisArgs {
        since: None,
        until: None,
        resolver: (!no_dns).then_some(server),
        no_dns,
        transition_window: 15,
        max_bgp_age: std::time::Duration::from_hours(24),
        map_min_len: 8,
        map_max_len: 24,
        format: nkpath_collector::report::Format::Table,
    }
}

#[test]
fn reports_use_the_cache_and_no_dns_leaves_it_alone() {
    use nkpath_collector::analysis::HopClass;

    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("r.db")).unwrap();
    let dns = responder();

    // A report with DNS maps the hop through Team Cymru and stores the answer.
    let mut mapper = report_args(false, dns.addr).mapper(&db).unwrap();
    assert_eq!(
        mapper.map(None, ip(KNOWN)),
        HopClass::MultiOrigin(vec![4134, 4837])
    );
    drop(mapper);
    assert_eq!(dns.queries(), 1);
    let before = common::dump_all(&db);
    assert!(before.contains("== cymru_cache (1 rows)"), "{before}");

    // `--no-dns`: the stored answer is not used, nothing is asked and nothing is written.
    let mut mapper = report_args(true, dns.addr).mapper(&db).unwrap();
    assert_eq!(mapper.map(None, ip(KNOWN)), HopClass::Unmapped);
    assert_eq!(mapper.map(None, ip(NOTHING)), HopClass::Unmapped);
    drop(mapper);
    assert_eq!(dns.queries(), 1);
    assert_eq!(common::dump_all(&db), before);
}
