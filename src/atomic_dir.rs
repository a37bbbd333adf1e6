//! Directories that appear complete or not at all: written under a hidden temporary
//! name beside the target and renamed into place, so an interrupted run leaves no
//! partial output and never touches what is already saved.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A directory being written; removed on drop unless [`AtomicDir::commit`] ran.
pub struct AtomicDir {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
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
        let temp = parent.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).with_context(|| format!("removing stale {}", temp.display()))?;
        }
        std::fs::create_dir(&temp).with_context(|| format!("creating {}", temp.display()))?;
        Ok(AtomicDir { temp, target: target.to_path_buf(), committed: false })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Makes the directory visible under its final name.
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        if self.target.exists() {
            anyhow::bail!("{} appeared while writing; refusing to overwrite it", self.target.display());
        }
        std::fs::rename(&self.temp, &self.target)
            .with_context(|| format!("renaming {} to {}", self.temp.display(), self.target.display()))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
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
