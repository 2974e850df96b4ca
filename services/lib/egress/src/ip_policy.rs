//! Which IP addresses outbound requests may reach: the block lists of SECURITY.md
//! ("Outbound web (SSRF)"), pure and without I/O.
//!
//! An address is refused when it lies in a blocked network and no allowlist entry
//! contains it. IPv6 transition prefixes (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
//! Teredo) are blocked as prefixes **and** the IPv4 address they carry is checked against
//! the IPv4 list: allowlisting `64:ff9b::/96` (a NAT64 gateway you run) makes public IPv4
//! reachable through it, but `64:ff9b::a00:1` still carries `10.0.0.1` and stays refused
//! unless `10.0.0.1` is allowlisted as well.
//!
//! Allowlist entries are [`IpCidr`]s, which read `::ffff:a.b.c.d` as `a.b.c.d`, so
//! allowlisting `127.0.0.1/32` also allows `::ffff:127.0.0.1` (the same host), but not
//! `::127.0.0.1`, `64:ff9b::7f00:1` or a 6to4/Teredo form, whose prefixes are separate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pincer_runtime::cidr::IpCidr;

use BlockRule as R;

/// Why a network is blocked. [`BlockRule::describe`] says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockRule {
    /// `0.0.0.0/8`: "this network"; `0.0.0.0` reaches the local host on many systems.
    ThisNetwork,
    /// `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`: carrier-grade NAT, also Tailscale's addresses.
    SharedAddressSpace,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16`, `fe80::/10`; cloud metadata services live at `169.254.169.254`.
    LinkLocal,
    /// `192.0.0.0/24`.
    IetfProtocolAssignments,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `192.88.99.0/24`.
    SixToFourRelayAnycast,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `240.0.0.0/4`.
    Reserved,
    /// `255.255.255.255`.
    Broadcast,
    /// `168.63.129.16`: Azure's platform endpoint (metadata, DHCP, health probes).
    AzureWireServer,
    /// `::/128`.
    Unspecified,
    /// `::ffff:0:0/96`.
    Ipv4Mapped,
    /// `::/96` (deprecated IPv4-compatible addresses).
    Ipv4Compatible,
    /// `64:ff9b::/96` and `64:ff9b:1::/48`.
    Nat64,
    /// `2002::/16`.
    SixToFour,
    /// `2001::/32`.
    Teredo,
    /// `fc00::/7`, including AWS's `fd00:ec2::254` metadata and Tailscale's
    /// `fd7a:115c:a1e0::/48`.
    UniqueLocal,
    /// `fec0::/10` (deprecated).
    SiteLocal,
    /// `100::/64`.
    DiscardOnly,
    /// `2001:10::/28`, `2001:20::/28`.
    Orchid,
}

impl BlockRule {
    /// The rule in a few words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ThisNetwork => "\"this network\" (0.0.0.0/8 reaches the local host)",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared address space (CGNAT, Tailscale)",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local (cloud metadata)",
            Self::IetfProtocolAssignments => "reserved for IETF protocol assignments",
            Self::Documentation => "reserved for documentation",
            Self::SixToFourRelayAnycast => "6to4 relay anycast",
            Self::Benchmarking => "reserved for benchmarking",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
            Self::Broadcast => "broadcast",
            Self::AzureWireServer => "Azure's platform endpoint (cloud metadata)",
            Self::Unspecified => "unspecified",
            Self::Ipv4Mapped => "IPv4-mapped IPv6",
            Self::Ipv4Compatible => "IPv4-compatible IPv6",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::Teredo => "Teredo",
            Self::UniqueLocal => "unique local (private IPv6, cloud metadata, Tailscale)",
            Self::SiteLocal => "site-local",
            Self::DiscardOnly => "discard-only",
            Self::Orchid => "ORCHID (not routable)",
        }
    }
}

/// A refused address: which rule, which network, and whether the rule hit the address
/// itself or the IPv4 address it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct Blocked {
    /// The address that was checked.
    pub ip: IpAddr,
    /// The rule that refused it.
    pub rule: BlockRule,
    /// The blocked network the rule matched, e.g. `169.254.0.0/16`.
    pub network: &'static str,
    /// When set, the rule matched this IPv4 address, carried inside `ip` by a transition
    /// prefix (`::ffff:`, NAT64, 6to4, Teredo, ...).
    pub carried: Option<Ipv4Addr>,
}

impl Blocked {
    /// What is wrong with the address, as the end of a sentence about it:
    /// "is link-local (cloud metadata), in 169.254.0.0/16" or
    /// "carries 127.0.0.1, which is loopback, in 127.0.0.0/8".
    pub fn predicate(&self) -> String {
        let what = self.rule.describe();
        match self.carried {
            None => format!("is {what}, in {}", self.network),
            Some(v4) => format!("carries {v4}, which is {what}, in {}", self.network),
        }
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocked: {} {}", self.ip, self.predicate())
    }
}

/// Checks addresses against the block lists and an allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpPolicy {
    allow: Vec<IpCidr>,
}

impl IpPolicy {
    /// A policy that re-allows `allow` (e.g. `127.0.0.1/32` for a test server). An empty
    /// allowlist (the default) blocks every listed network.
    pub fn new(allow: Vec<IpCidr>) -> Self {
        Self { allow }
    }

    /// The allowlist.
    pub fn allowlist(&self) -> &[IpCidr] {
        &self.allow
    }

    /// `Ok` if `ip` may be reached; otherwise the rule that refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        match ip {
            IpAddr::V4(v4) => match v4_rule(v4) {
                Some((rule, network)) if !self.allowed(ip) => Err(Blocked {
                    ip,
                    rule,
                    network,
                    carried: None,
                }),
                _ => Ok(()),
            },
            IpAddr::V6(v6) => {
                let Some((rule, network)) = v6_rule(v6) else {
                    return Ok(());
                };
                // The carried IPv4 address first: it is the more telling reason, and it
                // must be refused even when the transition prefix is allowlisted.
                for v4 in carried_ipv4(v6, rule) {
                    if let Some((rule, network)) = v4_rule(v4)
                        && !self.allowed(IpAddr::V4(v4))
                    {
                        return Err(Blocked {
                            ip,
                            rule,
                            network,
                            carried: Some(v4),
                        });
                    }
                }
                if self.allowed(ip) {
                    Ok(())
                } else {
                    Err(Blocked {
                        ip,
                        rule,
                        network,
                        carried: None,
                    })
                }
            }
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }
}

/// The check with an empty allowlist: `Some` when `ip` is in a blocked network.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    IpPolicy::default().check(ip).err()
}

/// The IPv4 addresses an IPv6 address carries, if it lies in a transition prefix:
/// the last 32 bits for `::ffff:0:0/96`, `::/96`, `64:ff9b::/96`; bits 16..48 for 6to4;
/// the last 32 bits inverted for Teredo's client; for `64:ff9b:1::/48` both the last
/// 32 bits (the common /96 layout) and the RFC 6052 /48 layout (bits 48..64 and 72..88).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    v6_rule(ip).map_or_else(Vec::new, |(rule, _)| carried_ipv4(ip, rule))
}

fn carried_ipv4(ip: Ipv6Addr, rule: BlockRule) -> Vec<Ipv4Addr> {
    let bits = u128::from(ip);
    let o = ip.octets();
    // Truncating casts pick the low 32 bits on purpose.
    let low32 = Ipv4Addr::from(bits as u32);
    match rule {
        BlockRule::Ipv4Mapped | BlockRule::Ipv4Compatible => vec![low32],
        // 64:ff9b::/96 has zeros where 64:ff9b:1::/48 has its `1`.
        BlockRule::Nat64 if o[4..6] == [0, 0] => vec![low32],
        BlockRule::Nat64 => vec![low32, Ipv4Addr::new(o[6], o[7], o[9], o[10])],
        BlockRule::SixToFour => vec![Ipv4Addr::from((bits >> 80) as u32)],
        BlockRule::Teredo => vec![Ipv4Addr::from(!(bits as u32))],
        _ => Vec::new(),
    }
}

/// A blocked network: base bits, prefix length, its text and rule.
struct Net<T> {
    base: T,
    prefix: u32,
    text: &'static str,
    rule: BlockRule,
}

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    prefix: u32,
    text: &'static str,
    rule: BlockRule,
) -> Net<u32> {
    Net {
        base: u32::from_be_bytes([a, b, c, d]),
        prefix,
        text,
        rule,
    }
}

const fn v6(segments: [u16; 8], prefix: u32, text: &'static str, rule: BlockRule) -> Net<u128> {
    let mut base = 0u128;
    let mut i = 0;
    while i < 8 {
        base = (base << 16) | segments[i] as u128;
        i += 1;
    }
    Net {
        base,
        prefix,
        text,
        rule,
    }
}

/// SECURITY.md's IPv4 list; single addresses first so they win over wider networks.
const V4_BLOCKED: &[Net<u32>] = &[
    v4(168, 63, 129, 16, 32, "168.63.129.16/32", R::AzureWireServer),
    v4(255, 255, 255, 255, 32, "255.255.255.255/32", R::Broadcast),
    v4(0, 0, 0, 0, 8, "0.0.0.0/8", R::ThisNetwork),
    v4(10, 0, 0, 0, 8, "10.0.0.0/8", R::Private),
    v4(100, 64, 0, 0, 10, "100.64.0.0/10", R::SharedAddressSpace),
    v4(127, 0, 0, 0, 8, "127.0.0.0/8", R::Loopback),
    v4(169, 254, 0, 0, 16, "169.254.0.0/16", R::LinkLocal),
    v4(172, 16, 0, 0, 12, "172.16.0.0/12", R::Private),
    v4(192, 0, 0, 0, 24, "192.0.0.0/24", R::IetfProtocolAssignments),
    v4(192, 0, 2, 0, 24, "192.0.2.0/24", R::Documentation),
    v4(
        192,
        88,
        99,
        0,
        24,
        "192.88.99.0/24",
        R::SixToFourRelayAnycast,
    ),
    v4(192, 168, 0, 0, 16, "192.168.0.0/16", R::Private),
    v4(198, 18, 0, 0, 15, "198.18.0.0/15", R::Benchmarking),
    v4(198, 51, 100, 0, 24, "198.51.100.0/24", R::Documentation),
    v4(203, 0, 113, 0, 24, "203.0.113.0/24", R::Documentation),
    v4(224, 0, 0, 0, 4, "224.0.0.0/4", R::Multicast),
    v4(240, 0, 0, 0, 4, "240.0.0.0/4", R::Reserved),
];

/// SECURITY.md's IPv6 list; `::` and `::1` come before `::/96`, which contains them.
const V6_BLOCKED: &[Net<u128>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "::/128", R::Unspecified),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "::1/128", R::Loopback),
    v6(
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "::ffff:0:0/96",
        R::Ipv4Mapped,
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, "::/96", R::Ipv4Compatible),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "64:ff9b::/96",
        R::Nat64,
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "64:ff9b:1::/48",
        R::Nat64,
    ),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "2002::/16", R::SixToFour),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "2001::/32", R::Teredo),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "fc00::/7", R::UniqueLocal),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "fe80::/10", R::LinkLocal),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "fec0::/10", R::SiteLocal),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "ff00::/8", R::Multicast),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "100::/64", R::DiscardOnly),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "2001:db8::/32",
        R::Documentation,
    ),
    v6(
        [0x2001, 2, 0, 0, 0, 0, 0, 0],
        48,
        "2001:2::/48",
        R::Benchmarking,
    ),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "2001:10::/28",
        R::Orchid,
    ),
    v6(
        [0x2001, 0x20, 0, 0, 0, 0, 0, 0],
        28,
        "2001:20::/28",
        R::Orchid,
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "3fff::/20",
        R::Documentation,
    ),
];

fn v4_rule(ip: Ipv4Addr) -> Option<(BlockRule, &'static str)> {
    let bits = u32::from(ip);
    V4_BLOCKED
        .iter()
        .find(|n| bits & u32::MAX.checked_shl(32 - n.prefix).unwrap_or(0) == n.base)
        .map(|n| (n.rule, n.text))
}

fn v6_rule(ip: Ipv6Addr) -> Option<(BlockRule, &'static str)> {
    let bits = u128::from(ip);
    V6_BLOCKED
        .iter()
        .find(|n| bits & u128::MAX.checked_shl(128 - n.prefix).unwrap_or(0) == n.base)
        .map(|n| (n.rule, n.text))
}

#[cfg(test)]
#[path = "ip_policy_tests.rs"]
mod tests;
