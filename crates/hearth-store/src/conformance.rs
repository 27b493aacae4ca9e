//! The behaviour every [`MetadataStore`] backend must show. Backends call [`run`] from
//! their tests; it panics with a message naming the broken rule.

use chrono::Utc;
use hearth_types::{
    AdditionalVersion, Alias, AliasName, CodeDigest, CodeRef, Function, FunctionId, FunctionName, FunctionSpec,
    HttpTrigger, InvocationRecord, LogLine, LogStream, Scope, TokenId, TokenRecord, TriggerAuth, TriggerId,
    TriggerPath, Version,
};

use crate::{Expect, MetadataStore, StoreError};

fn name(s: &str) -> FunctionName {
    s.parse().expect("valid test name")
}

/// A function record as the deploy logic would build it.
pub fn sample_function(n: &str) -> Function {
    let config = FunctionSpec { runtime: "python3".into(), handler: Some("main.handler".into()), ..Default::default() }
        .validate()
        .expect("valid sample config");
    let now = Utc::now();
    Function {
        id: FunctionId::new(),
        name: name(n),
        config,
        code: None,
        latest_version: None,
        revision: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Gives `f` a new code package and returns the version that records it.
pub fn with_new_code(f: &mut Function, content: &[u8]) -> Version {
    let code = CodeRef { sha256: CodeDigest::of(content), size_bytes: content.len() as u64 };
    let number = f.latest_version.unwrap_or(0) + 1;
    f.code = Some(code.clone());
    f.latest_version = Some(number);
    f.revision += 1;
    Version {
        function_id: f.id,
        function: f.name.clone(),
        number,
        config: f.config.clone(),
        code,
        created_at: Utc::now(),
    }
}

fn token(secret_hash: &str, scopes: Vec<Scope>) -> TokenRecord {
    TokenRecord {
        id: TokenId::new(),
        name: format!("t-{secret_hash}"),
        scopes,
        secret_sha256: secret_hash.into(),
        created_at: Utc::now(),
    }
}

/// Runs every conformance check against an empty store.
pub async fn run(store: &dyn MetadataStore) {
    create_get_list(store).await;
    optimistic_concurrency(store).await;
    versions_are_appended_and_immutable(store).await;
    delete_removes_versions(store).await;
    tokens(store).await;
    triggers(store).await;
    alias_round_trip_and_replace(store).await;
    alias_listing(store).await;
    alias_needs_its_function(store).await;
    alias_delete(store).await;
    aliases_go_with_their_function(store).await;
    aliases_of_two_functions_are_independent(store).await;
    telemetry(store).await;
    platform_entries(store).await;
    pruning(store).await;
    invocation_attempts(store).await;
}

/// Invocation records are unique by request id and attempt: an asynchronous invocation's
/// retries keep its request id, and each is kept; an attempt appended again is ignored (the
/// first stays), within one call too. Last, so that the prunes above never see these.
async fn invocation_attempts(store: &dyn MetadataStore) {
    let f = sample_function("attempts");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    let record = |attempt: u32| InvocationRecord {
        request_id: "async-1".into(),
        attempt,
        qualifier: None,
        function_id: f.id,
        function: name("attempts"),
        version: 1,
        started_at: now + chrono::Duration::milliseconds(i64::from(attempt)),
        duration_ms: 3.0,
        billed_ms: 3,
        memory_mb: 128,
        max_memory_used_mb: None,
        cold_start: false,
        init_duration_ms: None,
        start_source: None,
        cpu_time_ms: None,
        outcome: "error".into(),
        error_type: Some("Unhandled".into()),
    };
    let (first, second, third) = (record(1), record(2), record(3));
    let again = |r: &InvocationRecord| InvocationRecord { outcome: "success".into(), error_type: None, ..r.clone() };
    store.append_invocations(std::slice::from_ref(&first)).await.unwrap();
    store.append_invocations(&[second.clone(), again(&first)]).await.unwrap();
    store.append_invocations(&[third.clone(), again(&third), again(&second)]).await.unwrap();
    let listed = store.list_invocations(&name("attempts"), 10).await.unwrap();
    assert_eq!(
        listed,
        [third, second, first],
        "one record per (request id, attempt): every attempt kept, a repeated one ignored"
    );
    store.delete_function(&name("attempts")).await.unwrap();
}

/// `prune_telemetry(before)` drops exactly the log lines and invocation records older than
/// `before`, of every function, and leaves the others as they were (one at `before` stays).
async fn pruning(store: &dyn MetadataStore) {
    // Whole milliseconds, the precision every backend keeps.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    let cutoff = now - chrono::Duration::hours(1);
    let ages = [
        ("2h", now - chrono::Duration::hours(2)),
        ("just-before", cutoff - chrono::Duration::milliseconds(1)),
        ("at", cutoff),
        ("just-after", cutoff + chrono::Duration::milliseconds(1)),
        ("now", now),
    ];
    let functions = ["prune-a", "prune-b"];
    for n in functions {
        let f = sample_function(n);
        store.save_function(&f, Expect::Absent, None).await.unwrap();
        let lines: Vec<_> = ages
            .iter()
            .map(|(label, at)| LogLine {
                seq: 0,
                function: name(n),
                request_id: Some(format!("{n}-{label}")),
                at: *at,
                stream: LogStream::Stderr,
                message: format!("{n} {label}"),
            })
            .collect();
        store.append_logs(&lines).await.unwrap();
        let records: Vec<_> = ages
            .iter()
            .map(|(label, at)| InvocationRecord {
                request_id: format!("{n}-{label}"),
                attempt: 1,
                qualifier: None,
                function_id: f.id,
                function: name(n),
                version: 1,
                started_at: *at,
                duration_ms: 1.0,
                billed_ms: 1,
                memory_mb: 128,
                max_memory_used_mb: None,
                cold_start: false,
                init_duration_ms: None,
                start_source: None,
                cpu_time_ms: None,
                outcome: "success".into(),
                error_type: None,
            })
            .collect();
        store.append_invocations(&records).await.unwrap();
    }
    let mut kept = vec![];
    for n in functions {
        let logs = store.read_logs(&name(n), 0, None, 100).await.unwrap();
        let records = store.list_invocations(&name(n), 100).await.unwrap();
        assert_eq!((logs.len(), records.len()), (ages.len(), ages.len()), "all of {n}'s telemetry stored");
        let logs: Vec<_> = logs.into_iter().filter(|l| l.at >= cutoff).collect();
        let records: Vec<_> = records.into_iter().filter(|r| r.started_at >= cutoff).collect();
        kept.push((n, logs, records));
    }

    let pruned = store.prune_telemetry(cutoff).await.unwrap();
    assert_eq!(pruned, 8, "two old lines and two old records of each function go, and nothing else");
    for (n, logs, records) in kept {
        let left = store.read_logs(&name(n), 0, None, 100).await.unwrap();
        assert_eq!(
            left.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["at", "just-after", "now"].map(|label| format!("{n} {label}")),
            "{n}: the lines at or after the cutoff stay"
        );
        assert_eq!(left, logs, "{n}: the lines kept are unchanged, seq included");
        let left = store.list_invocations(&name(n), 100).await.unwrap();
        assert_eq!(left, records, "{n}: the records at or after the cutoff stay, unchanged");
        assert_eq!(left.len(), 3, "{n}: three records stay");
    }
    assert_eq!(store.prune_telemetry(cutoff).await.unwrap(), 0, "pruning again finds nothing older");
    for n in functions {
        assert!(store.get_function(&name(n)).await.unwrap().is_some(), "pruning leaves functions alone");
        store.delete_function(&name(n)).await.unwrap();
    }
}

/// An invocation's `START`, `END` and `REPORT` stored as one platform entry read back as
/// one line each, sharing its `seq`; no read (forwards, tail, one request's, limited) splits
/// it, and a function's own line is never split.
async fn platform_entries(store: &dyn MetadataStore) {
    let f = sample_function("entries");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let line = |req: &str, stream: LogStream, msg: &str| LogLine {
        seq: 0,
        function: name("entries"),
        request_id: Some(req.into()),
        at: Utc::now(),
        stream,
        message: msg.into(),
    };
    store
        .append_logs(&[
            line("r1", LogStream::Platform, "START RequestId: r1\nEND RequestId: r1\nREPORT RequestId: r1"),
            line("r2", LogStream::Platform, "START RequestId: r2"),
            line("r2", LogStream::Stderr, "two\nlines"),
            line("r2", LogStream::Platform, "END RequestId: r2\nREPORT RequestId: r2"),
        ])
        .await
        .unwrap();
    let seen = |lines: Vec<LogLine>| lines.into_iter().map(|l| (l.seq, l.message)).collect::<Vec<_>>();
    let all = seen(store.read_logs(&name("entries"), 0, None, 100).await.unwrap());
    let messages: Vec<&str> = all.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "START RequestId: r1",
            "END RequestId: r1",
            "REPORT RequestId: r1",
            "START RequestId: r2",
            "two\nlines",
            "END RequestId: r2",
            "REPORT RequestId: r2"
        ]
    );
    assert!(all[0].0 == all[1].0 && all[1].0 == all[2].0 && all[2].0 < all[3].0, "an entry's lines share its seq");
    let (first, last) = (all[0].0, all[6].0);
    let read = |after, request, limit| async move {
        seen(store.read_logs(&name("entries"), after, request, limit).await.unwrap())
    };
    assert_eq!(read(0, None, 5).await, all[..5], "a limit stops before an entry it would cut");
    assert_eq!(read(0, None, 2).await, all[..3], "but a read always gives at least one entry");
    assert_eq!(read(first, Some("r2"), 100).await, all[3..], "one request's, after a position");
    let tail = |limit| async move { seen(store.read_log_tail(&name("entries"), last, None, limit).await.unwrap()) };
    assert_eq!(tail(3).await, all[4..], "the last three lines");
    assert_eq!(tail(5).await, all[3..], "the tail keeps whole entries");
    assert_eq!(tail(1).await, all[5..], "and at least the last one");
    assert_eq!(tail(100).await, all, "all of it");
    store.delete_function(&name("entries")).await.unwrap();
}

