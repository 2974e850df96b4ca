use super::*;
use crate::config::load::{ConfigError, parse_config};
use crate::config::validate::{Config, ConfigIssue};

fn with(telegram: &str, session: &str) -> Result<Config, ConfigError> {
    parse_config(
        &format!(
            r#"{{
                models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                agents: {{ defaults: {{ model: "fake/m" }} }},
                channels: {{ telegram: {telegram} }},
                session: {session},
            }}"#
        ),
        "test",
    )
}

fn access(telegram: &str) -> ChannelAccessConfig {
    with(telegram, "{}").unwrap().telegram.unwrap().access
}

fn issues(telegram: &str, session: &str) -> Vec<ConfigIssue> {
    match with(telegram, session) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        other => panic!("expected issues, got {other:?}"),
    }
}

fn paths(found: &[ConfigIssue]) -> Vec<&str> {
    found.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn defaults_are_pairing_allowlisted_groups_and_mentions() {
    let a = access(r#"{ botToken: "x" }"#);
    assert_eq!(a.dm_policy, DmPolicy::Pairing);
    assert_eq!(a.group_policy, GroupPolicy::Allowlist);
    assert!(a.groups.is_empty() && a.default_group.is_none());
    assert!(a.require_mention);
    assert!(a.owners.is_empty());
    assert!(a.group_allow_from.is_none());
    let s = with(r#"{ botToken: "x" }"#, "{}").unwrap().session;
    assert_eq!(s.dm_scope, DmScope::Main);
    assert!(s.identity_links.is_empty());
}

#[test]
fn groups_owners_and_patterns_are_read() {
    let a = access(
        r#"{ botToken: "x", owners: ["42", "42"], allowFrom: ["7"], groupAllowFrom: ["8", "*"],
             groups: { "-100": { requireMention: false, allowFrom: ["9"] }, "*": { enabled: false } },
             mentionPatterns: ["(?i)\\bpincer\\b"] }"#,
    );
    assert_eq!(a.owners, ["42"], "duplicates collapse");
    assert!(a.is_owner("42") && !a.is_owner("7"));
    assert_eq!(a.allow_from.ids, ["7"]);
    assert!(!a.allow_from.anyone);
    let gaf = a.group_allow_from.as_ref().unwrap();
    assert!(gaf.anyone && gaf.contains("anything"));
    let g = a.group_rule("-100").unwrap();
    assert_eq!(g.require_mention, Some(false));
    assert!(g.allow_from.as_ref().unwrap().contains("9"));
    assert!(!g.allow_from.as_ref().unwrap().contains("8"));
    assert!(
        !a.group_rule("-200").unwrap().enabled,
        "falls back to \"*\""
    );
    assert_eq!(a.mention_patterns.len(), 1);
    assert!(a.mention_patterns[0].is_match("hey PINCER, help"));
    assert!(!a.mention_patterns[0].is_match("pincers"));
}

#[test]
fn a_bad_regex_is_a_config_error_naming_the_key() {
    let found = issues(
        r#"{ botToken: "x", mentionPatterns: ["ok", "(unclosed"] }"#,
        "{}",
    );
    assert_eq!(paths(&found), ["channels.telegram.mentionPatterns[1]"]);
    assert!(found[0].problem.contains("(unclosed"), "{found:?}");
    assert!(found[0].problem.contains("not a valid regex"), "{found:?}");
    let long = "a".repeat(600);
    let found = issues(
        &format!(r#"{{ botToken: "x", mentionPatterns: ["{long}"] }}"#),
        "{}",
    );
    assert_eq!(paths(&found), ["channels.telegram.mentionPatterns[0]"]);
}

#[test]
fn wildcards_only_where_they_mean_anyone() {
    let found = issues(r#"{ botToken: "x", allowFrom: ["*"] }"#, "{}");
    assert_eq!(paths(&found), ["channels.telegram.allowFrom"]);
    assert!(found[0].problem.contains("pairing"), "{found:?}");
    let found = issues(
        r#"{ botToken: "x", dmPolicy: "allowlist", allowFrom: ["*"] }"#,
        "{}",
    );
    assert_eq!(paths(&found), ["channels.telegram.allowFrom"]);
    let found = issues(r#"{ botToken: "x", dmPolicy: "open" }"#, "{}");
    assert_eq!(paths(&found), ["channels.telegram.dmPolicy"]);
    let a = access(r#"{ botToken: "x", dmPolicy: "open", allowFrom: ["*"] }"#);
    assert!(a.allow_from.anyone);
    let found = issues(r#"{ botToken: "x", owners: ["*"] }"#, "{}");
    assert_eq!(paths(&found), ["channels.telegram.owners[0]"]);
}

#[test]
fn ids_must_be_stable_platform_ids() {
    let found = issues(
        r#"{ botToken: "x", allowFrom: ["@alice"], owners: ["bob"], groupAllowFrom: ["carol"],
             groups: { "my group": {}, "-5": { allowFrom: ["dave"] } } }"#,
        "{}",
    );
    let mut p = paths(&found);
    p.sort_unstable();
    assert_eq!(
        p,
        [
            "channels.telegram.allowFrom[0]",
            "channels.telegram.groupAllowFrom[0]",
            "channels.telegram.groups.-5.allowFrom[0]",
            "channels.telegram.groups.my group",
            "channels.telegram.owners[0]",
        ]
    );
    assert!(found.iter().all(|i| !i.fix.is_empty()));
}

#[test]
fn unknown_keys_stop_the_start() {
    for (telegram, session, key) in [
        (
            r#"{ botToken: "x", groups: { "-1": { mention: true } } }"#,
            "{}",
            "mention",
        ),
        (
            r#"{ botToken: "x", requireMentions: true }"#,
            "{}",
            "requireMentions",
        ),
        (r#"{ botToken: "x" }"#, "{ scope: \"main\" }", "scope"),
        (
            r#"{ botToken: "x" }"#,
            "{ dmScope: \"per-person\" }",
            "per-person",
        ),
        (r#"{ botToken: "x", dmPolicy: "pairng" }"#, "{}", "pairng"),
        (r#"{ botToken: "x", groupPolicy: "all" }"#, "{}", "all"),
    ] {
        let err = with(telegram, session).unwrap_err();
        assert!(
            matches!(err, ConfigError::Shape { .. }),
            "{telegram} {session}: {err}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn identity_links_merge_one_persons_accounts() {
    let s = with(
        r#"{ botToken: "x" }"#,
        r#"{ dmScope: "per-peer", identityLinks: { alice: ["telegram:1", "telegram:2"], bob: ["telegram:3"] } }"#,
    )
    .unwrap()
    .session;
    assert_eq!(s.dm_scope, DmScope::PerPeer);
    assert_eq!(s.person_of("telegram", "2"), Some("alice"));
    assert_eq!(s.person_of("telegram", "3"), Some("bob"));
    assert_eq!(s.person_of("telegram", "4"), None);
    assert_eq!(s.person_of("matrix", "1"), None);
}

#[test]
fn identity_links_are_checked() {
    let found = issues(
        r#"{ botToken: "x" }"#,
        r#"{ identityLinks: { alice: ["telegram:1", "telegram"], bob: ["telegram:1"], "c d": ["telegram:5"],
              eve: [], mallory: ["slack:@m:x", "telegram:@m"] } }"#,
    );
    let mut p = paths(&found);
    p.sort_unstable();
    assert_eq!(
        p,
        [
            "session.identityLinks.alice[1]",
            "session.identityLinks.bob[0]",
            "session.identityLinks.c d",
            "session.identityLinks.eve",
            "session.identityLinks.mallory[0]",
            "session.identityLinks.mallory[1]",
        ]
    );
    let dup = found
        .iter()
        .find(|i| i.path == "session.identityLinks.bob[0]")
        .unwrap();
    assert!(dup.problem.contains("alice"), "{dup:?}");
}

#[test]
fn channel_ids_never_validate_display_names() {
    // A proptest-style sweep over shapes a display name takes.
    for name in ["Alice", "@alice", "alice smith", "", " 1", "1.5", "0x10"] {
        assert!(!(TELEGRAM_IDS.user)(name), "{name:?}");
    }
    for id in ["1", "-1001234567890", "9223372036854775807"] {
        assert!((TELEGRAM_IDS.user)(id), "{id:?}");
    }
}

#[test]
fn the_documented_example_is_valid() {
    let doc = include_str!("../../../../../docs/channels.md");
    let example = doc
        .split("### Example")
        .nth(1)
        .and_then(|s| s.split("```json5").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/channels.md has an example");
    let text = format!(
        r#"{{
            models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
            agents: {{ defaults: {{ model: "fake/m" }} }},
            {example}
        }}"#
    );
    let config = parse_config(&text, "docs/channels.md").unwrap();
    let a = config.telegram.unwrap().access;
    assert_eq!(a.owners, ["111111111"]);
    assert_eq!(a.groups.len(), 2);
    assert!(a.mention_patterns[0].is_match("hi Pincer"));
    assert_eq!(config.session.dm_scope, DmScope::Main);
}

#[test]
fn several_telegram_accounts_each_with_its_token() {
    let c = with(
        r#"{ botToken: "${TG_MAIN}", apiBaseUrl: "http://127.0.0.1:1",
             accounts: { support: { botToken: "${TG_SUPPORT}" },
                         sales_2: { botToken: "${TG_SALES}", apiBaseUrl: "http://127.0.0.1:2" } } }"#,
        "{}",
    )
    .unwrap();
    let accounts = c.telegram.unwrap().accounts;
    let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["default", "sales_2", "support"]);
    assert_eq!(accounts[1].api_base_url.as_str(), "http://127.0.0.1:2/");
    assert_eq!(accounts[2].api_base_url.as_str(), "http://127.0.0.1:1/");

    let only_named = with(r#"{ accounts: { a: { botToken: "${A}" } } }"#, "{}").unwrap();
    let ids: Vec<String> = only_named
        .telegram
        .unwrap()
        .accounts
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a"]);
}

#[test]
fn telegram_accounts_are_checked() {
    let found = issues(
        r#"{ botToken: "${T}", accounts: { default: { botToken: "${U}" }, "a b": { botToken: "${V}" } } }"#,
        "{}",
    );
    assert_eq!(
        paths(&found),
        [
            "channels.telegram.accounts.a b",
            "channels.telegram.accounts.default"
        ]
    );
    let found = issues("{ dmPolicy: \"pairing\" }", "{}");
    assert_eq!(paths(&found), ["channels.telegram.botToken"]);
    let err = with(
        r#"{ accounts: { a: { botToken: "${A}", pollTimeoutSeconds: 3 } } }"#,
        "{}",
    )
    .unwrap_err();
    assert!(err.to_string().contains("pollTimeoutSeconds"), "{err}");
}
