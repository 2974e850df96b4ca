//! Pure sender access: who the sender is (owner, allowed, stranger) and what the gateway
//! does with a channel message. No I/O; the paired-sender list is passed in.
//!
//! DMs (`dmPolicy`): `disabled` drops every DM; owners and allowed senders (`allowFrom` ∪
//! paired) start turns; under `open` anyone does; under `allowlist` strangers are ignored;
//! under `pairing` a stranger goes to the pairing-code book (one code per request, nothing
//! else).
//!
//! Groups (`groupPolicy`, `groups`, `groupAllowFrom`, `requireMention`,
//! `mentionPatterns`): a group that is not allowed is ignored. In an allowed group every
//! message is kept as context (stored in the group's transcript, no turn) unless a member
//! who may start turns addressed the bot: a platform mention or a reply to the bot (the
//! bridge's `mentions_bot`) or a `mentionPatterns` match — or `requireMention` is off.
//!
//! Chat commands (`/status`, `/new`, `/reset`, `/help`, `/approve`) are handled without the
//! model, only for senders who may use them; otherwise they are ignored (never answered,
//! never a turn, never context).

use pincer_runtime::config::validate::{ChannelAccessConfig, DmPolicy, GroupPolicy};

use super::commands::{ChatCommand, parse_command};
use crate::routing::ChatKind;

/// Who a sender is to the assistant, decided from configured and paired ids only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SenderClass {
    /// One of the channel's `owners` (or the operator's own API).
    Owner,
    /// In `allowFrom`, or paired by the owner.
    Allowed,
    /// Anyone else.
    Stranger,
}

impl SenderClass {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Allowed => "allowed",
            Self::Stranger => "stranger",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "allowed" => Some(Self::Allowed),
            "stranger" => Some(Self::Stranger),
            _ => None,
        }
    }
}

/// Classifies `sender_id` on a channel: owners first, then `allowFrom` (explicit ids, not
/// `"*"`) and senders the owner paired (`paired`).
pub fn classify(
    policy: &ChannelAccessConfig,
    paired: impl Fn(&str) -> bool,
    sender_id: &str,
) -> SenderClass {
    if policy.is_owner(sender_id) {
        SenderClass::Owner
    } else if policy.allow_from.ids.iter().any(|id| id == sender_id) || paired(sender_id) {
        SenderClass::Allowed
    } else {
        SenderClass::Stranger
    }
}

/// The facts about a message the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    /// DM or group.
    pub kind: ChatKind,
    /// The sender's stable id.
    pub sender_id: &'a str,
    /// The chat.
    pub chat_id: &'a str,
    /// The text.
    pub text: &'a str,
    /// The bridge saw a platform mention of the bot or a reply to it.
    pub mentions_bot: bool,
}

/// What the gateway does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run a turn.
    Turn,
    /// Handle a chat command without the model.
    Command(ChatCommand),
    /// A stranger under `dmPolicy: pairing`: ask the pairing-code book.
    Pairing,
    /// Keep it in the transcript as context; no turn.
    Context(IgnoreReason),
    /// Store it for the record only.
    Ignore(IgnoreReason),
}

/// Why a message did not start a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// No access policy for this channel.
    UnknownChannel,
    /// Empty text.
    Empty,
    /// `dmPolicy: disabled`.
    DmDisabled,
    /// A stranger under `dmPolicy: allowlist`.
    SenderNotAllowed,
    /// `groupPolicy: disabled`.
    GroupDisabled,
    /// The group is not allowed (or turned off).
    GroupNotAllowed,
    /// A group member who may not start turns.
    MemberNotAllowed,
    /// A group message that did not address the bot.
    NotMentioned,
    /// A chat command the sender may not use.
    CommandNotPermitted,
    /// The stranger already has a pairing request (the code was sent once).
    PairingPending,
    /// The owner rejected this sender's request within the last hour.
    PairingRejected,
    /// The channel account has the most pending pairing requests already.
    PairingFull,
    /// The pairing code was sent with this message.
    PairingCodeSent,
}

