//! The config file's promises: unknown keys stop the start, every error names the key path,
//! the bad value and the fix; secrets never print.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use pincer_runtime::config::{ConfigError, parse_config, schema_json};

const MINIMAL: &str = r#"{
  // comments and trailing commas are JSON5
  models: { providers: { openai: { api: "openai-chat", baseUrl: "https://api.openai.com/v1", apiKey: "${OPENAI_API_KEY}" } } },
  agents: { defaults: { model: "openai/gpt-4o-mini" } },
}"#;

fn error_text(text: &str) -> String {
    parse_config(text, "test.json5").unwrap_err().to_string()
}

#[test]
fn minimal_config_gets_safe_defaults() {
    let config = parse_config(MINIMAL, "test.json5").unwrap();
    assert_eq!(
        config.gateway.listen_addr(&[]).unwrap().to_string(),
        "127.0.0.1:18789"
    );
    assert!(config.gateway.auto_approve_local_devices);
    assert!(
        !config.gateway.chat_completions,
        "the OpenAI-compatible API is off by default"
    );
    assert_eq!(config.agent.model.to_string(), "openai/gpt-4o-mini");
    assert!(config.telegram.is_none());
    assert_eq!(
        config.services.gateway.listen.to_string(),
        "127.0.0.1:18790"
    );
    assert_eq!(config.executor.docker.memory_bytes, 512 * 1024 * 1024);
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let text = MINIMAL.replace("agents: {", "agents: { defualts: {}, ");
    let err = parse_config(&text, "test.json5").unwrap_err();
    match &err {
        ConfigError::Shape {
            path, message, fix, ..
        } => {
            assert_eq!(path, "agents.defualts");
            assert!(message.contains("defualts"), "{message}");
            assert!(fix.contains("spelling"));
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let nested = MINIMAL.replace("baseUrl:", "baseURL:");
    let text = error_text(&nested);
    assert!(
        text.contains("models.providers.openai") && text.contains("baseURL"),
        "{text}"
    );
}

#[test]
fn wrong_enum_value_names_path_and_choices() {
    let text = error_text(&MINIMAL.replace("openai-chat", "openai-chatt"));
    assert!(text.contains("models.providers.openai.api"), "{text}");
    assert!(
        text.contains("openai-chatt") && text.contains("anthropic"),
        "{text}"
    );
}

#[test]
fn syntax_errors_say_so() {
    assert!(error_text("{ gateway: ").contains("not valid JSON5"));
}

#[test]
fn model_must_name_a_defined_provider() {
    let text = error_text(&MINIMAL.replace("openai/gpt-4o-mini", "anthropic/claude"));
    assert!(
        text.contains("agents.defaults.model")
            && text.contains("\"anthropic\"")
            && text.contains("fix:"),
        "{text}"
    );
    let text = error_text(&MINIMAL.replace("openai/gpt-4o-mini", "gpt-4o-mini"));
    assert!(text.contains("<provider>/<model>"), "{text}");
}

#[test]
fn several_issues_are_reported_together() {
    let text = MINIMAL.replace(
        "agents: {",
        "gateway: { port: 0, bind: \"custom\" }, tools: { exec: { timeoutSeconds: 9999 } }, agents: {",
    );
    let text = error_text(&text);
    for needle in [
        "gateway.port",
        "gateway.customBindHost",
        "tools.exec.timeoutSeconds",
        "9999",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
}

#[test]
fn telegram_rules() {
    let with = |tg: &str| {
        MINIMAL.replace(
            "agents: {",
            &format!("channels: {{ telegram: {tg} }}, agents: {{"),
        )
    };
    let ok = parse_config(&with(r#"{ botToken: "${TG}", allowFrom: ["12345"] }"#), "t").unwrap();
    assert!(ok.telegram.is_some());
    assert!(error_text(&with("{ allowFrom: [] }")).contains("channels.telegram.botToken"));
    assert!(error_text(&with(r#"{ botToken: "x", dmPolicy: "open" }"#)).contains("requires \"*\""));
    assert!(error_text(&with(r#"{ botToken: "x", allowFrom: ["@alice"] }"#)).contains("numeric"));
    let pairing = parse_config(&with(r#"{ botToken: "x", dmPolicy: "pairing" }"#), "t").unwrap();
    assert!(pairing.telegram.is_some());
    let disabled = parse_config(&with(r#"{ enabled: false }"#), "t").unwrap();
    assert!(disabled.telegram.is_none());
}

#[test]
fn short_inline_gateway_token_is_refused_without_printing_it() {
    let text = error_text(&MINIMAL.replace(
        "agents: {",
        "gateway: { auth: { token: \"hunter2\" } }, agents: {",
    ));
    assert!(
        text.contains("gateway.auth.token") && text.contains("32"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[test]
fn urls_are_checked() {
    let text = error_text(&MINIMAL.replace("https://api.openai.com/v1", "ftp://x"));
    assert!(text.contains("models.providers.openai.baseUrl"), "{text}");
    let text = error_text(&MINIMAL.replace(
        "https://api.openai.com/v1",
        "https://user:pw@api.openai.com/v1",
    ));
    assert!(
        text.contains("credentials") && !text.contains("pw@"),
        "{text}"
    );
}

#[test]
fn schema_lists_keys_and_rejects_extras() {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    let text = schema.to_string();
    for key in [
        "gateway",
        "botToken",
        "dmPolicy",
        "baseUrl",
        "apiKey",
        "openai-chat",
        "additionalProperties",
    ] {
        assert!(text.contains(key), "schema lacks {key}");
    }
}

fn with_gateway(gateway: &str) -> String {
    MINIMAL.replace("agents: {", &format!("gateway: {gateway}, agents: {{"))
}

#[test]
fn non_loopback_bind_without_auth_refuses_to_start() {
    let text = error_text(&with_gateway(r#"{ bind: "lan", auth: { mode: "none" } }"#));
    assert!(
        text.contains("gateway.auth.mode") && text.contains("open the gateway"),
        "{text}"
    );
    let text = error_text(&with_gateway(
        r#"{ bind: "tailnet", auth: { mode: "none" } }"#,
    ));
    assert!(text.contains("gateway.auth.mode"), "{text}");
    let loopback = parse_config(&with_gateway(r#"{ auth: { mode: "none" } }"#), "t").unwrap();
    assert!(matches!(
        loopback.gateway.auth,
        pincer_runtime::config::validate::GatewayAuth::None
    ));
    let custom_loopback = parse_config(
        &with_gateway(r#"{ bind: "custom", customBindHost: "127.0.0.2", auth: { mode: "none" } }"#),
        "t",
    );
    assert!(custom_loopback.is_ok());
}

#[test]
fn tailnet_bind_needs_a_tailscale_address() {
    let config = parse_config(&with_gateway(r#"{ bind: "tailnet", port: 18789 }"#), "t").unwrap();
    let none: Vec<std::net::IpAddr> =
        vec!["127.0.0.1".parse().unwrap(), "192.168.1.2".parse().unwrap()];
    let err = config.gateway.listen_addr(&none).unwrap_err();
    assert!(err.to_string().contains("no Tailscale address"), "{err}");
    let with: Vec<std::net::IpAddr> = vec!["100.100.1.2".parse().unwrap()];
    assert_eq!(
        config.gateway.listen_addr(&with).unwrap().to_string(),
        "100.100.1.2:18789"
    );
}

#[test]
fn password_mode_takes_only_an_argon2id_hash() {
    let text = error_text(&with_gateway(
        r#"{ auth: { mode: "password", passwordHash: "hunter2hunter2" } }"#,
    ));
    assert!(
        text.contains("gateway.auth.passwordHash")
            && text.contains("Argon2id")
            && !text.contains("hunter2"),
        "{text}"
    );
    assert!(error_text(&with_gateway(r#"{ auth: { mode: "password" } }"#)).contains("missing"));
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0123456789abcdef0123456789abcdef0123456789a";
    let ok = parse_config(
        &with_gateway(&format!(
            r#"{{ auth: {{ mode: "password", passwordHash: "{phc}" }} }}"#
        )),
        "t",
    )
    .unwrap();
    assert!(matches!(
        ok.gateway.auth,
        pincer_runtime::config::validate::GatewayAuth::Password(_)
    ));
}

#[test]
fn proxies_origins_and_limits_are_checked() {
    let text = error_text(&with_gateway(
        r#"{ trustedProxies: ["10.0.0.0/8", "proxy.lan", "::1/129"] }"#,
    ));
    assert!(
        text.contains("proxy.lan") && text.contains("::1/129"),
        "{text}"
    );
    let text = error_text(&with_gateway(
        r#"{ controlUi: { allowedOrigins: ["https://ui.example.com/app"] } }"#,
    ));
    assert!(text.contains("gateway.controlUi.allowedOrigins"), "{text}");
    let text = error_text(&with_gateway(
        r#"{ auth: { rateLimit: { maxFailures: 0 } } }"#,
    ));
    assert!(
        text.contains("gateway.auth.rateLimit.maxFailures"),
        "{text}"
    );
    let ok = parse_config(
        &with_gateway(r#"{ trustedProxies: ["127.0.0.1", "10.0.0.0/8"], controlUi: { allowedOrigins: ["https://UI.example.com:443"] } }"#),
        "t",
    )
    .unwrap();
    assert_eq!(ok.gateway.trusted_proxies.len(), 2);
    assert_eq!(ok.gateway.allowed_origins, ["https://ui.example.com"]);
    assert_eq!(ok.gateway.auth_rate_limit.max_failures, 10);
}
