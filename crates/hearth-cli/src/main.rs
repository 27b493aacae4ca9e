//! The `hearth` binary: `hearth up` runs the server; every other command is a client of its
//! HTTP API.

mod cli;
mod commands;
mod config;
mod manifest;
mod output;
mod package;
mod up;

use std::process::ExitCode;

use clap::Parser;
use hearth_client::ClientError;

use cli::{Cli, Command};

/// Exit codes, documented in `hearth --help`.
const EXIT_FAILED: u8 = 1;
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    commands::select_context(cli.context.clone());
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
            Command::Node => commands::node::run(json).await,
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

fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let client = err.chain().find_map(|e| e.downcast_ref::<ClientError>());
    // Refusals carry a stable code whether the server or local validation refused.
    let local = err.chain().find_map(|e| e.downcast_ref::<hearth_types::ValidationError>());
    let (code, status) = match (client, local) {
        (Some(ClientError::Api { code, status, .. }), _) => (Some(code.as_str()), Some(*status)),
        (_, Some(v)) => (Some(v.code()), None),
        _ => (None, None),
    };
    if json {
        let body = serde_json::json!({"error": {"code": code, "status": status, "message": format!("{err:#}")}});
        eprintln!("{body}");
    } else {
        eprintln!("error: {err:#}");
        if let Some(code) = code {
            eprintln!("  code: {code}");
        }
    }
    match client {
        Some(ClientError::Unreachable { .. }) => ExitCode::from(EXIT_UNREACHABLE),
        _ => ExitCode::from(EXIT_FAILED),
    }
}
