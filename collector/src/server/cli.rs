//! The `serve` and `agent` subcommands: their arguments and what they run.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::body_budget;
use super::connections::{self, Caps};
use super::lifetime::{self, Lifetime};
use super::quota::{self, QuotaConfig};
use super::{AppState, Config, DEFAULT_MAX_BODY, TlsConfig};
use crate::admission::TimeWindow;
use crate::bgp::BgpState;
use crate::store::Db;
use crate::sync::archive::Archive;
use crate::text::escape_control;

/// Arguments of `serve`.
#[derive(Debug, Args)]
#[command(after_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 (port 0: any free port; the address
    /// actually bound is printed on stdout).
    #[arg(long, env = "NKPATH_LISTEN", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// TLS certificate chain (PEM). With --tls-key, serves HTTPS.
    #[arg(
        long,
        env = "NKPATH_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "NKPATH_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Largest request body accepted, in bytes; larger uploads get 413 (the agent then
    /// halves its batches).
    #[arg(long, env = "NKPATH_MAX_BODY", value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,

    /// Longest a request may take, in seconds, before it is answered 408; on shutdown,
    /// requests in flight get this long to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = super::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    pub request_timeout: u64,

    /// Longest a connection may take to send a request's headers (from when it opens, or
    /// from its previous answer on a kept-alive connection) before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = connections::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,

    /// Longest a connection may stay open with no request in flight, in seconds; then it is
    /// closed (HTTP/2: with a GOAWAY). Agents reconnect for their next upload.
    #[arg(long, value_name = "SECONDS", default_value_t = lifetime::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,

    /// Age in seconds after which a connection is closed, however busy, once the requests
    /// in flight on it are answered (HTTP/2: with a GOAWAY; HTTP/1: `Connection: close`).
    #[arg(long, value_name = "SECONDS", default_value_t = lifetime::DEFAULT_MAX_AGE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connection_age: u64,

    /// Interval in seconds between the PINGs sent on each HTTP/2 connection; a PING not
    /// acknowledged within --ping-timeout drops the connection (a peer that is gone).
    #[arg(long, value_name = "SECONDS", default_value_t = lifetime::DEFAULT_PING_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_interval: u64,

    /// Longest an HTTP/2 PING may go unacknowledged, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = lifetime::DEFAULT_PING_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_timeout: u64,

    /// Most connections open at once; more are closed as soon as they are accepted (and
    /// logged, at most a line every 10 s). Keep it under the file descriptor limit.
    #[arg(long, value_name = "N", default_value_t = connections::DEFAULT_MAX_CONNECTIONS, value_parser = positive::<usize>)]
    pub max_connections: usize,

    /// Most connections open at once from one source address: one IPv4 address, or one
    /// IPv6 prefix of --ipv6-prefix bits (a host often holds a whole /64).
    #[arg(long, value_name = "N", default_value_t = connections::DEFAULT_MAX_CONNECTIONS_PER_IP, value_parser = positive::<usize>)]
    pub max_connections_per_ip: usize,

    /// Prefix length by which IPv6 clients are counted under --max-connections-per-ip
    /// (128: each address on its own).
    #[arg(long, value_name = "BITS", default_value_t = connections::DEFAULT_IPV6_PREFIX, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,

    /// Results that started before this time (RFC 3339 or a date, UTC) are refused.
    #[arg(long, value_name = "TIME", default_value = "2000-01-01", value_parser = crate::report::cli::parse_time)]
    pub earliest_result: OffsetDateTime,

    /// Results that started more than this many hours after the collector's clock are
    /// refused (an agent's clock running ahead).
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub max_clock_ahead: u32,

    /// Keep the BGP data current: run `bgp sync` in the background, a pass every
    /// --sync-every (give or take a tenth), loading a RIB dump every --rib-every. Off by
    /// default. Its state shows in `bgp status` and in /v1/health (`bgp_sync`).
    #[arg(long)]
    pub bgp_sync: bool,

    /// Time between two background sync passes (update files).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::sync::cli::parse_duration, requires = "bgp_sync")]
    pub sync_every: Duration,

    /// Where the background sync fetches from and what (see `bgp sync --help`).
    #[command(flatten)]
    pub archives: crate::sync::cli::ArchiveArgs,

    /// RIS Live, followed in the background while serving (see `bgp live`).
    #[command(flatten)]
    pub ris_live: crate::live::RisLiveArgs,

    /// Alerts, evaluated in the background while serving.
    #[command(flatten)]
    pub alerts: crate::alerts::AlertArgs,

    /// Results one agent may upload per hour; more get 429 with Retry-After. Default: twice
    /// what the agent's rate cap can produce, 2 × pps × 3600 (pps as its traces declare
    /// it, 100 until they do): an hour's measurements and room to drain a day of backlog
    /// within a day.
    #[arg(long, env = "NKPATH_QUOTA_RESULTS_PER_HOUR", value_name = "N", value_parser = positive::<u64>)]
    pub quota_results_per_hour: Option<u64>,

    /// Bytes of upload bodies one agent may send per hour; more get 429 with Retry-After.
    /// Default: the results quota × 1024 (the most JSON one probe packet adds to a result).
    #[arg(long, env = "NKPATH_QUOTA_BYTES_PER_HOUR", value_name = "BYTES", value_parser = positive::<u64>)]
    pub quota_bytes_per_hour: Option<u64>,

    /// Uploads of one agent in progress at once; more get 429 with Retry-After.
    #[arg(long, env = "NKPATH_QUOTA_CONCURRENT_UPLOADS", value_name = "N", default_value_t = quota::DEFAULT_CONCURRENT_UPLOADS, value_parser = positive::<usize>)]
    pub quota_concurrent_uploads: usize,

    /// Bytes of upload bodies in memory at once, all agents together (raised to
    /// --max-body); an upload that does not fit is answered 503 with Retry-After before its
    /// body is read. Decoding holds a few times a body: the collector's memory for uploads
    /// stays within a small multiple of this.
    #[arg(long, env = "NKPATH_BODY_MEMORY", value_name = "BYTES", default_value_t = body_budget::DEFAULT_BODY_MEMORY, value_parser = positive::<usize>)]
    pub body_memory: usize,
}

