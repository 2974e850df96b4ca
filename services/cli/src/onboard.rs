//! First start: writes a config into the state directory (0600) when none exists. The demo
//! config points at the fake LLM and fake Telegram that `pincer up --demo` starts; the
//! template is for real use and reads keys from environment variables.

use std::path::Path;

use rand::RngCore;

use crate::CliError;

/// Ports the demo fakes listen on.
pub const DEMO_LLM_PORT: u16 = 18801;
/// See [`DEMO_LLM_PORT`].
pub const DEMO_TELEGRAM_PORT: u16 = 18802;
/// The demo bot token (the fake accepts only this one).
pub const DEMO_BOT_TOKEN: &str = "123456:PINCER-DEMO-TOKEN";
/// The Telegram user id allowed to DM the demo bot.
pub const DEMO_USER_ID: &str = "1001";

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The demo configuration text.
pub fn demo_config(token: &str) -> String {
    format!(
        r#"// Pincer demo: a fake LLM and a fake Telegram Bot API started by `pincer up --demo`.
// No API key or bot token is needed. Talk to it with `pincer chat --demo`, or as Telegram
// user {DEMO_USER_ID} through the fake's control API (see README.md).
{{
  gateway: {{ port: 18789, bind: "loopback", auth: {{ mode: "token", token: "{token}" }} }},
  models: {{
    providers: {{
      fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:{DEMO_LLM_PORT}/v1", apiKey: "demo-key" }},
    }},
  }},
  agents: {{ defaults: {{ model: "fake/demo" }} }},
  channels: {{
    telegram: {{
      botToken: "{DEMO_BOT_TOKEN}",
      apiBaseUrl: "http://127.0.0.1:{DEMO_TELEGRAM_PORT}",
      dmPolicy: "allowlist",
      allowFrom: ["{DEMO_USER_ID}"],
      pollTimeoutSeconds: 10,
    }},
  }},
{executor}}}
"#,
        executor = executor_section()
    )
}

/// The `executor` section: the jail (no Docker needed). As root, the jail runs commands as
/// uid 10001, which cannot enter a private home directory, so the workspaces go to
/// `/var/lib/pincer/workspaces` instead of the state directory.
fn executor_section() -> String {
    let root = if nix::unistd::geteuid().is_root() {
        "  // As root, commands run as uid 10001, which cannot enter your home directory.\n  \
         executor: { backend: \"jail\", workspaceRoot: \"/var/lib/pincer/workspaces\" },\n"
    } else {
        "  executor: { backend: \"jail\" },\n"
    };
    format!(
        "  // Sandboxes: \"jail\" (this host's kernel, no Docker) or \"docker\" (a throwaway\n  \
         // container per call; build the image with `docker build -t pincer-sandbox:latest images/sandbox`).\n{root}"
    )
}

/// The template for real use.
pub fn template_config(token: &str) -> String {
    format!(
        r#"// Pincer configuration. Full reference: `pincer config schema`; docs/configuration.md.
// Secrets may be inline, "${{ENV_VAR}}", or {{ file: "/run/secrets/name" }}.
{{
  gateway: {{ port: 18789, bind: "loopback", auth: {{ mode: "token", token: "{token}" }} }},
  models: {{
    providers: {{
      anthropic: {{ api: "anthropic", baseUrl: "https://api.anthropic.com/v1", apiKey: "${{ANTHROPIC_API_KEY}}" }},
      openai: {{ api: "openai-chat", baseUrl: "https://api.openai.com/v1", apiKey: "${{OPENAI_API_KEY}}" }},
    }},
  }},
  agents: {{ defaults: {{ model: "anthropic/claude-sonnet-4-5" }} }},
  // To talk to Pincer on Telegram, create a bot with @BotFather and add:
  // channels: {{ telegram: {{ botToken: "${{TELEGRAM_BOT_TOKEN}}", owners: ["<your numeric user id>"] }} }},
  // Matrix, IRC and e-mail work the same way (docs/channels.md), e.g.
  // channels: {{ matrix: {{ homeserver: "https://matrix.example.org", userId: "@pincer:example.org",
  //                       password: "${{MATRIX_BOT_PASSWORD}}", owners: ["@you:example.org"] }} }},
{executor}}}
"#,
        executor = executor_section()
    )
}

/// Writes the demo or template config to `path` if it does not exist. Returns true when
/// it wrote one.
pub fn ensure_config(path: &Path, demo: bool) -> Result<bool, CliError> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        pincer_runtime::paths::ensure_private_dir(dir)?;
    }
    let token = random_token();
    let text = if demo {
        demo_config(&token)
    } else {
        template_config(&token)
    };
    pincer_runtime::paths::write_private_file(path, text.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configs_are_valid() {
        let token = random_token();
        assert_eq!(token.len(), 64);
        let demo = pincer_runtime::config::parse_config(&demo_config(&token), "demo").unwrap();
        assert!(demo.telegram.is_some());
        let template =
            pincer_runtime::config::parse_config(&template_config(&token), "template").unwrap();
        assert_eq!(
            template.agent.model.to_string(),
            "anthropic/claude-sonnet-4-5"
        );
    }
}
