//! Conformance of every metadata backend, plus SQLite-specific durability.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use hearth_store::{
    CountingStore, Enqueued, EventQueue, Expect, MemoryStore, MetadataStore, NewEvent, QueueDepth, QueuedEvent,
    SqliteStore, StoreError, UsageStore, conformance, queue_conformance, stats_conformance, usage_conformance,
};
use hearth_types::{
    AdditionalVersion, Alias, EventError, EventRecord, EventSource, EventStatus, Function, FunctionName, HttpTrigger,
    InvocationRecord, LogLine, LogStream, MissedRuns, NatsTrigger, Network, Runtime, Scope, TokenId, TokenRecord,
    TriggerAuth, TriggerId, TriggerPath, limits,
};

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn counting_store_passes_every_call_on_and_counts_it() {
    let store = CountingStore::new(Arc::new(MemoryStore::new()));
    conformance::run(&store).await;
    let calls = store.calls();
    assert_eq!(calls.len(), 25, "the conformance suite reaches every method through the wrapper: {calls:?}");
    let before = store.calls();
    store.list_functions().await.unwrap();
    store.list_functions().await.unwrap();
    assert_eq!(store.calls_since(&before), BTreeMap::from([("list_functions", 2)]));
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::run(&store).await;
    // Every function the suite made is deleted: deleting one leaves no orphan alias row.
    assert_eq!(rows(&path)["aliases"], 0, "deleting a function deletes its alias rows");
}

#[tokio::test]
async fn memory_usage_conforms() {
    usage_conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_usage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    usage_conformance::run(&SqliteStore::open(&dir.path().join("meta.db")).unwrap()).await;
}

#[tokio::test]
async fn memory_stats_conform() {
    stats_conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_stats_conform() {
    let dir = tempfile::tempdir().unwrap();
    stats_conformance::run(&SqliteStore::open(&dir.path().join("meta.db")).unwrap()).await;
}

#[tokio::test]
async fn memory_queue_conforms() {
    queue_conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_queue_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db")).unwrap();
    queue_conformance::run(&store).await;
}

#[tokio::test]
async fn sqlite_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let mut f = conformance::sample_function("persist");
    let v = {
        let store = SqliteStore::open(&path).unwrap();
        store.save_function(&f, Expect::Absent, None).await.unwrap();
        let rev = f.revision;
        let v = conformance::with_new_code(&mut f, b"code");
        store.save_function(&f, Expect::Revision(rev), Some(&v)).await.unwrap();
        v
    };
    let store = SqliteStore::open(&path).unwrap();
    let name = "persist".parse().unwrap();
    assert_eq!(store.get_function(&name).await.unwrap(), Some(f));
    assert_eq!(store.list_versions(&name).await.unwrap(), vec![v]);
}

#[tokio::test]
async fn sqlite_refuses_a_non_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    std::fs::write(&path, b"this is not a sqlite database, just some text that is long enough").unwrap();
    assert!(SqliteStore::open(&path).is_err());
}