/// A whole number above zero, for a count or a size.
fn positive<T: std::str::FromStr + PartialEq + Default>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n != T::default() => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

impl ServeArgs {
    /// The server settings these arguments give.
    pub fn config(&self) -> Config {
        Config {
            max_body: self.max_body,
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
            lifetime: Lifetime {
                header_timeout: Duration::from_secs(self.header_timeout.max(1)),
                idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
                max_age: Duration::from_secs(self.max_connection_age.max(1)),
                ping_interval: Duration::from_secs(self.ping_interval.max(1)),
                ping_timeout: Duration::from_secs(self.ping_timeout.max(1)),
                ..Lifetime::default()
            },
            caps: Caps {
                total: self.max_connections,
                per_ip: self.max_connections_per_ip,
                ipv6_prefix: self.ipv6_prefix,
            },
            window: TimeWindow {
                earliest: self.earliest_result,
                max_ahead: time::Duration::hours(i64::from(self.max_clock_ahead)),
            },
            quotas: QuotaConfig {
                results_per_hour: self.quota_results_per_hour,
                bytes_per_hour: self.quota_bytes_per_hour,
                concurrent_uploads: self.quota_concurrent_uploads,
            },
            body_memory: self.body_memory,
        }
    }
}

const SERVE_EXAMPLES: &str = "Examples:
  nkpath-collector --db /var/lib/nkpath/nkpath.db serve --listen 0.0.0.0:8443 \\
      --tls-cert /etc/nkpath/cert.pem --tls-key /etc/nkpath/key.pem
  nkpath-collector serve --listen 127.0.0.1:8080

Stops on SIGTERM or Ctrl-C after the requests in flight are answered.";

/// `agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Adds an agent and prints its new upload token on stdout, once; only its SHA-256 is
    /// stored. A revoked agent can be added again with a new token.
    ///
    /// NAME is the agent id: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'. The
    /// agent's configuration must use the same agent_id. In a script:
    /// TOKEN=$(nkpath-collector agent add vp-fra1)
    Add {
        /// The agent's name (its agent_id).
        name: String,
    },
    /// Lists agents (tab-separated): name, created, last seen, agent version, public address
    /// of the last upload, its origin AS in the latest BGP data, and status.
    List,
    /// Revokes an agent's token: its uploads get 401 from now on. Its results stay stored.
    Revoke {
        /// The agent's name.
        name: String,
    },
}

