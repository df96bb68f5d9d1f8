//! Outages in the emulated Internet, with exact expectations: real agents (`nkpath-agent
//! run`, one per vantage point, one-minute rounds) upload to `serve` with fleet scheduling on
//! (the default of a fresh database), while the test breaks the network one way at a time:
//!
//! 1. the border drops everything to 175.45.176.0/24 (nftables in nkbr) while BGP keeps
//!    announcing it, and at the same time devp's own uplink is down: a data-plane outage of
//!    that /24 only, its start and end within a round of the drop and of its removal, and
//!    no outage of the other /24s although one agent saw nothing at all;
//! 2. nkbr's sessions to both upstreams are shut: every /24 is withdrawn, a control-plane
//!    outage of each (not a data-plane one), the traces failing meanwhile;
//! 3. RPKI: an export with a ROA of maxLength 22 for the /22, then a corrected one: every
//!    announced /24 `rpki-invalid` from the first export's time to the second's.
//!
//! 175.45.179.0/24 answers nothing in this testbed (the border rejects it): it is listed as
//! unreachable while announced, never as an outage with a start.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use nkpath_testbed::{Options, Testbed};

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

/// The collector's round and the agents' interval: the agents' shortest.
const ROUND_SECS: u64 = 60;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sleeps until `secs` seconds into round `round`.
fn sleep_until_round(round: u64, secs: u64) {
    let at = Duration::from_secs(round * ROUND_SECS + secs);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    if let Some(wait) = at.checked_sub(now) {
        std::thread::sleep(wait);
    }
}

fn chown_nobody(path: &Path) {
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let group = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(group.gid.as_raw())).unwrap();
}

