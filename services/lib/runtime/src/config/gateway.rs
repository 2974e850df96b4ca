//! The validated `gateway` section: bind target, operator authentication, trusted proxies,
//! browser origins, failed-auth limits, device and HTTP endpoint switches.
//!
//! Rules enforced here: a non-loopback bind without authentication is refused; inline
//! tokens have at least 32 characters; passwords are stored only as Argon2id hashes;
//! proxies are IPs or CIDRs; origins are bare `scheme://host[:port]`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::raw::{AuthMode, BindMode, RawGateway};
use super::validate::{ENV_GATEWAY_TOKEN, Issues};
use crate::cidr::{IpCidr, normalize_ip};
use crate::secret::{SecretKind, SecretRef};

/// `gateway`, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Operator API port.
    pub port: u16,
    /// Where to listen.
    pub bind: GatewayBind,
    /// How operator clients authenticate.
    pub auth: GatewayAuth,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpCidr>,
    /// Browser origins allowed besides same-origin.
    pub allowed_origins: Vec<String>,
    /// Failed-auth limits.
    pub auth_rate_limit: AuthRateLimit,
    /// Approve devices on this host automatically.
    pub auto_approve_local_devices: bool,
    /// Serve `/v1/chat/completions` and `/v1/models`.
    pub chat_completions: bool,
    /// Budget for side-effecting calls.
    pub write_rate_limit: WriteRateLimit,
}

/// Budget for side-effecting operator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRateLimit {
    /// Calls allowed back to back.
    pub burst: u32,
    /// Sustained calls per minute.
    pub per_minute: u32,
}

/// Where the operator API listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayBind {
    /// 127.0.0.1.
    Loopback,
    /// 0.0.0.0.
    Lan,
    /// The host's Tailscale address, found at start.
    Tailnet,
    /// A given address.
    Custom(IpAddr),
}

/// Operator authentication.
#[derive(Debug, Clone)]
pub enum GatewayAuth {
    /// A shared token.
    Token(SecretRef),
    /// A password, as an Argon2id PHC string.
    Password(PasswordHash),
    /// No shared secret (loopback only).
    None,
}

/// An Argon2id PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`). Not a secret, but
/// still not printed in full.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash($argon2id$…)")
    }
}

/// Failed-auth limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRateLimit {
    /// Failures allowed within `window`.
    pub max_failures: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

/// Why the bind address could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// `tailnet` but no Tailscale address on this host.
    #[error(
        "gateway.bind is \"tailnet\" but this host has no Tailscale address (100.64.0.0/10 or fd7a:115c:a1e0::/48); start tailscaled and log in, or choose another gateway.bind"
    )]
    NoTailnetAddress,
}

impl GatewayConfig {
    /// The socket address to listen on, given this host's interface addresses.
    pub fn listen_addr(&self, interfaces: &[IpAddr]) -> Result<SocketAddr, BindError> {
        let ip = match self.bind {
            GatewayBind::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            GatewayBind::Lan => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            GatewayBind::Custom(ip) => ip,
            GatewayBind::Tailnet => {
                tailnet_address(interfaces).ok_or(BindError::NoTailnetAddress)?
            }
        };
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// The first Tailscale address among `addrs`: 100.64.0.0/10 or fd7a:115c:a1e0::/48.
pub fn tailnet_address(addrs: &[IpAddr]) -> Option<IpAddr> {
    addrs.iter().copied().find(|a| match normalize_ip(*a) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 100 && (b & 0xc0) == 64
        }
        IpAddr::V6(v6) => v6.segments()[..3] == [0xfd7a, 0x115c, 0xa1e0],
    })
}

