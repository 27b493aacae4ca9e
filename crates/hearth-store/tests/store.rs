//! Conformance of every metadata backend, plus SQLite-specific durability.

use hearth_store::{Expect, MemoryStore, MetadataStore, SqliteStore, conformance};

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db")).unwrap();
    conformance::run(&store).await;
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