async fn telemetry(store: &dyn MetadataStore) {
    let f = sample_function("tele");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let at = |secs_ago: i64| Utc::now() - chrono::Duration::seconds(secs_ago);
    let line = |req: &str, msg: &str, secs_ago: i64| LogLine {
        seq: 0,
        function: name("tele"),
        request_id: Some(req.into()),
        at: at(secs_ago),
        stream: LogStream::Stdout,
        message: msg.into(),
    };
    store.append_logs(&[line("r1", "old", 100), line("r1", "a", 1), line("r2", "b", 1)]).await.unwrap();
    store.append_logs(&[line("r1", "c", 0)]).await.unwrap();
    let all = store.read_logs(&name("tele"), 0, None, 100).await.unwrap();
    let msgs: Vec<_> = all.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(msgs, ["old", "a", "b", "c"], "lines in append order");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "seq increases");
    let end = store.log_end().await.unwrap();
    assert_eq!(end, all[3].seq, "the log's end is its last line");
    let after = store.read_logs(&name("tele"), all[1].seq, None, 100).await.unwrap();
    assert_eq!(after.len(), 2, "reading after a seq");
    let r1 = store.read_logs(&name("tele"), 0, Some("r1"), 100).await.unwrap();
    assert_eq!(r1.len(), 3, "one request's lines");
    assert_eq!(store.read_logs(&name("tele"), 0, None, 2).await.unwrap().len(), 2, "limit");
    // The tail: the last lines at or before a position, oldest first.
    let tail = |at_most: i64, request: Option<&'static str>, limit: usize| async move {
        let lines = store.read_log_tail(&name("tele"), at_most, request, limit).await.unwrap();
        lines.into_iter().map(|l| l.message).collect::<Vec<_>>()
    };
    assert_eq!(tail(end, None, 2).await, ["b", "c"], "the last two, oldest first");
    assert_eq!(tail(end, None, 100).await, ["old", "a", "b", "c"], "fewer than asked");
    assert_eq!(tail(all[2].seq, None, 2).await, ["a", "b"], "at or before a position");
    assert_eq!(tail(end, Some("r1"), 2).await, ["a", "c"], "one request's");
    assert!(tail(all[0].seq - 1, None, 10).await.is_empty(), "nothing before the first line");
    assert!(store.read_log_tail(&name("other"), end, None, 10).await.unwrap().is_empty(), "another function's log");

    let record = |id: &str, secs_ago: i64| InvocationRecord {
        request_id: id.into(),
        attempt: 1,
        qualifier: None,
        function_id: f.id,
        function: name("tele"),
        version: 1,
        started_at: at(secs_ago),
        duration_ms: 1.5,
        billed_ms: 2,
        memory_mb: 128,
        max_memory_used_mb: Some(40),
        cold_start: false,
        init_duration_ms: None,
        start_source: None,
        cpu_time_ms: None,
        outcome: "success".into(),
        error_type: None,
    };
    store.append_invocations(&[record("i-old", 100), record("i-1", 2), record("i-2", 1)]).await.unwrap();
    let recent = store.list_invocations(&name("tele"), 2).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["i-2", "i-1"], "newest first");
    assert_eq!((recent[0].billed_ms, recent[0].outcome.as_str()), (2, "success"), "records round-trip");

    let pruned = store.prune_telemetry(at(50)).await.unwrap();
    assert_eq!(pruned, 2, "one old line and one old record");
    assert_eq!(store.read_logs(&name("tele"), 0, None, 100).await.unwrap().len(), 3);
    assert_eq!(store.log_end().await.unwrap(), end, "pruning leaves the end");
    store.append_logs(&[line("r3", "d", 0)]).await.unwrap();
    let later = store.read_logs(&name("tele"), end, None, 100).await.unwrap();
    assert_eq!(later.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["d"], "after the end: later lines only");
    let end = store.log_end().await.unwrap();
    assert_eq!(end, later[0].seq, "the end moves with each append");
    // Records and lines in one batch (the meter's): a repeated record is still ignored.
    store.append_telemetry(&[record("i-3", 0), record("i-2", 1)], &[line("r4", "e", 0)]).await.unwrap();
    store.append_telemetry(&[], &[]).await.unwrap();
    let recent = store.list_invocations(&name("tele"), 10).await.unwrap();
    let ids: Vec<_> = recent.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["i-3", "i-2", "i-1"], "a batch's records, each once");
    let batch = store.read_logs(&name("tele"), end, None, 100).await.unwrap();
    assert_eq!(batch.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["e"], "a batch's lines");
    let end = store.log_end().await.unwrap();
    assert_eq!(end, batch[0].seq, "the end moves with a batch");
    store.delete_function(&name("tele")).await.unwrap();
    assert!(store.read_logs(&name("tele"), 0, None, 100).await.unwrap().is_empty(), "logs go with the function");
    assert_eq!(store.log_end().await.unwrap(), end, "the end never goes back, even when its line is deleted");
    assert_eq!(store.list_invocations(&name("tele"), 10).await.unwrap().len(), 3, "records stay");
}

