//! This client's device identity: its Ed25519 key (`<state>/identity/device.key`, 0600,
//! generated on first use) and the device token the gateway issued at pairing
//! (`<state>/identity/device-token.json`, 0600).

use std::path::{Path, PathBuf};

use pincer_identity::{DeviceId, DeviceKey};
use serde::{Deserialize, Serialize};

use crate::CliError;

/// The key and, once paired, the device token.
#[derive(Debug)]
pub struct DeviceIdentity {
    key: DeviceKey,
    token_path: Option<PathBuf>,
    token: Option<StoredToken>,
}

/// The token file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredToken {
    device_id: String,
    token: String,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Loads (or creates) the identity kept in `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Self, CliError> {
        let key_path = DeviceKey::path_in(state_dir);
        let (key, _) = DeviceKey::load_or_generate(&key_path)
            .map_err(|e| CliError::Identity(e.to_string()))?;
        let token_path = key_path.with_file_name("device-token.json");
        let token = match std::fs::read(&token_path) {
            Ok(bytes) => {
                let stored: StoredToken = serde_json::from_slice(&bytes).map_err(|e| {
                    CliError::Identity(format!(
                        "{} is not a device token file ({e}); delete it to pair again",
                        token_path.display()
                    ))
                })?;
                // A token saved for another key (the key file was replaced) is useless.
                (stored.device_id == key.device_id().to_string()).then_some(stored)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(CliError::Identity(format!(
                    "cannot read {}: {e}",
                    token_path.display()
                )));
            }
        };
        Ok(Self {
            key,
            token_path: Some(token_path),
            token,
        })
    }

    /// An identity that lives only in memory (tests, benchmarks).
    pub fn ephemeral(key: DeviceKey) -> Self {
        Self {
            key,
            token_path: None,
            token: None,
        }
    }

    /// The key.
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// The device id.
    pub fn device_id(&self) -> DeviceId {
        self.key.device_id()
    }

    /// The device token, if paired.
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.token.as_str())
    }

    /// Keeps a token the gateway issued (and writes it, 0600).
    pub fn store_token(&mut self, token: &str) -> Result<(), CliError> {
        let stored = StoredToken {
            device_id: self.device_id().to_string(),
            token: token.to_owned(),
        };
        if let Some(path) = &self.token_path {
            let bytes = serde_json::to_vec_pretty(&stored)
                .map_err(|e| CliError::Identity(e.to_string()))?;
            pincer_runtime::paths::write_private_file(path, &bytes)?;
        }
        self.token = Some(stored);
        Ok(())
    }

    /// Forgets a token the gateway no longer accepts.
    pub fn forget_token(&mut self) {
        self.token = None;
        if let Some(path) = &self.token_path {
            let _ = std::fs::remove_file(path);
        }
    }
}