impl IgnoreReason {
    /// A short note for the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownChannel => "channel not configured",
            Self::Empty => "empty message",
            Self::DmDisabled => "dm policy disabled",
            Self::SenderNotAllowed => "sender not in allowFrom",
            Self::GroupDisabled => "group policy disabled",
            Self::GroupNotAllowed => "group not allowed",
            Self::MemberNotAllowed => "group member may not start turns",
            Self::NotMentioned => "group message without mention",
            Self::CommandNotPermitted => "chat command not permitted for this sender",
            Self::PairingPending => "pairing request pending; code already sent",
            Self::PairingRejected => "pairing request rejected by the owner",
            Self::PairingFull => "too many pending pairing requests on this account",
            Self::PairingCodeSent => "stranger; pairing code sent",
        }
    }
}

/// Decides what happens to a message on a channel with `policy` from a sender of `class`.
/// Fails closed: anything not allowed is ignored.
pub fn judge(policy: &ChannelAccessConfig, class: SenderClass, m: &MessageFacts<'_>) -> Verdict {
    match m.kind {
        ChatKind::Operator => Verdict::Ignore(IgnoreReason::UnknownChannel),
        ChatKind::Direct => judge_dm(policy, class, m),
        ChatKind::Group => judge_group(policy, class, m),
    }
}

fn judge_dm(policy: &ChannelAccessConfig, class: SenderClass, m: &MessageFacts<'_>) -> Verdict {
    if policy.dm_policy == DmPolicy::Disabled {
        return Verdict::Ignore(IgnoreReason::DmDisabled);
    }
    let admitted = match (class, policy.dm_policy) {
        (SenderClass::Owner | SenderClass::Allowed, _) => true,
        (SenderClass::Stranger, DmPolicy::Open) => policy.allow_from.anyone,
        (SenderClass::Stranger, DmPolicy::Pairing) => return Verdict::Pairing,
        (SenderClass::Stranger, _) => false,
    };
    if !admitted {
        return Verdict::Ignore(IgnoreReason::SenderNotAllowed);
    }
    if m.text.trim().is_empty() {
        return Verdict::Ignore(IgnoreReason::Empty);
    }
    match parse_command(m.text) {
        Some(cmd) if cmd.permitted(class, ChatKind::Direct) => Verdict::Command(cmd),
        Some(_) => Verdict::Ignore(IgnoreReason::CommandNotPermitted),
        None => Verdict::Turn,
    }
}

fn judge_group(policy: &ChannelAccessConfig, class: SenderClass, m: &MessageFacts<'_>) -> Verdict {
    let rule = policy.group_rule(m.chat_id);
    let group_allowed = match policy.group_policy {
        GroupPolicy::Disabled => return Verdict::Ignore(IgnoreReason::GroupDisabled),
        GroupPolicy::Open => rule.is_none_or(|r| r.enabled),
        GroupPolicy::Allowlist => rule.is_some_and(|r| r.enabled),
    };
    if !group_allowed {
        return Verdict::Ignore(IgnoreReason::GroupNotAllowed);
    }
    if m.text.trim().is_empty() {
        return Verdict::Ignore(IgnoreReason::Empty);
    }
    let members = rule
        .and_then(|r| r.allow_from.as_ref())
        .or(policy.group_allow_from.as_ref());
    let member_ok = class == SenderClass::Owner
        || match members {
            Some(list) => list.contains(m.sender_id),
            None => class == SenderClass::Allowed,
        };
    let require_mention = rule
        .and_then(|r| r.require_mention)
        .unwrap_or(policy.require_mention);
    let addressed = !require_mention
        || m.mentions_bot
        || policy.mention_patterns.iter().any(|re| re.is_match(m.text));
    if let Some(cmd) = parse_command(m.text) {
        return if member_ok && addressed && cmd.permitted(class, ChatKind::Group) {
            Verdict::Command(cmd)
        } else {
            Verdict::Ignore(IgnoreReason::CommandNotPermitted)
        };
    }
    if !member_ok {
        Verdict::Context(IgnoreReason::MemberNotAllowed)
    } else if !addressed {
        Verdict::Context(IgnoreReason::NotMentioned)
    } else {
        Verdict::Turn
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
