use proptest::prelude::*;

use super::*;
use crate::senders::commands::ApproveArgs;

/// The access rules of `channels.telegram = telegram` (with a bot token), parsed and
/// validated like the gateway's own config.
fn policy(telegram: &str) -> ChannelAccessConfig {
    let telegram = telegram.replacen('{', "{ botToken: \"x\",", 1);
    let text = format!(
        r#"{{ models: {{ providers: {{ p: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
             agents: {{ defaults: {{ model: "p/m" }} }},
             channels: {{ telegram: {telegram} }} }}"#
    );
    pincer_runtime::config::parse_config(&text, "test")
        .unwrap()
        .telegram
        .unwrap()
        .access
}

fn dm(sender: &str, text: &str) -> MessageFacts<'static> {
    MessageFacts {
        kind: ChatKind::Direct,
        sender_id: Box::leak(sender.to_owned().into_boxed_str()),
        chat_id: Box::leak(sender.to_owned().into_boxed_str()),
        text: Box::leak(text.to_owned().into_boxed_str()),
        mentions_bot: false,
    }
}

fn group(chat: &str, sender: &str, text: &str, mentions_bot: bool) -> MessageFacts<'static> {
    MessageFacts {
        kind: ChatKind::Group,
        sender_id: Box::leak(sender.to_owned().into_boxed_str()),
        chat_id: Box::leak(chat.to_owned().into_boxed_str()),
        text: Box::leak(text.to_owned().into_boxed_str()),
        mentions_bot,
    }
}

fn judged(p: &ChannelAccessConfig, paired: &[&str], m: &MessageFacts<'_>) -> Verdict {
    let class = classify(p, |id| paired.contains(&id), m.sender_id);
    judge(p, class, m)
}

#[test]
fn classes_come_from_configured_and_paired_ids_only() {
    let p = policy(r#"{ owners: ["1"], allowFrom: ["2"] }"#);
    let paired = |id: &str| id == "3";
    assert_eq!(classify(&p, paired, "1"), SenderClass::Owner);
    assert_eq!(classify(&p, paired, "2"), SenderClass::Allowed);
    assert_eq!(classify(&p, paired, "3"), SenderClass::Allowed);
    assert_eq!(classify(&p, paired, "4"), SenderClass::Stranger);
    let open = policy(r#"{ dmPolicy: "open", allowFrom: ["*"] }"#);
    assert_eq!(
        classify(&open, |_| false, "4"),
        SenderClass::Stranger,
        "\"*\" admits strangers; it never makes them allowed or owners"
    );
    for c in [
        SenderClass::Owner,
        SenderClass::Allowed,
        SenderClass::Stranger,
    ] {
        assert_eq!(SenderClass::parse(c.as_str()), Some(c));
    }
    assert_eq!(SenderClass::parse("admin"), None);
}

#[test]
fn dm_policies() {
    let pairing = policy(r#"{ owners: ["1"], allowFrom: ["2"] }"#);
    assert_eq!(judged(&pairing, &[], &dm("1", "hi")), Verdict::Turn);
    assert_eq!(judged(&pairing, &[], &dm("2", "hi")), Verdict::Turn);
    assert_eq!(judged(&pairing, &["3"], &dm("3", "hi")), Verdict::Turn);
    assert_eq!(judged(&pairing, &[], &dm("4", "hi")), Verdict::Pairing);
    assert_eq!(
        judged(&pairing, &[], &dm("4", "/status")),
        Verdict::Pairing,
        "a stranger's command is no way around pairing"
    );

    let allowlist = policy(r#"{ dmPolicy: "allowlist", allowFrom: ["2"] }"#);
    assert_eq!(judged(&allowlist, &[], &dm("2", "hi")), Verdict::Turn);
    assert_eq!(judged(&allowlist, &["3"], &dm("3", "hi")), Verdict::Turn);
    assert_eq!(
        judged(&allowlist, &[], &dm("4", "hi")),
        Verdict::Ignore(IgnoreReason::SenderNotAllowed)
    );

    let open = policy(r#"{ dmPolicy: "open", allowFrom: ["*"] }"#);
    assert_eq!(judged(&open, &[], &dm("4", "hi")), Verdict::Turn);

    let disabled = policy(r#"{ dmPolicy: "disabled", owners: ["1"] }"#);
    assert_eq!(
        judged(&disabled, &[], &dm("1", "hi")),
        Verdict::Ignore(IgnoreReason::DmDisabled)
    );
    assert_eq!(
        judged(&pairing, &[], &dm("1", "   ")),
        Verdict::Ignore(IgnoreReason::Empty)
    );
}

#[test]
fn dm_commands_follow_the_sender_class() {
    let p = policy(r#"{ owners: ["1"], allowFrom: ["2"] }"#);
    assert_eq!(
        judged(&p, &[], &dm("1", "/approve apr_abcdefghjk deny")),
        Verdict::Command(ChatCommand::Approve(ApproveArgs::Valid {
            id: crate::approvals::ApprovalId::parse("apr_abcdefghjk").unwrap(),
            decision: crate::approvals::Decision::Deny,
        }))
    );
    assert_eq!(
        judged(&p, &[], &dm("2", "/approve apr_abcdefghjk allow-always")),
        Verdict::Ignore(IgnoreReason::CommandNotPermitted)
    );
    assert_eq!(
        judged(&p, &[], &dm("2", "/new")),
        Verdict::Command(ChatCommand::New)
    );
    assert_eq!(
        judged(&p, &[], &dm("2", "/status")),
        Verdict::Command(ChatCommand::Status)
    );
    assert_eq!(judged(&p, &[], &dm("2", "/weather")), Verdict::Turn);
}

#[test]
fn groups_need_the_allowlist_a_member_and_a_mention() {
    let p = policy(
        r#"{ owners: ["1"], allowFrom: ["2"], groups: { "-100": {} }, mentionPatterns: ["(?i)\\bpincer\\b"] }"#,
    );
    assert_eq!(
        judged(&p, &[], &group("-200", "1", "hi", true)),
        Verdict::Ignore(IgnoreReason::GroupNotAllowed)
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "2", "hi", true)),
        Verdict::Turn
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "2", "hey Pincer, hi", false)),
        Verdict::Turn,
        "a mention pattern counts"
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "2", "hi all", false)),
        Verdict::Context(IgnoreReason::NotMentioned)
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "9", "@bot do it", true)),
        Verdict::Context(IgnoreReason::MemberNotAllowed),
        "a stranger's mention starts nothing"
    );
    assert_eq!(
        judged(&p, &["9"], &group("-100", "9", "@bot do it", true)),
        Verdict::Turn,
        "paired senders are members by default"
    );
    assert_eq!(
        judged(
            &p,
            &[],
            &group("-100", "2", "/approve apr_abcdefghjk allow-once", true)
        ),
        Verdict::Ignore(IgnoreReason::CommandNotPermitted)
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "1", "/status", false)),
        Verdict::Ignore(IgnoreReason::CommandNotPermitted),
        "commands in groups must address the bot"
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "1", "/new", true)),
        Verdict::Command(ChatCommand::New)
    );
    assert_eq!(
        judged(&p, &[], &group("-100", "2", "/new", true)),
        Verdict::Ignore(IgnoreReason::CommandNotPermitted)
    );
}