/// Runs `serve` until SIGTERM or Ctrl-C.
pub fn serve(db: Db, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsConfig::from_pem_file(cert, key).await.with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {} (PEM files expected)",
                        cert.display(),
                        key.display()
                    )
                })?)
            }
            _ => None,
        };
        let listener = std::net::TcpListener::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        // On stdout, for scripts and tests that listen on port 0.
        println!("listening on {scheme}://{local}");
        std::io::stdout().flush().ok();
        tracing::info!(db = %db.path().display(), "listening on {scheme}://{local}");
        let alerts = match args.alerts.config() {
            Some(config) => {
                let alerts_db =
                    Db::open(db.path()).context("cannot open the database for alerts")?;
                Some(crate::alerts::spawn_runner(alerts_db, config)?)
            }
            None => None,
        };
        let nudge = alerts.as_ref().map(|(h, _)| h.clone());
        if args.bgp_sync {
            start_sync(db.path(), args, nudge.clone())?;
        }
        let live = match &args.ris_live.url {
            Some(url) => Some(spawn_ris_live(&db, args, url, nudge)?),
            None => None,
        };
        let state = AppState::with_config(db, args.config())
            .context("cannot open a read-only connection to the database for token checks")?;
        super::serve(listener, state, tls, super::shutdown_signal())
            .await
            .context("the server failed")?;
        if let Some(live) = live {
            // It stops on the same signal; what it received is stored before it returns.
            let _ = live.await;
        }
        if let Some((handle, thread)) = alerts {
            drop(handle);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Starts the background sync on a thread of its own, with its own connection to the
/// database and its own runtime: a pass (downloads, then loads in the loader's own
/// transactions) never runs on the threads that answer agents. The thread ends with the
/// process; a load cut off then leaves nothing visible (see [`crate::mrt::load_file`]).
/// After a pass that loaded a file, `alerts` (the `--on-change` runner) is nudged to
/// evaluate the new data at once: alerts need no operator step.
fn start_sync(
    path: &std::path::Path,
    args: &ServeArgs,
    alerts: Option<crate::alerts::RunnerHandle>,
) -> anyhow::Result<()> {
    let mut db = Db::open(path).context("cannot open the database for the background sync")?;
    let config = args.archives.config(None, None);
    let every = args.sync_every;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the background sync's runtime")?;
    tracing::info!(
        collectors = ?config.collectors,
        "background BGP sync: a pass every {}",
        humantime::format_duration(every)
    );
    std::thread::Builder::new()
        .name("bgp-sync".into())
        .spawn(move || {
            loop {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                let reports = runtime.block_on(crate::sync::run_pass(&mut db, &config, now));
                let loaded = reports.iter().any(|r| !r.loaded.is_empty());
                if loaded && let Some(alerts) = &alerts {
                    alerts.nudge(None);
                }
                for r in reports {
                    tracing::info!(
                        collector = %r.collector,
                        loaded = r.loaded.len(),
                        failed = r.failed.len(),
                        gaps = r.gaps.len(),
                        "sync pass done"
                    );
                }
                std::thread::sleep(crate::sync::jittered(every));
            }
        })
        .context("cannot start the background sync")?;
    Ok(())
}

/// Starts following RIS Live with a connection of its own to the database.
/// Without `--ris-live-host` it subscribes at the RIS collectors `--bgp-sync` syncs (see
/// [`crate::live::RisLiveArgs::options`]).
fn spawn_ris_live(
    db: &Db,
    args: &ServeArgs,
    url: &str,
    alerts: Option<crate::alerts::RunnerHandle>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let live_db = Db::open(db.path()).context("cannot open the database for RIS Live")?;
    let synced = Archive::ris_only(&args.archives.config(None, None).collectors);
    let options = args.ris_live.options(url, db.target()?.prefixes, &synced);
    let after = move |_: &mut Db, _: &crate::live::Ingested, heard: i64| {
        if let Some(h) = &alerts {
            h.nudge(Some(heard));
        }
    };
    Ok(tokio::spawn(async move {
        if let Err(e) = crate::live::run(live_db, options, after, super::shutdown_signal()).await {
            tracing::error!("RIS Live stopped: {e}");
        }
    }))
}

/// Runs an `agent` subcommand.
pub fn agent(db: &mut Db, command: &AgentCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentCommand::Add { name } => {
            let added = db.add_agent(name)?;
            // The token alone on stdout, so that TOKEN=$(… agent add NAME) works.
            println!("{}", added.token.expose());
            let what = if added.reenrolled {
                "enrolled again (the old token stays revoked)"
            } else {
                "added"
            };
            eprintln!(
                "agent {name} {what}; its token is printed above and cannot be shown again: \
                 put it in the agent's collector.token_file"
            );
        }
        AgentCommand::List => list(db)?,
        AgentCommand::Revoke { name } => {
            if db.revoke_agent(name)? {
                eprintln!("agent {name} revoked: its uploads are refused from now on");
            } else {
                eprintln!("agent {name} was already revoked");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(db: &Db) -> anyhow::Result<()> {
    let agents = db.agents()?;
    let needs_bgp = agents
        .iter()
        .any(|a| matches!(a.last_address, Some(IpAddr::V4(_))));
    let bgp = if needs_bgp {
        BgpState::at(db, OffsetDateTime::now_utc()).context("reading the BGP state")?
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "name\tcreated\tlast_seen\tagent_version\taddress\tas\tstatus"
    )?;
    // Agent versions are whatever the agents sent: escaped, so that neither a terminal
    // sequence nor a tab or newline (a new column or row) gets through.
    for a in &agents {
        let asn = match (a.last_address, &bgp) {
            (Some(IpAddr::V4(ip)), Some(state)) => state
                .origins_lpm(ip)
                .map(|(_, origins)| {
                    origins
                        .iter()
                        .map(|asn| format!("AS{asn}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let status = match &a.revoked_at {
            Some(at) => format!("revoked {at}"),
            None => "active".to_owned(),
        };
        let address = a.last_address.map(|ip| ip.to_string()).unwrap_or_default();
        let cells = [
            a.name.as_str(),
            &a.created_at,
            a.last_seen_at.as_deref().unwrap_or(""),
            a.agent_version.as_deref().unwrap_or(""),
            &address,
            &asn,
            &status,
        ]
        .map(escape_control);
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}
