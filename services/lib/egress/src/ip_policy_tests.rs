use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rule(s: &str) -> Option<BlockRule> {
    classify(ip(s)).map(|b| b.rule)
}

#[test]
fn table_texts_match_their_bits() {
    for n in V4_BLOCKED {
        let (addr, prefix) = n.text.split_once('/').unwrap();
        assert_eq!(
            u32::from(addr.parse::<Ipv4Addr>().unwrap()),
            n.base,
            "{}",
            n.text
        );
        assert_eq!(prefix.parse::<u32>().unwrap(), n.prefix, "{}", n.text);
        let host_bits = u32::MAX.checked_shr(n.prefix).unwrap_or(0);
        assert_eq!(n.base & host_bits, 0, "{} has host bits set", n.text);
    }
    for n in V6_BLOCKED {
        let (addr, prefix) = n.text.split_once('/').unwrap();
        assert_eq!(
            u128::from(addr.parse::<Ipv6Addr>().unwrap()),
            n.base,
            "{}",
            n.text
        );
        assert_eq!(prefix.parse::<u32>().unwrap(), n.prefix, "{}", n.text);
        let host_bits = u128::MAX.checked_shr(n.prefix).unwrap_or(0);
        assert_eq!(n.base & host_bits, 0, "{} has host bits set", n.text);
    }
}

#[test]
fn every_listed_ipv4_network_is_blocked_at_both_ends() {
    for n in V4_BLOCKED {
        let last = n.base | u32::MAX.checked_shr(n.prefix).unwrap_or(0);
        for bits in [n.base, last] {
            let addr = IpAddr::V4(Ipv4Addr::from(bits));
            assert!(classify(addr).is_some(), "{addr} in {} not blocked", n.text);
        }
        let outside = n.base.wrapping_sub(1);
        if V4_BLOCKED
            .iter()
            .all(|m| outside & u32::MAX.checked_shl(32 - m.prefix).unwrap_or(0) != m.base)
        {
            assert!(classify(IpAddr::V4(Ipv4Addr::from(outside))).is_none());
        }
    }
}

#[test]
fn examples_from_security_md() {
    assert_eq!(rule("169.254.169.254"), Some(BlockRule::LinkLocal));
    assert_eq!(rule("168.63.129.16"), Some(BlockRule::AzureWireServer));
    assert_eq!(rule("168.63.129.17"), None);
    assert_eq!(rule("100.100.100.100"), Some(BlockRule::SharedAddressSpace));
    assert_eq!(rule("100.128.0.0"), None);
    assert_eq!(rule("172.15.255.255"), None);
    assert_eq!(rule("172.32.0.0"), None);
    assert_eq!(rule("0.0.0.0"), Some(BlockRule::ThisNetwork));
    assert_eq!(rule("255.255.255.255"), Some(BlockRule::Broadcast));
    assert_eq!(rule("255.255.255.254"), Some(BlockRule::Reserved));
    assert_eq!(rule("8.8.8.8"), None);
    assert_eq!(rule("::"), Some(BlockRule::Unspecified));
    assert_eq!(rule("::1"), Some(BlockRule::Loopback));
    assert_eq!(rule("fd00:ec2::254"), Some(BlockRule::UniqueLocal));
    assert_eq!(rule("fd7a:115c:a1e0::1"), Some(BlockRule::UniqueLocal));
    assert_eq!(rule("fe80::1"), Some(BlockRule::LinkLocal));
    assert_eq!(rule("febf::1"), Some(BlockRule::LinkLocal));
    assert_eq!(rule("fec0::1"), Some(BlockRule::SiteLocal));
    assert_eq!(rule("ff02::1"), Some(BlockRule::Multicast));
    assert_eq!(rule("100::1"), Some(BlockRule::DiscardOnly));
    assert_eq!(rule("100:0:0:1::1"), None);
    assert_eq!(rule("2001:db8::1"), Some(BlockRule::Documentation));
    assert_eq!(rule("3fff:fff::1"), Some(BlockRule::Documentation));
    assert_eq!(rule("3fff:1000::1"), None);
    assert_eq!(rule("2001:2::1"), Some(BlockRule::Benchmarking));
    assert_eq!(rule("2001:1f::1"), Some(BlockRule::Orchid));
    assert_eq!(rule("2001:2f::1"), Some(BlockRule::Orchid));
    assert_eq!(rule("2001:30::1"), None);
    assert_eq!(rule("2606:4700::1111"), None);
}

