//! The command line: what the user types, validated into what the engine needs.

//!
//! The command-line room: the arguments here, [`commands`] (what `trace` and `survey` do),
//! and [`output`] (how results are printed).

pub mod commands;
pub mod output;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nkpath_proto::Protocol;

use crate::probing::engine::{
    AgentIdentity, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TCP_PORT, DEFAULT_UDP_PORT, EngineConfig,
    FlowChoice,
};
use crate::probing::mda::{self, Confidence, MdaConfig};
use crate::probing::pacing::{DEFAULT_PER_PREFIX_PPS, DEFAULT_PPS, Rates};
use crate::probing::privilege::DEFAULT_USER;
use crate::probing::targets::{self, Allowlist, DEFAULT_TARGET};
use crate::probing::trace::TraceSettings;

/// nkpath-agent: measures, hop by hop, the paths from this machine into North
/// Korea's address block (175.45.176.0/22, AS131279) with Paris traceroute.
///
/// Paris traceroute keeps the fields that load balancers hash on constant for a
/// whole trace, so the hops it reports lie on one real path instead of a mix of
/// several. The agent probes only the prefixes of its allowlist, at a hard-capped
/// rate (never above 1000 packets/s; 100 by default, 10 per /24), and gives up
/// root and every capability but CAP_NET_RAW right after opening its sockets.
#[derive(Debug, Parser)]
#[command(
    name = "nkpath-agent",
    version,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// The unprivileged user to become when started as root.
    #[arg(long, global = true, default_value = DEFAULT_USER, env = "NKPATH_USER")]
    pub user: String,

    /// More log output (repeat for more); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The agent's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One Paris traceroute, printed like traceroute (or as JSON).
    Trace(TraceArgs),
    /// One round over all targets; one JSON trace result per line.
    Survey(SurveyArgs),
    /// Run as a service: rounds on a schedule, results spooled and uploaded.
    Run(RunArgs),
    /// Show the service's state: spool, quarantine, last round and upload.
    Status(StatusArgs),
    /// Validate a configuration file and say what is wrong and where.
    CheckConfig(ConfigArg),
    /// Enrol with a collector: reads the token from standard input (never pass it as an
    /// argument) and writes the URL, the agent id and the token into agent.d/ beside the
    /// configuration file, which stays as shipped.
    Enroll(EnrollArgs),
}

/// `nkpath-agent enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The collector's base URL, e.g. https://collector.example.org.
    pub collector_url: String,
    /// The agent's name, as the collector's operator gave it with `agent add` (default:
    /// this machine's short host name).
    #[arg(long, value_name = "NAME")]
    pub agent_id: Option<String>,
    /// The configuration file; agent.d/ beside it receives the enrolment.
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The configuration file option.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The agent's TOML configuration (see the documented example agent.toml).
    #[arg(long, default_value = crate::service::config::DEFAULT_CONFIG_PATH, env = "NKPATH_CONFIG")]
    pub config: PathBuf,
}

/// `nkpath-agent run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Stop after this many completed rounds, once their results are uploaded
    /// (for demos and tests; rounds skipped while paused or with a full spool do
    /// not count; 0 uploads what is spooled and exits).
    #[arg(long)]
    pub rounds: Option<u32>,
}

/// `nkpath-agent status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Probe protocol on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    /// ICMP echo requests; the flow is the (type, code, checksum) triple.
    Icmp,
    /// UDP datagrams; the flow is the (source port, destination port) pair.
    Udp,
    /// TCP SYNs; the flow is the (source port, destination port) pair.
    Tcp,
}

impl From<ProtoArg> for Protocol {
    fn from(p: ProtoArg) -> Self {
        match p {
            ProtoArg::Icmp => Protocol::Icmp,
            ProtoArg::Udp => Protocol::Udp,
            ProtoArg::Tcp => Protocol::Tcp,
        }
    }
}

