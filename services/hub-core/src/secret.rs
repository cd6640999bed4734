//! The hub secret: 32 or more random bytes in `HUB_SECRET_FILE`, the one key
//! behind every pseudonym and every wrapped data key.
//!
//! Each use gets its own subkey, derived as HMAC-SHA256(secret, label), so a
//! person key can never be confused with a request digest or a wrapping key.
//! A service never creates it: one that is missing, unreadable or readable
//! by other users stops the service at start (see [`HubSecret::load`]).

use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, os::unix::fs::PermissionsExt, path::Path};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::Error;

/// Fewest bytes a secret may have.
pub const MIN_SECRET_BYTES: usize = 32;

/// The loaded secret. `Debug` never shows it.
#[derive(Clone)]
pub struct HubSecret(Vec<u8>);

impl std::fmt::Debug for HubSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubSecret(<redacted>)")
    }
}

impl HubSecret {
    /// A secret from bytes (tests, tools). Must be at least 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(Error::config(
                "HUB_SECRET_FILE",
                format!(
                    "holds {} bytes; at least {MIN_SECRET_BYTES} random bytes are required",
                    bytes.len()
                ),
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Reads the secret at `path`. Refuses to go on (contract section 1)
    /// when the file is missing, unreadable, readable by group or others,
    /// or too short: a mis-mounted secret must stop the service, never
    /// start it writing pseudonyms no one else can match.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let setting = |reason: String| {
            Error::config("HUB_SECRET_FILE", format!("{}: {reason}", path.display()))
        };
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                setting(
                    "does not exist; create one with `hubctl secret create <file>` \
                     (or restore the hub's secret from where it is kept)"
                        .into(),
                )
            } else {
                setting(format!("cannot read: {e}"))
            }
        })?;
        if !meta.is_file() {
            return Err(setting("is not a file".into()));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(setting(format!(
                "is readable by other users (mode {:o}); run `chmod 600` on it",
                mode & 0o777
            )));
        }
        let bytes = fs::read(path).map_err(|e| setting(format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes).map_err(|_| {
            setting(format!(
                "holds {} bytes; at least {MIN_SECRET_BYTES} random bytes are required",
                bytes.len()
            ))
        })
    }

    /// Creates a new secret at `path` (32 random bytes, mode 0600, its
    /// folder made if need be), refusing to replace one that exists: for
    /// `hubctl secret create`, `make run` and the tests.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let setting = |reason: String| {
            Error::config("HUB_SECRET_FILE", format!("{}: {reason}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| setting(format!("cannot create its folder: {e}")))?;
        }
        // The whole secret is written to a file of its own, then linked
        // into place, which fails if one is there: nobody ever reads a
        // half-written secret, and an existing one is never replaced.
        let mut bytes = [0u8; MIN_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let tmp = std::path::PathBuf::from(tmp_name);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&bytes).and_then(|_| file.sync_all()));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(setting(format!("cannot create: {e}")));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Self::from_bytes(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(setting(
                "already exists; a hub secret is never replaced (every pseudonym depends on it)"
                    .into(),
            )),
            Err(e) => Err(setting(format!("cannot create: {e}"))),
        }
    }

    /// The subkey for one use, named by `label`.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hub-subkey-v1\0");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_with_mode_0600_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/hub.secret");
        let a = HubSecret::create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), 32);
        let b = HubSecret::load(&path).unwrap();
        assert_eq!(a.derive("x"), b.derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"));
        let err = HubSecret::create(&path).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(HubSecret::load(&path).unwrap().derive("x"), a.derive("x"));
    }

    #[test]
    fn refuses_a_missing_secret_and_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.secret");
        let err = HubSecret::load(&path).unwrap_err().to_string();
        assert!(err.contains("HUB_SECRET_FILE"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(!path.exists());
        let err = HubSecret::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a file"), "{err}");
    }

    #[test]
    fn processes_creating_together_leave_one_whole_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/hub.secret");
        let created: Vec<_> = (0..16)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || HubSecret::create(&path).map(|s| s.derive("x")))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let won: Vec<_> = created.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "exactly one creator wins");
        assert_eq!(HubSecret::load(&path).unwrap().derive("x"), *won[0]);
        let left: Vec<_> = fs::read_dir(dir.path().join("var")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left");
    }

    #[test]
    fn refuses_a_group_or_world_readable_or_short_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.secret");
        fs::write(&path, [7u8; 32]).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = HubSecret::load(&path).unwrap_err().to_string();
            assert!(err.contains("readable by other users"), "{mode:o}: {err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(HubSecret::load(&path).is_ok());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, [7u8; 16]).unwrap();
        let err = HubSecret::load(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = HubSecret::from_bytes(&[0x41; 32]).unwrap();
        assert_eq!(format!("{s:?}"), "HubSecret(<redacted>)");
    }
}
