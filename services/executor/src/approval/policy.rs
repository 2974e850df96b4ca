//! The exec approval decision, pure: given the policy (`security`, `ask`, the allowlist
//! of globs on resolved executable paths, the safe bins) and a command, decide
//! allow / ask the owner / deny, and name why.
//!
//! - `security: deny` refuses everything; `full` allows everything (subject to `ask:
//!   always`); `allowlist` allows a command only when **every** segment of its chain
//!   passes: its executable, resolved to an absolute path, matches an allowlist glob, or
//!   it is a safe bin used within its profile. Anything the shell parser refuses
//!   (substitution, redirection, expansion, globs…) is a miss.
//! - `ask: off` turns misses into denials; `on-miss` asks the owner on a miss; `always`
//!   asks for every command, even allowed ones.
//! - The resolved executables are part of the decision, so what runs is what was judged:
//!   the caller must execute the resolved paths, not re-resolve the names.

use super::safe_bins::{SafeBinVerdict, check_safe_bin};
use super::shell::{self, ShellError};

/// `tools.exec.security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Nothing runs.
    Deny,
    /// Only allowlisted executables and safe bins.
    Allowlist,
    /// Anything.
    Full,
}

/// `tools.exec.ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Never ask; a miss is denied.
    Off,
    /// Ask the owner when the allowlist does not cover the command.
    OnMiss,
    /// Ask for every command.
    Always,
}

/// The policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPolicy {
    /// `security`.
    pub security: Security,
    /// `ask`.
    pub ask: Ask,
    /// `askFallback`: what applies when the owner was asked and did not answer in time.
    pub ask_fallback: Security,
    /// Globs over absolute executable paths (`/usr/bin/git`, `/usr/local/bin/*`,
    /// `/opt/tools/**`): `*` matches within one path segment, `**` across segments, `?`
    /// one character.
    pub allowlist: Vec<String>,
    /// Whether stdin-only filters (`cut uniq head tail tr wc`) run without entries.
    pub safe_bins: bool,
}

/// The command to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// An argv, run without a shell.
    Argv(Vec<String>),
    /// A line for `/bin/sh -c`.
    Shell(String),
}

/// Resolves a program name to the absolute path that would run.
pub trait Resolve {
    /// `name` is argv[0] as written: with a `/` it is a path, else it is looked up.
    fn resolve(&self, name: &str) -> Option<String>;
}

/// One segment as judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its argv as written.
    pub argv: Vec<String>,
    /// The absolute executable, when it resolved.
    pub executable: Option<String>,
    /// Why it passed, or why not.
    pub verdict: SegmentVerdict,
}

/// How a segment fared under `allowlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentVerdict {
    /// An allowlist glob matched.
    Allowlisted(String),
    /// A safe bin within its profile.
    SafeBin,
    /// Not covered.
    Miss(String),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Allow {
        /// The segments with their resolved executables.
        segments: Vec<Segment>,
    },
    /// Ask the owner; run only on approval.
    Ask {
        /// Why (a miss, or `ask: always`).
        reason: String,
        /// The segments as judged (for the approval request).
        segments: Vec<Segment>,
    },
    /// Refuse.
    Deny {
        /// Why.
        reason: String,
    },
}

