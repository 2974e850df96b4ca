//! Chat commands the gateway answers without the model, pure: parsing, who may use which,
//! and the reply texts.
//!
//! | command | DM | group (addressed to the bot) |
//! |---|---|---|
//! | `/help`, `/status` | any admitted sender | members who may start turns |
//! | `/new`, `/reset` | any admitted sender (their own session) | owner only |
//! | `/approve <id> allow-once\|allow-always\|deny` | owner only | owner only |
//!
//! A command is the first word of the message (after leading `@mentions`), optionally
//! with a `@botname` suffix as Telegram writes it in groups. Unknown `/words` are not
//! commands: they go to the model like any text.

use crate::approvals::{ApprovalId, Decision};
use crate::routing::ChatKind;

use super::policy::SenderClass;

/// A chat command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// `/status`: the session and who the sender is.
    Status,
    /// `/new`: start a fresh session (history is kept in the record).
    New,
    /// `/reset`: the same as `/new`.
    Reset,
    /// `/help`: the commands.
    Help,
    /// `/approve <id> <decision>`.
    Approve(ApproveArgs),
}

/// The arguments of `/approve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveArgs {
    /// Well-formed.
    Valid {
        /// The approval.
        id: ApprovalId,
        /// The decision.
        decision: Decision,
    },
    /// Malformed; the owner gets the usage.
    Invalid,
}

/// How to use `/approve`.
pub const APPROVE_USAGE: &str = "Usage: /approve <id> allow-once|allow-always|deny (the id looks like apr_abcdefghjk; `pincer approvals list` shows open requests)";

/// Parses a chat command, or `None` when the text is not one.
pub fn parse_command(text: &str) -> Option<ChatCommand> {
    let mut words = text
        .split_whitespace()
        .skip_while(|w| w.starts_with('@') && w.len() > 1);
    let first = words.next()?.strip_prefix('/')?;
    let name = first.split_once('@').map_or(first, |(name, _)| name);
    let command = match name.to_ascii_lowercase().as_str() {
        "status" => ChatCommand::Status,
        "new" => ChatCommand::New,
        "reset" => ChatCommand::Reset,
        "help" => ChatCommand::Help,
        "approve" => {
            let args: Vec<&str> = words.collect();
            let parsed = match args.as_slice() {
                [id, decision] => ApprovalId::parse(id).zip(Decision::parse(decision)),
                _ => None,
            };
            ChatCommand::Approve(match parsed {
                Some((id, decision)) => ApproveArgs::Valid { id, decision },
                None => ApproveArgs::Invalid,
            })
        }
        _ => return None,
    };
    Some(command)
}

impl ChatCommand {
    /// Whether an admitted sender of `class` may use this command in a chat of `kind`.
    pub fn permitted(&self, class: SenderClass, kind: ChatKind) -> bool {
        match self {
            Self::Status | Self::Help => true,
            Self::New | Self::Reset => kind == ChatKind::Direct || class == SenderClass::Owner,
            Self::Approve(_) => class == SenderClass::Owner,
        }
    }

    /// The command's name with its slash.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status => "/status",
            Self::New => "/new",
            Self::Reset => "/reset",
            Self::Help => "/help",
            Self::Approve(_) => "/approve",
        }
    }
}

/// The `/help` text for a sender of `class` in a chat of `kind`: only the commands they
/// may use.
pub fn help_text(class: SenderClass, kind: ChatKind) -> String {
    let all = [
        (
            ChatCommand::Status,
            "/status: this session and who you are to the assistant",
        ),
        (
            ChatCommand::New,
            "/new: start a fresh session (earlier messages are no longer sent to the model)",
        ),
        (ChatCommand::Reset, "/reset: the same as /new"),
        (ChatCommand::Help, "/help: this list"),
        (
            ChatCommand::Approve(ApproveArgs::Invalid),
            "/approve <id> allow-once|allow-always|deny: answer an exec approval request",
        ),
    ];
    let mut lines = vec!["Commands (answered by the gateway, not the model):".to_owned()];
    lines.extend(
        all.iter()
            .filter(|(c, _)| c.permitted(class, kind))
            .map(|(_, line)| (*line).to_owned()),
    );
    lines.join("\n")
}

