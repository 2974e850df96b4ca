//! Sender authenticity from `Authentication-Results` (RFC 8601), pure.
//!
//! A `From` header is trivially forged. The receiving MTA (ours) checks DKIM / SPF / DMARC
//! and prepends an `Authentication-Results: <authserv-id>; dkim=pass header.d=… ; …`
//! header. Anyone can put such headers into a message they send, but they end up *below*
//! the one our MTA adds, so only the **topmost** header is considered, and only when it
//! carries the configured authserv-id. The sender counts when that header says
//! `dmarc=pass` (for the `From` domain, when it names it in `header.from`), or
//! `dkim=pass` with a signing domain `header.d` equal to the `From` domain or a parent of
//! it. Everything else (no header, another authserv-id, only `spf=pass`, a DKIM pass for an
//! unrelated domain) is refused.

/// What the topmost `Authentication-Results` says about a message's `From` domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The sender is authenticated; the reason names the mechanism.
    Pass(&'static str),
    /// It is not; the reason is for the log.
    Fail(String),
}

/// Judges a message. `results` are the raw values of its `Authentication-Results` headers
/// in header order (topmost first), `authserv_id` the configured id of our MTA, and
/// `from_domain` the domain of the (single) `From` address.
pub fn verify_sender(results: &[&str], authserv_id: &str, from_domain: &str) -> Verdict {
    let Some(top) = results.first() else {
        return Verdict::Fail("no Authentication-Results header".to_owned());
    };
    let Some(parsed) = parse(top) else {
        return Verdict::Fail("the topmost Authentication-Results header is malformed".to_owned());
    };
    if !parsed.authserv_id.eq_ignore_ascii_case(authserv_id) {
        return Verdict::Fail(format!(
            "the topmost Authentication-Results is from {:?}, not {authserv_id:?}",
            parsed.authserv_id
        ));
    }
    let from_domain = normalize_domain(from_domain);
    if from_domain.is_empty() {
        return Verdict::Fail("the From address has no domain".to_owned());
    }
    for result in &parsed.results {
        if result.result != "pass" {
            continue;
        }
        match result.method.as_str() {
            "dmarc" => {
                let about_from = result
                    .property("header.from")
                    .is_none_or(|d| normalize_domain(d) == from_domain);
                if about_from {
                    return Verdict::Pass("dmarc=pass");
                }
            }
            "dkim" => {
                let signed_for_from = result
                    .property("header.d")
                    .is_some_and(|d| is_same_or_parent(&normalize_domain(d), &from_domain));
                if signed_for_from {
                    return Verdict::Pass("dkim=pass");
                }
            }
            _ => {}
        }
    }
    Verdict::Fail(format!(
        "no dmarc=pass and no dkim=pass for {from_domain:?} in the topmost Authentication-Results"
    ))
}

/// One parsed `Authentication-Results` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Who made the checks.
    pub authserv_id: String,
    /// The checks, in order.
    pub results: Vec<MethodResult>,
}