/// Options shared by `trace` and `survey`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Probe protocol.
    #[arg(long = "proto", value_enum, default_value = "icmp")]
    pub proto: ProtoArg,
    /// Destination port for UDP and TCP probes [default: 33434 for UDP, 80 for TCP].
    #[arg(long)]
    pub port: Option<u16>,
    /// Probes per TTL at most [default: 3 for trace, 1 for survey].
    #[arg(long)]
    pub attempts: Option<u8>,
    /// Seconds to wait for each probe's reply.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Consecutive silent TTLs before a trace gives up.
    #[arg(long, default_value_t = 5)]
    pub gap_limit: u8,
    /// The first TTL probed.
    #[arg(long, default_value_t = 1)]
    pub first_ttl: u8,
    /// The last TTL probed.
    #[arg(long, default_value_t = 32)]
    pub max_ttl: u8,
    /// Agent-wide packet rate cap, packets per second (at most 1000).
    #[arg(long, default_value_t = DEFAULT_PPS, env = "NKPATH_PPS")]
    pub pps: u32,
    /// Packet rate cap per destination /24 (probes that can reach the target network).
    #[arg(long, default_value_t = DEFAULT_PER_PREFIX_PPS)]
    pub per_prefix_pps: u32,
    /// Most probes awaiting an answer at once.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Prefixes the agent may probe (repeatable); targets outside are refused.
    #[arg(long = "allow", value_name = "PREFIX", default_value = DEFAULT_TARGET)]
    pub allow: Vec<String>,
    /// Identifier of this agent in the results [default: the host name].
    #[arg(long, env = "NKPATH_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Probe every hop with each trace's own flow: no stop set, no hop taken
    /// from another trace of the survey (more probes).
    #[arg(long)]
    pub no_stop_set: bool,
    /// Multipath traces instead of Paris traceroutes.
    #[command(flatten)]
    pub mda: MdaArgs,
}

/// Multipath (MDA) options shared by `trace` and `survey`.
#[derive(Debug, Args)]
pub struct MdaArgs {
    /// Multipath trace (MDA): vary the flow identifier (UDP/TCP source port,
    /// ICMP checksum) at every TTL until every load balancer's next hops are
    /// all found with the chosen --confidence, and print every interface and
    /// link. Costs many more probes than one Paris traceroute: see
    /// --max-probes and --max-seconds.
    #[arg(long)]
    pub mda: bool,
    /// With --mda: the confidence, in percent, that each node's next hops are
    /// all found (95: 6 flows for 2 next hops, 11 for 3; 99: 8 and 15).
    #[arg(long, value_name = "95|99", default_value = "95", requires = "mda")]
    pub confidence: Confidence,
    /// With --mda: most probes one multipath trace may send; reaching it ends
    /// the trace and flags it (`budget_hit`).
    #[arg(long, default_value_t = mda::run::DEFAULT_MAX_PROBES, requires = "mda")]
    pub max_probes: u32,
    /// With --mda: longest one multipath trace may run, in seconds; reaching
    /// it ends the trace and flags it.
    #[arg(long, default_value_t = mda::run::DEFAULT_MAX_TIME.as_secs(), requires = "mda")]
    pub max_seconds: u64,
    /// With --mda: the seed the flow identifiers are drawn from (the same seed
    /// probes the same flows) [default: random].
    #[arg(long, requires = "mda")]
    pub seed: Option<u64>,
}

/// `nkpath-agent trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The address to trace (must lie inside the allowlist).
    pub target: Ipv4Addr,
    /// Options shared with `survey`.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Fix the UDP/TCP source port (the flow) instead of choosing one at random.
    #[arg(long)]
    pub src_port: Option<u16>,
    /// Fix the ICMP checksum (the flow) instead of choosing one at random.
    #[arg(long, value_parser = parse_u16_any_radix)]
    pub icmp_checksum: Option<u16>,
    /// Print the trace result as JSON (the wire format) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Look up hop names (PTR) at this DNS server (IP or IP:PORT) and show
    /// them.
    #[arg(long, value_name = "ADDR", value_parser = parse_resolver)]
    pub resolver: Option<std::net::SocketAddr>,
}

fn parse_resolver(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address or IP:PORT"))
}

/// `nkpath-agent survey`.
#[derive(Debug, Args)]
pub struct SurveyArgs {
    /// Prefixes and addresses to trace, every address of each.
    #[arg(long, value_name = "PREFIX", num_args = 1.., default_value = DEFAULT_TARGET)]
    pub targets: Vec<String>,
    /// Where to write the results, one JSON trace result per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// Options shared with `trace`.
    #[command(flatten)]
    pub probe: ProbeArgs,
}

