//! `mrr archive`: snapshots to object storage and back, byte for byte.
//!
//! Layout: `<url>/<snapshot id>/<table>.parquet` and `<url>/<snapshot id>/manifest.json`.
//! The manifest goes up last and only after every table file was read back and its sha256
//! matched, so an archived snapshot with a manifest is complete by construction; one
//! without is an interrupted push, listed as incomplete and finished by pushing again
//! (files already there and intact are not sent twice). A restore downloads into a
//! temporary folder, checks every file against the manifest, and renames the folder into
//! place; it never overwrites a different local snapshot with the same id.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{bad_input, Failure};
use crate::object_storage::Location;
use crate::snapshot::{hex, Manifest, Snapshot, MANIFEST};

/// One archived snapshot as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Archived {
    pub id: String,
    /// Has its manifest: every file was pushed and verified.
    pub complete: bool,
    pub files: usize,
    pub bytes: u64,
    pub pulled_at: Option<String>,
    pub rows: Option<u64>,
}

/// What a push did for one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Pushed {
    pub id: String,
    pub uploaded: usize,
    pub already_there: usize,
    pub bytes: u64,
}

/// sha256 of an object, streamed.
async fn remote_sha256(location: &Location, key: &ObjectPath) -> anyhow::Result<Option<(String, u64)>> {
    let got = match location.store.get(key).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", location.url_of(key)))),
    };
    let mut stream = got.into_stream();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading {}", location.url_of(key)))?;
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Some((hex(&hasher.finalize()), bytes)))
}

/// Pushes one snapshot: table files (skipping intact ones), each verified by reading it
/// back, then the manifest.
pub async fn push(location: &Location, snapshot: &Snapshot) -> anyhow::Result<Pushed> {
    crate::snapshot::verify(snapshot).context("the local snapshot must verify before it is archived")?;
    let id = &snapshot.manifest.id;
    let total: u64 = snapshot.manifest.tables.iter().map(|t| t.bytes).sum();
    let bar = crate::progress::bar(total, "archiving");
    let mut out = Pushed { id: id.clone(), uploaded: 0, already_there: 0, bytes: 0 };
    for t in &snapshot.manifest.tables {
        let key = location.key(&format!("{id}/{}", t.file));
        if remote_sha256(location, &key).await?.is_some_and(|(sha, _)| sha == t.sha256) {
            out.already_there += 1;
            bar.inc(t.bytes);
            continue;
        }
        let file = snapshot.dir.join(&t.file);
        crate::object_storage::upload_file(location, &file, &key, &|n| bar.inc(n)).await?;
        match remote_sha256(location, &key).await? {
            Some((sha, _)) if sha == t.sha256 => {}
            other => {
                return Err(anyhow::anyhow!(
                    "{} does not match {} after upload (sha256 {}, expected {})",
                    location.url_of(&key),
                    file.display(),
                    other.map(|(s, _)| s).unwrap_or_else(|| "missing".into()),
                    t.sha256
                ))
            }
        }
        out.uploaded += 1;
        out.bytes += t.bytes;
    }
    let manifest = std::fs::read(snapshot.dir.join(MANIFEST))?;
    let key = location.key(&format!("{id}/{MANIFEST}"));
    location.store.put(&key, manifest.into()).await.with_context(|| format!("writing {}", location.url_of(&key)))?;
    bar.finish_and_clear();
    Ok(out)
}

