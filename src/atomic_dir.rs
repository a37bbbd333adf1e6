//! Directories that appear complete or not at all: written under a hidden temporary
//! name beside the target and renamed into place, so an interrupted run leaves no
//! partial output and never touches what is already saved. (A kill -9 can leave a hidden
//! `.NAME.tmp-*` folder behind; it is never mistaken for output.)

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A directory being written; removed on drop unless [`AtomicDir::commit`] ran.
pub struct AtomicDir {
    temp: tempfile::TempDir,
    target: PathBuf,
}

impl AtomicDir {
    /// Starts writing `target`, which must not exist yet.
    pub fn create(target: &Path) -> anyhow::Result<Self> {
        if target.exists() {
            return Err(crate::error::bad_input(format!(
                "{} already exists; refusing to overwrite it (choose another path or remove it first)",
                target.display()
            )));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = target.file_name().with_context(|| format!("{} has no folder name", target.display()))?;
        // Same parent, so the final rename never crosses file systems.
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
        Ok(AtomicDir { temp, target: target.to_path_buf() })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Makes the directory visible under its final name.
    pub fn commit(self) -> anyhow::Result<PathBuf> {
        if self.target.exists() {
            anyhow::bail!("{} appeared while writing; refusing to overwrite it", self.target.display());
        }
        let temp = self.temp.keep();
        std::fs::rename(&temp, &self.target).with_context(|| {
            let _ = std::fs::remove_dir_all(&temp);
            format!("renaming {} to {}", temp.display(), self.target.display())
        })?;
        Ok(self.target)
    }
}

/// Writes a pretty JSON file, newline-terminated, that appears complete or not at all (temp
/// file, fsync, rename).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing into {}", dir.display()))?;
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    std::io::Write::write_all(&mut tmp.as_file(), &bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_atomically_and_cleans_up_on_failure() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        {
            let dir = AtomicDir::create(&target).unwrap();
            std::fs::write(dir.path().join("a"), "x").unwrap();
            // dropped without commit
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "temp folder removed");
        let dir = AtomicDir::create(&target).unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        dir.commit().unwrap();
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "x");
        let err = AtomicDir::create(&target).err().unwrap();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }
}
