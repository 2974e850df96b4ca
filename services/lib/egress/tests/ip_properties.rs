//! Properties of the IP classifier: every address of a blocked IPv4 network is blocked in
//! plain, IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo form; public IPv4 is
//! allowed plain and refused inside a transition prefix; the allowlist re-allows exactly
//! what it contains; URL parsing agrees with the classifier for canonical literals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pincer_egress::{BlockRule, CheckedUrl, Host, IpCidr, IpPolicy, classify};
use proptest::prelude::*;

/// SECURITY.md's IPv4 list, written out independently of the crate's table.
const BLOCKED_V4: &[(&str, BlockRule)] = &[
    ("0.0.0.0/8", BlockRule::ThisNetwork),
    ("10.0.0.0/8", BlockRule::Private),
    ("100.64.0.0/10", BlockRule::SharedAddressSpace),
    ("127.0.0.0/8", BlockRule::Loopback),
    ("169.254.0.0/16", BlockRule::LinkLocal),
    ("172.16.0.0/12", BlockRule::Private),
    ("192.0.0.0/24", BlockRule::IetfProtocolAssignments),
    ("192.0.2.0/24", BlockRule::Documentation),
    ("192.88.99.0/24", BlockRule::SixToFourRelayAnycast),
    ("192.168.0.0/16", BlockRule::Private),
    ("198.18.0.0/15", BlockRule::Benchmarking),
    ("198.51.100.0/24", BlockRule::Documentation),
    ("203.0.113.0/24", BlockRule::Documentation),
    ("224.0.0.0/4", BlockRule::Multicast),
    ("240.0.0.0/4", BlockRule::Reserved),
];

fn in_blocked_v4(v4: Ipv4Addr) -> bool {
    v4 == Ipv4Addr::new(168, 63, 129, 16)
        || BLOCKED_V4
            .iter()
            .any(|(net, _)| net.parse::<IpCidr>().unwrap().contains(IpAddr::V4(v4)))
}

/// An address inside one of the blocked IPv4 networks, with that network's rule.
fn blocked_v4() -> impl Strategy<Value = (Ipv4Addr, BlockRule)> {
    (0..BLOCKED_V4.len(), any::<u32>()).prop_map(|(i, host)| {
        let (text, rule) = BLOCKED_V4[i];
        let net: IpCidr = text.parse().unwrap();
        let IpAddr::V4(base) = net.addr() else {
            unreachable!()
        };
        let host_bits = u32::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
        (Ipv4Addr::from(u32::from(base) | (host & host_bits)), rule)
    })
}

fn public_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("public", |v4| !in_blocked_v4(*v4))
}

/// Every transition form that carries `v4`.
fn carriers(v4: Ipv4Addr, salt: u64) -> Vec<Ipv6Addr> {
    let bits = u128::from(u32::from(v4));
    let salt = u128::from(salt);
    vec![
        v4.to_ipv6_mapped(),
        Ipv6Addr::from(bits),                          // ::a.b.c.d
        Ipv6Addr::from((0x64_ff9b_u128 << 96) | bits), // 64:ff9b::/96
        Ipv6Addr::from((0x64_ff9b_0001_u128 << 80) | (salt & 0xffff) << 32 | bits), // 64:ff9b:1::/48
        Ipv6Addr::from((0x2002_u128 << 112) | (bits << 80) | (salt & 0xffff_ffff_ffff)), // 6to4
        Ipv6Addr::from((0x2001_0000_u128 << 96) | (salt << 32) | u128::from(!u32::from(v4))), // Teredo
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn blocked_ipv4_is_blocked_in_every_form((v4, rule) in blocked_v4(), salt: u64) {
        // 255.255.255.255 has its own rule inside 240.0.0.0/4.
        if v4 != Ipv4Addr::BROADCAST {
            prop_assert_eq!(classify(IpAddr::V4(v4)).map(|b| b.rule), Some(rule));
        }
        for v6 in carriers(v4, salt) {
            let blocked = classify(IpAddr::V6(v6));
            prop_assert!(blocked.is_some(), "{} carrying {} passed", v6, v4);
            // The carried address is named, even where the prefix is blocked too; `::` and
            // `::1` (IPv4-compatible 0.0.0.0 and 0.0.0.1) have their own rules.
            if v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST {
                prop_assert_eq!(blocked.unwrap().carried, Some(v4), "{}", v6);
            }
        }
    }

    #[test]
    fn blocked_ipv4_stays_blocked_when_the_transition_prefixes_are_allowlisted(
        (v4, _rule) in blocked_v4(), salt: u64,
    ) {
        let policy = IpPolicy::new(
            ["::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"]
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
        );
        for v6 in carriers(v4, salt) {
            let err = policy.check(IpAddr::V6(v6));
            prop_assert!(err.is_err(), "{} carrying {} passed", v6, v4);
        }
    }

    #[test]
    fn public_ipv4_passes_plain_but_not_inside_a_transition_prefix(v4 in public_v4(), salt: u64) {
        prop_assert_eq!(classify(IpAddr::V4(v4)), None);
        for v6 in carriers(v4, salt) {
            let blocked = classify(IpAddr::V6(v6));
            prop_assert!(blocked.is_some(), "{}", v6);
        }
    }

    #[test]
    fn the_allowlist_reallows_exactly_its_network((v4, _rule) in blocked_v4(), other in any::<u32>()) {
        let policy = IpPolicy::new(vec![IpCidr::host(IpAddr::V4(v4))]);
        prop_assert_eq!(policy.check(IpAddr::V4(v4)), Ok(()));
        prop_assert_eq!(policy.check(IpAddr::V6(v4.to_ipv6_mapped())), Ok(()));
        let other = Ipv4Addr::from(other);
        if other != v4 {
            prop_assert_eq!(policy.check(IpAddr::V4(other)).is_ok(), !in_blocked_v4(other));
        }
    }

    #[test]
    fn global_unicast_ipv6_outside_the_lists_passes(bits in any::<u128>()) {
        // 2600::/7 .. 2c00::/6 style space: inside 2000::/3, outside every listed prefix.
        let v6 = Ipv6Addr::from((0x2600_u128 << 112) | (bits >> 16));
        prop_assert_eq!(classify(IpAddr::V6(v6)), None);
    }

    #[test]
    fn canonical_ipv4_urls_parse_to_the_same_address(v4 in any::<u32>(), port in 1u16..) {
        let v4 = Ipv4Addr::from(v4);
        let url = CheckedUrl::parse(&format!("http://{v4}:{port}/")).unwrap();
        prop_assert_eq!(url.host(), &Host::Ip(IpAddr::V4(v4)));
        prop_assert_eq!(url.port(), port);
    }

    #[test]
    fn decimal_and_hex_forms_of_any_ipv4_are_refused(v4 in any::<u32>()) {
        for raw in [format!("http://{v4}/"), format!("http://0x{v4:x}/")] {
            let refused = CheckedUrl::parse(&raw).is_err();
            prop_assert!(refused, "{}", raw);
        }
    }
}