/// Runs the collector's CLI on `db` (root namespace: it sends nothing).
fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nkpath-collector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A child process killed when dropped (agents, `serve`).
struct Running(Child, PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {}:\n{}",
                self.1.display(),
                fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

fn start_agent(tb: &Testbed, work: &Path, token: &str, listen: &str, vp: &str) -> Running {
    let dir = work.join(vp);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    chown_nobody(&dir);
    let token_file = dir.join("token");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    chown_nobody(&token_file);
    let dns = &tb.manifest().dns;
    let config = format!(
        r#"agent_id = "{vp}"
user = "nobody"
allowlist = ["175.45.176.0/22"]
targets = ["175.45.176.1/32", "175.45.177.1/32", "175.45.178.1/32", "175.45.179.1/32"]
protocol = "icmp"

[collector]
url = "http://{listen}"
token_file = "token"

[schedule]
interval = "1m"
jitter = 0.0

[probing]
pps = 200
per_prefix_pps = 100
timeout = "1s"

[liveness]
pings = 1
timeout = "1s"

[dns]
resolver = "{dns_addr}:{dns_port}"

[spool]
path = "{spool}"

[upload]
batch_size = 100
max_backoff = "2s"
interval = "1s"
"#,
        dns_addr = dns.address,
        dns_port = dns.port,
        spool = dir.join("spool.db").display(),
    );
    let config_path = dir.join("agent.toml");
    fs::write(&config_path, config).unwrap();
    chown_nobody(&config_path);
    let log = work.join(format!("{vp}.log"));
    let out = fs::File::create(&log).unwrap();
    let child = tb
        .command_as_nobody_with_net_raw(vp, nkpath_testbed::workspace_binary("nkpath-agent"))
        .args(["-v", "run", "--config", config_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start nkpath-agent run");
    Running(child, log)
}

fn start_serve(tb: &Testbed, db: &Path, listen: &str, log: &Path) -> Running {
    let node = &tb.manifest().collector.node;
    let child = tb
        .command(node, BIN)
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .expect("start serve");
    Running(child, log.to_path_buf())
}

/// Loads the route collector's MRT files not loaded yet.
fn load_mrt(tb: &Testbed, db: &Path, loaded: &mut BTreeSet<String>, with_updates: bool) {
    let mut files: Vec<PathBuf> = tb
        .rib_dumps()
        .unwrap()
        .into_iter()
        .filter(|f| loaded.insert(f.display().to_string()))
        .map(|f| tb.mrt_snapshot(&f).unwrap())
        .collect();
    if with_updates {
        files.push(tb.mrt_snapshot(&tb.updates_mrt()).unwrap());
    }
    files.retain(|f| fs::metadata(f).is_ok_and(|m| m.len() > 0));
    if files.is_empty() {
        return;
    }
    let mut args = vec!["bgp", "load", "--collector", "rc"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    cli(db, &args);
}

fn results_of(db: &Path, agent: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(
        "SELECT count(*) FROM results WHERE agent_id = ?1",
        [agent],
        |r| r.get(0),
    )
    .unwrap()
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn rfc3339(t: u64) -> String {
    nkpath_proto::timestamp::display_unix(t as i64)
}

fn parse_time(s: &str) -> u64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .unix_timestamp() as u64
}

#[derive(Debug)]
struct Found {
    target: String,
    kind: String,
    start: u64,
    end: Option<u64>,
    ases: BTreeSet<u64>,
}

#[test]
fn outages_of_the_testbed_scenarios_are_found_exactly() {
    if !nkpath_testbed::require_tools(&["setpriv", "nft"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options::default()) else {
        return;
    };
    let began = Instant::now();
    let m = tb.manifest();
    let work = tempfile::Builder::new()
        .prefix("nkpath-reach")
        .tempdir()
        .unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let db = work.path().join("collector.db");
    let listen = format!("{}:8471", m.collector.address);
    let mut loaded = BTreeSet::new();
    // The agents' ASes come from BGP: the first dump before anything runs. Only the round
    // (the agents' shortest) is set; scheduling is on, as on any fresh database.
    load_mrt(&tb, &db, &mut loaded, false);
    cli(&db, &["fleet", "--round", "1m", "--cap", "5"]);
    let vps: Vec<String> = m.vantage_points.values().map(|v| v.node.clone()).collect();
    assert_eq!(vps.len(), 3, "three vantage points in three ASes");
    let tokens: Vec<String> = vps
        .iter()
        .map(|vp| cli(&db, &["agent", "add", vp]).trim().to_owned())
        .collect();
    let serve = start_serve(&tb, &db, &listen, &work.path().join("serve.log"));
    eprintln!("{}: serve started", now_secs());
    std::thread::sleep(Duration::from_secs(1));
    let r0 = now_secs() / ROUND_SECS + 1;
    sleep_until_round(r0, 1);
    let agents: Vec<Running> = vps
        .iter()
        .zip(&tokens)
        .map(|(vp, token)| start_agent(&tb, work.path(), token, &listen, vp))
        .collect();
    eprintln!("{}: agents started (round {r0})", now_secs());
    // Round r0: every agent's own first round (all answer). Scheduled rounds start on the
    // minute: each change is made half a round before the next one, never racing a probe.
    let dropped: Ipv4Net = "175.45.176.0/24".parse().unwrap();
    sleep_until_round(r0, 30);
    // 1. The border drops one /24; devp's uplink is down meanwhile.
    let drop_at = now_secs();
    eprintln!("{drop_at}: drop");
    let nft = "add table inet nkreach\nadd chain inet nkreach blocked { type filter hook forward priority -10; }\nadd rule inet nkreach blocked ip daddr 175.45.176.0/24 drop\n";
    let nft_file = work.path().join("drop.nft");
    fs::write(&nft_file, nft).unwrap();
    tb.exec("nkbr", &["nft", "-f", nft_file.to_str().unwrap()])
        .expect("add the drop rule");
    let uplink = m
        .node("devp")
        .unwrap()
        .interfaces
        .first()
        .unwrap()
        .name
        .clone();
    tb.exec("devp", &["ip", "link", "set", &uplink, "down"])
        .unwrap();
    sleep_until_round(r0 + 1, 30);
    let restore_at = now_secs();
    tb.exec("nkbr", &["nft", "delete", "table", "inet", "nkreach"])
        .expect("remove the drop rule");
    tb.exec("devp", &["ip", "link", "set", &uplink, "up"])
        .unwrap();
    let gateway = m
        .node("degw")
        .unwrap()
        .interface_towards("devp")
        .unwrap()
        .address
        .to_string();
    wait_until("devp's default route back", Duration::from_secs(10), || {
        tb.exec(
            "devp",
            &["ip", "route", "replace", "default", "via", &gateway],
        )
        .is_ok()
    });

    // 2. Both upstream sessions of the border shut: every /24 withdrawn.
    sleep_until_round(r0 + 2, 30);
    let withdraw_at = now_secs();
    let sessions: Vec<String> = m
        .node("nkbr")
        .unwrap()
        .bgp_neighbors
        .iter()
        .map(|n| n.protocol.clone())
        .collect();
    for p in &sessions {
        tb.birdc("nkbr", &["disable", p]).unwrap();
    }
    sleep_until_round(r0 + 3, 30);
    let announce_at = now_secs();
    for p in &sessions {
        tb.birdc("nkbr", &["enable", p]).unwrap();
    }
    sleep_until_round(r0 + 4, 15);
    let until = now_secs();
    // Every agent's results in: the counts hold still for 3 s (spools drain within seconds).
    let mut last: Vec<i64> = vps.iter().map(|v| results_of(&db, v)).collect();
    wait_until(
        "the agents' spools to drain",
        Duration::from_mins(1),
        || {
            std::thread::sleep(Duration::from_secs(3));
            let now: Vec<i64> = vps.iter().map(|v| results_of(&db, v)).collect();
            std::mem::replace(&mut last, now) == last
        },
    );
    assert!(
        last.iter().all(|n| *n > 0),
        "every agent uploaded: {last:?}"
    );
    drop(agents);
    drop(serve);
    // The update file holds the withdrawal and the new announcements once BIRD wrote them.
    std::thread::sleep(Duration::from_secs(2));
    load_mrt(&tb, &db, &mut loaded, true);

    // 3. RPKI: a ROA of maxLength 22, generated during the drop, corrected before the
    // withdrawal.
    let (bad_at, good_at) = (r0 * ROUND_SECS + 40, (r0 + 2) * ROUND_SECS + 10);
    for (name, at, max_len) in [("bad", bad_at, 22), ("good", good_at, 24)] {
        let file = work.path().join(format!("{name}.json"));
        fs::write(
            &file,
            format!(
                r#"{{"metadata": {{"generated": {at}}}, "roas": [{{"asn": "AS131279", "prefix": "175.45.176.0/22", "maxLength": {max_len}, "ta": "apnic"}}]}}"#
            ),
        )
        .unwrap();
        cli(&db, &["rpki", "load", file.to_str().unwrap()]);
    }

    let since = rfc3339(r0 * ROUND_SECS);
    let until_s = rfc3339(until);
    let json: serde_json::Value = serde_json::from_str(&cli(
        &db,
        &[
            "report",
            "reachability",
            "--no-dns",
            "--format",
            "json",
            "--bin",
            "1m",
            "--since",
            &since,
            "--until",
            &until_s,
            "--outage-settle",
            "0",
            "--outage-window",
            "90",
        ],
    ))
    .unwrap();
    let outages: Vec<Found> = json["tables"][1]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Found {
            target: r["target"].as_str().unwrap().to_owned(),
            kind: r["kind"].as_str().unwrap().to_owned(),
            start: parse_time(r["start"].as_str().unwrap()),
            end: r["end"].as_str().map(parse_time),
            ases: r["vantage_ases"]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                .unwrap_or_default(),
        })
        .collect();
    println!("drop {drop_at}..{restore_at}, withdrawal {withdraw_at}..{announce_at}");
    for o in &outages {
        println!("{o:?}");
    }
    // What the outages rest on, for a failure's reader: every result of the dropped /24.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT agent_id, kind, started_at, target, substr(round_id, 1, 8),
                        coalesce(json_extract(json, '$.received'), json_extract(json, '$.stop_reason')),
                        json_array_length(json_extract(json, '$.hops'))
                 FROM results WHERE target LIKE '175.45.176.%' ORDER BY started_at",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {} {} {} {:?} {:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, rusqlite::types::Value>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .unwrap();
        for row in rows {
            println!("{}", row.unwrap());
        }
    }
    let of = |kind: &str| -> Vec<&Found> { outages.iter().filter(|o| o.kind == kind).collect() };
    let round = ROUND_SECS;

    // 1. One data-plane outage, of the dropped /24 only, within a round of the drop and
    // of its removal, seen from the two ASes whose uplinks were up.
    let data = of("data-plane");
    assert_eq!(data.len(), 1, "{outages:?}");
    assert_eq!(data[0].target, dropped.to_string());
    assert!(
        (drop_at..=drop_at + round).contains(&data[0].start),
        "{:?} vs drop at {drop_at}",
        data[0]
    );
    let end = data[0].end.expect("the outage ended");
    assert!(
        (restore_at..=restore_at + round).contains(&end),
        "{:?} vs restore at {restore_at}",
        data[0]
    );
    let up: BTreeSet<u64> = m
        .vantage_points
        .values()
        .filter(|v| v.node != "devp")
        .map(|v| u64::from(v.asn))
        .collect();
    assert!(data[0].ases.is_superset(&up), "{:?}", data[0]);

    // 2. A control-plane outage of every /24, from the withdrawal to the new announcements.
    let nets: Vec<String> = m
        .target
        .prefix
        .subnets(24)
        .unwrap()
        .map(|n| n.to_string())
        .collect();
    let control = of("control-plane");
    assert_eq!(
        control.iter().map(|o| o.target.clone()).collect::<Vec<_>>(),
        nets,
        "{outages:?}"
    );
    for o in &control {
        assert!((withdraw_at..=withdraw_at + 30).contains(&o.start), "{o:?}");
        let end = o.end.expect("announced again");
        assert!((announce_at..=announce_at + 30).contains(&end), "{o:?}");
    }

    // 3. Every announced /24 RPKI-invalid from the bad export to the corrected one.
    let rpki = of("rpki-invalid");
    assert_eq!(
        rpki.iter().map(|o| o.target.clone()).collect::<Vec<_>>(),
        nets,
        "{outages:?}"
    );
    for o in &rpki {
        assert_eq!((o.start, o.end), (bad_at, Some(good_at)), "{o:?}");
    }

    // The rejected /24 answered at no time: listed, not an outage with a start.
    let never = of("unreachable-while-announced");
    assert_eq!(
        never.iter().map(|o| o.target.as_str()).collect::<Vec<_>>(),
        ["175.45.179.0/24"]
    );
    assert_eq!(
        outages.len(),
        data.len() + control.len() + rpki.len() + never.len()
    );
    println!("testbed_reachability took {} s", began.elapsed().as_secs());
}
