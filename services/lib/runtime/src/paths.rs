//! The state directory (`~/.pincer`, `~/.pincer-<profile>`, or `/data` in containers) and
//! private file permissions: directories 0700, config and secret files 0600.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a state path could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// `HOME` is unset and no state directory was given.
    #[error("HOME is not set; pass --state-dir or set PINCER_STATE_DIR")]
    NoHome,
    /// A profile name is not a plain name.
    #[error("profile name {0:?} is invalid; use letters, digits, '-' and '_' only")]
    BadProfile(String),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PathError + '_ {
    move |source| PathError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The state directory: `$PINCER_STATE_DIR`, else `~/.pincer` or `~/.pincer-<profile>`.
pub fn state_dir(profile: Option<&str>) -> Result<PathBuf, PathError> {
    if let Some(dir) = std::env::var_os("PINCER_STATE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").ok_or(PathError::NoHome)?;
    let name = match profile {
        None => ".pincer".to_owned(),
        Some(p) => {
            let plain = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !plain {
                return Err(PathError::BadProfile(p.to_owned()));
            }
            format!(".pincer-{p}")
        }
    };
    Ok(PathBuf::from(home).join(name))
}

/// Creates `dir` (and parents) if needed and sets it to 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Writes `contents` to `path` with mode 0600, replacing it atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), PathError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The file mode bits of `path`.
pub fn mode(path: &Path) -> Result<u32, PathError> {
    Ok(std::fs::metadata(path)
        .map_err(io(path))?
        .permissions()
        .mode()
        & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_and_file_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir).unwrap(), 0o700);
        let file = dir.join("pincer.json5");
        write_private_file(&file, b"{}").unwrap();
        assert_eq!(mode(&file).unwrap(), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"{}");
    }

    #[test]
    fn profile_names_are_plain() {
        assert!(matches!(
            state_dir(Some("../x")),
            Err(PathError::BadProfile(_)) | Ok(_)
        ));
        if std::env::var_os("PINCER_STATE_DIR").is_none() {
            assert!(matches!(
                state_dir(Some("../x")),
                Err(PathError::BadProfile(_))
            ));
            assert!(state_dir(Some("work")).unwrap().ends_with(".pincer-work"));
        }
    }
}
