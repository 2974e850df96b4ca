//! Pure routing decisions: which session a message belongs to, and whether the access policy
//! lets it start a turn. No I/O.
//!
//! Session keys: one per DM peer (`agent:<agent>:<channel>:<account>:dm:<sender>`), one per
//! group (`…:group:<chat>`), one per named operator session (`agent:<agent>:operator:<name>`).
//! Components are escaped so no id can forge another key.

use std::fmt;

use pincer_runtime::config::validate::{DmAccess, GroupAccess};

/// Where a conversation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A direct message.
    Direct,
    /// A group chat.
    Group,
    /// The operator's own API (CLI, web chat).
    Operator,
}

impl ChatKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Operator => "operator",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "group" => Some(Self::Group),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// A session's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(String);

impl SessionKey {
    /// The session of a channel message.
    pub fn for_chat(
        agent: &str,
        channel: &str,
        account: &str,
        kind: ChatKind,
        sender_id: &str,
        chat_id: &str,
    ) -> Self {
        let (label, peer) = match kind {
            ChatKind::Direct => ("dm", sender_id),
            ChatKind::Group => ("group", chat_id),
            ChatKind::Operator => return Self::operator(agent, chat_id),
        };
        Self(format!(
            "agent:{}:{}:{}:{label}:{}",
            esc(agent),
            esc(channel),
            esc(account),
            esc(peer)
        ))
    }

    /// A named operator session.
    pub fn operator(agent: &str, name: &str) -> Self {
        Self(format!("agent:{}:operator:{}", esc(agent), esc(name)))
    }

    /// A key read back from the store.
    pub fn from_stored(key: String) -> Self {
        Self(key)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percent-escapes `%` and `:` so components cannot contain the separator.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// The access policy of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAccess {
    /// Who may DM.
    pub dm: DmAccess,
    /// Which groups.
    pub groups: GroupAccess,
}

/// What the policy says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start a turn.
    Process,
    /// Store it, do nothing else.
    Ignore(IgnoreReason),
}

/// Why a message was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// DMs are disabled.
    DmDisabled,
    /// The sender is not on the allowlist.
    SenderNotAllowed,
    /// Groups are disabled.
    GroupDisabled,
    /// The group is not on the allowlist.
    GroupNotAllowed,
    /// In a group, the bot was not mentioned.
    NotMentioned,
    /// Empty text.
    Empty,
    /// No policy for this channel.
    UnknownChannel,
}

impl IgnoreReason {
    /// A short note for the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DmDisabled => "dm policy disabled",
            Self::SenderNotAllowed => "sender not in allowFrom",
            Self::GroupDisabled => "group policy disabled",
            Self::GroupNotAllowed => "group not allowed",
            Self::NotMentioned => "group message without mention",
            Self::Empty => "empty message",
            Self::UnknownChannel => "channel not configured",
        }
    }
}

/// The facts about a message the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    /// DM or group.
    pub kind: ChatKind,
    /// Sender's stable id.
    pub sender_id: &'a str,
    /// Chat id.
    pub chat_id: &'a str,
    /// Whether the bot was mentioned.
    pub mentions_bot: bool,
    /// Whether the text is empty.
    pub empty: bool,
}