fn trigger(function: &str, path: &str) -> HttpTrigger {
    HttpTrigger {
        id: TriggerId::new(),
        function: name(function),
        qualifier: Some("live".into()),
        path: TriggerPath::try_from(path.to_owned()).expect("valid test path"),
        methods: vec![],
        auth: TriggerAuth::None,
        created_at: Utc::now(),
    }
}

async fn triggers(store: &dyn MetadataStore) {
    let f = sample_function("trig");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let b = trigger("trig", "/b");
    let a = trigger("trig", "/a/deep");
    store.insert_trigger(&b).await.unwrap();
    store.insert_trigger(&a).await.unwrap();
    assert!(
        matches!(store.insert_trigger(&trigger("other", "/b")).await, Err(StoreError::Conflict)),
        "a path is taken once"
    );
    assert_eq!(store.list_triggers().await.unwrap(), vec![a.clone(), b.clone()], "ordered by path");
    assert!(store.delete_trigger(b.id).await.unwrap());
    assert!(!store.delete_trigger(b.id).await.unwrap());
    store.delete_function(&name("trig")).await.unwrap();
    assert!(store.list_triggers().await.unwrap().is_empty(), "a function's triggers go with it");
}

fn alias_name(s: &str) -> AliasName {
    s.parse().expect("valid test alias name")
}