fn parse_u16_any_radix(s: &str) -> Result<u16, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("'{s}' is not a 16-bit number: {e}"))
}

/// A validated plan: everything checked before any socket is opened.
#[derive(Debug)]
pub struct Plan {
    /// The engine configuration.
    pub engine: EngineConfig,
    /// With `--mda`: multipath traces with these settings instead.
    pub mda: Option<MdaConfig>,
    /// The targets, expanded and inside the allowlist.
    pub targets: Vec<Ipv4Addr>,
    /// The allowlist.
    pub allowlist: Allowlist,
}

impl ProbeArgs {
    fn plan(
        &self,
        base: TraceSettings,
        targets: &[ipnet::Ipv4Net],
        flow: FlowChoice,
    ) -> anyhow::Result<Plan> {
        let allowlist = Allowlist::parse(&self.allow)?;
        let targets = targets::expand(targets, &allowlist)?;
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 60.0) {
            anyhow::bail!(
                "--timeout must be more than 0 and at most 60 seconds (got {})",
                self.timeout
            );
        }
        let settings = TraceSettings {
            attempts: self.attempts.unwrap_or(base.attempts),
            timeout: Duration::from_secs_f64(self.timeout),
            gap_limit: self.gap_limit,
            first_ttl: self.first_ttl,
            max_ttl: self.max_ttl,
            ..base
        };
        settings.validate().map_err(anyhow::Error::msg)?;
        if self.max_in_flight == 0 || self.max_in_flight > 4096 {
            anyhow::bail!(
                "--max-in-flight must be 1..=4096 (got {})",
                self.max_in_flight
            );
        }
        let protocol = Protocol::from(self.proto);
        let dst_port = self.port.unwrap_or(match protocol {
            Protocol::Tcp => DEFAULT_TCP_PORT,
            _ => DEFAULT_UDP_PORT,
        });
        let engine = EngineConfig {
            protocol,
            dst_port,
            settings,
            rates: Rates::new(self.pps, self.per_prefix_pps)?,
            max_in_flight: self.max_in_flight,
            identity: AgentIdentity {
                agent_id: agent_id(self.agent_id.as_deref())?,
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            round_id: uuid::Uuid::new_v4(),
            flow,
            stop_set: !self.no_stop_set,
        };
        let mda = self.mda.mda.then(|| self.mda_config(&engine)).transpose()?;
        Ok(Plan {
            engine,
            mda,
            targets,
            allowlist,
        })
    }
}

impl ProbeArgs {
    /// The multipath settings, from the engine's where they are shared.
    fn mda_config(&self, engine: &EngineConfig) -> anyhow::Result<MdaConfig> {
        let cfg = MdaConfig {
            protocol: engine.protocol,
            dst_port: engine.dst_port,
            confidence: self.mda.confidence,
            timeout: engine.settings.timeout,
            first_ttl: engine.settings.first_ttl,
            max_ttl: engine.settings.max_ttl,
            gap_limit: engine.settings.gap_limit,
            max_probes: self.mda.max_probes,
            max_time: Duration::from_secs(self.mda.max_seconds),
            seed: self.mda.seed.unwrap_or_else(rand::random),
            identity: engine.identity.clone(),
            round_id: engine.round_id,
        };
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

impl TraceArgs {
    /// Validates the arguments.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let flow = FlowChoice {
            src_port: self.src_port,
            icmp_checksum: self.icmp_checksum,
        };
        self.probe.plan(
            TraceSettings::INTERACTIVE,
            &[ipnet::Ipv4Net::from(self.target)],
            flow,
        )
    }
}

impl SurveyArgs {
    /// Validates the arguments.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let nets = self
            .targets
            .iter()
            .map(|t| targets::parse_prefix(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.probe
            .plan(TraceSettings::SURVEY, &nets, FlowChoice::default())
    }
}

/// The agent id: given, or this host's name, checked against the wire format's rules.
fn agent_id(given: Option<&str>) -> anyhow::Result<String> {
    let id = match given {
        Some(id) => id.to_owned(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "agent".to_owned()),
    };
    let valid = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        anyhow::bail!(
            "agent id '{id}' is not valid: use 1 to 64 characters of A-Z a-z 0-9 . _ - (pass --agent-id)"
        );
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn help_explains_the_purpose() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Paris traceroute"));
        assert!(help.contains("175.45.176.0/22"));
    }