/// Decides whether a channel message may start a turn. Fails closed: anything not allowed
/// is ignored.
pub fn admit(access: Option<&ChannelAccess>, m: MessageFacts<'_>) -> Admission {
    let Some(access) = access else {
        return Admission::Ignore(IgnoreReason::UnknownChannel);
    };
    if m.empty {
        return Admission::Ignore(IgnoreReason::Empty);
    }
    match m.kind {
        ChatKind::Operator => Admission::Process,
        ChatKind::Direct => match &access.dm {
            DmAccess::Disabled => Admission::Ignore(IgnoreReason::DmDisabled),
            DmAccess::Open => Admission::Process,
            DmAccess::Allowlist(ids) if ids.iter().any(|id| id == m.sender_id) => {
                Admission::Process
            }
            DmAccess::Allowlist(_) => Admission::Ignore(IgnoreReason::SenderNotAllowed),
        },
        ChatKind::Group => {
            let group_ok = match &access.groups {
                GroupAccess::Disabled => return Admission::Ignore(IgnoreReason::GroupDisabled),
                GroupAccess::Open => true,
                GroupAccess::Allowlist(ids) => ids.iter().any(|id| id == m.chat_id),
            };
            if !group_ok {
                Admission::Ignore(IgnoreReason::GroupNotAllowed)
            } else if !m.mentions_bot {
                Admission::Ignore(IgnoreReason::NotMentioned)
            } else {
                Admission::Process
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn facts<'a>(
        kind: ChatKind,
        sender: &'a str,
        chat: &'a str,
        mention: bool,
    ) -> MessageFacts<'a> {
        MessageFacts {
            kind,
            sender_id: sender,
            chat_id: chat,
            mentions_bot: mention,
            empty: false,
        }
    }

    #[test]
    fn dm_allowlist_is_by_stable_id() {
        let access = ChannelAccess {
            dm: DmAccess::Allowlist(vec!["42".into()]),
            groups: GroupAccess::Disabled,
        };
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Direct, "42", "42", false)),
            Admission::Process
        );
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Direct, "43", "43", false)),
            Admission::Ignore(IgnoreReason::SenderNotAllowed)
        );
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Group, "42", "-100", true)),
            Admission::Ignore(IgnoreReason::GroupDisabled)
        );
        assert_eq!(
            admit(None, facts(ChatKind::Direct, "42", "42", false)),
            Admission::Ignore(IgnoreReason::UnknownChannel)
        );
    }

    #[test]
    fn groups_need_allowlist_and_mention() {
        let access = ChannelAccess {
            dm: DmAccess::Disabled,
            groups: GroupAccess::Allowlist(vec!["-100".into()]),
        };
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Group, "1", "-100", true)),
            Admission::Process
        );
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Group, "1", "-100", false)),
            Admission::Ignore(IgnoreReason::NotMentioned)
        );
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Group, "1", "-200", true)),
            Admission::Ignore(IgnoreReason::GroupNotAllowed)
        );
        assert_eq!(
            admit(Some(&access), facts(ChatKind::Direct, "1", "1", false)),
            Admission::Ignore(IgnoreReason::DmDisabled)
        );
    }

    #[test]
    fn session_per_dm_peer_and_per_group() {
        let a = SessionKey::for_chat("main", "telegram", "default", ChatKind::Direct, "1", "1");
        let b = SessionKey::for_chat("main", "telegram", "default", ChatKind::Direct, "2", "2");
        let g1 = SessionKey::for_chat("main", "telegram", "default", ChatKind::Group, "1", "-100");
        let g2 = SessionKey::for_chat("main", "telegram", "default", ChatKind::Group, "2", "-100");
        assert_ne!(a, b);
        assert_eq!(g1, g2);
        assert_eq!(a.as_str(), "agent:main:telegram:default:dm:1");
    }

    proptest! {
        #[test]
        fn distinct_peers_never_share_a_session(p in "[a-z0-9:%]{1,12}", q in "[a-z0-9:%]{1,12}") {
            prop_assume!(p != q);
            let a = SessionKey::for_chat("main", "matrix", "acct", ChatKind::Direct, &p, "x");
            let b = SessionKey::for_chat("main", "matrix", "acct", ChatKind::Direct, &q, "x");
            prop_assert_ne!(a, b);
        }

        #[test]
        fn ids_cannot_forge_other_keys(acct in "[a-z:%]{1,8}", peer in "[a-z:%]{1,8}") {
            let forged = SessionKey::for_chat("main", "t", &acct, ChatKind::Direct, &peer, "x");
            prop_assert_eq!(forged.as_str().matches(':').count(), 5);
        }
    }
}