pub(super) fn validate_gateway(g: &RawGateway, issues: &mut Issues) -> Option<GatewayConfig> {
    if g.port == 0 {
        issues.add(
            "gateway.port",
            "0 is not a usable port",
            "use a port such as 18789",
        );
    }
    if g.custom_bind_host.is_some() && g.bind != BindMode::Custom {
        issues.add(
            "gateway.customBindHost",
            "is set but gateway.bind is not \"custom\"",
            "remove it, or set gateway.bind to \"custom\"",
        );
    }
    let bind = match g.bind {
        BindMode::Loopback => GatewayBind::Loopback,
        BindMode::Lan => GatewayBind::Lan,
        BindMode::Tailnet => GatewayBind::Tailnet,
        BindMode::Custom => match g.custom_bind_host.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => GatewayBind::Custom(normalize_ip(ip)),
            Some(Err(_)) => {
                let value = g.custom_bind_host.as_deref().unwrap_or_default();
                issues.add(
                    "gateway.customBindHost",
                    format!("{value:?} is not an IP address"),
                    "use an address such as 192.168.1.10",
                );
                return None;
            }
            None => {
                issues.add(
                    "gateway.customBindHost",
                    "is required when gateway.bind is \"custom\"",
                    "set it to the IP address to listen on",
                );
                return None;
            }
        },
    };
    let loopback_only = match bind {
        GatewayBind::Loopback => true,
        GatewayBind::Custom(ip) => ip.is_loopback(),
        GatewayBind::Lan | GatewayBind::Tailnet => false,
    };
    let auth = validate_auth(g, loopback_only, issues)?;

    let mut trusted_proxies = Vec::new();
    for entry in &g.trusted_proxies {
        match entry.parse::<IpCidr>() {
            Ok(cidr) => trusted_proxies.push(cidr),
            Err(problem) => issues.add(
                "gateway.trustedProxies",
                format!("{entry:?}: {problem}"),
                "list proxy addresses or networks, e.g. \"127.0.0.1\" or \"10.0.0.0/8\"",
            ),
        }
    }
    let mut allowed_origins = Vec::new();
    for origin in &g.control_ui.allowed_origins {
        match canonical_origin(origin) {
            Some(o) => allowed_origins.push(o),
            None => issues.add(
                "gateway.controlUi.allowedOrigins",
                format!("{origin:?} is not an origin"),
                "write scheme://host[:port] with no path, e.g. https://pincer.example.ts.net",
            ),
        }
    }
    let rl = &g.auth.rate_limit;
    let max_failures = rl.max_failures.unwrap_or(10);
    let window = rl.window_seconds.unwrap_or(60);
    let lockout = rl.lockout_seconds.unwrap_or(300);
    if !(1..=1000).contains(&max_failures) {
        issues.add(
            "gateway.auth.rateLimit.maxFailures",
            format!("{max_failures} is out of range"),
            "use 1 to 1000",
        );
    }
    if !(1..=86_400).contains(&window) || !(1..=86_400).contains(&lockout) {
        issues.add(
            "gateway.auth.rateLimit",
            format!("windowSeconds {window} / lockoutSeconds {lockout} out of range"),
            "use 1 to 86400 seconds",
        );
    }
    let burst = g.write_rate_limit.burst.unwrap_or(20);
    let per_minute = g.write_rate_limit.per_minute.unwrap_or(120);
    if !(1..=1_000_000).contains(&burst) || !(1..=1_000_000).contains(&per_minute) {
        issues.add(
            "gateway.writeRateLimit",
            format!("burst {burst} / perMinute {per_minute} out of range"),
            "use 1 to 1000000",
        );
    }
    Some(GatewayConfig {
        port: g.port,
        bind,
        auth,
        trusted_proxies,
        allowed_origins,
        auth_rate_limit: AuthRateLimit {
            max_failures,
            window: Duration::from_secs(u64::from(window)),
            lockout: Duration::from_secs(u64::from(lockout)),
        },
        auto_approve_local_devices: g.devices.auto_approve_local.unwrap_or(true),
        chat_completions: g.http.endpoints.chat_completions.enabled,
        write_rate_limit: WriteRateLimit { burst, per_minute },
    })
}