/// An alias of `function` to `version`, as the alias logic would build it: whole
/// milliseconds (the precision every backend keeps), created an hour before its update.
pub fn sample_alias(function: &str, n: &str, version: u32) -> Alias {
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    Alias {
        function: name(function),
        name: alias_name(n),
        version,
        additional_version: None,
        description: String::new(),
        revision: 1,
        created_at: now - chrono::Duration::hours(1),
        updated_at: now,
    }
}

/// Creates the functions `names` (none may exist yet).
async fn create_functions(store: &dyn MetadataStore, names: &[&str]) {
    for n in names {
        store.save_function(&sample_function(n), Expect::Absent, None).await.unwrap();
    }
}

/// Put then get returns the alias exactly, every field; a put with the same name replaces
/// it whole (nothing of the old one stays), and the function still has one alias.
async fn alias_round_trip_and_replace(store: &dyn MetadataStore) {
    create_functions(store, &["alias-rt"]).await;
    let live = Alias {
        additional_version: Some(AdditionalVersion { version: 4, weight: 0.1 }),
        description: "canary: 10% \u{2192} v4, \"quoted\"\nsecond line".into(),
        revision: 7,
        ..sample_alias("alias-rt", "live", 3)
    };
    assert!(store.get_alias(&name("alias-rt"), &live.name).await.unwrap().is_none(), "an unknown alias is None");
    store.put_alias(&live).await.unwrap();
    assert_eq!(
        store.get_alias(&name("alias-rt"), &live.name).await.unwrap().as_ref(),
        Some(&live),
        "put then get returns the alias exactly (additional version and weight, description, revision, timestamps)"
    );
    assert_eq!(
        store.list_aliases(&name("alias-rt")).await.unwrap(),
        std::slice::from_ref(&live),
        "list returns it exactly"
    );

    let replaced = Alias {
        version: 4,
        additional_version: None,
        description: "all on v4".into(),
        revision: 8,
        updated_at: live.updated_at + chrono::Duration::milliseconds(1500),
        ..live.clone()
    };
    store.put_alias(&replaced).await.unwrap();
    assert_eq!(
        store.get_alias(&name("alias-rt"), &live.name).await.unwrap().as_ref(),
        Some(&replaced),
        "a put with the same name replaces the alias whole (its additional version is gone)"
    );
    assert_eq!(
        store.list_aliases(&name("alias-rt")).await.unwrap(),
        std::slice::from_ref(&replaced),
        "a replaced alias is listed once, as replaced"
    );
    let weighted_again =
        Alias { additional_version: Some(AdditionalVersion { version: 2, weight: 0.75 }), revision: 9, ..replaced };
    store.put_alias(&weighted_again).await.unwrap();
    assert_eq!(
        store.get_alias(&name("alias-rt"), &live.name).await.unwrap().as_ref(),
        Some(&weighted_again),
        "a replacement can add an additional version back"
    );

    // The longest name there is round-trips.
    let longest = sample_alias("alias-rt", &format!("L{}", "o".repeat(AliasName::MAX_LEN - 1)), 1);
    store.put_alias(&longest).await.unwrap();
    assert_eq!(
        store.get_alias(&name("alias-rt"), &longest.name).await.unwrap().as_ref(),
        Some(&longest),
        "an alias name of the maximum length round-trips"
    );
    store.delete_function(&name("alias-rt")).await.unwrap();
}

