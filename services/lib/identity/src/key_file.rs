//! Saving and loading a [`DeviceKey`] in the state dir: mode 0600, never through a
//! symlink, never overwriting an existing key, refusing files others can read.
//!
//! File format (text, two lines): `pincer-device-key v1` and the base64url (no padding)
//! 32-byte Ed25519 seed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use crate::b64;
use crate::device_key::DeviceKey;
use crate::error::KeyFileError;

const HEADER: &str = "pincer-device-key v1";
/// Far above the real size (65 bytes); stops a huge file from being read.
const MAX_FILE_BYTES: u64 = 1024;

/// Whether [`DeviceKey::load_or_generate`] found a key or made a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The key file existed and was loaded.
    Loaded,
    /// No key file existed; a new key was generated and saved.
    Generated,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DeviceKey {
    /// Where the device key lives in a state dir: `<state_dir>/identity/device.key`.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("identity").join("device.key")
    }

    /// Writes the key to `path` with mode 0600, creating a missing parent directory with
    /// mode 0700. Refuses to replace an existing file or symlink at `path`.
    ///
    /// The key is written to a temporary file first and then linked into place, so `path`
    /// either does not exist or holds the complete key.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_at(parent))?;
        }
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let mut suffix = [0u8; 8];
        rand::rng().fill_bytes(&mut suffix);
        let tmp = parent.join(format!(".device-key-{}.tmp", hex::encode(suffix)));
        let result = write_new_private(&tmp, self).and_then(|()| link_into_place(&tmp, path));
        let cleanup = fs::remove_file(&tmp).map_err(io_at(&tmp));
        result?;
        cleanup?;
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_at(parent))
    }

    /// Reads the key at `path`. Refuses a symlink, anything but a regular file, and a file
    /// whose mode lets group or others read or write it; each error names the fix.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let before = path.symlink_metadata().map_err(io_at(path))?;
        check_metadata(path, &before)?;
        let file = File::open(path).map_err(io_at(path))?;
        let opened = file.metadata().map_err(io_at(path))?;
        if opened.dev() != before.dev() || opened.ino() != before.ino() {
            return Err(KeyFileError::Raced {
                path: path.to_owned(),
            });
        }
        check_metadata(path, &opened)?;
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io_at(path))?;
        let seed = parse(&text).map_err(|reason| KeyFileError::Malformed {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Self::from_seed(*seed))
    }

    /// Loads the key at `path`, or generates and saves one if no file exists there.
    pub fn load_or_generate(path: &Path) -> Result<(Self, KeyOrigin), KeyFileError> {
        match Self::load(path) {
            Ok(key) => Ok((key, KeyOrigin::Loaded)),
            Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate();
                match key.save(path) {
                    Ok(()) => Ok((key, KeyOrigin::Generated)),
                    // Another process created it first: use theirs.
                    Err(KeyFileError::AlreadyExists { .. }) => {
                        Self::load(path).map(|k| (k, KeyOrigin::Loaded))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

fn check_metadata(path: &Path, meta: &fs::Metadata) -> Result<(), KeyFileError> {
    if meta.file_type().is_symlink() {
        return Err(KeyFileError::Symlink {
            path: path.to_owned(),
        });
    }
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Creates `tmp` exclusively (O_EXCL: never through an existing file or symlink) with mode
/// 0600 and writes the key to it.
fn write_new_private(tmp: &Path, key: &DeviceKey) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_at(tmp))?;
    // The umask can only have removed bits; make the mode exactly 0600.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_at(tmp))?;
    let text = Zeroizing::new(format!("{HEADER}\n{}\n", b64::encode(key.seed())));
    file.write_all(text.as_bytes()).map_err(io_at(tmp))?;
    file.sync_all().map_err(io_at(tmp))
}

/// `link(2)` never replaces its target, so a key appearing meanwhile is not overwritten.
fn link_into_place(tmp: &Path, path: &Path) -> Result<(), KeyFileError> {
    fs::hard_link(tmp, path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            KeyFileError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn parse(text: &[u8]) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err("file too large");
    }
    let text = std::str::from_utf8(text).map_err(|_not_utf8| "not UTF-8 text")?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err("missing 'pincer-device-key v1' header");
    }
    let seed = lines
        .next()
        .and_then(|line| b64::decode_exact::<32>(line.trim()))
        .ok_or("second line is not a base64url 32-byte key")?;
    if lines.any(|line| !line.trim().is_empty()) {
        return Err("unexpected content after the key");
    }
    Ok(Zeroizing::new(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = DeviceKey::path_in(tmp.path());
        let key = DeviceKey::generate();
        key.save(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let loaded = DeviceKey::load(&path).unwrap();
        assert_eq!(loaded.device_id(), key.device_id());
        // Nothing else (no leftover temporary file) in the directory.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn save_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.key");
        DeviceKey::generate().save(&path).unwrap();
        let err = DeviceKey::generate().save(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn load_or_generate_generates_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = DeviceKey::path_in(tmp.path());
        let (first, origin) = DeviceKey::load_or_generate(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Generated);
        let (second, origin) = DeviceKey::load_or_generate(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(first.device_id(), second.device_id());
    }

    #[test]
    fn refuses_group_or_world_readable_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.key");
        DeviceKey::generate().save(&path).unwrap();
        for mode in [0o640, 0o604, 0o620, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = DeviceKey::load(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::TooOpen { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(DeviceKey::load(&path).is_ok());
    }

    #[test]
    fn refuses_symlinks_and_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.key");
        DeviceKey::generate().save(&real).unwrap();
        let link = tmp.path().join("device.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = DeviceKey::load(&link).unwrap_err();
        assert!(matches!(err, KeyFileError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"));
        // Saving through a (dangling) symlink is refused too.
        let dangling = tmp.path().join("dangling.key");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            DeviceKey::generate().save(&dangling),
            Err(KeyFileError::AlreadyExists { .. })
        ));
        assert!(!tmp.path().join("nowhere").exists());
        let err = DeviceKey::load(tmp.path()).unwrap_err();
        assert!(matches!(err, KeyFileError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn malformed_files_are_named_without_their_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.key");
        let secretish = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw";
        for body in [
            String::new(),
            format!("{secretish}\n"),
            format!("{HEADER}\n{secretish}x\n"),
            format!("{HEADER}\n{}\nextra\n", b64::encode(&[7; 32])),
            "x".repeat(4096),
        ] {
            let _ = fs::remove_file(&path);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            f.write_all(body.as_bytes()).unwrap();
            let err = DeviceKey::load(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::Malformed { .. }), "{err}");
            assert!(!err.to_string().contains(secretish), "{err}");
        }
    }
}
