use crate::config::load::{ConfigError, parse_config};
use crate::config::raw::MailSecurity;
use crate::config::validate::{Config, ConfigIssue};

fn with(channels: &str) -> Result<Config, ConfigError> {
    parse_config(
        &format!(
            r#"{{
                models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                agents: {{ defaults: {{ model: "fake/m" }} }},
                channels: {channels},
            }}"#
        ),
        "test",
    )
}

fn issue_paths(channels: &str) -> Vec<String> {
    match with(channels) {
        Err(ConfigError::Invalid { issues, .. }) => issues
            .iter()
            .map(|i: &ConfigIssue| i.path.clone())
            .collect(),
        other => panic!("expected issues, got {other:?}"),
    }
}

#[test]
fn irc_defaults_to_tls_and_joins_the_listed_groups() {
    let c = with(
        r##"{ irc: { host: "irc.example.org", nick: "pincer",
             owners: ["alice!~alice@example.org"],
             groups: { "#pincer": {}, "*": { enabled: false } } } }"##,
    )
    .unwrap();
    let irc = c.irc.unwrap();
    assert!(irc.tls);
    assert_eq!(irc.port, 6697);
    assert_eq!(irc.username, "pincer");
    assert_eq!(irc.channels, vec!["#pincer".to_owned()]);
    assert!(irc.access.is_owner("alice!~alice@example.org"));
}

#[test]
fn irc_refuses_plain_text_to_a_remote_server_and_bad_ids() {
    let paths = issue_paths(
        r##"{ irc: { host: "irc.example.org", tls: false, nick: "9bad",
             owners: ["alice"], groups: { "#Pincer": {} } } }"##,
    );
    for p in [
        "channels.irc.tls",
        "channels.irc.nick",
        "channels.irc.owners[0]",
        "channels.irc.groups.#Pincer",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing in {paths:?}");
    }
    let c = with(r#"{ irc: { host: "127.0.0.1", tls: false, nick: "bot" } }"#).unwrap();
    assert_eq!(c.irc.unwrap().port, 6667);
}

#[test]
fn email_checks_transport_security_and_addresses() {
    let c = with(
        r#"{ email: { address: "Bot@Example.org",
             imap: { host: "imap.example.org", password: "p" },
             smtp: { host: "smtp.example.org", security: "starttls", password: "p" },
             authservId: "mx.example.org", allowFrom: ["alice@example.org"] } }"#,
    )
    .unwrap();
    let e = c.email.unwrap();
    assert_eq!(e.address, "bot@example.org");
    assert_eq!((e.imap.port, e.imap.security), (993, MailSecurity::Tls));
    assert_eq!(e.imap.username, "Bot@Example.org");
    assert_eq!(e.smtp.port, 587);
    assert_eq!(
        e.smtp.login.as_ref().map(|l| l.0.as_str()),
        Some("Bot@Example.org")
    );
    assert!(e.access.allow_from.contains("alice@example.org"));

    // `groups` is not a key of the e-mail section at all: the start stops.
    let err = with(
        r#"{ email: { address: "a@b.org", imap: { host: "h", password: "p" },
             smtp: { host: "h" }, groups: {} } }"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("channels.email.groups"), "{err}");
    let paths = issue_paths(
        r#"{ email: { address: "not-an-address",
             imap: { host: "imap.example.org", security: "plain", password: "p" },
             smtp: { host: "smtp.example.org", security: "plain" },
             allowFrom: ["Alice@Example.org"] } }"#,
    );
    for p in [
        "channels.email.address",
        "channels.email.authservId",
        "channels.email.imap.security",
        "channels.email.smtp.security",
        "channels.email.allowFrom[0]",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing in {paths:?}");
    }
}

#[test]
fn email_needs_a_deliberate_choice_about_forged_senders() {
    let base = r#"address: "bot@example.org", imap: { host: "imap.example.org", password: "p" },
                  smtp: { host: "smtp.example.org" }"#;
    let paths = issue_paths(&format!("{{ email: {{ {base} }} }}"));
    assert_eq!(paths, ["channels.email.authservId"]);
    let paths = issue_paths(&format!(
        "{{ email: {{ {base}, authservId: \"mx.example.org\", trustFromHeader: true }} }}"
    ));
    assert_eq!(paths, ["channels.email.trustFromHeader"]);
    let trusted = with(&format!("{{ email: {{ {base}, trustFromHeader: true }} }}")).unwrap();
    assert_eq!(trusted.email.unwrap().authserv_id, None);
}

#[test]
fn matrix_needs_https_a_user_id_and_a_credential() {
    let paths = issue_paths(
        r##"{ matrix: { homeserver: "http://matrix.example.org", userId: "pincer",
             groups: { "#room:example.org": {} } } }"##,
    );
    for p in [
        "channels.matrix.homeserver",
        "channels.matrix.userId",
        "channels.matrix.accessToken",
        "channels.matrix.groups.#room:example.org",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing in {paths:?}");
    }
    let c = with(
        r#"{ matrix: { homeserver: "http://127.0.0.1:8008", userId: "@bot:test.local",
             password: "p", owners: ["@alice:test.local"] } }"#,
    )
    .unwrap();
    let m = c.matrix.unwrap();
    assert_eq!(m.device_id, "PINCER");
    assert!(m.access.is_owner("@alice:test.local"));
}

#[test]
fn telegram_webhook_wants_https_and_a_secret() {
    let c = with(
        r#"{ telegram: { botToken: "t", webhook: { url: "https://bot.example.org/tg",
             secretToken: "s3cret" } } }"#,
    )
    .unwrap();
    let w = c.telegram.unwrap().webhook.unwrap();
    assert_eq!(w.listen.to_string(), "127.0.0.1:8443");
    let paths = issue_paths(
        r#"{ telegram: { botToken: "t", webhook: { url: "http://bot.example.org/tg",
             listen: "nowhere", secretToken: "s" } } }"#,
    );
    assert!(
        paths.iter().any(|p| p == "channels.telegram.webhook.url"),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p == "channels.telegram.webhook.listen"),
        "{paths:?}"
    );
}

#[test]
fn identity_links_accept_every_channel() {
    let c = parse_config(
        r#"{
            models: { providers: { fake: { api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" } } },
            agents: { defaults: { model: "fake/m" } },
            session: { identityLinks: { alice: ["telegram:1", "irc:alice!~a@host", "email:alice@example.org", "matrix:@alice:example.org"] } },
        }"#,
        "test",
    )
    .unwrap();
    assert_eq!(
        c.session.person_of("matrix", "@alice:example.org"),
        Some("alice")
    );
    assert_eq!(c.session.person_of("irc", "alice!~a@host"), Some("alice"));
}
