//! The gateway-level credential of operator clients: a shared token (constant-time
//! compare), a password (Argon2id verify), or nothing (loopback binds only; config
//! validation refuses `none` on any other bind).

use pincer_runtime::Secret;
use pincer_runtime::config::gateway::PasswordHash;

/// How operator clients authenticate, with the secret resolved.
#[derive(Debug, Clone)]
pub enum OperatorAuth {
    /// A shared token.
    Token(Secret),
    /// An Argon2id password hash.
    Password(PasswordHash),
    /// No shared secret.
    None,
}

/// What a client presented.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// A token.
    pub token: Option<String>,
    /// A password.
    pub password: Option<String>,
}

/// Why authentication failed (never contains what was presented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No or the wrong kind of credential.
    #[error("this gateway expects a {0}")]
    Missing(&'static str),
    /// Wrong value.
    #[error("wrong gateway {0}")]
    Wrong(&'static str),
}

impl OperatorAuth {
    /// Checks a presented credential. Password checks are deliberately slow (Argon2id):
    /// call from a blocking context.
    pub fn check(&self, presented: &Presented) -> Result<(), AuthFailure> {
        match self {
            Self::None => Ok(()),
            Self::Token(secret) => {
                let token = presented
                    .token
                    .as_deref()
                    .ok_or(AuthFailure::Missing("token"))?;
                if secret.matches(token.as_bytes()) {
                    Ok(())
                } else {
                    Err(AuthFailure::Wrong("token"))
                }
            }
            Self::Password(hash) => {
                use argon2::PasswordVerifier;
                let password = presented
                    .password
                    .as_deref()
                    .ok_or(AuthFailure::Missing("password"))?;
                let parsed = argon2::PasswordHash::new(hash.as_str())
                    .map_err(|_| AuthFailure::Wrong("password"))?;
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .map_err(|_| AuthFailure::Wrong("password"))
            }
        }
    }

    /// The credential kind, for rate limiting and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Password(_) => "password",
            Self::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str) -> PasswordHash {
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        let text = format!(
            "{{ gateway: {{ auth: {{ mode: \"password\", passwordHash: \"{phc}\" }} }}, models: {{ providers: {{ p: {{ api: \"anthropic\", baseUrl: \"http://127.0.0.1:9\" }} }} }}, agents: {{ defaults: {{ model: \"p/m\" }} }} }}"
        );
        match pincer_runtime::config::parse_config(&text, "t")
            .unwrap()
            .gateway
            .auth
        {
            pincer_runtime::config::validate::GatewayAuth::Password(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_and_password_checks() {
        let token = OperatorAuth::Token(Secret::new("a-token-of-enough-length-0123456789"));
        assert!(
            token
                .check(&Presented {
                    token: Some("a-token-of-enough-length-0123456789".into()),
                    password: None
                })
                .is_ok()
        );
        assert_eq!(
            token.check(&Presented::default()),
            Err(AuthFailure::Missing("token"))
        );
        assert_eq!(
            token.check(&Presented {
                token: Some("nope".into()),
                password: None
            }),
            Err(AuthFailure::Wrong("token"))
        );

        let password = OperatorAuth::Password(hash("correct horse"));
        assert!(
            password
                .check(&Presented {
                    token: None,
                    password: Some("correct horse".into())
                })
                .is_ok()
        );
        assert_eq!(
            password.check(&Presented {
                token: None,
                password: Some("wrong horse".into())
            }),
            Err(AuthFailure::Wrong("password"))
        );
        assert_eq!(
            password.check(&Presented {
                token: Some("x".into()),
                password: None
            }),
            Err(AuthFailure::Missing("password"))
        );
        assert!(OperatorAuth::None.check(&Presented::default()).is_ok());
    }
}