/// What `/status` reports.
#[derive(Debug, Clone)]
pub struct StatusFacts {
    /// The sender's class.
    pub class: SenderClass,
    /// The channel.
    pub channel: String,
    /// The sender's id.
    pub sender_id: String,
    /// `session.dmScope` (or "group").
    pub scope: &'static str,
    /// The agent.
    pub agent_id: String,
}

/// The `/status` text, given the session and its transcript length.
pub fn status_text(f: &StatusFacts, session_key: &str, entries: u64) -> String {
    let who = match f.class {
        SenderClass::Owner => "the owner",
        SenderClass::Allowed => "an allowed sender",
        SenderClass::Stranger => "a sender without an allow-list entry (open DMs)",
    };
    format!(
        "Session: {session_key} ({entries} messages)\nScope: {}\nAgent: {}\nYou: {} {} ({who})",
        f.scope, f.agent_id, f.channel, f.sender_id
    )
}

/// The reply to `/new` and `/reset`.
pub const NEW_SESSION_TEXT: &str = "Started a new session. Earlier messages stay in the record but are no longer sent to the model.";

#[cfg(test)]
mod tests {
    use super::*;

    fn approve(id: &str, d: Decision) -> Option<ChatCommand> {
        Some(ChatCommand::Approve(ApproveArgs::Valid {
            id: ApprovalId::parse(id).unwrap(),
            decision: d,
        }))
    }

    #[test]
    fn parses_commands_with_mentions_and_bot_suffixes() {
        assert_eq!(parse_command("/status"), Some(ChatCommand::Status));
        assert_eq!(parse_command("  /NEW  "), Some(ChatCommand::New));
        assert_eq!(parse_command("/reset@pincer_bot"), Some(ChatCommand::Reset));
        assert_eq!(parse_command("@pincer_bot /help"), Some(ChatCommand::Help));
        assert_eq!(
            parse_command("/approve apr_abcdefghjk allow-once"),
            approve("apr_abcdefghjk", Decision::AllowOnce)
        );
        assert_eq!(
            parse_command("/approve@bot apr_abcdefghjk deny"),
            approve("apr_abcdefghjk", Decision::Deny)
        );
        for bad in [
            "/approve",
            "/approve apr_abcdefghjk",
            "/approve apr_abcdefghjk maybe",
            "/approve nope allow-once",
            "/approve apr_abcdefghjk allow-once now",
        ] {
            assert_eq!(
                parse_command(bad),
                Some(ChatCommand::Approve(ApproveArgs::Invalid)),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_text_is_not_a_command() {
        for text in [
            "",
            "status",
            "hello /status",
            "/statusx",
            "/unknown",
            "/",
            "@",
            "@bot",
            "// comment",
        ] {
            assert_eq!(parse_command(text), None, "{text:?}");
        }
    }

    #[test]
    fn who_may_use_what() {
        use SenderClass::*;
        let approve = ChatCommand::Approve(ApproveArgs::Invalid);
        for kind in [ChatKind::Direct, ChatKind::Group] {
            assert!(approve.permitted(Owner, kind));
            assert!(!approve.permitted(Allowed, kind));
            assert!(!approve.permitted(Stranger, kind));
            assert!(ChatCommand::Status.permitted(Allowed, kind));
            assert!(ChatCommand::Help.permitted(Stranger, kind));
        }
        assert!(ChatCommand::New.permitted(Allowed, ChatKind::Direct));
        assert!(!ChatCommand::New.permitted(Allowed, ChatKind::Group));
        assert!(!ChatCommand::Reset.permitted(Allowed, ChatKind::Group));
        assert!(ChatCommand::Reset.permitted(Owner, ChatKind::Group));
    }

    #[test]
    fn help_lists_only_usable_commands() {
        let owner = help_text(SenderClass::Owner, ChatKind::Direct);
        assert!(owner.contains("/approve") && owner.contains("/new"));
        let allowed = help_text(SenderClass::Allowed, ChatKind::Group);
        assert!(!allowed.contains("/approve") && !allowed.contains("/new"));
        assert!(allowed.contains("/status"));
    }
}
