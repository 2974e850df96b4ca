//! `pincer config validate`: parse and validate the file, then check that every secret it
//! references can be resolved here (without printing any value).

use std::process::ExitCode;

use pincer_runtime::secret::SecretKind;
use pincer_runtime::{Config, ProcessSecrets, SecretRef};

use crate::CliError;
use crate::context::Context;

/// Validates the config; exits 1 when it is invalid or a secret is missing.
pub fn validate(ctx: &Context) -> Result<ExitCode, CliError> {
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    let mut missing = 0;
    for (what, reference) in secret_refs(&config) {
        let generated = matches!(reference.kind(), SecretKind::Env(name) if name.starts_with("PINCER_") && name.ends_with("_CREDENTIAL"));
        match reference.resolve(&ProcessSecrets) {
            Ok(_) => println!("ok      {what} ({})", reference.describe()),
            Err(_) if generated => println!("ok      {what} (generated per run by `pincer up`)"),
            Err(e) => {
                missing += 1;
                println!("missing {what}: {e}");
            }
        }
    }
    if missing > 0 {
        println!(
            "{}: valid, but {missing} secret(s) cannot be resolved in this environment",
            ctx.config_path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: valid", ctx.config_path.display());
    Ok(ExitCode::SUCCESS)
}

/// Every secret reference in the config, with its key path.
pub fn secret_refs(config: &Config) -> Vec<(String, &SecretRef)> {
    let mut out = Vec::new();
    if let pincer_runtime::config::validate::GatewayAuth::Token(token) = &config.gateway.auth {
        out.push(("gateway.auth.token".to_owned(), token));
    }
    out.extend([
        (
            "services.credentials.gateway".to_owned(),
            &config.services.credentials.gateway,
        ),
        (
            "services.credentials.bridge".to_owned(),
            &config.services.credentials.bridge,
        ),
        (
            "services.credentials.agent".to_owned(),
            &config.services.credentials.agent,
        ),
        (
            "services.credentials.executor".to_owned(),
            &config.services.credentials.executor,
        ),
    ]);
    for (id, p) in &config.providers {
        if let Some(key) = &p.api_key {
            out.push((format!("models.providers.{id}.apiKey"), key));
        }
    }
    out.extend(config.channel_secrets());
    out
}

/// `pincer gateway hash-password`: one line from stdin → an Argon2id PHC string on stdout.
pub fn hash_password() -> Result<ExitCode, CliError> {
    use argon2::PasswordHasher;
    use rand::RngCore;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        eprintln!("pincer: use a password of at least 12 characters");
        return Ok(ExitCode::FAILURE);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| CliError::Up(format!("salt: {e}")))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| CliError::Up(format!("hashing failed: {e}")))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
