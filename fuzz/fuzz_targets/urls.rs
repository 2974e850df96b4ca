//! Arbitrary text as a URL for the SSRF guard: parsing, and classifying an IP-literal host,
//! never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = pincer_egress::CheckedUrl::parse(text) {
        let host = url.url().host_str().unwrap_or_default();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            let _ = pincer_egress::classify(ip);
        }
    }
});
