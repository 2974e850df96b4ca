//! The validated access rules of a chat channel (`channels.<ch>.dmPolicy`, `allowFrom`,
//! `owners`, `groupPolicy`, `groups`, `groupAllowFrom`, `requireMention`,
//! `mentionPatterns`) and the `session` section (`dmScope`, `identityLinks`).
//!
//! Rules enforced here: ids are the platform's stable ids (checked per channel), never
//! display names; `"*"` is accepted only where it means "anyone" on purpose (`allowFrom`
//! under `open`, the group member lists, the `groups` default entry), never as an owner;
//! mention patterns are compiled once, here, and a bad one names its key; every account in
//! `identityLinks` belongs to exactly one person.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};

pub use super::raw::{DmPolicy, DmScope, GroupPolicy};
use super::raw::{RawGroup, RawSession};
use super::validate::Issues;

/// Channels whose ids `session.identityLinks` may name.
pub const KNOWN_CHANNELS: &[&str] = &["telegram", "irc", "email", "matrix"];

/// Longest mention pattern accepted, in bytes.
const MAX_PATTERN_LEN: usize = 512;
/// Compiled size limit per mention pattern.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A list of platform user ids, possibly with `"*"` (anyone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderList {
    /// Explicit ids.
    pub ids: Vec<String>,
    /// `"*"` was listed.
    pub anyone: bool,
}

impl SenderList {
    /// Whether `id` is on the list (explicitly or through `"*"`).
    pub fn contains(&self, id: &str) -> bool {
        self.anyone || self.ids.iter().any(|x| x == id)
    }
}

/// `channels.<ch>.groups.<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    /// Served at all.
    pub enabled: bool,
    /// Overrides the channel's `requireMention`.
    pub require_mention: Option<bool>,
    /// Overrides `groupAllowFrom`.
    pub allow_from: Option<SenderList>,
}

/// Who may reach the assistant on one channel, validated.
#[derive(Debug, Clone)]
pub struct ChannelAccessConfig {
    /// `dmPolicy`.
    pub dm_policy: DmPolicy,
    /// `allowFrom` (the static part; paired senders are added at run time). `anyone` only
    /// under `dmPolicy: open`.
    pub allow_from: SenderList,
    /// `owners`: the owner's own ids.
    pub owners: Vec<String>,
    /// `groupPolicy`.
    pub group_policy: GroupPolicy,
    /// `groups`, without the `"*"` entry.
    pub groups: BTreeMap<String, GroupRule>,
    /// `groups["*"]`: settings for groups not listed by id.
    pub default_group: Option<GroupRule>,
    /// `groupAllowFrom` (`None`: owners, `allowFrom` and paired senders).
    pub group_allow_from: Option<SenderList>,
    /// `requireMention`.
    pub require_mention: bool,
    /// `mentionPatterns`, compiled.
    pub mention_patterns: Vec<Regex>,
}

impl ChannelAccessConfig {
    /// Whether `id` is one of the owner's ids.
    pub fn is_owner(&self, id: &str) -> bool {
        self.owners.iter().any(|o| o == id)
    }

    /// The rule for group `chat_id`: its own entry, else the `"*"` entry.
    pub fn group_rule(&self, chat_id: &str) -> Option<&GroupRule> {
        self.groups.get(chat_id).or(self.default_group.as_ref())
    }
}

/// One account named in `session.identityLinks`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkedAccount {
    /// The channel, e.g. `telegram`.
    pub channel: String,
    /// The platform user id.
    pub user_id: String,
}

/// `session`, validated.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// `dmScope`.
    pub dm_scope: DmScope,
    /// `identityLinks`: person → accounts.
    pub identity_links: BTreeMap<String, Vec<LinkedAccount>>,
}

impl SessionConfig {
    /// The person an account is linked to, if any.
    pub fn person_of(&self, channel: &str, user_id: &str) -> Option<&str> {
        self.identity_links
            .iter()
            .find(|(_, accounts)| {
                accounts
                    .iter()
                    .any(|a| a.channel == channel && a.user_id == user_id)
            })
            .map(|(name, _)| name.as_str())
    }
}

/// How a channel's ids look.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdRule {
    /// Whether a user id is well-formed.
    pub user: fn(&str) -> bool,
    /// Whether a group chat id is well-formed.
    pub group: fn(&str) -> bool,
    /// What a user id is, for messages ("a numeric Telegram user id").
    pub user_what: &'static str,
    /// What a group id is, for messages.
    pub group_what: &'static str,
}

/// Telegram: user and chat ids are integers (groups negative).
pub(super) const TELEGRAM_IDS: IdRule = IdRule {
    user: is_integer,
    group: is_integer,
    user_what: "a numeric Telegram user id (ask @userinfobot), never a @username",
    group_what: "a numeric Telegram chat id, e.g. \"-1001234567890\"",
};

