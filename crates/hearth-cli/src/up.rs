//! `hearth up`: the all-in-one server on embedded defaults.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use hearth_agent::{InstanceVolume, ProcessDriver, Runtimes, VolumeError};
use hearth_api::{AppState, ensure_admin_token, hash_secret};
use hearth_blob::{CodeStore, ObjectSource, PackageLimits};
use hearth_events::Events;
use hearth_gateway::Gateway;
use hearth_server::{TlsConfig, apps, serve};
use hearth_store::{EventQueue, MetadataStore, SqliteStore};

use crate::cli::UpArgs;
use crate::config::{ClientFile, LOCAL_CONTEXT, ServerConfig, ServerContext, ServerFlags, local_url, process_env};

/// `private_mounts`: whether `main` gave the server a mount namespace of its own (only as
/// root, where instances are sandboxed), which the instance volume needs.
pub async fn run(args: UpArgs, context: Option<&str>, private_mounts: Option<Result<(), VolumeError>>) -> Result<()> {
    let flags = ServerFlags {
        config: args.config,
        data_dir: args.data_dir,
        listen: args.listen,
        trigger_listen: args.trigger_listen,
        metrics_listen: args.metrics_listen,
        log_format: args.log_format,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    let cfg = ServerConfig::load(&flags, &process_env)?;
    let server_log = crate::server_log::install(cfg.json_logs, cfg.otlp_endpoint.as_deref())?;

    if !cfg.data_dir.exists() {
        // Metadata holds function environments, which may be secrets: owner-only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    }
    // One server per data directory: SQLite and the code cache assume a single writer.
    let lock = File::create(cfg.data_dir.join("hearth.lock")).context("cannot create the data directory lock file")?;
    // A server killed a moment ago may still have a child between fork and exec holding the
    // lock's file: allow it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while lock.try_lock().is_err() {
        if std::time::Instant::now() >= deadline {
            bail!(
                "another hearth server is already using {}; stop it or pass another --data-dir",
                cfg.data_dir.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let store =
        Arc::new(SqliteStore::open(&cfg.data_dir.join("metadata.db")).context("cannot open the metadata store")?);
    let code_root = cfg.data_dir.join("code");
    // Uploads a killed server was writing (we hold the lock: none is in progress now).
    match CodeStore::remove_unfinished_uploads(&code_root) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unfinished uploads left by a killed server"),
        Err(e) => tracing::warn!(%e, "cannot remove unfinished uploads from the code store"),
    }
    let code = CodeStore::local(&code_root, PackageLimits::DEFAULT).context("cannot open the code store")?;
    let tls = match &cfg.tls {
        Some(files) => Some(TlsConfig::load(files.clone()).context("cannot load the TLS certificate")?),
        None => None,
    };
    let listener = bind(cfg.listen, "--listen").await?;
    let trigger_listener = bind(cfg.trigger_listen, "--trigger-listen").await?;
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(bind(addr, "--metrics-listen").await?),
        None => None,
    };
    let url = local_url(listener.local_addr()?, tls.is_some());
    let trigger_url = local_url(trigger_listener.local_addr()?, tls.is_some());
    for addr in [cfg.listen, cfg.trigger_listen] {
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "listening beyond loopback without TLS: API tokens (and SigV4 requests) would cross the network in clear; set --tls-cert and --tls-key"
            );
        }
    }

    let instance_files = instance_files(&cfg, private_mounts);
    let runtimes =
        Runtimes::install(&instance_files.join("runtimes")).context("cannot install the language runtimes")?;
    if let Err(e) = hearth_agent::raise_open_file_limit() {
        tracing::warn!(%e, "cannot raise the open-file limit; a busy node may run out of file descriptors");
    }
    let driver = ProcessDriver::detect();
    let cgroups = driver.cgroups().cloned();
    match driver.cgroups() {
        Some(cg) => {
            // Groups left by a server that was killed without cleaning up.
            let swept = cg.sweep_leftovers();
            tracing::info!(version = ?cg.version(), swept, sandboxed = driver.drops_privileges(), "instances are sandboxed");
        }
        None => tracing::warn!("not running as root: instances run without a sandbox; run only code you trust"),
    }
    // Before the banner: once the server says it listens, what a killed server left in the
    // code cache is gone.
    let gateway = Gateway::new(
        store.clone(),
        code.clone(),
        instance_files.join("cache"),
        runtimes,
        Arc::new(driver),
        cfg.gateway.clone(),
    );
    let reaper = gateway.spawn_reaper();
    // One signal stops both listeners; each finishes its requests within the grace period.
    // Listened for before the banner: a SIGTERM right after it is a graceful stop too.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signals = Signals::install()?;
    let following = gateway.clone();
    tokio::spawn(async move {
        signals.wait().await;
        // Streams of logs would hold the graceful stop for its whole grace period.
        following.end_log_follows();
        let _ = stop.send(true);
    });
    let minted = ensure_admin_token(store.as_ref()).await.map_err(|e| anyhow!("{}: {}", e.code, e.message))?;
    let mut out = std::io::stdout().lock();
    match minted {
        Some(secret) => {
            let (name, previous) = add_own_context(&cfg.client_config, context, &url, &secret)?;
            writeln!(out, "First start: created an admin token (shown once, stored hashed):\n\n    {secret}\n")?;
            let switched = match previous {
                Some(p) if p != name => format!(" (it was {p:?}: `hearth context use {p}` goes back)"),
                _ => String::new(),
            };
            writeln!(
                out,
                "Added it as context {name:?} to {} (mode 0600), now the current one{switched}.",
                cfg.client_config.display()
            )?;
        }
        None => refresh_client_url(store.as_ref(), &cfg, &url).await?,
    }
    writeln!(
        out,
        "Hearth {} listening on {url} (data: {}); HTTP triggers on {trigger_url}",
        env!("CARGO_PKG_VERSION"),
        cfg.data_dir.display()
    )?;
    out.flush()?;
    drop(out);

    if let Err(e) = gateway.start_up().await {
        tracing::warn!(%e, "could not start min_instances");
    }
    let store_queue: Arc<dyn EventQueue> = store.clone();
    let usage = hearth_server::Usage { store: store.clone(), prices: cfg.prices };
    let provisioned =
        hearth_server::spawn_provisioned_meter(store.clone(), store.clone(), cfg.provisioned_meter_interval);
    let state = AppState::new(store, code, ObjectSource::new(cfg.s3.clone()));
    state.set_trigger_base_url(&trigger_url);
    state.set_api_base_url(&url);
    let events = Events::start(store_queue, gateway.clone(), cfg.events.clone());
    let apps = apps(state, gateway.clone(), events.clone(), usage);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_served = {
        let (limits, tls, stopped) = (cfg.limits.clone(), tls.clone(), stopped.clone());
        async move {
            if let Some(listener) = metrics_listener {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(%addr, "serving GET /metrics without a token");
                }
                serve(listener, apps.metrics, limits, tls, until_stopped(stopped)).await;
            }
        }
    };
    tokio::join!(
        serve(listener, apps.api, cfg.limits.clone(), tls.clone(), until_stopped(stopped.clone())),
        serve(trigger_listener, apps.triggers, cfg.limits.clone(), tls, until_stopped(stopped)),
        metrics_served,
    );
    // Running deliveries finish within the grace period; the rest are delivered again on
    // the next start (their leases are this node's).
    events.stop(cfg.limits.grace).await;
    // The last invocations' records and log lines, stored before the runtime goes.
    gateway.meter().flush().await;
    reaper.abort();
    provisioned.abort();
    drop(gateway);
    // Forwarding and the NAT table go with the last server that used them.
    hearth_agent::release_egress();
    if let Some(cg) = &cgroups {
        let left = cg.remove_own(std::time::Duration::from_secs(2));
        if left > 0 {
            tracing::warn!(left, "some instance cgroups are still busy; the next start removes them");
        }
    }
    tracing::info!("stopped");
    server_log.flush().await;
    drop(lock);
    Ok(())
}