/// A function's aliases are listed ordered by name in byte order (`Beta` before `alpha`),
/// and only that function's; an unknown function, or one without aliases, lists none.
async fn alias_listing(store: &dyn MetadataStore) {
    create_functions(store, &["alias-list", "alias-list-other", "alias-list-none"]).await;
    // Byte order: `-` < digits < upper case < `_` < lower case; put in another order.
    let sorted = ["Beta", "Zed", "a-b", "a9", "a_b", "alpha", "alpha2", "beta"];
    for (i, n) in ["alpha", "beta", "a_b", "Zed", "alpha2", "a9", "Beta", "a-b"].into_iter().enumerate() {
        store.put_alias(&sample_alias("alias-list", n, i as u32 + 1)).await.unwrap();
    }
    for n in ["Alpha", "aaa"] {
        store.put_alias(&sample_alias("alias-list-other", n, 1)).await.unwrap();
    }
    let listed = store.list_aliases(&name("alias-list")).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        sorted,
        "aliases are listed by name in byte order, and only the function's own"
    );
    assert!(listed.iter().all(|a| a.function == name("alias-list")), "every alias listed is of the function");
    for a in &listed {
        assert_eq!(
            store.get_alias(&name("alias-list"), &a.name).await.unwrap().as_ref(),
            Some(a),
            "list and get agree on {}",
            a.name
        );
    }
    let other = store.list_aliases(&name("alias-list-other")).await.unwrap();
    assert_eq!(
        other.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["Alpha", "aaa"],
        "another function's aliases are its own"
    );
    assert!(
        store.get_alias(&name("alias-list"), &alias_name("aaa")).await.unwrap().is_none(),
        "an alias of another function is not found under this one"
    );
    assert!(
        store.list_aliases(&name("alias-list-none")).await.unwrap().is_empty(),
        "a function without aliases lists none"
    );
    assert!(store.list_aliases(&name("alias-list-nope")).await.unwrap().is_empty(), "an unknown function lists none");
    assert!(
        store.get_alias(&name("alias-list-nope"), &alias_name("alpha")).await.unwrap().is_none(),
        "an alias of an unknown function is None"
    );
    for n in ["alias-list", "alias-list-other", "alias-list-none"] {
        store.delete_function(&name(n)).await.unwrap();
    }
}