/// IRC: a user is the full hostmask `nick!user@host` the server reports (IRC has no
/// other stable id); a group is a channel name, lowercased (`#pincer`).
pub(super) const IRC_IDS: IdRule = IdRule {
    user: is_irc_hostmask,
    group: is_irc_channel,
    user_what: "an IRC hostmask \"nick!user@host\" (the form `pincer pairing list` shows)",
    group_what: "a lowercase IRC channel name, e.g. \"#pincer\"",
};

/// E-mail: a user is an address in lower case; there are no groups.
pub(super) const EMAIL_IDS: IdRule = IdRule {
    user: is_email_address,
    group: |_| false,
    user_what: "an e-mail address in lower case, e.g. \"alice@example.org\"",
    group_what: "nothing: e-mail has no groups",
};

/// Matrix: a user id `@local:server`, a room id `!opaque:server` (never an alias).
pub(super) const MATRIX_IDS: IdRule = IdRule {
    user: |s| is_matrix_id(s, '@'),
    group: is_matrix_room_id,
    user_what: "a full Matrix user id, e.g. \"@alice:example.org\"",
    group_what: "a Matrix room id, e.g. \"!abcdef:example.org\" (not a #alias)",
};

/// The id rule of a channel Pincer serves.
fn id_rule(channel: &str) -> Option<IdRule> {
    match channel {
        "telegram" => Some(TELEGRAM_IDS),
        "irc" => Some(IRC_IDS),
        "email" => Some(EMAIL_IDS),
        "matrix" => Some(MATRIX_IDS),
        _ => None,
    }
}

fn is_irc_hostmask(s: &str) -> bool {
    let Some((nick, rest)) = s.split_once('!') else {
        return false;
    };
    let Some((user, host)) = rest.split_once('@') else {
        return false;
    };
    let clean = |p: &str| {
        !p.is_empty()
            && !p
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "!@*?,".contains(c))
    };
    s.len() <= 256 && clean(nick) && clean(user) && clean(host)
}

fn is_irc_channel(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 200
        && s.starts_with(['#', '&', '+', '!'])
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':')
        && s.to_lowercase() == s
}

fn is_email_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let domain_ok = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    s.len() <= 254
        && !local.is_empty()
        && domain_ok
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"@".contains(c))
        && s.to_lowercase() == s
}