fn validate_auth(g: &RawGateway, loopback_only: bool, issues: &mut Issues) -> Option<GatewayAuth> {
    let a = &g.auth;
    match a.mode {
        AuthMode::Token => {
            if a.password_hash.is_some() {
                issues.add(
                    "gateway.auth.passwordHash",
                    "is set but gateway.auth.mode is \"token\"",
                    "remove it, or set mode to \"password\"",
                );
            }
            let token = a
                .token
                .clone()
                .unwrap_or_else(|| SecretRef::env(ENV_GATEWAY_TOKEN));
            if let (SecretKind::Inline, SecretRef::Value(v)) = (token.kind(), &token) {
                let n = v.chars().count();
                if n < 32 {
                    issues.add(
                        "gateway.auth.token",
                        format!("the inline token has {n} characters"),
                        "use at least 32 random characters (pincer generates one on first start)",
                    );
                }
            }
            Some(GatewayAuth::Token(token))
        }
        AuthMode::Password => {
            if a.token.is_some() {
                issues.add(
                    "gateway.auth.token",
                    "is set but gateway.auth.mode is \"password\"",
                    "remove it, or set mode to \"token\"",
                );
            }
            match a.password_hash.as_deref() {
                Some(h) if is_argon2id_phc(h) => {
                    Some(GatewayAuth::Password(PasswordHash(h.to_owned())))
                }
                Some(_) => {
                    issues.add("gateway.auth.passwordHash", "is not an Argon2id PHC string ($argon2id$v=19$...)", "make one with `pincer gateway hash-password`; never store the password itself");
                    None
                }
                None => {
                    issues.add(
                        "gateway.auth.passwordHash",
                        "is missing for mode \"password\"",
                        "make one with `pincer gateway hash-password`",
                    );
                    None
                }
            }
        }
        AuthMode::None => {
            if !loopback_only {
                issues.add(
                    "gateway.auth.mode",
                    format!(
                        "\"none\" with gateway.bind {:?} would open the gateway to the network",
                        g.bind
                    ),
                    "use mode \"token\" or \"password\", or bind to loopback",
                );
                return None;
            }
            Some(GatewayAuth::None)
        }
    }
}

fn is_argon2id_phc(s: &str) -> bool {
    let parts: Vec<&str> = s.split('$').collect();
    parts.len() == 6
        && parts[0].is_empty()
        && parts[1] == "argon2id"
        && parts[2].starts_with("v=")
        && parts[3].contains("m=")
        && !parts[4].is_empty()
        && !parts[5].is_empty()
}

/// `scheme://host[:port]` lowercased, default ports dropped; `None` when not an origin.
pub fn canonical_origin(s: &str) -> Option<String> {
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return None;
    }
    if s.trim_end_matches('/').matches('/').count() != 2 {
        return None;
    }
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailnet_addresses() {
        let addrs: Vec<IpAddr> = ["127.0.0.1", "192.168.1.5", "100.101.102.103"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            tailnet_address(&addrs),
            Some("100.101.102.103".parse().unwrap())
        );
        let v6: Vec<IpAddr> = vec!["fd7a:115c:a1e0:ab12::1".parse().unwrap()];
        assert_eq!(tailnet_address(&v6), v6.first().copied());
        assert_eq!(tailnet_address(&addrs[..2]), None);
    }

    #[test]
    fn origins() {
        assert_eq!(
            canonical_origin("https://Pincer.Example.ts.net").as_deref(),
            Some("https://pincer.example.ts.net")
        );
        assert_eq!(
            canonical_origin("https://x.net:443").as_deref(),
            Some("https://x.net")
        );
        assert_eq!(
            canonical_origin("http://x.net:8080").as_deref(),
            Some("http://x.net:8080")
        );
        assert_eq!(canonical_origin("https://x.net/path"), None);
        assert_eq!(canonical_origin("null"), None);
        assert_eq!(canonical_origin("file:///etc"), None);
    }
}