#[test]
fn group_settings_and_member_lists() {
    let p = policy(
        r#"{ groupPolicy: "open", groupAllowFrom: ["5"],
             groups: { "-1": { requireMention: false }, "-2": { enabled: false }, "-3": { allowFrom: ["*"] } } }"#,
    );
    assert_eq!(
        judged(&p, &[], &group("-1", "5", "hi", false)),
        Verdict::Turn
    );
    assert_eq!(
        judged(&p, &[], &group("-2", "5", "hi", true)),
        Verdict::Ignore(IgnoreReason::GroupNotAllowed)
    );
    assert_eq!(
        judged(&p, &[], &group("-9", "5", "hi", true)),
        Verdict::Turn
    );
    assert_eq!(
        judged(&p, &[], &group("-9", "6", "hi", true)),
        Verdict::Context(IgnoreReason::MemberNotAllowed)
    );
    assert_eq!(
        judged(&p, &[], &group("-3", "6", "hi", true)),
        Verdict::Turn
    );

    let all = policy(r#"{ groups: { "*": { requireMention: false } }, groupAllowFrom: ["*"] }"#);
    assert_eq!(
        judged(&all, &[], &group("-7", "6", "hi", false)),
        Verdict::Turn
    );
    let off = policy(r#"{ groupPolicy: "disabled", groups: { "*": {} }, owners: ["1"] }"#);
    assert_eq!(
        judged(&off, &[], &group("-7", "1", "hi", true)),
        Verdict::Ignore(IgnoreReason::GroupDisabled)
    );
}

fn dm_policy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(r#"dmPolicy: "pairing""#),
        Just(r#"dmPolicy: "allowlist""#),
        Just(r#"dmPolicy: "disabled""#),
    ]
}

proptest! {
    /// Whatever the text says, a stranger never gets a turn or a command unless DMs are
    /// open; under `pairing` they reach the code book and nothing else.
    #[test]
    fn strangers_get_nothing_but_pairing(
        policy_key in dm_policy(),
        text in "(/approve apr_abcdefghjk allow-once|/status|/new|[a-z /@]{0,20}|owner:1 ignore previous)",
        mentions in any::<bool>(),
    ) {
        let p = policy(&format!(r#"{{ {policy_key}, owners: ["1"], allowFrom: ["2"], groups: {{ "-1": {{}} }} }}"#));
        let verdict = judged(&p, &[], &dm("99", &text));
        prop_assert!(matches!(verdict, Verdict::Pairing | Verdict::Ignore(_)), "{verdict:?}");
        if p.dm_policy == DmPolicy::Pairing {
            prop_assert_eq!(verdict, Verdict::Pairing);
        }
        let verdict = judged(&p, &[], &group("-1", "99", &text, mentions));
        prop_assert!(matches!(verdict, Verdict::Context(_) | Verdict::Ignore(_)), "{verdict:?}");
    }

    /// `/approve` works for the owner only, in every chat and policy.
    #[test]
    fn only_the_owner_approves(sender in "[0-9]{1,3}", mentions in any::<bool>(), policy_key in dm_policy()) {
        let p = policy(&format!(r#"{{ {policy_key}, owners: ["1"], allowFrom: ["2"], groupAllowFrom: ["*"], groups: {{ "*": {{}} }} }}"#));
        let text = "/approve apr_abcdefghjk allow-always";
        for m in [dm(&sender, text), group("-5", &sender, text, mentions)] {
            let verdict = judged(&p, &["3"], &m);
            if let Verdict::Command(ChatCommand::Approve(_)) = verdict {
                prop_assert_eq!(sender.as_str(), "1");
            }
        }
    }
}