#[test]
fn transition_prefixes_report_the_carried_ipv4_address() {
    let b = classify(ip("::ffff:169.254.169.254")).unwrap();
    assert_eq!(b.rule, BlockRule::LinkLocal);
    assert_eq!(b.carried, Some(Ipv4Addr::new(169, 254, 169, 254)));
    assert_eq!(
        b.to_string(),
        "blocked: ::ffff:169.254.169.254 carries 169.254.169.254, which is link-local (cloud metadata), in 169.254.0.0/16"
    );
    // Public IPv4 inside a transition prefix: the prefix itself refuses it.
    let b = classify(ip("64:ff9b::808:808")).unwrap();
    assert_eq!((b.rule, b.carried), (BlockRule::Nat64, None));
    assert_eq!(
        b.to_string(),
        "blocked: 64:ff9b::808:808 is NAT64, in 64:ff9b::/96"
    );
    assert_eq!(rule("::127.0.0.1"), Some(BlockRule::Loopback));
    assert_eq!(rule("64:ff9b:1::a00:1"), Some(BlockRule::Private));
    // RFC 6052 /48 layout: 10.0 in bits 48..64, 0.1 in bits 72..88.
    assert_eq!(
        embedded_ipv4(ip6("64:ff9b:1:a00:0:100::")),
        [Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 1)]
    );
    assert_eq!(rule("2002:7f00:1::"), Some(BlockRule::Loopback));
    assert_eq!(rule("2002:808:808::1"), Some(BlockRule::SixToFour));
    // Teredo client 127.0.0.1 is stored inverted: 0x80ff_fffe.
    assert_eq!(
        rule("2001:0:4136:e378:8000:63bf:80ff:fffe"),
        Some(BlockRule::Loopback)
    );
    assert_eq!(
        embedded_ipv4(ip6("2001:0:4136:e378:8000:63bf:3fff:fdd2")),
        [Ipv4Addr::new(192, 0, 2, 45)]
    );
    assert!(embedded_ipv4(ip6("2606:4700::1111")).is_empty());
    assert!(embedded_ipv4(ip6("::1")).is_empty());
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn the_allowlist_reallows_only_what_it_names() {
    let loopback = IpPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]);
    assert_eq!(loopback.check(ip("127.0.0.1")), Ok(()));
    assert_eq!(loopback.check(ip("::ffff:127.0.0.1")), Ok(()));
    assert!(loopback.check(ip("127.0.0.2")).is_err());
    assert!(loopback.check(ip("::1")).is_err());
    // Other transition forms keep their own prefix rule.
    assert_eq!(
        loopback.check(ip("::127.0.0.1")).unwrap_err().rule,
        BlockRule::Ipv4Compatible
    );
    assert_eq!(
        loopback.check(ip("64:ff9b::7f00:1")).unwrap_err().rule,
        BlockRule::Nat64
    );

    let nat64 = IpPolicy::new(vec!["64:ff9b::/96".parse().unwrap()]);
    assert_eq!(nat64.check(ip("64:ff9b::808:808")), Ok(()));
    let b = nat64.check(ip("64:ff9b::a00:1")).unwrap_err();
    assert_eq!(
        (b.rule, b.carried),
        (BlockRule::Private, Some(Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert_eq!(
        nat64.check(ip("64:ff9b::a9fe:a9fe")).unwrap_err().rule,
        BlockRule::LinkLocal
    );
}