/// The archived manifest of a snapshot, parsed and as stored.
async fn read_manifest(location: &Location, id: &str) -> anyhow::Result<Option<(Manifest, bytes::Bytes)>> {
    let key = location.key(&format!("{id}/{MANIFEST}"));
    match location.store.get(&key).await {
        Ok(g) => {
            let bytes = g.bytes().await?;
            let manifest = serde_json::from_slice(&bytes)
                .map_err(|e| bad_input(format!("{}: corrupt manifest ({e})", location.url_of(&key))))?;
            Ok(Some((manifest, bytes)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", location.url_of(&key)))),
    }
}

/// Every snapshot under the URL, complete or not, oldest first.
pub async fn list(location: &Location) -> anyhow::Result<Vec<Archived>> {
    let prefix = (!location.prefix.as_ref().is_empty()).then_some(&location.prefix);
    let mut objects = location.store.list(prefix);
    let mut by_id: BTreeMap<String, (usize, u64, bool)> = BTreeMap::new();
    let depth = location.prefix.parts().count();
    while let Some(meta) = objects.next().await {
        let meta = meta.with_context(|| format!("listing {}", location.url))?;
        let parts: Vec<String> = meta.location.parts().map(|p| p.as_ref().to_string()).collect();
        if parts.len() != depth + 2 {
            continue;
        }
        let entry = by_id.entry(parts[depth].clone()).or_default();
        entry.0 += 1;
        entry.1 += meta.size;
        entry.2 |= parts[depth + 1] == MANIFEST;
    }
    let mut out = Vec::new();
    for (id, (files, bytes, complete)) in by_id {
        let manifest = if complete { read_manifest(location, &id).await?.map(|(m, _)| m) } else { None };
        out.push(Archived {
            pulled_at: manifest.as_ref().map(|m| m.pulled_at.clone()),
            rows: manifest.as_ref().map(|m| m.tables.iter().map(|t| t.rows).sum()),
            id,
            complete,
            files,
            bytes,
        });
    }
    Ok(out)
}

/// Restores a complete archived snapshot into `<data-dir>/snapshots/<id>`.
pub async fn restore(location: &Location, id: &str, data_dir: &std::path::Path) -> anyhow::Result<Snapshot> {
    let (manifest, manifest_bytes) = read_manifest(location, id).await?.ok_or_else(|| {
        bad_input(format!(
            "{} has no complete snapshot {id} (no manifest; an interrupted push? push it again)",
            location.url
        ))
    })?;
    let target = crate::snapshot::snapshots_dir(data_dir).join(id);
    if target.exists() {
        let local = Snapshot::open(&target)?;
        if local.manifest == manifest {
            crate::snapshot::verify(&local)?;
            tracing::info!("snapshot {id} is already here and verifies; nothing to restore");
            return Ok(local);
        }
        return Err(bad_input(format!(
            "{} already holds a different snapshot with id {id}; refusing to overwrite it",
            target.display()
        )));
    }
    let dir = crate::atomic_dir::AtomicDir::create(&target)?;
    let total: u64 = manifest.tables.iter().map(|t| t.bytes).sum();
    let bar = crate::progress::bar(total, "restoring");
    for t in &manifest.tables {
        let key = location.key(&format!("{id}/{}", t.file));
        let path = dir.path().join(&t.file);
        let got = location.store.get(&key).await.with_context(|| format!("reading {}", location.url_of(&key)))?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading {}", location.url_of(&key)))?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
            bar.inc(chunk.len() as u64);
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        let sha = hex(&hasher.finalize());
        if sha != t.sha256 || bytes != t.bytes {
            return Err(Failure::CheckFailed(format!(
                "{} is corrupt: sha256 {sha} ({bytes} bytes), the manifest says {} ({} bytes); nothing was restored",
                location.url_of(&key),
                t.sha256,
                t.bytes
            ))
            .into());
        }
    }
    std::fs::write(dir.path().join(MANIFEST), &manifest_bytes)?;
    bar.finish_and_clear();
    let dir = dir.commit()?;
    let snapshot = Snapshot::open(&dir)?;
    crate::snapshot::verify(&snapshot)?;
    Ok(snapshot)
}

/// Which complete archived snapshots a retention policy keeps: the newest of each of the
/// last `daily` days and of the last `monthly` months that have one; the rest go.
pub fn plan_prune(archived: &[Archived], daily: usize, monthly: usize) -> (Vec<String>, Vec<String>) {
    let mut complete: Vec<&Archived> = archived.iter().filter(|a| a.complete).collect();
    complete.sort_by(|a, b| b.pulled_at.cmp(&a.pulled_at).then(b.id.cmp(&a.id)));
    let mut keep = BTreeSet::new();
    for (width, count) in [(10, daily), (7, monthly)] {
        let mut seen = BTreeSet::new();
        for a in &complete {
            let period = a.pulled_at.as_deref().unwrap_or(&a.id).chars().take(width).collect::<String>();
            if seen.len() < count && seen.insert(period) {
                keep.insert(a.id.clone());
            }
        }
    }
    let delete = complete.iter().filter(|a| !keep.contains(&a.id)).map(|a| a.id.clone()).collect();
    (keep.into_iter().collect(), delete)
}

/// Deletes every object of an archived snapshot (manifest first, so it stops being listed
/// as complete at once).
pub async fn delete(location: &Location, id: &str) -> anyhow::Result<()> {
    let manifest = location.key(&format!("{id}/{MANIFEST}"));
    match location.store.delete(&manifest).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {}", location.url_of(&manifest)))),
    }
    let prefix = location.key(id);
    let mut objects = location.store.list(Some(&prefix));
    while let Some(meta) = objects.next().await {
        let meta = meta?;
        location
            .store
            .delete(&meta.location)
            .await
            .with_context(|| format!("deleting {}", location.url_of(&meta.location)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(id: &str, at: &str) -> Archived {
        Archived { id: id.into(), complete: true, files: 1, bytes: 1, pulled_at: Some(at.into()), rows: None }
    }

    #[test]
    fn retention_keeps_the_newest_per_day_and_month() {
        let archived = vec![
            a("a", "2026-09-03T10:00:00Z"),
            a("b", "2026-10-30T10:00:00Z"),
            a("c", "2026-11-20T09:00:00Z"),
            a("d", "2026-11-20T18:00:00Z"),
            a("e", "2026-11-21T08:00:00Z"),
            Archived { complete: false, ..a("f", "2026-11-22T08:00:00Z") },
        ];
        let (keep, delete) = plan_prune(&archived, 2, 2);
        assert_eq!(keep, ["b", "d", "e"], "days: e, d; months: e (November), b (October)");
        assert_eq!(delete, ["c", "a"]);
        let (keep, _) = plan_prune(&archived, 0, 0);
        assert!(keep.is_empty());
    }
}
