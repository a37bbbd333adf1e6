//! `mrr archive` against the local filesystem store and real servers started on loopback:
//! moto's S3 server and the GCS emulator (from .venv-emulators; `scripts/test` installs
//! them). For each store: push, list, restore elsewhere byte for byte; an interrupted push
//! is not listed as complete and finishes when pushed again; a corrupted object makes the
//! restore fail naming it, with nothing restored; a different local snapshot with the same
//! id is never overwritten; prune is a dry run unless --yes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mrr::simulate::Scenario;
use object_store::ObjectStoreExt;

/// One pulled snapshot shared by every test (read-only).
struct Source {
    _data: tempfile::TempDir,
    data_dir: PathBuf,
    snapshot: mrr::snapshot::Snapshot,
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let acct = common::simulate(Scenario::Default, 40, 7);
        let data = tempfile::tempdir().unwrap();
        let snapshot = common::pull(&acct, data.path(), &[], &[]);
        Source { data_dir: data.path().to_path_buf(), _data: data, snapshot }
    })
}

const S3_ENV: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")];

/// Runs the full archive story against one store URL.
fn exercise(url: &str, endpoint: Option<&str>, env: &[(&str, &str)]) {
    let src = source();
    let id = src.snapshot.manifest.id.as_str();
    let with_endpoint = |args: &[&str], data_dir: &Path| {
        let mut args: Vec<&str> = args.to_vec();
        if let Some(e) = endpoint {
            args.extend(["--endpoint", e]);
        }
        common::mrr_env(data_dir, &args, env)
    };

    // An interrupted push: some table files up, no manifest.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for (k, v) in env {
        // object_store reads credentials from the environment of this test process too.
        std::env::set_var(k, v);
    }
    let location = mrr::object_storage::open(url, endpoint).unwrap();
    let partial = &src.snapshot.manifest.tables[..3];
    rt.block_on(async {
        for t in partial {
            let key = location.key(&format!("{id}/{}", t.file));
            mrr::object_storage::upload_file(&location, &src.snapshot.dir.join(&t.file), &key, &|_| {}).await.unwrap();
        }
    });
    let (code, out, err) = with_endpoint(&["archive", "list", "--from", url, "--format", "json"], &src.data_dir);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["complete"], false, "an interrupted push is not complete: {out}");
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, err) = with_endpoint(&["archive", "restore", id, "--from", url], elsewhere.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no complete snapshot"), "{err}");

    // Pushing again finishes it without sending the intact files twice.
    let (code, out, err) = with_endpoint(&["archive", "push", id, "--to", url], &src.data_dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(id), "{out}");
    let row = out.lines().find(|l| l.contains(id)).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    let tables = src.snapshot.manifest.tables.len();
    assert!(cols.contains(&"3") && cols.contains(&(tables - 3).to_string().as_str()), "uploaded/already_there: {out}");
    let (code, out, _) = with_endpoint(&["archive", "list", "--from", url, "--format", "json"], &src.data_dir);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["complete"], true, "{out}");
    assert_eq!(listed[0]["files"].as_u64().unwrap() as usize, tables + 1);

    // Restored elsewhere, byte for byte.
    let (code, out, err) = with_endpoint(&["archive", "restore", id, "--from", url], elsewhere.path());
    assert_eq!(code, 0, "{err}");
    let restored = PathBuf::from(out.trim());
    for entry in std::fs::read_dir(&src.snapshot.dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let name = entry.file_name();
            assert_eq!(std::fs::read(entry.path()).unwrap(), std::fs::read(restored.join(&name)).unwrap(), "{name:?}");
        }
    }
    let (code, _, err) = common::mrr(elsewhere.path(), &["snapshots", "verify", "--snapshot", id]);
    assert_eq!(code, 0, "{err}");
    // Restoring again is a no-op; a different local snapshot under the same id is refused.
    let (code, _, err) = with_endpoint(&["archive", "restore", id, "--from", url], elsewhere.path());
    assert_eq!(code, 0, "{err}");
    let other = tempfile::tempdir().unwrap();
    let clash = other.path().join("snapshots").join(id);
    std::fs::create_dir_all(&clash).unwrap();
    let mut manifest = src.snapshot.manifest.clone();
    manifest.pulled_at = "2000-01-01T00:00:00Z".into();
    std::fs::write(clash.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let (code, _, err) = with_endpoint(&["archive", "restore", id, "--from", url], other.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read_dir(&clash).unwrap().count(), 1, "the local folder is untouched");

    // A corrupted object: the restore names it and leaves nothing behind.
    let victim = &src.snapshot.manifest.tables[1];
    let key = location.key(&format!("{id}/{}", victim.file));
    rt.block_on(location.store.put(&key, b"not the parquet file you archived".to_vec().into())).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (code, _, err) = with_endpoint(&["archive", "restore", id, "--from", url], fresh.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&victim.file) && err.contains("is corrupt"), "{err}");
    assert!(!fresh.path().join("snapshots").join(id).exists(), "nothing restored");
    let leftovers: Vec<_> = std::fs::read_dir(fresh.path().join("snapshots")).map(|d| d.count()).into_iter().collect();
    assert!(leftovers.iter().all(|n| *n == 0), "no temporary folders left");

    // Prune: a dry run by default, then for real.
    let (code, out, _) =
        with_endpoint(&["archive", "prune", "--from", url, "--keep-daily", "0", "--keep-monthly", "0"], &src.data_dir);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("delete  {id} (dry run")), "{out}");
    let (code, out, _) = with_endpoint(
        &["archive", "prune", "--from", url, "--keep-daily", "0", "--keep-monthly", "0", "--yes"],
        &src.data_dir,
    );
    assert_eq!(code, 0);
    assert!(out.contains(&format!("deleted {id}")), "{out}");
    let (_, out, _) = with_endpoint(&["archive", "list", "--from", url, "--format", "json"], &src.data_dir);
    assert_eq!(out.trim(), "[]", "{out}");
}

#[test]
fn local_filesystem_store() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!("file://{}/archive", dir.path().display()), None, &[]);
}

#[test]
fn s3_compatible_store_moto() {
    let server = common::PyServer::start("moto_server", &["-H", "127.0.0.1", "-p", "{port}"], "moto.log");
    assert_eq!(common::send(server.port, "PUT", "/mrr-archive", &[], b"").unwrap().status, 200, "bucket created");
    exercise("s3://mrr-archive/snapshots", Some(&server.url()), &S3_ENV);
}

#[test]
#[ignore = "blocked, issue 9: object_store's GCS client speaks the XML API; gcp-storage-emulator 2026.7.19 \
            implements only PUT and GET of an object there, without the ETag header object_store requires, \
            and no XML list or delete (and rejects the %2D that object_store writes for '-' in bucket names)"]
fn gcs_emulator_store() {
    let server = common::PyServer::start(
        "gcp-storage-emulator",
        &["start", "-H", "127.0.0.1", "--port", "{port}", "--default-bucket", "mrrarchive", "--in-memory"],
        "gcs.log",
    );
    exercise("gs://mrrarchive/snapshots", Some(&server.url()), &[]);
}
