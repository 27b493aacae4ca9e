//! The `hearth` binary: `hearth up` runs the server; every other command is a client of its
//! HTTP API.

/// mimalloc instead of glibc's allocator: the server allocates and frees on every request
/// from every worker thread, where glibc's arenas contend on their locks (see ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod config;
mod error;
mod manifest;
mod output;
mod package;
mod server_log;
mod up;

use std::process::ExitCode;

use clap::Parser;
use hearth_client::ClientError;

use cli::{Cli, Command};
use error::{CliError, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE};

fn main() -> ExitCode {
    // A closed stdout or stderr (`hearth trigger list | head -1`) ends a client command as it
    // ends `ls`: by SIGPIPE, silently (the shell sees 141). The server keeps ignoring it.
    set_sigpipe(nix::sys::signal::SigHandler::SigDfl);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_report(e),
    };
    let json = cli.json;
    if let Some(name) = &cli.context
        && let Err(e) = config::check_context_name(name, "--context")
    {
        return report(&e.into(), json);
    }
    commands::select_context(cli.context.clone());
    if matches!(cli.command, Command::Up(_)) {
        set_sigpipe(nix::sys::signal::SigHandler::SigIgn);
    }
    // Before any thread exists: the server's mounts (its instance volume) stay its own.
    let private_mounts = match &cli.command {
        Command::Up(_) if nix::unistd::geteuid().is_root() => Some(hearth_agent::enter_private_mount_namespace()),
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args, cli.context.as_deref(), private_mounts).await,
            Command::New(args) => commands::scaffold::run(&args.name, &args.runtime, args.dir, json),
            Command::Deploy(args) => commands::manifest_deploy::run(&args.dir, json).await,
            Command::Function(cmd) => commands::functions::run(cmd, json).await,
            Command::Token(cmd) => commands::tokens::run(cmd, json).await,
            Command::Invoke(args) => commands::invoke::run(args, json).await,
            Command::Context(cmd) => commands::contexts::run(cmd, json),
            Command::Trigger(cmd) => commands::triggers::run(cmd, json).await,
            Command::Logs(args) => commands::logs::run(args, json).await,
            Command::Alias(cmd) => commands::aliases::run(cmd, json).await,
            Command::Invocation(cmd) => commands::events::invocation(cmd, json).await,
            Command::DeadLetters(cmd) => commands::events::dead_letters(cmd, json).await,
            Command::Node => commands::node::run(json).await,
            Command::Usage(args) => commands::usage::run(args, json).await,
            Command::Openapi => {
                println!("{}", hearth_server::openapi().to_pretty_json()?);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err, json),
    }
}

fn set_sigpipe(handler: nix::sys::signal::SigHandler) {
    // SAFETY: called while the process has one thread, with a disposition (default or
    // ignore), not a handler function.
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, handler) };
}

/// A command line clap refused: as clap prints it, or under `--json` as one JSON error.
fn usage_report(e: clap::Error) -> ExitCode {
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if !e.use_stderr() || !json {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
    print_error(true, None, "UsageError", message);
    ExitCode::from(EXIT_USAGE)
}

/// What a failure reports: the server's status and code when the server refused, else a
/// local code; and the exit status (1 refused or failed, 2 usage, 3 unreachable).
fn classify(err: &anyhow::Error) -> (Option<u16>, String, u8) {
    for e in err.chain() {
        if let Some(c) = e.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Api { status, code, .. } => (Some(*status), code.clone(), EXIT_FAILED),
                ClientError::Unreachable { .. } => (None, "Unreachable".into(), EXIT_UNREACHABLE),
                ClientError::InvalidUrl { .. } => (None, "InvalidUrl".into(), EXIT_USAGE),
                ClientError::Protocol { .. } => (None, "UnexpectedResponse".into(), EXIT_FAILED),
            };
        }
        if let Some(c) = e.downcast_ref::<CliError>() {
            return (None, c.code.into(), c.exit_code());
        }
        // Validation here is local: the server's refusals arrive as `ClientError::Api`.
        if let Some(v) = e.downcast_ref::<hearth_types::ValidationError>() {
            return (None, v.code().into(), EXIT_USAGE);
        }
    }
    (None, "LocalError".into(), EXIT_FAILED)
}

fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let (status, code, exit) = classify(err);
    print_error(json, status, &code, &format!("{err:#}"));
    ExitCode::from(exit)
}

/// One error: under `--json` exactly one JSON object on stderr,
/// `{"error": {"status": number|null, "code": string, "message": string}}`.
fn print_error(json: bool, status: Option<u16>, code: &str, message: &str) {
    if json {
        let body = serde_json::json!({"error": {"status": status, "code": code, "message": message}});
        eprintln!("{body}");
    } else {
        eprintln!("error: {message}");
        if code != "LocalError" {
            eprintln!("  code: {code}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_code_and_an_exit_status() {
        let client = |e: ClientError| classify(&anyhow::Error::new(e).context("while listing"));
        let (url, reason) = ("http://127.0.0.1:1".to_owned(), "x".to_owned());
        assert_eq!(
            client(ClientError::Api { status: 404, code: "FunctionNotFound".into(), message: "m".into() }),
            (Some(404), "FunctionNotFound".into(), EXIT_FAILED)
        );
        let unreachable = ClientError::Unreachable { url: url.clone(), reason: reason.clone() };
        assert_eq!(client(unreachable), (None, "Unreachable".into(), EXIT_UNREACHABLE));
        let invalid = ClientError::InvalidUrl { url: url.clone(), reason: reason.clone() };
        assert_eq!(client(invalid), (None, "InvalidUrl".into(), EXIT_USAGE));
        assert_eq!(client(ClientError::Protocol { url, reason }), (None, "UnexpectedResponse".into(), EXIT_FAILED));
        assert_eq!(classify(&anyhow::anyhow!("cannot read x")), (None, "LocalError".into(), EXIT_FAILED));
    }
}