/// `put_alias` for a function that does not exist (never did, or no longer does) is
/// `Conflict` and stores nothing: not even once a function of that name appears.
async fn alias_needs_its_function(store: &dyn MetadataStore) {
    let orphan = sample_alias("alias-ghost", "live", 1);
    assert!(
        matches!(store.put_alias(&orphan).await, Err(StoreError::Conflict)),
        "an alias of a function that does not exist must conflict"
    );
    assert!(
        store.get_alias(&name("alias-ghost"), &orphan.name).await.unwrap().is_none(),
        "a refused put stores nothing"
    );
    assert!(store.list_aliases(&name("alias-ghost")).await.unwrap().is_empty(), "a refused put lists nothing");

    create_functions(store, &["alias-ghost"]).await;
    assert!(
        store.get_alias(&name("alias-ghost"), &orphan.name).await.unwrap().is_none(),
        "a refused put stores nothing, not even for a function created afterwards"
    );
    assert!(
        store.list_aliases(&name("alias-ghost")).await.unwrap().is_empty(),
        "a function created after a refused put has no aliases"
    );
    store.delete_function(&name("alias-ghost")).await.unwrap();
    assert!(
        matches!(store.put_alias(&orphan).await, Err(StoreError::Conflict)),
        "an alias of a deleted function must conflict"
    );
    assert!(
        store.list_functions().await.unwrap().iter().all(|f| f.name != name("alias-ghost")),
        "a refused put does not create the function"
    );
}

/// `delete_alias` removes one alias and reports whether it existed: true, then false;
/// false for an unknown alias or function. The function's other aliases stay.
async fn alias_delete(store: &dyn MetadataStore) {
    create_functions(store, &["alias-del"]).await;
    let (live, beta) = (sample_alias("alias-del", "live", 1), sample_alias("alias-del", "beta", 2));
    store.put_alias(&live).await.unwrap();
    store.put_alias(&beta).await.unwrap();
    assert!(store.delete_alias(&name("alias-del"), &live.name).await.unwrap(), "deleting an alias reports it existed");
    assert!(!store.delete_alias(&name("alias-del"), &live.name).await.unwrap(), "deleting it again reports absence");
    assert!(store.get_alias(&name("alias-del"), &live.name).await.unwrap().is_none(), "a deleted alias is None");
    assert_eq!(
        store.list_aliases(&name("alias-del")).await.unwrap(),
        std::slice::from_ref(&beta),
        "a deleted alias is not listed; the other stays"
    );
    assert!(
        !store.delete_alias(&name("alias-del"), &alias_name("never")).await.unwrap(),
        "deleting an unknown alias reports absence"
    );
    assert!(
        !store.delete_alias(&name("alias-del-nope"), &beta.name).await.unwrap(),
        "deleting an alias of an unknown function reports absence"
    );
    assert_eq!(
        store.get_alias(&name("alias-del"), &beta.name).await.unwrap().as_ref(),
        Some(&beta),
        "deleting elsewhere leaves an alias alone"
    );
    // A deleted alias can be put again.
    store.put_alias(&live).await.unwrap();
    assert_eq!(
        store.get_alias(&name("alias-del"), &live.name).await.unwrap().as_ref(),
        Some(&live),
        "a deleted alias can be put again"
    );
    store.delete_function(&name("alias-del")).await.unwrap();
}

