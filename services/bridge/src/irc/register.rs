//! Connection registration: `PASS`, capability negotiation (`CAP LS 302` / `REQ` / `END`),
//! SASL PLAIN, `NICK` / `USER`, nick collisions, up to the `001` welcome.
//!
//! Fail-closed rule: when SASL is configured, the connection is only used after the server
//! confirmed the login (`903`). A server that does not offer SASL (no `CAP`, no `sasl`
//! capability, `PLAIN` not among its mechanisms), refuses the capability, or rejects the
//! credentials ends the attempt with an operator error: the bot never silently runs
//! unauthenticated when the operator asked for an account.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::settings::IrcSettings;
use super::transport::{Io, Line, LineReader, write_message};
use super::wire::Message;
use crate::adapter::PlatformError;

const CHANNEL: &str = "irc";
/// Capabilities we use when the server offers them (besides `sasl`).
const WANTED_CAPS: [&str; 3] = ["message-tags", "server-time", "account-tag"];
/// The longest base64 piece of one `AUTHENTICATE` line (IRCv3 SASL).
const AUTHENTICATE_CHUNK: usize = 400;

/// What registration established.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The nick the server accepted (the configured one, maybe with `_` appended).
    pub nick: String,
    /// Our `nick!user@host` if the welcome told it.
    pub hostmask: Option<String>,
    /// Capabilities the server acknowledged.
    pub caps: BTreeSet<String>,
}

impl Registered {
    /// True when the server acknowledged `message-tags` (client tags, `TAGMSG`).
    pub fn message_tags(&self) -> bool {
        self.caps.contains("message-tags")
    }
}

struct Negotiation<'a> {
    settings: &'a IrcSettings,
    nick: String,
    nick_attempts: u32,
    offered: Vec<String>,
    caps: BTreeSet<String>,
    authenticated: bool,
}

fn operator(message: impl Into<String>) -> PlatformError {
    PlatformError::operator(CHANNEL, message)
}

async fn send(io: &mut Box<dyn Io>, command: &str, params: &[&str]) -> Result<(), PlatformError> {
    write_message(io.as_mut(), &Message::new(command, params)).await
}

/// Registers on a fresh connection (see the module docs). The caller bounds the time.
pub async fn register(
    io: &mut Box<dyn Io>,
    reader: &mut LineReader,
    settings: &IrcSettings,
) -> Result<Registered, PlatformError> {
    let mut n = Negotiation {
        settings,
        nick: settings.nick.clone(),
        nick_attempts: 0,
        offered: Vec::new(),
        caps: BTreeSet::new(),
        authenticated: false,
    };
    if let Some(password) = &settings.server_password {
        send(io, "PASS", &[password.expose()]).await?;
    }
    send(io, "CAP", &["LS", "302"]).await?;
    send(io, "NICK", &[&n.nick]).await?;
    send(
        io,
        "USER",
        &[&settings.username, "0", "*", &settings.realname],
    )
    .await?;
    loop {
        let line = match reader.next_line(io.as_mut()).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Closed) => {
                return Err(PlatformError::transient(
                    CHANNEL,
                    "the server closed the connection during registration",
                ));
            }
            Err(e) => {
                return Err(PlatformError::transient(
                    CHANNEL,
                    format!("reading from the server failed: {e}"),
                ));
            }
        };
        let Ok(message) = Message::parse(&line) else {
            continue;
        };
        if let Some(registered) = n.handle(io, &message).await? {
            return Ok(registered);
        }
    }
}