/// One `method=result prop=value …` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// The method, lowercased, without a `/version`.
    pub method: String,
    /// The result, lowercased.
    pub result: String,
    /// `ptype.property` (lowercased) and value pairs.
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one header value. `None` when there is no authserv-id.
pub fn parse(value: &str) -> Option<AuthResults> {
    let cleaned = strip_comments(value);
    let mut clauses = split_outside_quotes(&cleaned, ';').into_iter();
    let head = clauses.next()?;
    // `authserv-id [version]`
    let authserv_id = head.split_whitespace().next()?.to_owned();
    let mut results = Vec::new();
    for clause in clauses {
        let mut tokens = split_whitespace_outside_quotes(&clause).into_iter();
        let Some(first) = tokens.next() else {
            continue;
        };
        let Some((method, result)) = first.split_once('=') else {
            continue;
        };
        let method = method
            .split('/')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if method.is_empty() || method == "none" {
            continue;
        }
        let properties = tokens
            .filter_map(|token| {
                let (key, value) = token.split_once('=')?;
                let key = key.trim().to_ascii_lowercase();
                if !key.contains('.') {
                    return None; // `reason=…` and other non-properties
                }
                Some((key, unquote(value.trim())))
            })
            .collect();
        results.push(MethodResult {
            method,
            result: unquote(result.trim()).to_ascii_lowercase(),
            properties,
        });
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// Lowercase, without a trailing dot or an `@` prefix (`header.d=@example.org` occurs).
fn normalize_domain(domain: &str) -> String {
    let domain = domain.trim();
    let domain = domain.rsplit_once('@').map_or(domain, |(_, d)| d);
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// `signer` is `domain` or one of its parents (`example.org` for `mail.example.org`).
fn is_same_or_parent(signer: &str, domain: &str) -> bool {
    if signer.is_empty() || !signer.contains('.') {
        // A bare TLD ("org") is not an organisation that can vouch for its subdomains.
        return false;
    }
    domain == signer
        || domain
            .strip_suffix(signer)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// Removes RFC 5322 comments (nested parentheses), keeping quoted strings intact.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if depth > 0 => {}
            '\r' | '\n' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn split_outside_quotes(value: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == sep && !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn split_whitespace_outside_quotes(value: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn unquote(value: &str) -> String {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "mx.example.net";

    fn pass(results: &[&str], from: &str) -> bool {
        matches!(verify_sender(results, ID, from), Verdict::Pass(_))
    }

    #[test]
    fn dmarc_pass_from_our_mta_counts() {
        let top = "mx.example.net; spf=pass smtp.mailfrom=alice@example.org; \
                   dkim=pass header.d=example.org header.s=sel; \
                   dmarc=pass (p=reject dis=none) header.from=example.org";
        assert!(pass(&[top], "example.org"));
        assert_eq!(
            verify_sender(&["MX.Example.NET 1; dmarc=pass"], ID, "Example.ORG"),
            Verdict::Pass("dmarc=pass")
        );
    }

    #[test]
    fn dkim_pass_for_the_from_domain_or_a_parent_counts() {
        let top = "mx.example.net; dkim=pass header.d=example.org header.i=@example.org";
        assert_eq!(
            verify_sender(&[top], ID, "example.org"),
            Verdict::Pass("dkim=pass")
        );
        assert!(pass(&[top], "mail.example.org"), "a parent domain signs");
        assert!(!pass(&[top], "example.org.evil.com"));
        assert!(!pass(&[top], "notexample.org"));
        assert!(!pass(
            &["mx.example.net; dkim=pass header.d=org"],
            "example.org"
        ));
        assert!(pass(
            &["mx.example.net; dkim=pass header.d=\"Example.ORG.\""],
            "example.org"
        ));
    }

    #[test]
    fn forged_lower_headers_do_not_count() {
        let ours = "mx.example.net; spf=fail; dkim=none; dmarc=fail header.from=example.org";
        let forged = "mx.example.net; dkim=pass header.d=example.org; dmarc=pass";
        assert!(!pass(&[ours, forged], "example.org"));
        assert!(!pass(&[], "example.org"), "no header at all");
    }

    #[test]
    fn another_authserv_id_does_not_count() {
        let top = "mx.attacker.example; dkim=pass header.d=example.org; dmarc=pass";
        let ours = "mx.example.net; dmarc=pass";
        assert!(!pass(&[top, ours], "example.org"));
        assert!(!pass(&["mx.example.net.evil; dmarc=pass"], "example.org"));
        // The id hidden in a comment does not count either.
        assert!(!pass(
            &["(mx.example.net) other; dmarc=pass"],
            "example.org"
        ));
    }

    #[test]
    fn dkim_for_another_domain_or_non_pass_results_do_not_count() {
        assert!(!pass(
            &["mx.example.net; dkim=pass header.d=mailer.example.com"],
            "example.org"
        ));
        assert!(!pass(
            &["mx.example.net; dkim=fail header.d=example.org"],
            "example.org"
        ));
        assert!(
            !pass(&["mx.example.net; dkim=pass"], "example.org"),
            "no signing domain"
        );
        assert!(
            !pass(
                &["mx.example.net; spf=pass smtp.mailfrom=example.org"],
                "example.org"
            ),
            "SPF alone says nothing about From"
        );
        assert!(!pass(
            &["mx.example.net; dmarc=pass header.from=other.org"],
            "example.org"
        ));
        assert!(!pass(&["mx.example.net; none"], "example.org"));
        assert!(!pass(&["mx.example.net; dmarc=pass"], ""));
    }

    #[test]
    fn comments_quotes_and_folding_are_handled() {
        let top = "mx.example.net (Postfix);\r\n\tdkim=pass (2048-bit key; \"x\") \
                   reason=\"signature ok; fine\" header.d=example.org";
        assert!(pass(&[top], "example.org"));
        let parsed = parse("a.b ; dkim/1 = pass").unwrap();
        assert_eq!(parsed.authserv_id, "a.b");
        let comment_pass = "mx.example.net; dkim=fail (dkim=pass header.d=example.org)";
        assert!(!pass(&[comment_pass], "example.org"));
    }

    proptest! {
        #[test]
        fn never_panics(value in "\\PC{0,200}", from in "\\PC{0,40}") {
            let _ = parse(&value);
            let _ = verify_sender(&[&value], ID, &from);
        }

        #[test]
        fn generated_results_round_trip(
            method in "(dkim|dmarc|spf|arc)",
            result in "(pass|fail|none|neutral)",
            domain in "[a-z]{1,10}\\.[a-z]{2,5}",
        ) {
            let value = format!("{ID}; {method}={result} header.d={domain} header.from={domain}");
            let parsed = parse(&value).unwrap();
            prop_assert_eq!(parsed.authserv_id, ID);
            prop_assert_eq!(parsed.results.len(), 1);
            prop_assert_eq!(&parsed.results[0].method, &method);
            prop_assert_eq!(&parsed.results[0].result, &result);
            let expected = result == "pass" && (method == "dkim" || method == "dmarc");
            prop_assert_eq!(pass(&[&value], &domain), expected);
        }
    }
}
