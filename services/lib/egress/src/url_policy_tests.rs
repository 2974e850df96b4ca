use super::*;

fn err(raw: &str) -> UrlError {
    match CheckedUrl::parse(raw) {
        Ok(u) => panic!("{raw} was accepted as {}", u.url()),
        Err(e) => e,
    }
}

#[test]
fn accepts_plain_urls_and_keeps_what_matters() {
    let u = CheckedUrl::parse("HTTPS://Example.COM./a/b?q=1#frag").unwrap();
    assert_eq!(u.host(), &Host::Name("example.com".into()));
    assert_eq!(u.port(), 443);
    assert!(u.is_https());
    assert_eq!(u.url().fragment(), None);
    assert_eq!(u.url().query(), Some("q=1"));
    let u = CheckedUrl::parse("http://93.184.216.34:8080/").unwrap();
    assert_eq!(u.host(), &Host::Ip("93.184.216.34".parse().unwrap()));
    assert_eq!(u.port(), 8080);
    let u = CheckedUrl::parse("http://[2606:4700::1111]/").unwrap();
    assert_eq!(u.host(), &Host::Ip("2606:4700::1111".parse().unwrap()));
    assert_eq!(u.port(), 80);
    // Names that merely contain digits are names.
    let u = CheckedUrl::parse("http://127.0.0.1.nip.io/").unwrap();
    assert_eq!(u.host(), &Host::Name("127.0.0.1.nip.io".into()));
    assert!(CheckedUrl::parse("http://1e100.net/").is_ok());
    assert!(CheckedUrl::parse("http://0xzz.example/").is_ok());
}

#[test]
fn refuses_non_canonical_ipv4_before_normalisation() {
    for raw in [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://0X7F.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://127.000.000.001/",
        "http://127.0.0.01/",
        "http://127.0.0.1./",
        "http://0/",
        "http://0x/",
        "http://1.2.3.256/",
        "http://foo.0x10/",
        "http://foo.123/",
    ] {
        assert!(
            matches!(err(raw), UrlError::NonCanonicalIpv4(_)),
            "{raw}: {}",
            err(raw)
        );
    }
    // The parser maps these to 127.0.0.1; the raw text is not canonical.
    assert!(matches!(
        err("http://１２７.０.０.１/"),
        UrlError::NonCanonicalIpv4(_)
    ));
    assert!(matches!(
        err("http://127。0。0。1/"),
        UrlError::NonCanonicalIpv4(_)
    ));
    assert_eq!(err("http://%31%32%37.0.0.1/"), UrlError::PercentEncodedHost);
}

#[test]
fn refuses_userinfo_schemes_and_parser_tricks() {
    for raw in [
        "http://evil@127.0.0.1/",
        "http://127.0.0.1@evil.com/",
        "http://a:b@x/",
        "http://@example.com/",
        "http://:@example.com/",
        "http://example.com:80@127.0.0.1/",
    ] {
        assert_eq!(err(raw), UrlError::Userinfo, "{raw}");
    }
    assert_eq!(err("file:///etc/passwd"), UrlError::Scheme("file".into()));
    assert_eq!(
        err("gopher://127.0.0.1:25/"),
        UrlError::Scheme("gopher".into())
    );
    assert_eq!(err("http:example.com"), UrlError::MissingSlashes);
    assert_eq!(err("http:/example.com"), UrlError::MissingSlashes);
    assert_eq!(err("http:///example.com"), UrlError::MissingHost);
    assert_eq!(err("http://:80/"), UrlError::MissingHost);
    assert_eq!(
        err("http://127.0.0.1\\@evil.com/"),
        UrlError::ForbiddenCharacter
    );
    assert_eq!(err("http://exa\tmple.com/"), UrlError::ForbiddenCharacter);
    assert_eq!(err(" http://example.com/"), UrlError::ForbiddenCharacter);
    assert_eq!(err("http://example.com:0/"), UrlError::BadPort);
    assert_eq!(err("http://example.com:8o/"), UrlError::BadPort);
    assert_eq!(
        err("http://[fe80::1%25eth0]/"),
        UrlError::PercentEncodedHost
    );
    assert!(matches!(err("http://[::1/"), UrlError::Syntax(_)));
    assert!(matches!(err("example.com"), UrlError::Syntax(_)));
    assert!(matches!(err("http://a..b/"), UrlError::BadHostName(_)));
}

#[test]
fn names_blocked_by_name() {
    for (name, rule) in [
        ("localhost", NameRule::Localhost),
        ("LOCALHOST.", NameRule::Localhost),
        ("a.b.localhost", NameRule::Localhost),
        ("printer.local", NameRule::MulticastDns),
        ("metadata.google.internal", NameRule::GoogleMetadata),
        ("METADATA.GOOGLE.INTERNAL.", NameRule::GoogleMetadata),
        ("db.corp.internal", NameRule::Internal),
    ] {
        assert_eq!(name_rule(name), Some(rule), "{name}");
    }
    for name in [
        "notlocalhost",
        "localhost.example.com",
        "local.example",
        "internal.example",
    ] {
        assert_eq!(name_rule(name), None, "{name}");
    }
    let policy = NamePolicy::new(&["Printer.Local."]);
    assert_eq!(policy.check("printer.local"), Ok(()));
    assert_eq!(
        policy.check("other.local").unwrap_err().to_string(),
        "blocked: other.local is a local-network name (*.local)"
    );
    assert!(policy.check("x.printer.local").is_err());
    // IDNA maps this to "localhost"; the check sees the mapped name.
    let u = CheckedUrl::parse("http://ⓛocalhost/").unwrap();
    assert_eq!(u.host(), &Host::Name("localhost".into()));
}

#[test]
fn redirects_are_checked_like_new_urls() {
    let base = CheckedUrl::parse("http://example.com:8080/dir/page?x=1").unwrap();
    let same = base.redirect("other?y=2").unwrap();
    assert_eq!(same.url().as_str(), "http://example.com:8080/dir/other?y=2");
    assert_eq!(same.origin(), base.origin());
    let abs = base.redirect("/top").unwrap();
    assert_eq!(abs.url().as_str(), "http://example.com:8080/top");
    let net = base.redirect("//93.184.216.34/x").unwrap();
    assert_eq!(net.url().as_str(), "http://93.184.216.34/x");
    assert_ne!(net.origin(), base.origin());
    assert!(matches!(
        base.redirect("//2130706433/"),
        Err(UrlError::NonCanonicalIpv4(_))
    ));
    assert!(matches!(
        base.redirect("https:2130706433"),
        Err(UrlError::MissingSlashes)
    ));
    assert!(matches!(
        base.redirect("http://0x7f.1/"),
        Err(UrlError::NonCanonicalIpv4(_))
    ));
    assert_eq!(
        base.redirect("\\\\evil.com/"),
        Err(UrlError::ForbiddenCharacter)
    );
    assert_eq!(
        base.redirect("/\\evil.com/"),
        Err(UrlError::ForbiddenCharacter)
    );
    assert_eq!(base.redirect("///evil.com/"), Err(UrlError::MissingHost));
    assert_eq!(
        base.redirect("ftp://example.com/"),
        Err(UrlError::Scheme("ftp".into()))
    );
    assert_eq!(
        base.redirect("http://u:p@example.com/"),
        Err(UrlError::Userinfo)
    );
}
