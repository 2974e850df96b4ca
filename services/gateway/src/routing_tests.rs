use std::collections::BTreeMap;

use pincer_runtime::config::validate::LinkedAccount;
use proptest::prelude::*;

use super::*;

fn config(scope: DmScope, links: &[(&str, &[(&str, &str)])]) -> SessionConfig {
    SessionConfig {
        dm_scope: scope,
        identity_links: links
            .iter()
            .map(|(name, accounts)| {
                let accounts = accounts
                    .iter()
                    .map(|(c, u)| LinkedAccount {
                        channel: (*c).to_owned(),
                        user_id: (*u).to_owned(),
                    })
                    .collect();
                ((*name).to_owned(), accounts)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

fn dm<'a>(channel: &'a str, account: &'a str, sender: &'a str, owner: bool) -> Route<'a> {
    Route {
        agent: "main",
        channel,
        account,
        kind: ChatKind::Direct,
        sender_id: sender,
        chat_id: sender,
        thread_id: "",
        owner,
    }
}

fn key(cfg: &SessionConfig, r: Route<'_>) -> String {
    SessionKey::route(cfg, &r).as_str().to_owned()
}

#[test]
fn the_owners_dms_share_the_main_session_others_get_their_own() {
    let main = config(DmScope::Main, &[]);
    assert_eq!(
        key(&main, dm("telegram", "default", "1", true)),
        "agent:main:main"
    );
    assert_eq!(
        key(&main, dm("matrix", "bot", "@me:x", true)),
        "agent:main:main",
        "the owner's accounts on every channel"
    );
    assert_eq!(
        key(&main, dm("telegram", "default", "2", false)),
        "agent:main:dm:telegram%3A2"
    );
    assert_eq!(
        key(&main, dm("telegram", "other-bot", "2", false)),
        "agent:main:dm:telegram%3A2",
        "one person, across accounts"
    );
}

#[test]
fn per_peer_and_per_channel_peer() {
    let per_peer = config(DmScope::PerPeer, &[]);
    assert_eq!(
        key(&per_peer, dm("telegram", "default", "1", true)),
        "agent:main:dm:telegram%3A1",
        "no main session under per-peer"
    );
    let pcp = config(DmScope::PerChannelPeer, &[]);
    assert_eq!(
        key(&pcp, dm("telegram", "default", "1", false)),
        "agent:main:telegram:default:dm:1"
    );
    assert_eq!(
        key(&pcp, dm("telegram", "default", "1", false)),
        SessionKey::for_chat("main", "telegram", "default", ChatKind::Direct, "1", "1").as_str(),
    );
    assert_ne!(
        key(&pcp, dm("telegram", "a", "1", false)),
        key(&pcp, dm("telegram", "b", "1", false)),
        "per channel account"
    );
}

#[test]
fn identity_links_merge_one_person() {
    let links: &[(&str, &[(&str, &str)])] = &[("alice", &[("telegram", "1"), ("matrix", "@a:x")])];
    let per_peer = config(DmScope::PerPeer, links);
    let a = key(&per_peer, dm("telegram", "default", "1", false));
    assert_eq!(a, "agent:main:dm:~alice");
    assert_eq!(a, key(&per_peer, dm("matrix", "bot", "@a:x", false)));
    assert_ne!(a, key(&per_peer, dm("telegram", "default", "2", false)));
    let pcp = config(DmScope::PerChannelPeer, links);
    assert_eq!(
        key(&pcp, dm("telegram", "default", "1", false)),
        "agent:main:telegram:default:dm:~alice"
    );
}

#[test]
fn groups_and_threads() {
    let cfg = config(DmScope::Main, &[]);
    let group = |sender: &'static str, thread: &'static str, owner: bool| Route {
        agent: "main",
        channel: "telegram",
        account: "default",
        kind: ChatKind::Group,
        sender_id: sender,
        chat_id: "-100",
        thread_id: thread,
        owner,
    };
    let g1 = key(&cfg, group("1", "", true));
    assert_eq!(g1, "agent:main:telegram:default:group:-100");
    assert_eq!(
        g1,
        key(&cfg, group("2", "", false)),
        "one session per group"
    );
    assert_eq!(
        key(&cfg, group("1", "7", false)),
        "agent:main:telegram:default:group:-100:thread:7"
    );
}

#[test]
fn epochs_make_new_sessions() {
    let base = SessionKey::operator("main", "main");
    assert_eq!(base.at_epoch(0), base);
    assert_eq!(base.at_epoch(2).as_str(), "agent:main:operator:main#2");
    assert_ne!(base.at_epoch(1), base.at_epoch(2));
}

fn scope() -> impl Strategy<Value = DmScope> {
    prop_oneof![
        Just(DmScope::Main),
        Just(DmScope::PerPeer),
        Just(DmScope::PerChannelPeer)
    ]
}

proptest! {
    /// Two different, unlinked people never share a session, whatever their ids look
    /// like, unless both are owners under `main`; and no DM key equals a group key or
    /// another key's epoch.
    #[test]
    fn different_people_never_share_a_session(
        scope in scope(),
        c1 in "(telegram|matrix|t:x)", c2 in "(telegram|matrix|t:x)",
        a1 in "[a-z:#~%]{1,6}", a2 in "[a-z:#~%]{1,6}",
        s1 in "[a-z0-9:#~%]{1,8}", s2 in "[a-z0-9:#~%]{1,8}",
        o1 in any::<bool>(), o2 in any::<bool>(),
        e1 in 0u32..3, e2 in 0u32..3,
    ) {
        prop_assume!((c1.as_str(), s1.as_str()) != (c2.as_str(), s2.as_str()));
        prop_assume!(!(o1 && o2 && scope == DmScope::Main));
        let cfg = config(scope, &[]);
        let k1 = SessionKey::route(&cfg, &dm(&c1, &a1, &s1, o1)).at_epoch(e1);
        let k2 = SessionKey::route(&cfg, &dm(&c2, &a2, &s2, o2)).at_epoch(e2);
        prop_assert_ne!(&k1, &k2);
        let g = SessionKey::route(&cfg, &Route { kind: ChatKind::Group, ..dm(&c2, &a2, &s2, o2) });
        prop_assert_ne!(k1, g.at_epoch(e2));
    }

    /// A platform id can never produce a linked person's key.
    #[test]
    fn ids_cannot_forge_a_link(sender in "[a-z0-9:#~%]{1,10}", scope in scope()) {
        let cfg = config(scope, &[("alice", &[("telegram", "1")])]);
        prop_assume!(sender != "1");
        let alice = SessionKey::route(&cfg, &dm("telegram", "default", "1", false));
        let other = SessionKey::route(&cfg, &dm("telegram", "default", &sender, false));
        prop_assert_ne!(alice, other);
    }

    /// Escaping keeps the component count fixed, so no id can add or remove a separator.
    #[test]
    fn ids_cannot_add_separators(acct in "[a-z:%#~]{1,8}", peer in "[a-z:%#~]{1,8}") {
        let k = SessionKey::for_chat("main", "t", &acct, ChatKind::Direct, &peer, "x");
        prop_assert_eq!(k.as_str().matches(':').count(), 5);
        prop_assert!(!k.as_str().contains('#') && !k.as_str().contains('~'));
    }
}