/// Where the files instances see live: the instance volume when it can be mounted, else the
/// data directory (whose path instances can then read in `/proc/self/mountinfo`).
fn instance_files(cfg: &ServerConfig, private_mounts: Option<Result<(), VolumeError>>) -> std::path::PathBuf {
    let mounted = match private_mounts {
        None => return cfg.data_dir.clone(),
        Some(Ok(())) => InstanceVolume::mount(&cfg.data_dir, cfg.volume_gb),
        Some(Err(e)) => Err(e),
    };
    match mounted {
        Ok(volume) => {
            tracing::info!(volume = %volume.root().display(), "code and runtimes on the instance volume");
            // Caches an earlier server kept in the data directory itself.
            for old in ["cache", "runtimes"] {
                let _ = std::fs::remove_dir_all(cfg.data_dir.join(old));
            }
            volume.root().to_path_buf()
        }
        Err(e) => {
            tracing::warn!(%e, "no instance volume: instances can read the data directory's path in their mount table");
            cfg.data_dir.clone()
        }
    }
}

async fn bind(addr: std::net::SocketAddr, flag: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: is another server using it? choose another with {flag}"))
}

/// Adds this server's context (named `wanted`, else `local`; a free variant of the name if
/// taken: another server's token is never overwritten) and makes it current. Returns its
/// name and the context that was current.
fn add_own_context(path: &Path, wanted: Option<&str>, url: &str, token: &str) -> Result<(String, Option<String>)> {
    let mut file = ClientFile::read(path)?;
    let context = ServerContext { url: url.to_owned(), token: Some(token.to_owned()) };
    let name = file.add_unique(wanted.unwrap_or(LOCAL_CONTEXT), context);
    let previous = file.current.replace(name.clone());
    file.write(path)?;
    Ok((name, previous))
}

/// On later starts, point the contexts holding one of this server's tokens at its URL (the
/// listen address may have changed); leave the others alone.
async fn refresh_client_url(store: &dyn MetadataStore, cfg: &ServerConfig, url: &str) -> Result<()> {
    let mut file = ClientFile::read(&cfg.client_config)?;
    let mut changed = false;
    for context in file.contexts.values_mut() {
        let Some(token) = &context.token else { continue };
        if context.url == url {
            continue;
        }
        if store.token_by_secret_hash(&hash_secret(token)).await.ok().flatten().is_some() {
            context.url = url.to_owned();
            changed = true;
        }
    }
    if changed {
        file.write(&cfg.client_config)?;
    }
    Ok(())
}

/// SIGINT and SIGTERM, registered at once (so none is missed between start-up and serving).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
