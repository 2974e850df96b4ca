//! IP networks for `gateway.trustedProxies`, and address normalisation.
//!
//! Entries are `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). An entry with
//! host bits set (`10.0.0.1/8`) is refused rather than silently widened, so a typo cannot
//! trust a whole network. IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is read as IPv4.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// `::ffff:a.b.c.d` is `a.b.c.d`; every other address is unchanged. Apply to every address
/// before comparing, counting or keying on it.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Anything that can say whether an address belongs to a trusted proxy. Implemented by
/// [`IpCidr`]; config-side network types can implement it too.
pub trait ProxyNet {
    /// Whether `ip` (already normalised) is inside.
    fn contains_ip(&self, ip: IpAddr) -> bool;
}

/// An IP network: a base address with no host bits set, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `gateway.trustedProxies` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Nothing was written.
    #[error("empty entry; write an address such as 127.0.0.1 or a network such as 10.0.0.0/8")]
    Empty,
    /// The part before `/` is not an IP address (host names are not accepted).
    #[error("{0:?} is not an IP address; host names are not accepted, write the proxy's address")]
    BadAddress(String),
    /// The part after `/` is not a number in range.
    #[error("prefix {prefix:?} is not a number from 0 to {max}")]
    BadPrefix {
        /// What was written.
        prefix: String,
        /// The largest prefix for this address family.
        max: u8,
    },
    /// The address has bits set beyond the prefix.
    #[error("{written} has host bits set; did you mean {suggested}?")]
    HostBitsSet {
        /// What was written.
        written: String,
        /// The network it lies in.
        suggested: IpCidr,
    },
    /// An IPv4-mapped IPv6 network shorter than /96 mixes IPv4 and IPv6 space.
    #[error("{0} mixes IPv4-mapped and plain IPv6 addresses; write IPv4 networks in IPv4 form")]
    MappedPrefix(String),
}

/// A refused entry and its position in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway.trustedProxies[{index}]: {source}")]
pub struct TrustedProxyError {
    /// Position in `gateway.trustedProxies`.
    pub index: usize,
    /// Why.
    #[source]
    pub source: CidrError,
}

impl IpCidr {
    /// A network from a base address and prefix; `None` if the prefix is too long or host
    /// bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        if prefix > max_prefix(addr) {
            return None;
        }
        let (addr, prefix) = match (addr, normalize_ip(addr)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => (v4, prefix.checked_sub(96)?),
            (_, same) => (same, prefix),
        };
        if mask(addr, prefix) != addr {
            return None;
        }
        Some(Self { addr, prefix })
    }

    /// The single-address network of `ip`.
    pub fn host(ip: IpAddr) -> Self {
        let addr = normalize_ip(ip);
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The base address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside; `ip` is normalised first.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize_ip(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl ProxyNet for IpCidr {
    fn contains_ip(&self, ip: IpAddr) -> bool {
        self.contains(ip)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(CidrError::Empty);
        }
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let raw: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_text.to_owned()))?;
        let raw_max = max_prefix(raw);
        let prefix = match prefix_text {
            None => raw_max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= raw_max && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| CidrError::BadPrefix {
                    prefix: p.to_owned(),
                    max: raw_max,
                })?,
        };
        let (addr, prefix) = match (raw, normalize_ip(raw)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => {
                let Some(p) = prefix.checked_sub(96) else {
                    return Err(CidrError::MappedPrefix(s.to_owned()));
                };
                (v4, p)
            }
            (_, same) => (same, prefix),
        };
        let network = mask(addr, prefix);
        if network != addr {
            return Err(CidrError::HostBitsSet {
                written: s.to_owned(),
                suggested: Self {
                    addr: network,
                    prefix,
                },
            });
        }
        Ok(Self { addr, prefix })
    }
}

/// Parses every `gateway.trustedProxies` entry; the first bad one is reported with its index.
pub fn parse_trusted_proxies<S: AsRef<str>>(
    entries: &[S],
) -> Result<Vec<IpCidr>, TrustedProxyError> {
    entries
        .iter()
        .enumerate()
        .map(|(index, e)| {
            e.as_ref()
                .parse()
                .map_err(|source| TrustedProxyError { index, source })
        })
        .collect()
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with every bit past `prefix` cleared (`prefix` at most the family's width).
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_bare_addresses() {
        let net: IpCidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.0")));
        let one: IpCidr = "::1/128".parse().unwrap();
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("127.0.0.1")));
        let bare: IpCidr = "127.0.0.1".parse().unwrap();
        assert_eq!(bare.prefix(), 32);
        assert!(bare.contains(ip("::ffff:127.0.0.1")));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        let cgnat: IpCidr = "100.64.0.0/10".parse().unwrap();
        assert!(cgnat.contains(ip("100.127.255.255")));
        assert!(!cgnat.contains(ip("100.128.0.0")));
    }

    #[test]
    fn mapped_networks_become_ipv4() {
        let net: IpCidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(net, "10.0.0.0/8".parse().unwrap());
        assert_eq!(
            "::ffff:0.0.0.0/90".parse::<IpCidr>(),
            Err(CidrError::MappedPrefix("::ffff:0.0.0.0/90".into()))
        );
    }

    #[test]
    fn refuses_bad_entries_with_clear_errors() {
        assert_eq!("".parse::<IpCidr>(), Err(CidrError::Empty));
        assert!(matches!(
            "proxy.local".parse::<IpCidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpCidr>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<IpCidr>(),
            Err(CidrError::BadPrefix { .. })
        ));
        let err = "10.0.0.1/8".parse::<IpCidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"
        );
        let list = parse_trusted_proxies(&["127.0.0.1", "nginx"]).unwrap_err();
        assert_eq!(list.index, 1);
        assert!(list.to_string().starts_with("gateway.trustedProxies[1]: "));
    }

    proptest! {
        #[test]
        fn mapped_and_plain_ipv4_are_the_same(a: [u8; 4]) {
            let v4 = IpAddr::V4(Ipv4Addr::from(a));
            let mapped = IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped());
            prop_assert_eq!(normalize_ip(mapped), v4);
            prop_assert_eq!(normalize_ip(v4), v4);
            prop_assert!(IpCidr::host(v4).contains(mapped));
        }

        #[test]
        fn network_contains_exactly_its_prefix(a: u32, b: u32, prefix in 0u8..=32) {
            let net = IpCidr::new(mask(IpAddr::V4(Ipv4Addr::from(a)), prefix), prefix).unwrap();
            let same_prefix = if prefix == 0 { true } else { (a ^ b) >> (32 - u32::from(prefix)) == 0 };
            prop_assert_eq!(net.contains(IpAddr::V4(Ipv4Addr::from(b))), same_prefix);
        }

        #[test]
        fn display_round_trips(a: u128, prefix in 0u8..=128) {
            let net = IpCidr::new(mask(IpAddr::V6(Ipv6Addr::from(a)), prefix), prefix);
            if let Some(net) = net {
                prop_assert_eq!(net.to_string().parse::<IpCidr>(), Ok(net));
            }
        }
    }
}