/// The fixture databases older servers wrote (`tests/fixtures/README.md` says how).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A copy of the fixture of schema `version`, so the checked-in file never changes.
fn fixture_copy(version: usize) -> (tempfile::TempDir, PathBuf) {
    let fixture = Path::new(FIXTURES).join(format!("schema-v{version}.db"));
    assert!(
        fixture.exists(),
        "no fixture database for schema version {version}: a new migration must check in one of the \
         version before it ({}; see tests/fixtures/README.md)",
        fixture.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    std::fs::copy(&fixture, &path).unwrap();
    (dir, path)
}

fn user_version(path: &Path) -> usize {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

/// Rows of each table as SQLite counts them (0 for a table the file does not have yet).
fn rows(path: &Path) -> BTreeMap<&'static str, usize> {
    let conn = rusqlite::Connection::open(path).unwrap();
    [
        "functions",
        "versions",
        "tokens",
        "triggers",
        "invocations",
        "logs",
        "aliases",
        "events",
        "schedules",
        "nats_triggers",
    ]
    .into_iter()
    .map(|table| {
        let n = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap_or(0);
        (table, n)
    })
    .collect()
}

fn fname(s: &str) -> FunctionName {
    s.parse().unwrap()
}

#[tokio::test]
async fn sqlite_upgrades_every_older_schema() {
    let latest = {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(&dir.path().join("metadata.db")).unwrap().schema_version()
    };
    // A file that exists but is empty, as SQLite leaves it before its first write.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("metadata.db");
    std::fs::write(&empty, b"").unwrap();
    conformance::run(&SqliteStore::open(&empty).unwrap()).await;
    assert_eq!(user_version(&empty), latest, "an empty file is migrated");

    for version in 0..latest {
        let (_dir, path) = fixture_copy(version);
        assert_eq!(user_version(&path), version, "the fixture of v{version} is at that version");
        let before = rows(&path);
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
        assert_eq!(user_version(&path), latest, "v{version} migrated to v{latest}");
        if version == 0 {
            assert!(before.values().all(|&n| n == 0), "v0 has no records: {before:?}");
            conformance::run(&store).await;
            continue;
        }
        fixture_records_read_back(&store, version, &before).await;
        usage_backfilled(&store, version).await;
        let wrote = new_writes_work(&store, version).await;
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        written_records_persist(&store, version, &wrote).await;
        assert_eq!(rows(&path)["aliases"], 1, "v{version}: only hello's alias row is left, none of deleted plain's");
    }
}

/// The upgrade computed the usage aggregates of the records stored before, exactly as they
/// are computed when records are stored.
async fn usage_backfilled(store: &SqliteStore, version: usize) {
    let hello = fname("hello");
    let records = store.list_invocations(&hello, 1000).await.unwrap();
    assert_eq!(records.is_empty(), version < 3, "v{version}: telemetry from v3 on");
    let (from, to) = (chrono::DateTime::UNIX_EPOCH, chrono::Utc::now() + chrono::Duration::days(1));
    for by in [hearth_types::UsageGroup::Version, hearth_types::UsageGroup::Hour] {
        let got = store.usage(from, to, Some(&hello), by).await.unwrap();
        let expected = hearth_types::group_usage(hearth_types::aggregate_usage(&records), by);
        assert_eq!(got, expected, "v{version}: usage by {by:?} after the upgrade");
    }
}

/// Every record the old server wrote decodes, whole, with the values it was given.
async fn fixture_records_read_back(store: &SqliteStore, version: usize, rows: &BTreeMap<&str, usize>) {
    let at = format!("v{version}");
    let functions = store.list_functions().await.unwrap();
    let names: Vec<_> = functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["draft", "hello", "plain"], "{at}: functions");
    assert_eq!(functions.len(), rows["functions"], "{at}: every function row decodes");
    let (draft, hello, plain) = (&functions[0], &functions[1], &functions[2]);

    let c = &hello.config;
    assert_eq!(
        (c.runtime, c.handler.as_str(), c.memory_mb, c.timeout_s, c.concurrency),
        (Runtime::Python3, "main.handler", 256, 10, 4),
        "{at}: hello's configuration"
    );
    assert_eq!(
        (c.min_instances, c.max_instances, c.keep_alive_s, c.description.as_str()),
        (1, 5, 300, "says hello"),
        "{at}: hello's configuration"
    );
    assert_eq!(c.environment, BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]), "{at}: environment");
    assert_eq!(
        (c.ephemeral_storage_mb, c.network, c.keep_alive_policy),
        (limits::EPHEMERAL_STORAGE_MB.default as u32, Network::None, None),
        "{at}: fields added since take their defaults"
    );
    assert_eq!(hello.latest_version, Some(3), "{at}: hello's latest version");
    let versions = store.list_versions(&hello.name).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2, 3], "{at}: hello's versions");
    for v in &versions {
        assert_eq!((v.function_id, &v.function), (hello.id, &hello.name), "{at}: version {} names hello", v.number);
        assert_eq!(store.get_version(&hello.name, v.number).await.unwrap().as_ref(), Some(v), "{at}: get_version");
    }
    assert_eq!(versions[0].config.memory_mb, 128, "{at}: version 1 kept the configuration of its time");
    assert_eq!((&versions[1].config, &versions[2].config), (c, c), "{at}: versions 2 and 3 have the new one");
    assert_eq!(versions[0].code, versions[1].code, "{at}: version 2 changed only the configuration");
    assert_ne!(versions[1].code, versions[2].code, "{at}: version 3 has new code");
    assert_eq!(hello.code.as_ref(), Some(&versions[2].code), "{at}: hello's code is version 3's");

    let plain_versions = store.list_versions(&plain.name).await.unwrap();
    assert_eq!(plain_versions.len(), 1, "{at}: plain has one version");
    assert_eq!(plain.code.as_ref(), Some(&plain_versions[0].code), "{at}: plain's code");
    assert_eq!((plain.config.memory_mb, plain.config.timeout_s), (128, 3), "{at}: plain has the defaults");
    assert_eq!(
        (draft.config.runtime, &draft.code, draft.latest_version),
        (Runtime::Nodejs, &None, None),
        "{at}: draft has a configuration only"
    );
    assert!(store.list_versions(&draft.name).await.unwrap().is_empty(), "{at}: draft has no version");
    assert_eq!(versions.len() + plain_versions.len(), rows["versions"], "{at}: every version row decodes");

    let tokens = store.list_tokens().await.unwrap();
    let summary: Vec<_> = tokens.iter().map(|t| (t.name.as_str(), t.scopes.clone())).collect();
    assert_eq!(
        summary,
        [("admin", vec![Scope::Admin]), ("ci", vec![Scope::Deploy]), ("reader", vec![Scope::Invoke, Scope::Read])],
        "{at}: tokens"
    );
    assert_eq!(tokens.len(), rows["tokens"], "{at}: every token row decodes");
    for t in &tokens {
        let found = store.token_by_secret_hash(&t.secret_sha256).await.unwrap();
        assert_eq!(found.as_ref(), Some(t), "{at}: token {} authenticates", t.name);
    }

    let triggers = store.list_triggers().await.unwrap();
    assert_eq!(triggers.len(), rows["triggers"], "{at}: every trigger row decodes");
    let summary: Vec<_> =
        triggers.iter().map(|t| (t.path.as_str(), t.function.as_str(), t.methods.clone(), t.auth)).collect();
    let expected = match version {
        1 => vec![],
        _ => vec![
            ("/hello", "hello", vec!["GET".to_owned(), "POST".to_owned()], TriggerAuth::None),
            ("/private/plain", "plain", vec![], TriggerAuth::Token),
        ],
    };
    assert_eq!(summary, expected, "{at}: triggers");

    // v3 and later: telemetry. Records of schema v3 had no attempt: each is the first.
    let (records, lines) = fixture_telemetry(version, hello);
    let listed = store.list_invocations(&hello.name, 10).await.unwrap();
    let mut upgraded = listed.iter().filter(|r| r.request_id.starts_with("req-"));
    assert!(upgraded.all(|r| r.attempt == 1), "{at}: an upgraded record is attempt 1: {listed:?}");
    assert_eq!(listed, records, "{at}: hello's invocation records, newest first");
    assert_eq!(listed.len(), rows["invocations"], "{at}: every invocation row decodes");
    let logs = store.read_logs(&hello.name, 0, None, 10).await.unwrap();
    assert_eq!(logs, lines, "{at}: hello's log lines, seq kept");
    assert_eq!(logs.len(), rows["logs"], "{at}: every log row decodes");
    let cold = store.read_logs(&hello.name, 0, Some("req-cold"), 10).await.unwrap();
    assert_eq!(cold, lines.get(..3).unwrap_or_default(), "{at}: one request's lines");
    let later = store.read_logs(&hello.name, 3, None, 10).await.unwrap();
    assert_eq!(later, lines.get(3..).unwrap_or_default(), "{at}: lines after a seq");
    for f in [draft, plain] {
        assert!(store.list_invocations(&f.name, 10).await.unwrap().is_empty(), "{at}: {} has no records", f.name);
        assert!(store.read_logs(&f.name, 0, None, 10).await.unwrap().is_empty(), "{at}: {} has no logs", f.name);
    }
    fixture_events_read_back(store, version, rows).await;
}

