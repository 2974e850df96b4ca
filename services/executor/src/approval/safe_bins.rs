//! Safe bins: stdin-only filters that may run without an allowlist entry, but only within
//! a per-binary profile: known short flags (some taking a value), no path arguments, no
//! long options (a long option we do not know could read or write files, so all fail
//! closed), and only from the system directories.

/// How a command fared against the safe-bin profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafeBinVerdict {
    /// A safe bin used within its profile.
    Ok,
    /// Not a safe bin.
    NotSafeBin,
    /// A safe bin used outside its profile.
    Refused(String),
}

struct Profile {
    name: &'static str,
    /// Short flags without a value.
    flags: &'static str,
    /// Short flags taking a value (attached `-n5` or separate `-n 5`).
    valued: &'static str,
    /// Positional operands allowed (tr's sets); never paths for the others.
    operands: usize,
}

const PROFILES: &[Profile] = &[
    Profile {
        name: "cut",
        flags: "s",
        valued: "bcdf",
        operands: 0,
    },
    Profile {
        name: "uniq",
        flags: "cdiu",
        valued: "fs",
        operands: 0,
    },
    Profile {
        name: "head",
        flags: "",
        valued: "cn",
        operands: 0,
    },
    Profile {
        name: "tail",
        flags: "",
        valued: "cn",
        operands: 0,
    },
    Profile {
        name: "tr",
        flags: "cdsC",
        valued: "",
        operands: 2,
    },
    Profile {
        name: "wc",
        flags: "clmw",
        valued: "",
        operands: 0,
    },
];

const SYSTEM_DIRS: &[&str] = &["/usr/bin/", "/bin/"];

/// Checks `args` (after argv[0]) of the executable at `path`.
pub fn check_safe_bin(path: &str, args: &[String]) -> SafeBinVerdict {
    let Some(dir_end) = path.rfind('/') else {
        return SafeBinVerdict::NotSafeBin;
    };
    let (dir, name) = path.split_at(dir_end + 1);
    let Some(profile) = PROFILES.iter().find(|p| p.name == name) else {
        return SafeBinVerdict::NotSafeBin;
    };
    if !SYSTEM_DIRS.contains(&dir) {
        return SafeBinVerdict::NotSafeBin;
    }
    let mut operands = 0;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.starts_with("--") {
            return SafeBinVerdict::Refused(format!(
                "long option {arg:?} is not allowed for a safe bin"
            ));
        }
        if let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) {
            for (i, c) in flags.char_indices() {
                if profile.flags.contains(c) {
                    continue;
                }
                if profile.valued.contains(c) {
                    if i + c.len_utf8() == flags.len() && args.next().is_none() {
                        return SafeBinVerdict::Refused(format!("-{c} needs a value"));
                    }
                    break;
                }
                return SafeBinVerdict::Refused(format!("flag -{c} is not allowed for {name}"));
            }
            continue;
        }
        operands += 1;
        if operands > profile.operands || arg.contains('/') {
            return SafeBinVerdict::Refused(format!(
                "{name} reads standard input only; {arg:?} looks like a path or extra operand"
            ));
        }
    }
    SafeBinVerdict::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, args: &[&str]) -> SafeBinVerdict {
        check_safe_bin(
            path,
            &args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn profiles() {
        assert_eq!(check("/usr/bin/head", &["-n", "5"]), SafeBinVerdict::Ok);
        assert_eq!(check("/usr/bin/head", &["-n5"]), SafeBinVerdict::Ok);
        assert_eq!(check("/usr/bin/wc", &["-lw"]), SafeBinVerdict::Ok);
        assert_eq!(check("/usr/bin/tr", &["-d", "a-z"]), SafeBinVerdict::Ok);
        assert_eq!(check("/usr/bin/tr", &["a-z", "A-Z"]), SafeBinVerdict::Ok);
        assert_eq!(
            check("/usr/bin/cut", &["-d", ",", "-f", "1,3"]),
            SafeBinVerdict::Ok
        );
        for (path, args) in [
            ("/usr/bin/head", &["file"][..]),
            ("/usr/bin/head", &["-n"][..]),
            ("/usr/bin/tail", &["-f"][..]),
            ("/usr/bin/wc", &["--files0-from=x"][..]),
            ("/usr/bin/tr", &["a", "b", "c"][..]),
            ("/usr/bin/tr", &["/etc", "x"][..]),
            ("/usr/bin/uniq", &["in", "out"][..]),
        ] {
            assert!(
                matches!(check(path, args), SafeBinVerdict::Refused(_)),
                "{path} {args:?}"
            );
        }
        assert_eq!(check("/tmp/head", &[]), SafeBinVerdict::NotSafeBin);
        assert_eq!(check("/usr/bin/cat", &[]), SafeBinVerdict::NotSafeBin);
    }
}
