//! HTTP trigger paths (`hearth_types::TriggerPath`) and the gateway's trigger table. Input:
//! lines; the first is a request path, the others are trigger paths to create.
//!
//! - a path `TriggerPath` accepts starts with `/`, has no empty, `.` or `..` segment and no
//!   trailing `/`, holds only the allowed characters, takes no reserved prefix, and parses
//!   to itself again (also through serde);
//! - the table finds, for the request path and for each trigger's own path, the trigger a
//!   plain search over all of them finds: the longest whole-segment prefix, and the rest.
#![no_main]

use std::sync::{Arc, LazyLock};

use hearth_gateway::fuzzing::TriggerTable;
use hearth_store::{MemoryStore, MetadataStore};
use hearth_types::{HttpTrigger, RESERVED_PATH_PREFIXES, TriggerAuth, TriggerId, TriggerPath};
use libfuzzer_sys::fuzz_target;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));

fn check_path(raw: &str) -> Option<TriggerPath> {
    let path = TriggerPath::try_from(raw.to_owned()).ok()?;
    let s = path.as_str();
    assert!(s.starts_with('/') && !s.ends_with('/') && s.len() <= 256, "{raw:?} -> {s:?}");
    let segments: Vec<&str> = path.segments().collect();
    assert_eq!(segments.join("/"), s[1..], "{raw:?}: empty segments");
    for seg in &segments {
        assert!(!matches!(*seg, "." | ".."), "{raw:?}");
        assert!(seg.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)), "{raw:?}");
    }
    let lower = s.to_ascii_lowercase();
    for p in RESERVED_PATH_PREFIXES {
        assert!(lower != *p && !lower.starts_with(&format!("{p}/")), "{raw:?} takes {p}");
    }
    assert_eq!(TriggerPath::try_from(s.to_owned()).as_ref(), Ok(&path));
    let json = serde_json::to_string(&path).expect("serialize");
    assert_eq!(serde_json::from_str::<TriggerPath>(&json).expect("deserialize"), path);
    Some(path)
}

/// The trigger for `path` by a plain search: the longest whole-segment prefix.
fn expected(triggers: &[HttpTrigger], path: &str) -> Option<(TriggerPath, String)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(usize, &HttpTrigger)> = None;
    for t in triggers {
        let prefix: Vec<&str> = t.path.segments().collect();
        if segments.starts_with(&prefix) && best.is_none_or(|(len, _)| prefix.len() > len) {
            best = Some((prefix.len(), t));
        }
    }
    best.map(|(len, t)| (t.path.clone(), segments[len..].join("/")))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let request = lines.next().unwrap_or_default();
    check_path(request);
    let store = Arc::new(MemoryStore::new());
    let table = TriggerTable::new(store.clone());
    RT.block_on(async {
        for raw in lines.take(32) {
            let Some(path) = check_path(raw) else { continue };
            let trigger = HttpTrigger {
                id: TriggerId::new(),
                function: "f".parse().expect("function name"),
                qualifier: None,
                path,
                methods: vec![],
                auth: TriggerAuth::None,
                created_at: chrono::DateTime::UNIX_EPOCH,
            };
            // A path already taken is a conflict; the table keeps the first.
            let _ = store.insert_trigger(&trigger).await;
        }
        table.reload().await.expect("reload");
    });
    let triggers = RT.block_on(store.list_triggers()).expect("list");
    let mut probes = vec![request.to_owned()];
    probes.extend(triggers.iter().map(|t| t.path.to_string()));
    probes.extend(triggers.iter().map(|t| format!("{}/x/", t.path)));
    for probe in probes {
        let found = table.lookup(&probe).map(|(t, rest)| (t.path, rest));
        assert_eq!(found, expected(&triggers, &probe), "lookup({probe:?})");
    }
    for t in &triggers {
        assert_eq!(
            table.lookup(t.path.as_str()).map(|(found, rest)| (found.path, rest)),
            Some((t.path.clone(), "".into()))
        );
    }
});
