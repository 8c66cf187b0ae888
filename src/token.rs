//! The API token that machines present (`Authorization: Bearer <token>`):
//! Alertmanager's webhook, `camera reset`, scripts. It lives in
//! `api.token_file` (created at install by the package, or here with a
//! random value when missing), is re-read when the file changes (rotating
//! it needs no restart), and is compared in constant time.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use anyhow::Context as _;

/// Reads the token of `path`, trimmed; `None` if the file is missing,
/// unreadable or empty (for clients).
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Compares a presented secret with ours in time independent of where they
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What identifies a version of the file without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// The daemon's token: from its file, re-read whenever the file changes.
#[derive(Debug)]
pub struct ApiToken {
    path: Option<PathBuf>,
    cached: RwLock<(Stamp, Option<String>)>,
}

impl ApiToken {
    /// The token of `path`, creating the file (0600, random token) when it
    /// does not exist. An unreadable or empty file is an error: the caller
    /// logs it, and mutations are refused until the file is fixed (it is
    /// re-read on every check).
    pub fn open(path: &Path) -> anyhow::Result<ApiToken> {
        if !path.exists() {
            let token = random()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::durable::write_atomic(path, format!("{token}\n").as_bytes())
                .with_context(|| format!("creating {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new API token");
        }
        let t = ApiToken {
            path: Some(path.to_path_buf()),
            cached: RwLock::new((None, None)),
        };
        match t.current() {
            Some(_) => Ok(t),
            None => Err(anyhow::anyhow!("{} is empty or unreadable", path.display())),
        }
    }

    /// A token that never changes (tests, and a daemon whose file is broken
    /// at start: a random value nobody knows, until the file is fixed).
    pub fn fixed(token: impl Into<String>) -> ApiToken {
        ApiToken {
            path: None,
            cached: RwLock::new((None, Some(token.into()))),
        }
    }

    /// No token at all: every change is refused.
    pub fn none() -> ApiToken {
        ApiToken {
            path: None,
            cached: RwLock::new((None, None)),
        }
    }

    /// A broken file at start: mutations are refused until it is readable.
    pub fn watching(path: &Path) -> ApiToken {
        ApiToken {
            path: Some(path.to_path_buf()),
            cached: RwLock::new((None, None)),
        }
    }

    /// The token now, re-read if the file changed since the last look.
    pub fn current(&self) -> Option<String> {
        let Some(path) = &self.path else {
            return self.cached.read().ok()?.1.clone().filter(|t| !t.is_empty());
        };
        let now = stamp(path);
        if let Ok(c) = self.cached.read() {
            if c.0.is_some() && c.0 == now {
                return c.1.clone();
            }
        }
        let token = read(path);
        if let Ok(mut c) = self.cached.write() {
            if c.0.is_some() && c.1 != token {
                tracing::info!(path = %path.display(), "API token file changed; the new token applies");
            }
            *c = (now, token.clone());
        }
        token
    }

    /// Whether `presented` is the token (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        self.current()
            .is_some_and(|t| constant_time_eq(presented.trim().as_bytes(), t.as_bytes()))
    }
}

/// 32 random bytes from the kernel, in hex.
pub fn random() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_token_file_applies_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-token");
        std::fs::write(&path, "old-token\n").unwrap();
        let t = ApiToken::open(&path).unwrap();
        assert!(t.matches("old-token"));
        assert!(!t.matches("new-token"));
        // Rotation as an admin does it: a new file renamed over the old one.
        let tmp = dir.path().join("api-token.new");
        std::fs::write(&tmp, "new-token\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(t.matches("new-token"));
        assert!(!t.matches("old-token"));
    }

    #[test]
    fn a_missing_file_is_created_and_an_empty_one_refuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api-token");
        let t = ApiToken::open(&path).unwrap();
        let token = read(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert!(t.matches(&token));
        std::fs::write(&path, "\n").unwrap();
        assert!(ApiToken::open(&path).is_err());
        let w = ApiToken::watching(&path);
        assert!(!w.matches(""), "an empty token matches nothing");
        std::fs::write(&path, "fixed-now\n").unwrap();
        assert!(w.matches("fixed-now"));
    }

    #[test]
    fn comparison_needs_the_same_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
