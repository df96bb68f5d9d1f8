//! nkpath-agent: Paris traceroutes from a volunteer's vantage point.
//!
//! `main` is deliberately a plain function: it validates the command line, opens
//! every raw socket the process will ever use, drops root and every capability but
//! CAP_NET_RAW, and only then builds the tokio runtime and starts probing.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use nkpath_agent::cli::commands;
use nkpath_agent::cli::{Cli, Command};
use nkpath_agent::probing::liveness::Pinger;
use nkpath_agent::probing::privilege::drop_privileges;
use nkpath_agent::probing::sockets::RawSockets;
use nkpath_agent::service::spool::Spool;
use nkpath_agent::service::{self, Prepared};
use nkpath_agent::service::{config, status};
use nkpath_proto::atomic_file::AtomicFile;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nkpath-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("NKPATH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Plain text when not on a terminal: journald keeps the lines as they are.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Gives up privileges once every socket is open: the order matters.
fn drop_to(user: &str) -> anyhow::Result<()> {
    let dropped = drop_privileges(user).context("dropping privileges")?;
    tracing::info!(
        uid = dropped.uid,
        bounding_narrowed = dropped.bounding_narrowed,
        "sockets open; running unprivileged with CAP_NET_RAW only"
    );
    Ok(())
}

/// Opens the Paris engine's sockets, then gives up privileges.
fn open_sockets_and_drop(user: &str) -> anyhow::Result<RawSockets> {
    let sockets = RawSockets::open()?;
    drop_to(user)?;
    Ok(sockets)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Trace(args) => {
            let plan = args.plan()?;
            let sockets = open_sockets_and_drop(&cli.user)?;
            runtime()?.block_on(commands::trace(plan, sockets, args.json, args.resolver))
        }
        Command::Survey(args) => {
            let plan = args.plan()?;
            // Created before the privilege drop, so the operator may write where the agent's
            // user cannot: a new file beside --out, renamed over it once the survey is done
            // (a symlink at --out is replaced, never written through).
            let out = AtomicFile::create(&args.out)
                .with_context(|| format!("cannot create a file beside {}", args.out.display()))?;
            let sockets = open_sockets_and_drop(&cli.user)?;
            runtime()?.block_on(commands::survey(plan, sockets, out))
        }
        Command::Run(args) => run_service(&args.config.config, args.rounds),
        Command::Status(args) => {
            print!("{}", status::run(&args.config.config, args.json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll(args) => enroll(args),
        Command::CheckConfig(args) => match config::check(&args.config) {
            Ok(cfg) => {
                println!("{}: OK\n{}", args.config.display(), cfg.summary());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}

/// `enroll`: the token from standard input, the rest from the arguments.
fn enroll(args: &nkpath_agent::cli::EnrollArgs) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal as _, Read as _};
    if std::io::stdin().is_terminal() {
        eprintln!("paste the token the collector's operator gave you, then press Enter:");
    }
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("reading the token from standard input")?;
    let token = config::enroll::token_from(&input)?;
    let agent_id = args
        .agent_id
        .clone()
        .unwrap_or_else(config::enroll::default_agent_id);
    let done = config::enroll::enroll(&args.config.config, &args.collector_url, &agent_id, &token)?;
    println!(
        "enrolled as {:?}: wrote {} and {}
check it: nkpath-agent check-config --config {}
         then (re)start the service: systemctl restart nkpath-agent",
        done.agent_id,
        done.drop_in.display(),
        done.token_file.display(),
        args.config.config.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `run`: everything privileged first (config with its token file, raw
/// sockets, the pinger's raw socket, the spool), then the drop, then rounds.
fn run_service(config_path: &Path, rounds: Option<u32>) -> anyhow::Result<ExitCode> {
    let config = config::load(config_path)?;
    let sockets = RawSockets::open()?;
    let spool = Arc::new(
        Spool::open(&config.spool.path)
            .with_context(|| format!("opening the spool {}", config.spool.path.display()))?,
    );
    let rt = runtime()?;
    let pinger = if config.liveness.enabled {
        // surge-ping registers its socket with the runtime, so it is built inside it, before the drop.
        let _guard = rt.enter();
        Some(Pinger::new().context("opening the liveness ping socket")?)
    } else {
        None
    };
    drop_to(&config.user)?;
    let prepared = Prepared {
        config,
        sockets,
        pinger,
        spool,
    };
    rt.block_on(service::run(prepared, rounds))?;
    Ok(ExitCode::SUCCESS)
}
