//! Pure routing: which session a message belongs to. No I/O.
//!
//! | message | `session.dmScope` | session key |
//! |---|---|---|
//! | the owner's DM | `main` (default) | `agent:<a>:main` |
//! | anyone else's DM | `main` | `agent:<a>:dm:<person>` |
//! | any DM | `per-peer` | `agent:<a>:dm:<person>` |
//! | any DM | `per-channel-peer` | `agent:<a>:<channel>:<account>:dm:<peer>` |
//! | a group | any | `agent:<a>:<channel>:<account>:group:<chat>` |
//! | a thread or topic in a group | any | `…:group:<chat>:thread:<thread>` |
//! | the operator's CLI / web chat | — | `agent:<a>:operator:<name>` |
//!
//! `<person>` is `~<name>` for an account listed in `session.identityLinks`, otherwise
//! `<channel>:<user id>`; `<peer>` is `~<name>` or the user id. After `/new` (or `/reset`)
//! a session continues under its key plus `#<n>`.
//!
//! Components are escaped (`%`, `:`, `#`, `~`), so no platform id can forge another key, a
//! link name or an epoch: different people never share a session unless the owner linked
//! their accounts.

use std::fmt;

use pincer_runtime::config::validate::{DmScope, SessionConfig};

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

/// The facts about a channel message that pick its session. Whether the sender is the
/// owner is decided by the gateway (configured ids), never taken from the message.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The channel, e.g. `telegram`.
    pub channel: &'a str,
    /// The channel account (bot).
    pub account: &'a str,
    /// DM or group.
    pub kind: ChatKind,
    /// The sender's stable id.
    pub sender_id: &'a str,
    /// The chat.
    pub chat_id: &'a str,
    /// Thread or topic in a group, or empty.
    pub thread_id: &'a str,
    /// The sender is one of the channel's owners.
    pub owner: bool,
}

impl SessionKey {
    /// The session of a channel message under `session` (`dmScope`, `identityLinks`).
    pub fn route(session: &SessionConfig, r: &Route<'_>) -> Self {
        let agent = esc(r.agent);
        let linked = session
            .person_of(r.channel, r.sender_id)
            .map(|name| format!("~{}", esc(name)));
        match r.kind {
            ChatKind::Operator => Self::operator(r.agent, r.chat_id),
            ChatKind::Group => {
                let mut key = format!(
                    "agent:{agent}:{}:{}:group:{}",
                    esc(r.channel),
                    esc(r.account),
                    esc(r.chat_id)
                );
                if !r.thread_id.is_empty() {
                    key.push_str(":thread:");
                    key.push_str(&esc(r.thread_id));
                }
                Self(key)
            }
            ChatKind::Direct => match session.dm_scope {
                DmScope::Main if r.owner => Self(format!("agent:{agent}:main")),
                DmScope::Main | DmScope::PerPeer => {
                    let person = linked
                        .unwrap_or_else(|| format!("{}%3A{}", esc(r.channel), esc(r.sender_id)));
                    Self(format!("agent:{agent}:dm:{person}"))
                }
                DmScope::PerChannelPeer => {
                    let peer = linked.unwrap_or_else(|| esc(r.sender_id));
                    Self(format!(
                        "agent:{agent}:{}:{}:dm:{peer}",
                        esc(r.channel),
                        esc(r.account)
                    ))
                }
            },
        }
    }

    /// The session of a channel message with one session per peer per channel account and
    /// one per group (`dmScope: per-channel-peer`, no links, no thread).
    pub fn for_chat(
        agent: &str,
        channel: &str,
        account: &str,
        kind: ChatKind,
        sender_id: &str,
        chat_id: &str,
    ) -> Self {
        let session = SessionConfig {
            dm_scope: DmScope::PerChannelPeer,
            identity_links: Default::default(),
        };
        Self::route(
            &session,
            &Route {
                agent,
                channel,
                account,
                kind,
                sender_id,
                chat_id,
                thread_id: "",
                owner: false,
            },
        )
    }

    /// A named operator session.
    pub fn operator(agent: &str, name: &str) -> Self {
        Self(format!("agent:{}:operator:{}", esc(agent), esc(name)))
    }

    /// The session that continues this one after `epoch` resets (`/new`, `/reset`); epoch
    /// 0 is the key itself.
    pub fn at_epoch(&self, epoch: u32) -> Self {
        if epoch == 0 {
            self.clone()
        } else {
            Self(format!("{}#{epoch}", self.0))
        }
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

/// Percent-escapes `%`, `:`, `#` and `~` so components cannot contain a separator, an
/// epoch marker or a link marker.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '#' => out.push_str("%23"),
            '~' => out.push_str("%7E"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