impl Negotiation<'_> {
    /// Handles one server message; `Some` once registered.
    async fn handle(
        &mut self,
        io: &mut Box<dyn Io>,
        message: &Message,
    ) -> Result<Option<Registered>, PlatformError> {
        let sasl = self.settings.sasl.as_ref();
        match message.command.as_str() {
            "PING" => {
                let token = message.param(0).unwrap_or("");
                send(io, "PONG", &[token]).await?;
            }
            "CAP" => self.handle_cap(io, message).await?,
            "AUTHENTICATE" if message.param(0) == Some("+") => {
                if let Some(sasl) = sasl {
                    let payload = format!(
                        "{}\0{}\0{}",
                        sasl.account,
                        sasl.account,
                        sasl.password.expose()
                    );
                    let encoded = BASE64.encode(payload.as_bytes());
                    let mut pieces: Vec<&str> = Vec::new();
                    let mut rest = encoded.as_str();
                    while !rest.is_empty() {
                        let (piece, tail) = rest.split_at(rest.len().min(AUTHENTICATE_CHUNK));
                        pieces.push(piece);
                        rest = tail;
                    }
                    if encoded.len() % AUTHENTICATE_CHUNK == 0 {
                        pieces.push("+");
                    }
                    for piece in pieces {
                        send(io, "AUTHENTICATE", &[piece]).await?;
                    }
                }
            }
            "903" => {
                self.authenticated = true;
                send(io, "CAP", &["END"]).await?;
            }
            "902" | "904" | "905" | "906" => {
                return Err(operator(format!(
                    "SASL authentication failed ({}): check the SASL account and password",
                    message.command
                )));
            }
            "421"
                if sasl.is_some()
                    && message
                        .param(1)
                        .is_some_and(|c| c.eq_ignore_ascii_case("CAP")) =>
            {
                return Err(operator(
                    "SASL is configured but the server does not support capability negotiation; refusing to continue unauthenticated",
                ));
            }
            "433" | "437" => {
                self.nick_attempts += 1;
                if self.nick_attempts > self.settings.max_nick_attempts {
                    return Err(PlatformError::transient(
                        CHANNEL,
                        format!(
                            "the nick {:?} and {} variants with '_' are in use",
                            self.settings.nick, self.settings.max_nick_attempts
                        ),
                    ));
                }
                self.nick.push('_');
                tracing::info!(nick = %self.nick, "nick in use; trying another");
                send(io, "NICK", &[&self.nick]).await?;
            }
            "432" => {
                return Err(operator(format!(
                    "the server refused the nick {:?} as invalid",
                    self.nick
                )));
            }
            "464" => return Err(operator("the server refused the server password")),
            "465" => return Err(operator("the server says this client is banned")),
            "ERROR" => {
                return Err(PlatformError::transient(
                    CHANNEL,
                    format!(
                        "the server closed the link during registration: {}",
                        message.param(0).unwrap_or("")
                    ),
                ));
            }
            "001" => {
                if sasl.is_some() && !self.authenticated {
                    return Err(operator(
                        "SASL is configured but the server registered us without it; refusing to continue unauthenticated",
                    ));
                }
                let nick = message.param(0).unwrap_or(&self.nick).to_owned();
                let hostmask = message
                    .params
                    .last()
                    .and_then(|welcome| welcome.split(' ').next_back())
                    .filter(|word| word.contains('!') && word.contains('@'))
                    .map(str::to_owned);
                return Ok(Some(Registered {
                    nick,
                    hostmask,
                    caps: std::mem::take(&mut self.caps),
                }));
            }
            _ => {}
        }
        Ok(None)
    }

    async fn handle_cap(
        &mut self,
        io: &mut Box<dyn Io>,
        message: &Message,
    ) -> Result<(), PlatformError> {
        let sasl = self.settings.sasl.is_some();
        let sub = message.param(1).unwrap_or("").to_ascii_uppercase();
        let list = message.params.last().map(String::as_str).unwrap_or("");
        match sub.as_str() {
            "LS" => {
                self.offered
                    .extend(list.split(' ').filter(|c| !c.is_empty()).map(str::to_owned));
                let more = message.params.len() >= 4 && message.param(2) == Some("*");
                if more {
                    return Ok(());
                }
                let offered = |name: &str| {
                    self.offered.iter().find_map(|cap| {
                        let (cap_name, value) = cap.split_once('=').unwrap_or((cap, ""));
                        (cap_name == name).then_some(value)
                    })
                };
                if sasl {
                    match offered("sasl") {
                        None => {
                            return Err(operator(
                                "SASL is configured but the server does not offer it; refusing to continue unauthenticated",
                            ));
                        }
                        Some(mechanisms)
                            if !mechanisms.is_empty()
                                && !mechanisms
                                    .split(',')
                                    .any(|m| m.eq_ignore_ascii_case("PLAIN")) =>
                        {
                            return Err(operator(format!(
                                "SASL is configured but the server offers only {mechanisms}, not PLAIN"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                let mut wanted: Vec<&str> = WANTED_CAPS
                    .into_iter()
                    .filter(|cap| offered(cap).is_some())
                    .collect();
                if sasl {
                    wanted.push("sasl");
                }
                if wanted.is_empty() {
                    send(io, "CAP", &["END"]).await?;
                } else {
                    send(io, "CAP", &["REQ", &wanted.join(" ")]).await?;
                }
            }
            "ACK" => {
                for cap in list
                    .split(' ')
                    .filter(|c| !c.is_empty() && !c.starts_with('-'))
                {
                    self.caps.insert(cap.to_owned());
                }
                if sasl && self.caps.contains("sasl") {
                    send(io, "AUTHENTICATE", &["PLAIN"]).await?;
                } else if sasl {
                    return Err(operator(
                        "SASL is configured but the server did not enable it; refusing to continue unauthenticated",
                    ));
                } else {
                    send(io, "CAP", &["END"]).await?;
                }
            }
            "NAK" => {
                if sasl {
                    return Err(operator(
                        "SASL is configured but the server refused the capability; refusing to continue unauthenticated",
                    ));
                }
                send(io, "CAP", &["END"]).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
