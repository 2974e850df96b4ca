//! A deliberately small shell-line parser for exec approvals: it splits a line into a
//! chain of simple commands joined by `&&`, `||`, `;` or `|`, with POSIX quoting
//! ('single', "double", backslash), and refuses everything whose meaning depends on the
//! shell at run time: command substitution (`$(…)`, backticks), parameter expansion
//! (`$VAR`, `${…}`), redirections (`<`, `>`, `>>`, `<<`, `>&`…), background `&`,
//! subshells, groups and brace expansion (`(`, `)`, `{`, `}` unquoted), globs (`*`, `?`, `[`), `~`
//! expansion, comments and newlines inside quotes of a kind we do not handle. What it
//! accepts runs exactly as parsed: every word is literal.

use std::fmt;

/// How two commands are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joiner {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `;` or a newline
    Then,
    /// `|`
    Pipe,
}

/// A parsed chain: the first command, then (joiner, command) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Each command's literal argv, in order.
    pub commands: Vec<Vec<String>>,
    /// `joiners[i]` joins `commands[i]` and `commands[i + 1]`.
    pub joiners: Vec<Joiner>,
}

/// Why a line was refused (it fails closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A construct whose meaning the shell decides at run time.
    #[error("{0} is not allowed in an approved command line")]
    Forbidden(Construct),
    /// A quote was not closed.
    #[error("unterminated {0} quote")]
    Unterminated(&'static str),
    /// Nothing to run, or an operator with nothing on one side.
    #[error("empty command in the chain")]
    Empty,
}

/// The refused constructs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Construct {
    /// `$(…)` or backticks.
    CommandSubstitution,
    /// `$NAME`, `${…}`, `$1`, `$?`…
    Expansion,
    /// `<`, `>`, `>>`, `<<`, `<>`, `>&`…
    Redirection,
    /// A trailing or lone `&`.
    Background,
    /// `(`, `)`, `{`, `}`.
    Grouping,
    /// `*`, `?`, `[`.
    Glob,
    /// A leading `~`.
    Tilde,
    /// `#`.
    Comment,
    /// A control character other than tab and newline.
    ControlCharacter,
}

impl fmt::Display for Construct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CommandSubstitution => "command substitution ($(…) or `…`)",
            Self::Expansion => "variable expansion ($…)",
            Self::Redirection => "redirection (<, >)",
            Self::Background => "background execution (&)",
            Self::Grouping => "a subshell or group ((…) or {…})",
            Self::Glob => "a glob (*, ?, [)",
            Self::Tilde => "tilde expansion (~)",
            Self::Comment => "a comment (#)",
            Self::ControlCharacter => "a control character",
        })
    }
}

/// Parses `line`.
pub fn parse(line: &str) -> Result<Chain, ShellError> {
    let mut commands = Vec::new();
    let mut joiners = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    // Whether the current word exists (an empty quoted string is a word).
    let mut in_word = false;
    let mut chars = line.chars().peekable();

    let finish_command = |words: &mut Vec<String>,
                          joiner: Option<Joiner>,
                          commands: &mut Vec<Vec<String>>,
                          joiners: &mut Vec<Joiner>|
     -> Result<(), ShellError> {
        if words.is_empty() {
            return Err(ShellError::Empty);
        }
        commands.push(std::mem::take(words));
        if let Some(j) = joiner {
            joiners.push(j);
        }
        Ok(())
    };

    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(ShellError::Unterminated("single")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err(ShellError::Unterminated("double")),
                        },
                        Some('$') => {
                            return Err(ShellError::Forbidden(dollar(chars.peek().copied())));
                        }
                        Some('`') => {
                            return Err(ShellError::Forbidden(Construct::CommandSubstitution));
                        }
                        Some(ch) if is_forbidden_control(ch) => {
                            return Err(ShellError::Forbidden(Construct::ControlCharacter));
                        }
                        Some(ch) => word.push(ch),
                        None => return Err(ShellError::Unterminated("double")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => {
                    in_word = true;
                    word.push(ch);
                }
                None => return Err(ShellError::Unterminated("backslash")),
            },
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\n' | ';' | '&' | '|' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let joiner = match c {
                    '&' if chars.peek() == Some(&'&') => {
                        chars.next();
                        Joiner::And
                    }
                    '&' => return Err(ShellError::Forbidden(Construct::Background)),
                    '|' if chars.peek() == Some(&'|') => {
                        chars.next();
                        Joiner::Or
                    }
                    '|' if chars.peek() == Some(&'&') => {
                        return Err(ShellError::Forbidden(Construct::Redirection));
                    }
                    '|' => Joiner::Pipe,
                    _ => Joiner::Then,
                };
                if joiner == Joiner::Then
                    && words.is_empty()
                    && (c == '\n' || commands.is_empty() && joiners.is_empty())
                {
                    // Blank lines are fine; a leading `;` is not.
                    if c == ';' {
                        return Err(ShellError::Empty);
                    }
                    continue;
                }
                finish_command(&mut words, Some(joiner), &mut commands, &mut joiners)?;
            }
            '$' => return Err(ShellError::Forbidden(dollar(chars.peek().copied()))),
            '`' => return Err(ShellError::Forbidden(Construct::CommandSubstitution)),
            '<' | '>' => return Err(ShellError::Forbidden(Construct::Redirection)),
            '(' | ')' => return Err(ShellError::Forbidden(Construct::Grouping)),
            '{' | '}' => return Err(ShellError::Forbidden(Construct::Grouping)),
            '*' | '?' | '[' => return Err(ShellError::Forbidden(Construct::Glob)),
            '~' if !in_word => return Err(ShellError::Forbidden(Construct::Tilde)),
            '#' if !in_word => return Err(ShellError::Forbidden(Construct::Comment)),
            ch if is_forbidden_control(ch) => {
                return Err(ShellError::Forbidden(Construct::ControlCharacter));
            }
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        // A trailing `;` or newline ends the chain; a trailing `&&`, `||` or `|` does not.
        match joiners.last() {
            Some(Joiner::Then) => {
                joiners.pop();
            }
            Some(_) => return Err(ShellError::Empty),
            None if commands.is_empty() => return Err(ShellError::Empty),
            None => {}
        }
    } else {
        commands.push(words);
    }
    Ok(Chain { commands, joiners })
}

