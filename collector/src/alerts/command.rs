//! Running the operator's command: `sh -c CMD` with the alert document on standard input,
//! in a process group of its own, killed (the whole group) when it outlives its timeout.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How a run of the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// It exited with status 0.
    Succeeded,
    /// It exited otherwise (the text says how).
    Failed(String),
    /// It ran longer than its timeout and was killed.
    TimedOut(Duration),
    /// It could not be started.
    NotStarted(String),
}

impl CommandOutcome {
    /// Whether the alert was delivered.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Succeeded)
    }

    /// The outcome as the store and the log say it.
    pub fn describe(&self) -> String {
        match self {
            Self::Succeeded => "exit status 0".to_owned(),
            Self::Failed(how) => how.clone(),
            Self::TimedOut(after) => format!("killed after {} s (timeout)", after.as_secs_f64()),
            Self::NotStarted(why) => format!("not started: {why}"),
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Runs `sh -c command` with `input` on its standard input and `env` in its environment;
/// waits at most `timeout`.
pub fn run_command(
    command: &str,
    input: &[u8],
    env: &[(&str, &str)],
    timeout: Duration,
) -> CommandOutcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return CommandOutcome::NotStarted(e.to_string()),
    };
    // Written from a thread of its own: a command that does not read its input must not
    // block this one past the timeout.
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let started = Instant::now();
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break CommandOutcome::Succeeded,
            Ok(Some(status)) => break CommandOutcome::Failed(describe_status(status)),
            Ok(None) if started.elapsed() >= timeout => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break CommandOutcome::TimedOut(timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break CommandOutcome::Failed(format!("cannot wait for it: {e}")),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_environment_exit_status_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = format!(
            "cat > '{}'; echo \"$X\" >> '{}'",
            out.display(),
            out.display()
        );
        let outcome = run_command(&cmd, b"doc\n", &[("X", "y")], Duration::from_secs(10));
        assert_eq!(outcome, CommandOutcome::Succeeded);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "doc\ny\n");
        assert_eq!(
            run_command("exit 3", b"", &[], Duration::from_secs(10)),
            CommandOutcome::Failed("exit status 3".into())
        );
        // A command that never reads its input and hangs, with a child of its own: the whole
        // group is killed at the timeout.
        let started = Instant::now();
        let outcome = run_command(
            "sleep 30 & wait",
            &vec![0; 1 << 20],
            &[],
            Duration::from_millis(300),
        );
        assert_eq!(
            outcome,
            CommandOutcome::TimedOut(Duration::from_millis(300))
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
