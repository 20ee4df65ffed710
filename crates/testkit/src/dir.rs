//! The directory a server lives in: a temporary one deleted on drop, or one the caller chose.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Result;

/// A server's directory. A [`ServerDir::Temp`] is deleted when dropped; a [`ServerDir::Kept`]
/// directory is left on disk.
pub(crate) enum ServerDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl ServerDir {
    /// Creates the caller's directory (and its parents) if given, else a fresh temporary
    /// directory whose name starts with `prefix`. The path is always absolute, because servers
    /// change their working directory (redis `--dir`) and relative paths would then break.
    pub(crate) fn create(dir: Option<&Path>, prefix: &str) -> Result<ServerDir> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Ok(ServerDir::Kept(std::path::absolute(dir)?))
            }
            None => Ok(ServerDir::Temp(tempfile::Builder::new().prefix(prefix).tempdir()?)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            ServerDir::Temp(t) => t.path(),
            ServerDir::Kept(p) => p,
        }
    }
}

impl fmt::Debug for ServerDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerDir::Temp(t) => write!(f, "{} (temporary)", t.path().display()),
            ServerDir::Kept(p) => write!(f, "{}", p.display()),
        }
    }
}