/// `delete_function` deletes the function's aliases: a function re-created under the same
/// name starts without any.
async fn aliases_go_with_their_function(store: &dyn MetadataStore) {
    create_functions(store, &["alias-gone"]).await;
    let (live, beta) = (sample_alias("alias-gone", "live", 1), sample_alias("alias-gone", "beta", 1));
    store.put_alias(&live).await.unwrap();
    store.put_alias(&beta).await.unwrap();
    assert!(store.delete_function(&name("alias-gone")).await.unwrap());
    assert!(store.get_alias(&name("alias-gone"), &live.name).await.unwrap().is_none(), "aliases go with the function");
    assert!(store.list_aliases(&name("alias-gone")).await.unwrap().is_empty(), "aliases go with the function");
    create_functions(store, &["alias-gone"]).await;
    assert!(
        store.get_alias(&name("alias-gone"), &live.name).await.unwrap().is_none(),
        "a re-created function has none of the old one's aliases"
    );
    assert!(
        store.list_aliases(&name("alias-gone")).await.unwrap().is_empty(),
        "a re-created function starts without aliases"
    );
    assert!(
        !store.delete_alias(&name("alias-gone"), &beta.name).await.unwrap(),
        "an old alias of a re-created function is not there to delete"
    );
    // Its own aliases are stored as usual.
    let fresh = Alias { revision: 1, ..sample_alias("alias-gone", "live", 2) };
    store.put_alias(&fresh).await.unwrap();
    assert_eq!(
        store.list_aliases(&name("alias-gone")).await.unwrap(),
        [fresh],
        "a re-created function has exactly its new aliases"
    );
    store.delete_function(&name("alias-gone")).await.unwrap();
}

/// Two functions may each have an alias of the same name: putting, replacing or deleting
/// one, or deleting its function, leaves the other as it was.
async fn aliases_of_two_functions_are_independent(store: &dyn MetadataStore) {
    create_functions(store, &["alias-one", "alias-two"]).await;
    let one = sample_alias("alias-one", "live", 1);
    let two = Alias {
        additional_version: Some(AdditionalVersion { version: 3, weight: 0.25 }),
        description: "two's".into(),
        ..sample_alias("alias-two", "live", 2)
    };
    store.put_alias(&one).await.unwrap();
    store.put_alias(&two).await.unwrap();
    let get = |f: &'static str| async move { store.get_alias(&name(f), &alias_name("live")).await.unwrap() };
    assert_eq!(
        (get("alias-one").await, get("alias-two").await),
        (Some(one.clone()), Some(two.clone())),
        "two functions' aliases of the same name are each their own"
    );
    let one_replaced = Alias { version: 5, revision: 2, description: "one's, replaced".into(), ..one.clone() };
    store.put_alias(&one_replaced).await.unwrap();
    assert_eq!(get("alias-two").await, Some(two.clone()), "replacing one function's alias leaves the other's");
    assert_eq!(get("alias-one").await, Some(one_replaced), "the replaced alias is replaced");
    assert!(store.delete_alias(&name("alias-one"), &one.name).await.unwrap());
    assert_eq!(get("alias-two").await, Some(two.clone()), "deleting one function's alias leaves the other's");
    assert_eq!(
        store.list_aliases(&name("alias-two")).await.unwrap(),
        std::slice::from_ref(&two),
        "the other is still listed"
    );
    store.put_alias(&one).await.unwrap();
    assert!(store.delete_function(&name("alias-one")).await.unwrap());
    assert_eq!(get("alias-two").await, Some(two.clone()), "deleting one function leaves the other's aliases");
    assert_eq!(store.list_aliases(&name("alias-two")).await.unwrap(), [two], "the other's aliases are all listed");
    store.delete_function(&name("alias-two")).await.unwrap();
}

async fn create_get_list(store: &dyn MetadataStore) {
    assert!(store.get_function(&name("nope")).await.unwrap().is_none(), "unknown function must be None");
    let b = sample_function("bbb");
    let a = sample_function("aaa");
    store.save_function(&b, Expect::Absent, None).await.unwrap();
    store.save_function(&a, Expect::Absent, None).await.unwrap();
    assert_eq!(store.get_function(&name("aaa")).await.unwrap().as_ref(), Some(&a), "round trip");
    let names: Vec<_> = store.list_functions().await.unwrap().into_iter().map(|f| f.name.to_string()).collect();
    assert_eq!(names, ["aaa", "bbb"], "list is ordered by name");
    let dup = sample_function("aaa");
    assert!(
        matches!(store.save_function(&dup, Expect::Absent, None).await, Err(StoreError::Conflict)),
        "creating an existing name must conflict"
    );
    assert_eq!(store.get_function(&name("aaa")).await.unwrap().as_ref(), Some(&a), "refused create changed nothing");
    store.delete_function(&name("aaa")).await.unwrap();
    store.delete_function(&name("bbb")).await.unwrap();
}