/// v4 and later: hello's alias, its cron trigger and its events (none before).
async fn fixture_events_read_back(store: &SqliteStore, version: usize, rows: &BTreeMap<&str, usize>) {
    let at = format!("v{version}");
    let hello = fname("hello");
    assert!(store.list_nats_triggers().await.unwrap().is_empty(), "{at}: no NATS trigger yet");
    let events = fixture_events(version);
    for e in &events {
        assert_eq!(store.get_event(&e.request_id).await.unwrap().as_ref(), Some(e), "{at}: event {}", e.request_id);
    }
    assert_eq!(events.len(), rows["events"], "{at}: every event row decodes");
    let statuses: Vec<_> = events.iter().map(|e| e.status).collect();
    let expected = match version {
        ..4 => vec![],
        _ => vec![EventStatus::Succeeded, EventStatus::DeadLettered, EventStatus::Queued],
    };
    assert_eq!(statuses, expected, "{at}: event statuses");
    let dead: Vec<_> = events
        .iter()
        .filter(|e| e.status == EventStatus::DeadLettered)
        .map(|e| QueuedEvent {
            record: e.clone(),
            payload: bytes::Bytes::from_static(br#"{"name":"poison"}"#),
            chain: 0,
        })
        .collect();
    assert_eq!(store.list_dead_letters(&hello, None, 10).await.unwrap(), dead, "{at}: dead letters, payload kept");
    let depths = store.queue_depths().await.unwrap();
    let expected: Vec<_> = (version >= 4)
        .then(|| QueueDepth {
            function: hello.clone(),
            queued: 1,
            running: 0,
            dead_lettered: 1,
            oldest_queued_at: Some(t("2026-01-02T04:10:00Z")),
        })
        .into_iter()
        .collect();
    assert_eq!(depths, expected, "{at}: queue depths");

    let schedules = store.list_schedules().await.unwrap();
    assert_eq!(schedules.len(), rows["schedules"], "{at}: every schedule row decodes");
    let summary: Vec<_> = schedules
        .iter()
        .map(|s| {
            let c = &s.trigger;
            let fields = (c.function.as_str(), c.qualifier.as_deref(), c.schedule.as_str(), c.time_zone.as_str());
            (fields, c.missed_runs, c.created_at, s.next_fire_at, s.fired, s.dropped, s.last_fired_at)
        })
        .collect();
    let expected = match version {
        ..4 => vec![],
        _ => vec![(
            ("hello", Some("live"), "0 */5 * * * *", "Europe/Paris"),
            MissedRuns::Once,
            t("2026-01-02T04:20:00Z"),
            Some(t("2026-01-02T04:25:00Z")),
            0,
            0,
            None,
        )],
    };
    assert_eq!(summary, expected, "{at}: cron triggers");
    assert!(schedules.iter().all(|s| s.trigger.cron().is_ok()), "{at}: a schedule still parses");

    let aliases = store.list_aliases(&hello).await.unwrap();
    assert_eq!(aliases.len(), rows["aliases"], "{at}: every alias row decodes");
    let live = store.get_alias(&hello, &"live".parse().unwrap()).await.unwrap();
    assert_eq!(aliases.first(), live.as_ref(), "{at}: get_alias finds the listed alias");
    let summary = live.map(|a| {
        let fields = (a.function.as_str().to_owned(), a.name.as_str().to_owned(), a.version, a.additional_version);
        (fields, a.description, a.revision, a.created_at == a.updated_at)
    });
    let expected = (version >= 4).then(|| {
        let fields = ("hello".to_owned(), "live".to_owned(), 3, Some(AdditionalVersion { version: 2, weight: 0.1 }));
        (fields, "production".to_owned(), 1, true)
    });
    assert_eq!(summary, expected, "{at}: hello's alias");
}

fn t(s: &str) -> chrono::DateTime<Utc> {
    s.parse().unwrap()
}

/// What `schema_fixture.rs` wrote of `hello`'s events (v4 and later; none before), by order
/// of acceptance.
fn fixture_events(version: usize) -> Vec<EventRecord> {
    if version < 4 {
        return vec![];
    }
    let event = |id: &str, qualifier: Option<&str>, source, enqueued: &str| EventRecord {
        request_id: id.into(),
        function: fname("hello"),
        qualifier: qualifier.map(str::to_owned),
        status: EventStatus::Queued,
        source,
        attempts: 0,
        function_errors: 0,
        redeliveries: 0,
        redrives: 0,
        enqueued_at: t(enqueued),
        queued_at: t(enqueued),
        not_before: t(enqueued),
        last_attempt_at: None,
        finished_at: None,
        executed_version: None,
        result: None,
        result_truncated: false,
        error: None,
        destination: None,
    };
    vec![
        // Its first attempt exited, its second (the invocation record of attempt 2) succeeded.
        EventRecord {
            status: EventStatus::Succeeded,
            attempts: 2,
            function_errors: 1,
            not_before: t("2026-01-02T04:01:00.090Z"),
            last_attempt_at: Some(t("2026-01-02T04:01:00.100Z")),
            finished_at: Some(t("2026-01-02T04:01:00.140Z")),
            executed_version: Some(3),
            result: Some("\"v3\"".into()),
            ..event("evt-succeeded", Some("live"), EventSource::Api, "2026-01-02T04:00:00Z")
        },
        EventRecord {
            status: EventStatus::DeadLettered,
            attempts: 3,
            function_errors: 3,
            not_before: t("2026-01-02T04:05:00.150Z"),
            last_attempt_at: Some(t("2026-01-02T04:05:00.150Z")),
            finished_at: Some(t("2026-01-02T04:05:00.200Z")),
            executed_version: Some(3),
            error: Some(EventError {
                error_type: "ValueError".into(),
                message: r#"{"errorMessage": "poison", "errorType": "ValueError"}"#.into(),
                function_error: true,
            }),
            ..event("evt-dead", Some("3"), EventSource::Lambda, "2026-01-02T04:02:00Z")
        },
        event("evt-queued", None, EventSource::Api, "2026-01-02T04:10:00Z"),
    ]
}

/// What `schema_fixture.rs` wrote of `hello`'s telemetry (v3 and later; none before), as
/// today's store reads it back: records newest first, v3's each attempt 1 (v4 adds an
/// event's attempt 2); lines by `seq`.
fn fixture_telemetry(version: usize, hello: &Function) -> (Vec<InvocationRecord>, Vec<LogLine>) {
    if version < 3 {
        return (vec![], vec![]);
    }
    let at = |s: &str| s.parse::<chrono::DateTime<Utc>>().unwrap();
    let record = |id: &str, started: &str| InvocationRecord {
        request_id: id.into(),
        attempt: 1,
        qualifier: None,
        function_id: hello.id,
        function: fname("hello"),
        version: 3,
        started_at: at(started),
        duration_ms: 2.25,
        billed_ms: 3,
        memory_mb: 256,
        max_memory_used_mb: Some(42),
        cold_start: false,
        init_duration_ms: None,
        start_source: None,
        cpu_time_ms: None,
        outcome: "success".into(),
        error_type: None,
    };
    let mut records = vec![
        InvocationRecord {
            duration_ms: 30.0,
            billed_ms: 30,
            max_memory_used_mb: None,
            outcome: "error".into(),
            error_type: Some("Runtime.ExitError".into()),
            ..record("req-error", "2026-01-02T03:04:07.300Z")
        },
        record("req-warm", "2026-01-02T03:04:06.200Z"),
        InvocationRecord {
            duration_ms: 12.5,
            billed_ms: 13,
            max_memory_used_mb: Some(41),
            cold_start: true,
            init_duration_ms: Some(180.25),
            start_source: None,
            cpu_time_ms: None,
            ..record("req-cold", "2026-01-02T03:04:05.100Z")
        },
    ];
    if version >= 4 {
        // v4: the second attempt of event `evt-succeeded`, through alias `live`.
        let retry = InvocationRecord {
            attempt: 2,
            qualifier: Some("live".into()),
            duration_ms: 30.5,
            billed_ms: 31,
            max_memory_used_mb: Some(43),
            ..record("evt-succeeded", "2026-01-02T04:01:00.105Z")
        };
        records.insert(0, retry);
    }
    let line = |seq, id: Option<&str>, at_: &str, stream, message: &str| LogLine {
        seq,
        function: fname("hello"),
        request_id: id.map(str::to_owned),
        at: at(at_),
        stream,
        message: message.into(),
    };
    let lines = vec![
        line(
            1,
            Some("req-cold"),
            "2026-01-02T03:04:05.100Z",
            LogStream::Platform,
            "START RequestId: req-cold Version: 3",
        ),
        line(2, Some("req-cold"), "2026-01-02T03:04:05.110Z", LogStream::Stdout, "hello from v3"),
        line(3, Some("req-cold"), "2026-01-02T03:04:05.113Z", LogStream::Platform, "END RequestId: req-cold"),
        line(4, None, "2026-01-02T03:04:06.000Z", LogStream::Stderr, "instance warming"),
        line(5, Some("req-error"), "2026-01-02T03:04:07.330Z", LogStream::Stderr, "Traceback (most recent call last):"),
    ];
    (records, lines)
}

/// What `new_writes_work` wrote, to be found again after a reopen.
struct Wrote {
    token: TokenRecord,
    trigger: HttpTrigger,
    record: InvocationRecord,
    /// v3 and later: a second attempt of a fixture record's request.
    retry: Option<InvocationRecord>,
    /// An alias of the upgraded `hello`.
    alias: Alias,
    /// An event accepted by the upgraded store.
    event: EventRecord,
    /// A NATS trigger (schema v5) of the upgraded `hello`.
    nats: NatsTrigger,
}

/// Every kind of write works on the upgraded file, next to the old records.
async fn new_writes_work(store: &SqliteStore, version: usize) -> Wrote {
    let at = format!("v{version}");
    let mut hello = store.get_function(&fname("hello")).await.unwrap().unwrap();
    let rev = hello.revision;
    let v4 = conformance::with_new_code(&mut hello, b"upgraded");
    assert_eq!(v4.number, 4, "{at}: numbering continues");
    store.save_function(&hello, Expect::Revision(rev), Some(&v4)).await.unwrap();
    let stale = conformance::with_new_code(&mut hello.clone(), b"stale");
    assert!(
        matches!(store.save_function(&hello, Expect::Revision(rev), Some(&stale)).await, Err(StoreError::Conflict)),
        "{at}: optimistic concurrency holds on old rows"
    );
    let fresh = conformance::sample_function("fresh");
    store.save_function(&fresh, Expect::Absent, None).await.unwrap();
    assert!(
        matches!(
            store.save_function(&conformance::sample_function("plain"), Expect::Absent, None).await,
            Err(StoreError::Conflict)
        ),
        "{at}: an old name is still taken"
    );
    let token = TokenRecord {
        id: TokenId::new(),
        name: "after-upgrade".into(),
        scopes: vec![Scope::Invoke],
        secret_sha256: "ab".repeat(32),
        created_at: Utc::now(),
    };
    store.insert_token(&token).await.unwrap();
    let trigger = HttpTrigger {
        id: TriggerId::new(),
        function: fname("fresh"),
        qualifier: None,
        path: TriggerPath::try_from("/fresh".to_owned()).unwrap(),
        methods: vec![],
        auth: TriggerAuth::None,
        created_at: Utc::now(),
    };
    store.insert_trigger(&trigger).await.unwrap();
    let line = LogLine {
        seq: 0,
        function: fname("hello"),
        request_id: Some("r-upgrade".into()),
        at: Utc::now(),
        stream: LogStream::Stdout,
        message: "after the upgrade".into(),
    };
    store.append_logs(&[line]).await.unwrap();
    let record = InvocationRecord {
        request_id: "r-upgrade".into(),
        attempt: 1,
        qualifier: None,
        function_id: hello.id,
        function: fname("hello"),
        version: 4,
        started_at: Utc::now(),
        duration_ms: 1.0,
        billed_ms: 1,
        memory_mb: 256,
        max_memory_used_mb: None,
        cold_start: true,
        init_duration_ms: Some(5.0),
        start_source: None,
        cpu_time_ms: None,
        outcome: "success".into(),
        error_type: None,
    };
    store.append_invocations(std::slice::from_ref(&record)).await.unwrap();
    // Aliases (schema v4) of functions an older server wrote.
    let alias = Alias {
        additional_version: Some(AdditionalVersion { version: 4, weight: 0.1 }),
        description: "canary of the upgrade".into(),
        ..conformance::sample_alias("hello", "live", 3)
    };
    store.put_alias(&alias).await.unwrap();
    assert_eq!(store.get_alias(&hello.name, &alias.name).await.unwrap().as_ref(), Some(&alias), "{at}: an alias");
    store.put_alias(&conformance::sample_alias("plain", "live", 1)).await.unwrap();
    assert_eq!(store.list_aliases(&fname("plain")).await.unwrap().len(), 1, "{at}: an alias of another old function");
    // Deleting an old function takes its old versions, aliases and triggers with it.
    assert!(store.delete_function(&fname("plain")).await.unwrap(), "{at}: delete an old function");
    assert!(store.list_versions(&fname("plain")).await.unwrap().is_empty(), "{at}: its versions went");
    assert!(store.list_aliases(&fname("plain")).await.unwrap().is_empty(), "{at}: its aliases went");
    assert!(store.list_triggers().await.unwrap().iter().all(|t| t.function.as_str() != "plain"), "{at}: triggers");
    let old = store.list_tokens().await.unwrap().into_iter().find(|t| t.name == "ci").unwrap();
    assert!(store.delete_token(old.id).await.unwrap(), "{at}: delete an old token");
    // A retry keeps its request id: on an upgraded v3 file, next to that request's old record.
    let retry = match fixture_telemetry(version, &hello).0.into_iter().find(|r| r.request_id == "req-error") {
        None => None,
        Some(old) => {
            let retry = InvocationRecord {
                attempt: 2,
                started_at: record.started_at + chrono::Duration::seconds(1),
                version: 4,
                ..old.clone()
            };
            let repeat = InvocationRecord { outcome: "success".into(), error_type: None, ..old.clone() };
            store.append_invocations(&[retry.clone(), repeat]).await.unwrap();
            let listed = store.list_invocations(&hello.name, 10).await.unwrap();
            let stored: Vec<_> = listed.iter().filter(|r| r.request_id == old.request_id).collect();
            assert_eq!(stored, [&retry, &old], "{at}: attempt 2 is kept beside attempt 1, a repeat of 1 ignored");
            Some(retry)
        }
    };
    // Events (schema v4), next to an upgraded v4 file's own.
    let new_event = NewEvent {
        request_id: "evt-upgrade".into(),
        function: fname("hello"),
        qualifier: Some("live".into()),
        source: EventSource::Api,
        payload: bytes::Bytes::from_static(b"{}"),
        enqueued_at: t("2026-03-04T05:06:07Z"),
        max_queued: 10,
        chain: 0,
    };
    assert_eq!(store.enqueue(std::slice::from_ref(&new_event)).await.unwrap(), [Enqueued::Accepted], "{at}: enqueue");
    let event = store.get_event("evt-upgrade").await.unwrap().expect("the new event is stored");
    assert_eq!((event.status, event.attempts), (EventStatus::Queued, 0), "{at}: the new event is queued");
    // The bound counts an upgraded v4 file's queued event too.
    let queued: u32 = if version >= 4 { 2 } else { 1 };
    let full = NewEvent { request_id: "evt-upgrade-2".into(), max_queued: queued, ..new_event };
    let refused = store.enqueue(&[full]).await.unwrap();
    assert_eq!(refused, [Enqueued::QueueFull { queued: queued.into() }], "{at}: the function's bound");
    assert!(store.get_event("evt-upgrade-2").await.unwrap().is_none(), "{at}: a refused event is not stored");
    // NATS triggers (schema v5), on every upgraded file.
    let nats = NatsTrigger {
        id: TriggerId::new(),
        function: fname("hello"),
        qualifier: Some("live".into()),
        server: "nats://127.0.0.1:4222".into(),
        credentials: Some("alice:s3cret".into()),
        subject: "orders.>".into(),
        stream: Some("ORDERS".into()),
        consumer: None,
        batch: 10,
        created_at: t("2026-03-04T05:06:08Z"),
    };
    store.add_nats_trigger(&nats).await.unwrap();
    assert!(matches!(store.add_nats_trigger(&nats).await, Err(StoreError::Conflict)), "{at}: a NATS trigger's id");
    assert_eq!(store.list_nats_triggers().await.unwrap(), std::slice::from_ref(&nats), "{at}: NATS triggers");
    Wrote { token, trigger, record, retry, alias, event, nats }
}

async fn written_records_persist(store: &SqliteStore, version: usize, wrote: &Wrote) {
    let at = format!("v{version} reopened");
    let names: Vec<_> = store.list_functions().await.unwrap().into_iter().map(|f| f.name.as_str().to_owned()).collect();
    assert_eq!(names, ["draft", "fresh", "hello"], "{at}: functions");
    let hello = store.get_function(&fname("hello")).await.unwrap().unwrap();
    assert_eq!(hello.latest_version, Some(4), "{at}");
    assert_eq!(store.list_versions(&fname("hello")).await.unwrap().len(), 4, "{at}");
    assert_eq!(
        store.list_aliases(&fname("hello")).await.unwrap(),
        std::slice::from_ref(&wrote.alias),
        "{at}: hello's alias"
    );
    let tokens: Vec<_> = store.list_tokens().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tokens, ["admin", "reader", "after-upgrade"], "{at}");
    assert_eq!(store.token_by_secret_hash(&wrote.token.secret_sha256).await.unwrap().as_ref(), Some(&wrote.token));
    let mut expected = vec![wrote.trigger.clone()];
    if version >= 2 {
        expected.push(store.list_triggers().await.unwrap().into_iter().find(|t| t.path.as_str() == "/hello").unwrap());
    }
    expected.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    assert_eq!(store.list_triggers().await.unwrap(), expected, "{at}: triggers");
    let logs = store.read_logs(&fname("hello"), 0, None, 10).await.unwrap();
    let (old_records, old_lines) = fixture_telemetry(version, &hello);
    let old_count = old_lines.len();
    let mut lines: Vec<_> = old_lines.into_iter().map(|l| l.message).collect();
    lines.push("after the upgrade".into());
    assert_eq!(logs.iter().map(|l| &l.message).collect::<Vec<_>>(), lines.iter().collect::<Vec<_>>(), "{at}: logs");
    assert!(logs[old_count].seq > old_count as i64, "{at}: a new line's seq follows the old ones");
    // Newest first: the retry (a second after the new record), the new record, the fixture's.
    let mut records: Vec<_> = wrote.retry.iter().cloned().collect();
    records.push(wrote.record.clone());
    records.extend(old_records);
    assert_eq!(store.list_invocations(&fname("hello"), 10).await.unwrap(), records, "{at}: invocation records");
    let mut events = fixture_events(version);
    events.push(wrote.event.clone());
    for e in &events {
        assert_eq!(store.get_event(&e.request_id).await.unwrap().as_ref(), Some(e), "{at}: event {}", e.request_id);
    }
    assert_eq!(store.list_schedules().await.unwrap().len(), usize::from(version >= 4), "{at}: cron triggers");
    assert_eq!(store.list_nats_triggers().await.unwrap(), std::slice::from_ref(&wrote.nats), "{at}: NATS triggers");
}

#[tokio::test]
async fn sqlite_refuses_a_database_of_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let known = SqliteStore::open(&path).unwrap().schema_version();
    {
        // What a newer server would leave: one more migration than this binary knows.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE from_the_future (x INTEGER)").unwrap();
        conn.pragma_update(None, "user_version", known + 1).unwrap();
    }
    let err = match SqliteStore::open(&path) {
        Ok(_) => panic!("a database of schema v{} opened with a binary that knows v{known}", known + 1),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::SchemaTooNew { found, known: k } if found == known + 1 && k == known), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {}", known + 1))
            && message.contains(&format!("up to {known}"))
            && message.contains("newer Hearth"),
        "the refusal says why: {message}"
    );
    assert_eq!(user_version(&path), known + 1, "the refused file is left at its version");
}