fn dollar(next: Option<char>) -> Construct {
    if next == Some('(') {
        Construct::CommandSubstitution
    } else {
        Construct::Expansion
    }
}

fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argvs(line: &str) -> Vec<Vec<String>> {
        parse(line).unwrap().commands
    }

    #[test]
    fn simple_lines_and_quoting() {
        assert_eq!(argvs("ls -la"), [["ls", "-la"]]);
        assert_eq!(
            argvs("  echo   'a b'  \"c d\" e\\ f "),
            [["echo", "a b", "c d", "e f"]]
        );
        assert_eq!(argvs("echo ''"), [["echo", ""]]);
        assert_eq!(argvs("echo \"a\\\"b\" 'it''s'"), [["echo", "a\"b", "its"]]);
        assert_eq!(argvs("echo a#b x~y"), [["echo", "a#b", "x~y"]]);
    }

    #[test]
    fn chains_keep_their_joiners() {
        let c = parse("ls && echo ok || echo no; wc -l | head -1\n").unwrap();
        assert_eq!(c.commands.len(), 5);
        assert_eq!(
            c.joiners,
            [Joiner::And, Joiner::Or, Joiner::Then, Joiner::Pipe]
        );
        assert_eq!(parse("a;b").unwrap().joiners, [Joiner::Then]);
    }

    #[test]
    fn run_time_constructs_fail_closed() {
        use Construct::*;
        for (line, what) in [
            ("echo $(id)", CommandSubstitution),
            ("echo `id`", CommandSubstitution),
            ("echo \"$(id)\"", CommandSubstitution),
            ("echo \"`id`\"", CommandSubstitution),
            ("echo $HOME", Expansion),
            ("echo \"${PATH}\"", Expansion),
            ("echo $1", Expansion),
            ("ls > out", Redirection),
            ("ls >> out", Redirection),
            ("cat < /etc/passwd", Redirection),
            ("cat <<EOF", Redirection),
            ("ls 2>&1", Redirection),
            ("ls |& cat", Redirection),
            ("sleep 9 &", Background),
            ("(cd /; ls)", Grouping),
            ("{ ls; }", Grouping),
            ("rm *", Glob),
            ("ls ?", Glob),
            ("ls [ab]", Glob),
            ("ls ~", Tilde),
            ("ls # comment", Comment),
            ("ls\u{7}", ControlCharacter),
        ] {
            assert_eq!(parse(line), Err(ShellError::Forbidden(what)), "{line}");
        }
    }

    #[test]
    fn malformed_lines_fail() {
        for line in [
            "", "   ", "echo 'x", "echo \"x", "echo x\\", "&& ls", "ls &&", "ls |", "ls || ",
            "; ls", "ls ;; ls",
        ] {
            assert!(parse(line).is_err(), "{line:?}");
        }
        assert!(parse("ls;").is_ok(), "a trailing ; ends the line");
    }

    proptest::proptest! {
        /// Whatever the input, the parser answers without panicking, and what it accepts
        /// contains no unquoted metacharacter in any word's source position.
        #[test]
        fn never_panics(line in ".{0,80}") {
            let _ = parse(&line);
        }

        /// Plain words always round-trip.
        #[test]
        fn plain_words_round_trip(words in proptest::collection::vec("[A-Za-z0-9_./=:,+-]{1,12}", 1..6)) {
            let line = words.join(" ");
            proptest::prop_assert_eq!(argvs(&line), vec![words]);
        }
    }
}