/// Decides about `command`.
pub fn decide(policy: &ExecPolicy, command: &CommandLine, resolver: &dyn Resolve) -> Decision {
    if policy.security == Security::Deny {
        return Decision::Deny {
            reason: "exec is denied by policy (tools.exec.security = \"deny\")".into(),
        };
    }
    let argvs = match command {
        CommandLine::Argv(argv) => Ok(vec![argv.clone()]),
        CommandLine::Shell(line) => shell::parse(line).map(|c| c.commands),
    };
    let segments = match argvs {
        Ok(argvs) => argvs
            .into_iter()
            .map(|argv| judge(policy, argv, resolver))
            .collect::<Vec<_>>(),
        Err(e) => return parse_failure(policy, &e),
    };
    let misses: Vec<String> = segments
        .iter()
        .filter_map(|s| match &s.verdict {
            SegmentVerdict::Miss(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    let covered = policy.security == Security::Full || misses.is_empty();
    match (covered, policy.ask) {
        (true, Ask::Always) => Decision::Ask {
            reason: "every command is confirmed (tools.exec.ask = \"always\")".into(),
            segments,
        },
        (true, _) => Decision::Allow { segments },
        (false, Ask::Off) => Decision::Deny {
            reason: misses.join("; "),
        },
        (false, _) => Decision::Ask {
            reason: misses.join("; "),
            segments,
        },
    }
}

fn parse_failure(policy: &ExecPolicy, e: &ShellError) -> Decision {
    match (policy.security, policy.ask) {
        // Full trust runs the line as written; only `ask: always` still confirms.
        (Security::Full, Ask::Always) => Decision::Ask {
            reason: format!("every command is confirmed; note: {e}"),
            segments: Vec::new(),
        },
        (Security::Full, _) => Decision::Allow {
            segments: Vec::new(),
        },
        (_, Ask::Off) => Decision::Deny {
            reason: e.to_string(),
        },
        _ => Decision::Ask {
            reason: e.to_string(),
            segments: Vec::new(),
        },
    }
}

fn judge(policy: &ExecPolicy, argv: Vec<String>, resolver: &dyn Resolve) -> Segment {
    let name = argv.first().cloned().unwrap_or_default();
    let executable = resolver.resolve(&name).filter(|p| p.starts_with('/'));
    let verdict = match &executable {
        None => SegmentVerdict::Miss(format!("{name:?} is not an executable found on PATH")),
        Some(path) => {
            if let Some(glob) = policy.allowlist.iter().find(|g| glob_match(g, path)) {
                SegmentVerdict::Allowlisted(glob.clone())
            } else if policy.safe_bins {
                match check_safe_bin(path, &argv[1..]) {
                    SafeBinVerdict::Ok => SegmentVerdict::SafeBin,
                    SafeBinVerdict::NotSafeBin => {
                        SegmentVerdict::Miss(format!("{path} is not on the allowlist"))
                    }
                    SafeBinVerdict::Refused(why) => SegmentVerdict::Miss(format!("{path}: {why}")),
                }
            } else {
                SegmentVerdict::Miss(format!("{path} is not on the allowlist"))
            }
        }
    };
    Segment {
        argv,
        executable,
        verdict,
    }
}

/// Matches an absolute path against a glob: `*` within a segment, `**` across segments,
/// `?` one non-`/` character; everything else literally.
pub fn glob_match(glob: &str, path: &str) -> bool {
    fn go(g: &[u8], p: &[u8]) -> bool {
        match g.split_first() {
            None => p.is_empty(),
            Some((b'*', rest)) if rest.first() == Some(&b'*') => {
                let rest = &rest[1..];
                (0..=p.len()).any(|i| go(rest, &p[i..]))
            }
            Some((b'*', rest)) => {
                let seg_end = p.iter().position(|&c| c == b'/').unwrap_or(p.len());
                (0..=seg_end).any(|i| go(rest, &p[i..]))
            }
            Some((b'?', rest)) => p.first().is_some_and(|&c| c != b'/') && go(rest, &p[1..]),
            Some((c, rest)) => p.first() == Some(c) && go(rest, &p[1..]),
        }
    }
    glob.starts_with('/') && !path.contains("/../") && go(glob.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakePath;
    impl Resolve for FakePath {
        fn resolve(&self, name: &str) -> Option<String> {
            if name.starts_with('/') {
                return Some(name.to_owned());
            }
            [
                "ls", "git", "rm", "cat", "head", "wc", "tr", "cut", "sh", "curl",
            ]
            .contains(&name)
            .then(|| format!("/usr/bin/{name}"))
        }
    }

    fn policy(security: Security, ask: Ask, allow: &[&str]) -> ExecPolicy {
        ExecPolicy {
            security,
            ask,
            ask_fallback: Security::Deny,
            allowlist: allow.iter().map(|s| (*s).to_owned()).collect(),
            safe_bins: true,
        }
    }

    fn shell(line: &str) -> CommandLine {
        CommandLine::Shell(line.into())
    }

    fn is_allow(d: &Decision) -> bool {
        matches!(d, Decision::Allow { .. })
    }

    #[test]
    fn deny_refuses_everything_full_allows_everything() {
        let deny = policy(Security::Deny, Ask::OnMiss, &["/**"]);
        assert!(matches!(
            decide(&deny, &shell("ls"), &FakePath),
            Decision::Deny { .. }
        ));
        let full = policy(Security::Full, Ask::Off, &[]);
        assert!(is_allow(&decide(
            &full,
            &shell("rm -rf x; curl y | sh"),
            &FakePath
        )));
        assert!(is_allow(&decide(
            &full,
            &shell("echo $(id) > f"),
            &FakePath
        )));
        let confirm = policy(Security::Full, Ask::Always, &[]);
        assert!(matches!(
            decide(&confirm, &shell("ls"), &FakePath),
            Decision::Ask { .. }
        ));
    }

    #[test]
    fn every_segment_must_pass() {
        let p = policy(
            Security::Allowlist,
            Ask::Off,
            &["/usr/bin/ls", "/usr/bin/git"],
        );
        assert!(is_allow(&decide(
            &p,
            &shell("ls -la && git status"),
            &FakePath
        )));
        for line in [
            "ls; rm -rf x",
            "ls && rm -rf x",
            "ls || rm x",
            "ls | sh",
            "git log | curl x",
        ] {
            match decide(&p, &shell(line), &FakePath) {
                Decision::Deny { reason } => {
                    assert!(reason.contains("not on the allowlist"), "{line}: {reason}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        let ask = policy(Security::Allowlist, Ask::OnMiss, &["/usr/bin/ls"]);
        assert!(matches!(
            decide(&ask, &shell("ls; rm -rf x"), &FakePath),
            Decision::Ask { .. }
        ));
    }

    #[test]
    fn shell_tricks_are_misses() {
        let p = policy(Security::Allowlist, Ask::Off, &["/usr/bin/*"]);
        for line in [
            "ls $(rm -rf x)",
            "ls `rm x`",
            "ls > /etc/passwd",
            "cat < /etc/shadow",
            "ls $HOME",
            "ls &",
            "(rm x)",
        ] {
            assert!(
                matches!(decide(&p, &shell(line), &FakePath), Decision::Deny { .. }),
                "{line}"
            );
        }
    }

    #[test]
    fn the_resolved_path_is_judged() {
        let p = policy(Security::Allowlist, Ask::Off, &["/usr/bin/ls"]);
        // A path outside the allowlisted one, even with the same basename.
        assert!(!is_allow(&decide(
            &p,
            &CommandLine::Argv(vec!["/tmp/ls".into()]),
            &FakePath
        )));
        assert!(!is_allow(&decide(
            &p,
            &CommandLine::Argv(vec!["/usr/bin/../../tmp/ls".into()]),
            &FakePath
        )));
        assert!(!is_allow(&decide(&p, &shell("nosuch"), &FakePath)));
        match decide(
            &p,
            &CommandLine::Argv(vec!["ls".into(), "-l".into()]),
            &FakePath,
        ) {
            Decision::Allow { segments } => {
                assert_eq!(segments[0].executable.as_deref(), Some("/usr/bin/ls"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn safe_bins_need_no_entry_but_stay_in_profile() {
        let p = policy(Security::Allowlist, Ask::Off, &["/usr/bin/cat"]);
        assert!(is_allow(&decide(
            &p,
            &shell("cat x | head -n 5 | wc -l"),
            &FakePath
        )));
        assert!(is_allow(&decide(
            &p,
            &shell("cat x | tr a-z A-Z | cut -d , -f 1"),
            &FakePath
        )));
        for line in [
            "head /etc/shadow",
            "wc --files0-from=list",
            "cat x | head -n 5 /etc/passwd",
            "tail -f x",
        ] {
            assert!(!is_allow(&decide(&p, &shell(line), &FakePath)), "{line}");
        }
        let no_safe = ExecPolicy {
            safe_bins: false,
            ..p
        };
        assert!(!is_allow(&decide(
            &no_safe,
            &shell("cat x | wc -l"),
            &FakePath
        )));
    }

    #[test]
    fn globs() {
        assert!(glob_match("/usr/bin/*", "/usr/bin/git"));
        assert!(!glob_match("/usr/bin/*", "/usr/bin/x/git"));
        assert!(glob_match("/opt/**", "/opt/a/b/c"));
        assert!(glob_match("/usr/bin/python3.?", "/usr/bin/python3.1"));
        assert!(!glob_match("/usr/bin/python3.?", "/usr/bin/python3.11"));
        assert!(
            !glob_match("usr/bin/*", "usr/bin/git"),
            "relative globs never match"
        );
        assert!(!glob_match("/usr/**", "/usr/../tmp/x"));
    }
}