    #[test]
    fn trace_defaults_to_three_attempts_and_icmp() {
        let cli = parse(&["nkpath-agent", "trace", "175.45.176.1", "--agent-id", "t1"]);
        let Command::Trace(args) = cli.command else {
            panic!()
        };
        let plan = args.plan().unwrap();
        assert_eq!(plan.engine.settings.attempts, 3);
        assert_eq!(plan.engine.protocol, Protocol::Icmp);
        assert_eq!(plan.targets, [Ipv4Addr::new(175, 45, 176, 1)]);
        assert!(plan.engine.stop_set);
    }

    #[test]
    fn no_stop_set_turns_the_stop_set_off() {
        let cli = parse(&[
            "nkpath-agent",
            "survey",
            "--out",
            "x.jsonl",
            "--agent-id",
            "t1",
            "--no-stop-set",
        ]);
        let Command::Survey(args) = cli.command else {
            panic!()
        };
        assert!(!args.plan().unwrap().engine.stop_set);
    }

    #[test]
    fn survey_defaults_to_the_whole_block_once_per_hop() {
        let cli = parse(&[
            "nkpath-agent",
            "survey",
            "--out",
            "x.jsonl",
            "--agent-id",
            "t1",
        ]);
        let Command::Survey(args) = cli.command else {
            panic!()
        };
        let plan = args.plan().unwrap();
        assert_eq!(plan.targets.len(), 1024);
        assert_eq!(plan.engine.settings.attempts, 1);
        assert_eq!(plan.engine.rates.pps(), 100);
    }

    #[test]
    fn refuses_targets_outside_the_allowlist() {
        let cli = parse(&["nkpath-agent", "trace", "8.8.8.8", "--agent-id", "t1"]);
        let Command::Trace(args) = cli.command else {
            panic!()
        };
        let err = args.plan().unwrap_err().to_string();
        assert!(err.contains("outside the allowlist"), "{err}");
    }

    #[test]
    fn refuses_rates_above_the_ceiling() {
        let cli = parse(&[
            "nkpath-agent",
            "survey",
            "--out",
            "x",
            "--pps",
            "5000",
            "--agent-id",
            "t1",
        ]);
        let Command::Survey(args) = cli.command else {
            panic!()
        };
        let err = args.plan().unwrap_err().to_string();
        assert!(err.contains("between 1 and 1000"), "{err}");
    }

    #[test]
    fn mda_takes_its_confidence_and_budget() {
        let cli = parse(&[
            "nkpath-agent",
            "trace",
            "175.45.176.1",
            "--agent-id",
            "t1",
            "--mda",
            "--confidence",
            "99",
            "--max-probes",
            "500",
            "--seed",
            "3",
        ]);
        let Command::Trace(args) = cli.command else {
            panic!()
        };
        let mda = args
            .plan()
            .unwrap()
            .mda
            .expect("--mda plans a multipath trace");
        assert_eq!(mda.confidence, Confidence::P99);
        assert_eq!((mda.max_probes, mda.seed), (500, 3));
        let plain = parse(&["nkpath-agent", "trace", "175.45.176.1", "--agent-id", "t1"]);
        let Command::Trace(args) = plain.command else {
            panic!()
        };
        assert!(args.plan().unwrap().mda.is_none());
        // The budget options mean nothing without --mda, and bad values are refused.
        assert!(
            Cli::try_parse_from(["nkpath-agent", "trace", "175.45.176.1", "--max-probes", "9"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "nkpath-agent",
                "trace",
                "175.45.176.1",
                "--mda",
                "--confidence",
                "90"
            ])
            .is_err()
        );
        let zero = parse(&[
            "nkpath-agent",
            "trace",
            "175.45.176.1",
            "--agent-id",
            "t1",
            "--mda",
            "--max-probes",
            "0",
        ]);
        let Command::Trace(args) = zero.command else {
            panic!()
        };
        let err = args.plan().unwrap_err().to_string();
        assert!(err.contains("--max-probes"), "{err}");
    }

    #[test]
    fn refuses_bad_agent_ids() {
        assert!(agent_id(Some("de-1.example")).is_ok());
        assert!(agent_id(Some("bad id")).is_err());
        assert!(agent_id(Some("")).is_err());
    }
}