async fn optimistic_concurrency(store: &dyn MetadataStore) {
    let mut f = sample_function("occ");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let read_rev = f.revision;
    let mut first = f.clone();
    let v1 = with_new_code(&mut first, b"one");
    store.save_function(&first, Expect::Revision(read_rev), Some(&v1)).await.unwrap();
    // A second writer that read the same revision loses, and writes nothing.
    let v_lost = with_new_code(&mut f, b"two");
    assert!(
        matches!(store.save_function(&f, Expect::Revision(read_rev), Some(&v_lost)).await, Err(StoreError::Conflict)),
        "stale revision must conflict"
    );
    let stored = store.get_function(&name("occ")).await.unwrap().unwrap();
    assert_eq!(stored, first, "the losing write must not be visible");
    assert_eq!(store.list_versions(&name("occ")).await.unwrap(), vec![v1], "the losing version must not be stored");
    let ghost = sample_function("ghost");
    assert!(
        matches!(store.save_function(&ghost, Expect::Revision(1), None).await, Err(StoreError::Conflict)),
        "updating a missing function must conflict"
    );
    store.delete_function(&name("occ")).await.unwrap();
}

async fn versions_are_appended_and_immutable(store: &dyn MetadataStore) {
    let mut f = sample_function("ver");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let mut versions = vec![];
    for content in [b"a".as_slice(), b"b", b"c"] {
        let rev = f.revision;
        let v = with_new_code(&mut f, content);
        store.save_function(&f, Expect::Revision(rev), Some(&v)).await.unwrap();
        versions.push(v);
    }
    assert_eq!(store.list_versions(&name("ver")).await.unwrap(), versions, "versions oldest first");
    assert_eq!(store.get_version(&name("ver"), 2).await.unwrap().as_ref(), Some(&versions[1]));
    assert!(store.get_version(&name("ver"), 9).await.unwrap().is_none());
    // Re-writing an existing version number is refused.
    let rev = f.revision;
    let mut again = versions[0].clone();
    again.code.size_bytes = 999;
    f.revision += 1;
    assert!(
        matches!(store.save_function(&f, Expect::Revision(rev), Some(&again)).await, Err(StoreError::Conflict)),
        "a version number is written once"
    );
    assert_eq!(store.get_version(&name("ver"), 1).await.unwrap().as_ref(), Some(&versions[0]), "versions never change");
    store.delete_function(&name("ver")).await.unwrap();
}

async fn delete_removes_versions(store: &dyn MetadataStore) {
    let mut f = sample_function("del");
    store.save_function(&f, Expect::Absent, None).await.unwrap();
    let rev = f.revision;
    let v = with_new_code(&mut f, b"x");
    store.save_function(&f, Expect::Revision(rev), Some(&v)).await.unwrap();
    assert!(store.delete_function(&name("del")).await.unwrap());
    assert!(!store.delete_function(&name("del")).await.unwrap(), "second delete reports absence");
    assert!(store.get_function(&name("del")).await.unwrap().is_none());
    assert!(store.list_versions(&name("del")).await.unwrap().is_empty(), "versions go with the function");
    // A re-created function starts a fresh version history.
    let g = sample_function("del");
    store.save_function(&g, Expect::Absent, None).await.unwrap();
    assert!(store.list_versions(&name("del")).await.unwrap().is_empty());
    store.delete_function(&name("del")).await.unwrap();
}

async fn tokens(store: &dyn MetadataStore) {
    let admin = token("h1", vec![Scope::Admin]);
    let reader = token("h2", vec![Scope::Read, Scope::Invoke]);
    store.insert_token(&admin).await.unwrap();
    store.insert_token(&reader).await.unwrap();
    assert!(
        matches!(store.insert_token(&token("h1", vec![])).await, Err(StoreError::Conflict)),
        "secret hashes are unique"
    );
    assert_eq!(store.token_by_secret_hash("h2").await.unwrap().as_ref(), Some(&reader));
    assert!(store.token_by_secret_hash("nope").await.unwrap().is_none());
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);
    assert!(store.delete_token(admin.id).await.unwrap());
    assert!(!store.delete_token(admin.id).await.unwrap());
    assert!(store.token_by_secret_hash("h1").await.unwrap().is_none(), "deleted token no longer authenticates");
    store.delete_token(reader.id).await.unwrap();
}
