//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "Hearth: a self-hostable Function-as-a-Service platform",
    after_help = "Exit codes: 0 ok, 1 refused by the server or failed, 2 usage error (anything refused before \
                  sending: flags, values out of range, --data that is not JSON, a malformed HEARTH_URL or context \
                  name), 3 server unreachable; a closed stdout (`hearth trigger list | head -1`) ends the command \
                  by SIGPIPE, as it ends `ls` (the shell reports 141).\n\
                  Under --json, output is JSON on stdout and every error is one JSON object on stderr: \
                  {\"error\": {\"status\": <HTTP status or null>, \"code\": \"<stable code>\", \"message\": \"...\"}}.\n\
                  Client commands use a context (a server's URL and token) from ~/.config/hearth/config.toml: the current one \
                  (`hearth context use`), or --context / HEARTH_CONTEXT; HEARTH_URL and HEARTH_TOKEN override it."
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The context (server) to talk to, instead of the current one; for `hearth up`, the
    /// name its context gets on first start (default: local).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the all-in-one server on embedded defaults (SQLite + local files).
    Up(UpArgs),
    /// Create a function in a new folder: its handler and a hearth.toml, from a template.
    New(NewArgs),
    /// Deploy the function described by a folder's hearth.toml, and its triggers.
    Deploy(ManifestDeployArgs),
    /// Deploy, inspect and delete functions.
    #[command(subcommand, name = "fn")]
    Function(FnCommand),
    /// Invoke a function and print its result.
    Invoke(InvokeArgs),
    /// Print a function's log (its output and START/END/REPORT lines).
    Logs(LogsArgs),
    /// Name versions of a function (live -> 3), optionally splitting traffic between two.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Follow asynchronous invocations.
    #[command(subcommand)]
    Invocation(InvocationCommand),
    /// A function's dead letters: asynchronous invocations that failed after their retries.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
    /// Route HTTP requests to functions.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Manage API tokens (needs an admin token).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List, add, switch and delete contexts: the servers the CLI talks to.
    #[command(subcommand)]
    Context(ContextCommand),
    /// Show the node's memory for instances and its pre-warmed sandboxes.
    Node,
    /// Show what functions used and cost (requests, errors, cold starts, GB-seconds).
    Usage(UsageArgs),
    /// Print the API's OpenAPI document.
    Openapi,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Start: RFC 3339 or YYYY-MM-DD (UTC), down to its hour (default: 24 hours before --to;
    /// at most 400 days before it).
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339 or YYYY-MM-DD, up to its hour (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this function.
    #[arg(long)]
    pub function: Option<String>,
    /// One row per hour, day (default), function or version.
    #[arg(long, value_name = "GROUP", value_parser = ["hour", "day", "function", "version"])]
    pub group_by: Option<String>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The function's name (also the folder's, unless --dir).
    pub name: String,
    /// The template's language.
    #[arg(long, short, value_parser = ["python3", "nodejs", "provided"])]
    pub runtime: String,
    /// The folder to create (default: ./NAME); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ManifestDeployArgs {
    /// The folder holding hearth.toml, or the manifest file itself.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where metadata and code live (default: ~/.local/share/hearth).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (default: 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the HTTP triggers, another origin than the API's (default: the API's
    /// address with the next port, e.g. 127.0.0.1:8081).
    #[arg(long, value_name = "ADDR")]
    pub trigger_listen: Option<String>,
    /// The server's own log lines: text (default) or json (one object per line, with the
    /// request id of the invocation it was written in).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Also serve GET /metrics on this address, without a token (for a Prometheus scraper;
    /// on the API's address it needs a token with the read scope).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// PEM certificate chain: serve both listeners over HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Server configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Create or update a function from a folder or a zip.
    Deploy(Box<DeployArgs>),
    /// List functions.
    #[command(alias = "ls")]
    List,
    /// Show one function.
    Get {
        /// The function's name.
        name: String,
    },
    /// Delete a function and all its versions.
    #[command(alias = "rm")]
    Delete {
        /// The function's name.
        name: String,
    },
    /// List a function's versions.
    Versions {
        /// The function's name.
        name: String,
    },
    /// Change some of a function's settings; the others stay as they are.
    Config {
        /// The function's name.
        name: String,
        #[command(flatten)]
        settings: Box<SettingArgs>,
    },
    /// Replace a function's code (`hearth fn code NAME PATH`), keeping its settings; or
    /// download it (`hearth fn code pull NAME`).
    Code(CodeArgs),
    /// List a function's live instances.
    Instances {
        /// The function's name.
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CodeArgs {
    #[command(subcommand)]
    pub command: Option<CodeCommand>,
    /// The function whose code to replace.
    #[arg(required = true)]
    pub name: Option<String>,
    /// A folder (zipped for you), a .zip file, or s3://bucket/key.
    #[arg(required = true)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Unpack a function's code into a folder (default: ./NAME).
    Pull {
        /// The function's name.
        name: String,
        /// The folder to unpack into (default: ./NAME); must not exist or be empty, unless
        /// --force.
        dir: Option<PathBuf>,
        /// Version number (default: $LATEST).
        #[arg(long)]
        version: Option<String>,
        /// Write into a folder that is not empty.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A folder (zipped for you), a .zip file, or s3://bucket/key of a zip in the
    /// server's configured S3-compatible store.
    pub path: PathBuf,
    /// The function's name.
    #[arg(long, short)]
    pub name: String,
    /// Replace the whole configuration: settings not given take their defaults (without it,
    /// an existing function keeps every setting not given).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub settings: SettingArgs,
}

/// A function's settings as flags; each one not given is left as it is (or its default for
/// a new function).
#[derive(Debug, Args)]
pub struct SettingArgs {
    /// python3, nodejs, provided or wasm (required to create a function).
    #[arg(long, short)]
    pub runtime: Option<String>,
    /// Entry point, e.g. main.handler (required for python3 and nodejs).
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB (64-10240, default 128).
    #[arg(long, value_name = "MB")]
    pub memory: Option<i64>,
    /// Timeout in seconds (1-900, default 3).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Set an environment variable, repeatable (the others are kept). One variable per flag:
    /// commas are not separators here, since values may contain them.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Remove environment variables: repeatable, or comma-separated (KEY1,KEY2).
    #[arg(long = "unset-env", value_name = "KEY", value_delimiter = ',')]
    pub unset_env: Vec<String>,
    /// Concurrent requests per instance (1-1000, default 1).
    #[arg(long)]
    pub concurrency: Option<i64>,
    /// Instances kept ready (0-1000, default 0).
    #[arg(long)]
    pub min_instances: Option<i64>,
    /// Most instances (1-1000, default 10).
    #[arg(long)]
    pub max_instances: Option<i64>,
    /// Seconds an idle instance stays warm (1-86400, default 90).
    #[arg(long, value_name = "SECONDS")]
    pub keep_alive: Option<i64>,
    /// Size of the writable /tmp in MB (512-10240, default 512).
    #[arg(long, value_name = "MB")]
    pub ephemeral_storage: Option<i64>,
    /// fixed (idle instances kept --keep-alive seconds) or adaptive (learned from the
    /// function's idle times); default: the server's setting.
    #[arg(long, value_name = "POLICY")]
    pub keep_alive_policy: Option<String>,
    /// none (default: no network at all) or egress (outbound connections through NAT).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// A note for people (at most 256 characters).
    #[arg(long)]
    pub description: Option<String>,
    /// Retries of an asynchronous invocation after a function error (0-2, default 2).
    #[arg(long, value_name = "N")]
    pub async_retries: Option<i64>,
    /// Seconds an asynchronous invocation may wait for a successful delivery
    /// (60-21600, default 21600).
    #[arg(long, value_name = "SECONDS")]
    pub max_event_age: Option<i64>,
    /// Asynchronous invocations queued at once; past it, 429 (1-100000, default 10000).
    #[arg(long, value_name = "N")]
    pub max_queued_events: Option<i64>,
    /// A function that gets the record of each asynchronous invocation that succeeded
    /// (empty: none).
    #[arg(long, value_name = "FUNCTION")]
    pub on_success: Option<String>,
    /// A function that gets the record of each asynchronous invocation that failed after its
    /// retries (empty: none, failures go to the dead-letter list).
    #[arg(long, value_name = "FUNCTION")]
    pub on_failure: Option<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// admin, deploy, invoke or read: repeatable, or comma-separated (--scope read,invoke).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A label for people, shown by `hearth token list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Delete a token by its id, or a unique prefix of it.
    Delete {
        /// The token's id, or a unique prefix of it.
        id: String,
    },
    /// Lost the admin token? Mint a new one directly in the server's data directory (run on
    /// the server's machine as the user that runs it; works while the server runs) and add it
    /// as a context.
    Recover {
        /// The server's data directory (default: as `hearth up` finds it).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The server's configuration file, to find its data directory and URL.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The server's URL for the context (default: its configured listen address).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List the contexts; the current one is marked.
    #[command(alias = "ls")]
    List,
    /// Make NAME the current context.
    Use {
        /// The context's name.
        name: String,
    },
    /// Add a context for a server (the token from --token, or read from stdin with
    /// --token-stdin).
    Add {
        /// The new context's name.
        name: String,
        /// The server's API URL, e.g. https://hearth.example.com.
        #[arg(long)]
        url: String,
        /// An API token for it (visible to other local users in the process list: prefer
        /// --token-stdin).
        #[arg(long, conflicts_with = "token_stdin")]
        token: Option<String>,
        /// Read the token from the first line of stdin.
        #[arg(long)]
        token_stdin: bool,
        /// Replace a context of that name.
        #[arg(long)]
        replace: bool,
        /// Also make it the current context.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Delete a context (the server and its tokens are untouched).
    #[command(alias = "rm")]
    Delete {
        /// The context's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function's name.
    pub name: String,
    /// The event: JSON text, @FILE to read it from a file, or @- to read it from stdin
    /// (default: {}). Checked to be JSON (at most 6 MiB) before it is sent.
    #[arg(long, short)]
    pub data: Option<String>,
    /// Version number or alias (default: $LATEST).
    #[arg(long)]
    pub version: Option<String>,
    /// Also print the invocation's log lines (to stderr; with --json, as `log` in the JSON).
    #[arg(long, conflicts_with = "async_")]
    pub log: bool,
    /// Do not wait for the function: the event is stored durably and delivered at least
    /// once, with retries; prints its request id (`hearth invocation get ID` follows it).
    #[arg(long = "async", id = "async_")]
    pub async_: bool,
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias or move it to another version.
    Set {
        /// The function's name.
        function: String,
        /// The alias's name (letters, digits, '_' and '-', starting with a letter).
        alias: String,
        /// The version it names.
        #[arg(long)]
        version: u32,
        /// Send a share of invocations to a second version: VERSION=SHARE, e.g. 4=0.1.
        #[arg(long, value_name = "VERSION=SHARE", value_parser = parse_weight)]
        weight: Option<(u32, f64)>,
        /// A note for people.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a function's aliases.
    #[command(alias = "ls")]
    List {
        /// The function's name.
        function: String,
    },
    /// Delete an alias.
    #[command(alias = "rm")]
    Delete {
        /// The function's name.
        function: String,
        /// The alias's name.
        alias: String,
    },
}

fn parse_weight(s: &str) -> Result<(u32, f64), String> {
    let bad = || format!("expected VERSION=SHARE with a share between 0 and 1, e.g. 4=0.1, got {s:?}");
    let (v, w) = s.split_once('=').ok_or_else(bad)?;
    Ok((v.trim().parse().map_err(|_| bad())?, w.trim().parse().map_err(|_| bad())?))
}

#[derive(Debug, Subcommand)]
pub enum InvocationCommand {
    /// Status, attempts, timestamps, and result or error of an asynchronous invocation.
    Get {
        /// The request id `hearth invoke --async` printed.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List a function's dead letters, oldest first, with their last error.
    #[command(alias = "ls")]
    List {
        /// The function's name.
        name: String,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Queue dead letters again, each with a fresh retry budget: those named, or all.
    Redrive {
        /// The function's name.
        name: String,
        /// Request ids to redrive: repeatable, or comma-separated (default: all).
        #[arg(long = "id", value_delimiter = ',')]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function's name.
    pub name: String,
    /// Keep printing new lines as they arrive. With --json, one JSON object per line
    /// (NDJSON); without -f, --json prints one JSON array.
    #[arg(long, short)]
    pub follow: bool,
    /// Only this invocation's lines (an error if the retained log has none).
    #[arg(long)]
    pub request: Option<String>,
    /// Only lines from the last DURATION (30s, 10m, 2h, 1d) or since a time (RFC 3339, e.g.
    /// 2026-01-02T15:04:05Z).
    #[arg(long, value_name = "DURATION|TIME", value_parser = crate::commands::logs::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only the last N lines (of those --since selects), then new ones with -f.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Add a trigger.
    #[command(subcommand)]
    Add(TriggerKind),
    /// List triggers with their URLs.
    #[command(alias = "ls")]
    List,
    /// Delete a trigger by its id, or a unique prefix of it.
    #[command(alias = "rm")]
    Delete {
        /// The trigger's id, or a unique prefix of it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerKind {
    /// Requests to PATH (and below it) invoke FUNCTION with an API Gateway 2.0 event.
    Http {
        /// The function to invoke.
        function: String,
        /// The path prefix to route, e.g. /hello (whole segments: /hello/x matches,
        /// /hellothere does not).
        #[arg(long)]
        path: String,
        /// Allowed methods, comma-separated (default: any).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// none (anyone) or token (bearer token with the invoke scope).
        #[arg(long, default_value = "none")]
        auth: String,
    },
    /// Invoke FUNCTION asynchronously, with an EventBridge scheduled event, at each instant of
    /// a cron schedule; each instant fires once, across restarts.
    Cron {
        /// The function to invoke.
        function: String,
        /// Six or seven fields, seconds first: "sec min hour day-of-month month day-of-week
        /// [year]", e.g. "0 */5 * * * *" (every five minutes).
        #[arg(long)]
        schedule: String,
        /// UTC (default) or an IANA time-zone name such as Europe/Paris.
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// After downtime: skip (default) fires none of the missed instants, once fires one.
        #[arg(long, value_name = "POLICY")]
        missed_runs: Option<String>,
    },
    /// Invoke FUNCTION for the messages on a NATS subject: from a JetStream stream through a
    /// durable consumer (each message acknowledged once the function succeeded; failures
    /// retried, then dead-lettered, by the function's async settings), or, without --stream,
    /// from a core NATS subscription whose messages are queued as asynchronous events.
    Nats {
        /// The function to invoke.
        function: String,
        /// nats://[user:password@|token@]host[:port] (credentials are stored, never shown).
        #[arg(long, value_name = "URL")]
        server: String,
        /// The subject, with * and > wildcards, e.g. orders.>
        #[arg(long)]
        subject: String,
        /// A JetStream stream holding the subject.
        #[arg(long)]
        stream: Option<String>,
        /// The stream's durable consumer to use (made if missing; default: one of the
        /// trigger's own).
        #[arg(long, requires = "stream")]
        consumer: Option<String>,
        /// Messages per invocation, at most (1 to 100; default 1), as "Records".
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every subcommand has an about line and every argument a help line, so `--help` never
    /// shows one bare; clap's own `help` and `version` are clap's business.
    #[test]
    fn every_command_and_argument_has_help() {
        Cli::command().debug_assert();
        let mut root = Cli::command();
        root.build();
        let mut bare = vec![];
        walk(&root, "hearth", &mut bare);
        assert!(bare.is_empty(), "without help text:\n{}", bare.join("\n"));
    }

    fn walk(command: &clap::Command, at: &str, bare: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                bare.push(format!("argument {id} of `{at}`"));
            }
        }
        for sub in command.get_subcommands() {
            let path = format!("{at} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                bare.push(format!("subcommand `{path}`"));
            }
            walk(sub, &path, bare);
        }
    }
}