/// `!opaque:server`, or `!opaque` (room version 12 and later drop the server part).
fn is_matrix_room_id(s: &str) -> bool {
    s.len() > 1
        && s.len() <= 255
        && s.starts_with('!')
        && !s.ends_with(':')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_matrix_id(s: &str, sigil: char) -> bool {
    let Some(rest) = s.strip_prefix(sigil) else {
        return false;
    };
    let Some((local, server)) = rest.split_once(':') else {
        return false;
    };
    s.len() <= 255
        && !local.is_empty()
        && !server.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_integer(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

/// The access keys of one channel section, as written.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawAccess<'a> {
    pub dm_policy: Option<DmPolicy>,
    pub allow_from: &'a [String],
    pub owners: &'a [String],
    pub group_policy: Option<GroupPolicy>,
    pub groups: &'a BTreeMap<String, RawGroup>,
    pub group_allow_from: Option<&'a [String]>,
    pub require_mention: Option<bool>,
    pub mention_patterns: &'a [String],
}

/// Validates the access keys of the channel section at `base` (e.g. `channels.telegram`).
pub(super) fn validate_access(
    raw: RawAccess<'_>,
    base: &str,
    ids: IdRule,
    issues: &mut Issues,
) -> ChannelAccessConfig {
    let allow_from = sender_list(raw.allow_from, &format!("{base}.allowFrom"), ids, issues);
    let dm_policy = raw.dm_policy.unwrap_or(DmPolicy::Pairing);
    match dm_policy {
        DmPolicy::Open if !allow_from.anyone => issues.add(
            &format!("{base}.dmPolicy"),
            "\"open\" requires \"*\" in allowFrom",
            "add \"*\" to allowFrom to confirm that anyone may DM the bot",
        ),
        DmPolicy::Pairing | DmPolicy::Allowlist if allow_from.anyone => issues.add(
            &format!("{base}.allowFrom"),
            format!("contains \"*\" under dmPolicy {:?}", policy_name(dm_policy)),
            "list user ids, or set dmPolicy to \"open\" deliberately",
        ),
        _ => {}
    }
    let mut owners = Vec::new();
    for (i, id) in raw.owners.iter().enumerate() {
        let path = format!("{base}.owners[{i}]");
        if id == "*" {
            issues.add(
                &path,
                "\"*\" cannot be an owner",
                "list your own user ids only",
            );
        } else if !(ids.user)(id) {
            issues.add(
                &path,
                format!("{id:?} is not {}", ids.user_what),
                "use the stable id the platform gives",
            );
        } else if !owners.contains(id) {
            owners.push(id.clone());
        }
    }

    let mut groups = BTreeMap::new();
    let mut default_group = None;
    for (id, g) in raw.groups {
        let path = format!("{base}.groups.{id}");
        if id != "*" && !(ids.group)(id) {
            issues.add(
                &path,
                format!("{id:?} is not {}", ids.group_what),
                "key each group by its stable chat id, or use \"*\" for every group",
            );
            continue;
        }
        let rule = GroupRule {
            enabled: g.enabled.unwrap_or(true),
            require_mention: g.require_mention,
            allow_from: g
                .allow_from
                .as_deref()
                .map(|list| sender_list(list, &format!("{path}.allowFrom"), ids, issues)),
        };
        if id == "*" {
            default_group = Some(rule);
        } else {
            groups.insert(id.clone(), rule);
        }
    }
    let group_allow_from = raw
        .group_allow_from
        .map(|list| sender_list(list, &format!("{base}.groupAllowFrom"), ids, issues));

    let mut mention_patterns = Vec::new();
    for (i, pattern) in raw.mention_patterns.iter().enumerate() {
        let path = format!("{base}.mentionPatterns[{i}]");
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            issues.add(
                &path,
                format!("the pattern is {} bytes long", pattern.len()),
                format!("use 1 to {MAX_PATTERN_LEN} bytes"),
            );
            continue;
        }
        match RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
        {
            Ok(re) => mention_patterns.push(re),
            Err(e) => issues.add(
                &path,
                format!(
                    "{pattern:?} is not a valid regex: {}",
                    one_line(&e.to_string())
                ),
                "write a Rust regex, e.g. \"(?i)\\\\bpincer\\\\b\"",
            ),
        }
    }

    ChannelAccessConfig {
        dm_policy,
        allow_from,
        owners,
        group_policy: raw.group_policy.unwrap_or(GroupPolicy::Allowlist),
        groups,
        default_group,
        group_allow_from,
        require_mention: raw.require_mention.unwrap_or(true),
        mention_patterns,
    }
}

fn policy_name(p: DmPolicy) -> &'static str {
    match p {
        DmPolicy::Pairing => "pairing",
        DmPolicy::Allowlist => "allowlist",
        DmPolicy::Open => "open",
        DmPolicy::Disabled => "disabled",
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sender_list(raw: &[String], path: &str, ids: IdRule, issues: &mut Issues) -> SenderList {
    let mut list = SenderList::default();
    for (i, id) in raw.iter().enumerate() {
        if id == "*" {
            list.anyone = true;
        } else if !(ids.user)(id) {
            issues.add(
                &format!("{path}[{i}]"),
                format!("{id:?} is not {}", ids.user_what),
                "use stable ids, or \"*\" for anyone",
            );
        } else if !list.ids.contains(id) {
            list.ids.push(id.clone());
        }
    }
    list
}

/// Validates `session`.
pub(super) fn validate_session(raw: &RawSession, issues: &mut Issues) -> SessionConfig {
    let mut identity_links = BTreeMap::new();
    let mut owner_of: BTreeMap<LinkedAccount, String> = BTreeMap::new();
    for (name, accounts) in &raw.identity_links {
        let path = format!("session.identityLinks.{name}");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            issues.add(
                &path,
                format!("{name:?} is not a usable name"),
                "use 1 to 64 letters, digits, '-' or '_', e.g. \"alice\"",
            );
            continue;
        }
        if accounts.is_empty() {
            issues.add(
                &path,
                "lists no accounts",
                "list the person's accounts as \"<channel>:<user id>\", or remove the entry",
            );
            continue;
        }
        let mut linked = Vec::new();
        for (i, entry) in accounts.iter().enumerate() {
            let item = format!("{path}[{i}]");
            let Some(account) = linked_account(entry, &item, issues) else {
                continue;
            };
            if let Some(other) = owner_of.get(&account) {
                issues.add(
                    &item,
                    format!("{entry:?} is already linked to {other:?}"),
                    "an account belongs to one person: keep it under one name only",
                );
                continue;
            }
            owner_of.insert(account.clone(), name.clone());
            linked.push(account);
        }
        identity_links.insert(name.clone(), linked);
    }
    SessionConfig {
        dm_scope: raw.dm_scope.unwrap_or_default(),
        identity_links,
    }
}

fn linked_account(entry: &str, path: &str, issues: &mut Issues) -> Option<LinkedAccount> {
    let Some((channel, user_id)) = entry.split_once(':') else {
        issues.add(
            path,
            format!("{entry:?} is not \"<channel>:<user id>\""),
            "write it as e.g. \"telegram:123456789\"",
        );
        return None;
    };
    let Some(ids) = id_rule(channel) else {
        issues.add(
            path,
            format!("{entry:?} names channel {channel:?}, which Pincer does not serve"),
            format!("use one of: {}", KNOWN_CHANNELS.join(", ")),
        );
        return None;
    };
    if !(ids.user)(user_id) {
        issues.add(
            path,
            format!("{user_id:?} is not {}", ids.user_what),
            "use the stable id the platform gives",
        );
        return None;
    }
    Some(LinkedAccount {
        channel: channel.to_owned(),
        user_id: user_id.to_owned(),
    })
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
