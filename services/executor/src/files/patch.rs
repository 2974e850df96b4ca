//! The `apply_patch` format, parsed and applied to text. Pure; `ops` does the file work.
//!
//! ```text
//! *** Begin Patch
//! *** Add File: docs/new.md
//! +every line of the new file, each after a '+'
//! *** Update File: src/app.py
//! @@ def main():
//!  context line (a space first)
//! -removed line
//! +added line
//! *** End of File            (optional: this hunk must match at the end of the file)
//! *** Delete File: old.txt
//! *** End Patch
//! ```
//!
//! Hunks of one file apply in order; each is searched from where the previous one ended,
//! after its `@@` anchor line when it has one, first exactly, then ignoring trailing
//! whitespace, then ignoring surrounding whitespace; the first match wins. A hunk without
//! `-` or context lines appends (after the anchor when given, else at the end).

use crate::files::path::{PathError, WorkspacePath};
use crate::files::text::Lines;

/// Most files one patch may touch.
pub const MAX_PATCH_FILES: usize = 256;

/// A parsed patch: one entry per file, no path twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The changes in patch order.
    pub changes: Vec<FileChange>,
}

/// What a patch does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// Create a file that does not exist yet.
    Add {
        /// Where.
        path: WorkspacePath,
        /// Its content.
        content: String,
    },
    /// Remove a file.
    Delete {
        /// Which.
        path: WorkspacePath,
    },
    /// Change an existing file.
    Update {
        /// Which.
        path: WorkspacePath,
        /// The hunks, in file order.
        hunks: Vec<Hunk>,
    },
}

impl FileChange {
    /// The file it touches.
    pub fn path(&self) -> &WorkspacePath {
        match self {
            Self::Add { path, .. } | Self::Delete { path } | Self::Update { path, .. } => path,
        }
    }
}

/// One `@@` section of an update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hunk {
    /// The text after `@@`, if any: a line to find before the hunk.
    pub anchor: Option<String>,
    /// Context and removed lines: what must be in the file.
    pub old: Vec<String>,
    /// Context and added lines: what replaces it.
    pub new: Vec<String>,
    /// `*** End of File` followed: the hunk matches at the end of the file.
    pub at_end: bool,
}

/// Why a patch does not parse. Lines are 1-based lines of the patch text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// No `*** Begin Patch` first.
    #[error("the patch must start with a \"*** Begin Patch\" line")]
    MissingBegin,
    /// No `*** End Patch` last.
    #[error("the patch must end with a \"*** End Patch\" line")]
    MissingEnd,
    /// No file sections.
    #[error(
        "the patch changes no file; add an \"*** Add File:\", \"*** Update File:\" or \"*** Delete File:\" section"
    )]
    NoChanges,
    /// Too many file sections.
    #[error("the patch touches more than {MAX_PATCH_FILES} files; split it")]
    TooManyFiles,
    /// A line that fits nowhere.
    #[error(
        "patch line {line}: expected a file header (\"*** Add File: PATH\", \"*** Update File: PATH\" or \"*** Delete File: PATH\"), found {text:?}"
    )]
    UnexpectedLine {
        /// Where.
        line: usize,
        /// What (shortened).
        text: String,
    },
    /// A header's path is unusable.
    #[error("patch line {line}: {source}")]
    BadPath {
        /// Where.
        line: usize,
        /// Why.
        source: PathError,
    },
    /// The same file in two sections.
    #[error("the patch touches {path} twice; put all its changes in one section")]
    DuplicatePath {
        /// The file.
        path: String,
    },
    /// An `Add File` line without `+`.
    #[error("patch line {line}: every line of an added file starts with '+'")]
    AddLine {
        /// Where.
        line: usize,
    },
    /// A `Delete File` with content.
    #[error("patch line {line}: \"*** Delete File\" takes no lines after it")]
    DeleteBody {
        /// Where.
        line: usize,
    },
    /// `*** Move to:` is not supported.
    #[error(
        "patch line {line}: \"*** Move to\" is not supported; add the new file and delete the old one, or use exec mv"
    )]
    MoveUnsupported {
        /// Where.
        line: usize,
    },
    /// An update without hunks.
    #[error(
        "patch line {line}: \"*** Update File: {path}\" has no hunk; add \"@@\" and the lines to change"
    )]
    EmptyUpdate {
        /// Where.
        line: usize,
        /// The file.
        path: String,
    },
    /// A hunk line without ' ', '-' or '+'.
    #[error(
        "patch line {line}: a hunk line starts with ' ' (context), '-' (remove) or '+' (add); found {text:?}"
    )]
    HunkLine {
        /// Where.
        line: usize,
        /// What (shortened).
        text: String,
    },
    /// A hunk that changes nothing.
    #[error("patch line {line}: this hunk has no '-' or '+' line")]
    NoopHunk {
        /// Where.
        line: usize,
    },
}

/// Why a hunk does not apply to the current file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HunkError {
    /// The `@@` anchor line is not there.
    #[error("{path}: hunk {hunk}: the @@ line {anchor:?} was not found (after the previous hunk)")]
    AnchorNotFound {
        /// The file.
        path: String,
        /// 1-based hunk number.
        hunk: usize,
        /// The anchor.
        anchor: String,
    },
    /// The context and removed lines are not there.
    #[error(
        "{path}: hunk {hunk}: the context and '-' lines were not found (after the previous hunk); read the file again, the first expected line is {first:?}"
    )]
    NotFound {
        /// The file.
        path: String,
        /// 1-based hunk number.
        hunk: usize,
        /// The first line the hunk expects.
        first: String,
    },
}

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File: ";
const DELETE: &str = "*** Delete File: ";
const UPDATE: &str = "*** Update File: ";
const MOVE: &str = "*** Move to: ";
const END_OF_FILE: &str = "*** End of File";

/// Parses patch text.
pub fn parse(text: &str) -> Result<Patch, PatchError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .collect();
    // Blank lines around the markers are tolerated.
    let first = lines.iter().position(|(_, l)| !l.trim().is_empty());
    let last = lines.iter().rposition(|(_, l)| !l.trim().is_empty());
    let (Some(first), Some(last)) = (first, last) else {
        return Err(PatchError::MissingBegin);
    };
    if lines[first].1.trim() != BEGIN {
        return Err(PatchError::MissingBegin);
    }
    if last == first || lines[last].1.trim() != END {
        return Err(PatchError::MissingEnd);
    }
    let body = &lines[first + 1..last];
    let mut changes: Vec<FileChange> = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let (line_no, line) = body[at];
        at += 1;
        let header_path = |prefix: &str| -> Result<WorkspacePath, PatchError> {
            let raw = line.get(prefix.len()..).unwrap_or_default().trim();
            WorkspacePath::parse_file(raw).map_err(|source| PatchError::BadPath {
                line: line_no,
                source,
            })
        };
        let section_end = body[at..]
            .iter()
            .position(|(_, l)| is_file_header(l))
            .map_or(body.len(), |n| at + n);
        let section = &body[at..section_end];
        at = section_end;
        let change = if line.starts_with(ADD) {
            FileChange::Add {
                path: header_path(ADD)?,
                content: add_content(section)?,
            }
        } else if line.starts_with(DELETE) {
            if let Some((n, _)) = section.iter().find(|(_, l)| !l.trim().is_empty()) {
                return Err(PatchError::DeleteBody { line: *n });
            }
            FileChange::Delete {
                path: header_path(DELETE)?,
            }
        } else if line.starts_with(UPDATE) {
            let path = header_path(UPDATE)?;
            let hunks = hunks(section, line_no, &path)?;
            FileChange::Update { path, hunks }
        } else if line.trim().is_empty() {
            continue;
        } else {
            return Err(PatchError::UnexpectedLine {
                line: line_no,
                text: shorten(line),
            });
        };
        if changes.iter().any(|c| c.path() == change.path()) {
            return Err(PatchError::DuplicatePath {
                path: change.path().to_string(),
            });
        }
        changes.push(change);
        if changes.len() > MAX_PATCH_FILES {
            return Err(PatchError::TooManyFiles);
        }
    }
    if changes.is_empty() {
        return Err(PatchError::NoChanges);
    }
    Ok(Patch { changes })
}

fn is_file_header(line: &str) -> bool {
    [ADD, DELETE, UPDATE].iter().any(|p| line.starts_with(p))
}

fn add_content(section: &[(usize, &str)]) -> Result<String, PatchError> {
    let mut content = String::new();
    for (n, l) in section {
        // A blank line is taken as an empty added line (models often drop the '+').
        let text = match l.strip_prefix('+') {
            Some(t) => t,
            None if l.is_empty() => "",
            None => return Err(PatchError::AddLine { line: *n }),
        };
        content.push_str(text);
        content.push('\n');
    }
    Ok(content)
}

fn hunks(
    section: &[(usize, &str)],
    header_line: usize,
    path: &WorkspacePath,
) -> Result<Vec<Hunk>, PatchError> {
    let mut hunks: Vec<(usize, Hunk)> = Vec::new();
    for (n, l) in section {
        let (n, l) = (*n, *l);
        if l.starts_with(MOVE) {
            return Err(PatchError::MoveUnsupported { line: n });
        }
        if let Some(anchor) = l.strip_prefix("@@") {
            let anchor = anchor.trim();
            hunks.push((
                n,
                Hunk {
                    anchor: (!anchor.is_empty()).then(|| anchor.to_owned()),
                    ..Hunk::default()
                },
            ));
            continue;
        }
        if l.trim() == END_OF_FILE {
            match hunks.last_mut() {
                Some((_, h)) => h.at_end = true,
                None => {
                    return Err(PatchError::HunkLine {
                        line: n,
                        text: shorten(l),
                    });
                }
            }
            continue;
        }
        // The first hunk may leave out its "@@" line.
        if hunks.is_empty() || hunks.last().is_some_and(|(_, h)| h.at_end) {
            hunks.push((n, Hunk::default()));
        }
        let Some((_, hunk)) = hunks.last_mut() else {
            continue;
        };
        match l.chars().next() {
            Some(' ') => {
                hunk.old.push(l[1..].to_owned());
                hunk.new.push(l[1..].to_owned());
            }
            // A blank line is taken as an empty context line.
            None => {
                hunk.old.push(String::new());
                hunk.new.push(String::new());
            }
            Some('-') => hunk.old.push(l[1..].to_owned()),
            Some('+') => hunk.new.push(l[1..].to_owned()),
            Some(_) => {
                return Err(PatchError::HunkLine {
                    line: n,
                    text: shorten(l),
                });
            }
        }
    }
    for (_, h) in &mut hunks {
        // Blank lines before the next section are spacing, not context.
        while h.old.last().is_some_and(String::is_empty)
            && h.new.last().is_some_and(String::is_empty)
        {
            h.old.pop();
            h.new.pop();
        }
    }
    if hunks.is_empty() {
        return Err(PatchError::EmptyUpdate {
            line: header_line,
            path: path.to_string(),
        });
    }
    for (n, h) in &hunks {
        if h.old == h.new {
            return Err(PatchError::NoopHunk { line: *n });
        }
    }
    Ok(hunks.into_iter().map(|(_, h)| h).collect())
}

fn shorten(line: &str) -> String {
    line.chars().take(80).collect()
}

/// Applies `hunks` to `content` (the current text of `path`).
pub fn apply_hunks(path: &str, content: &str, hunks: &[Hunk]) -> Result<String, HunkError> {
    let mut text = Lines::split(content);
    let mut cursor = 0;
    // (start, removed line count, new lines), in increasing, non-overlapping order.
    let mut edits: Vec<(usize, usize, &[String])> = Vec::new();
    for (i, hunk) in hunks.iter().enumerate() {
        let number = i + 1;
        // The hunk is searched from the anchor line itself (models often repeat it as
        // the first context line); an insertion goes right after it.
        let mut anchored_at = None;
        if let Some(anchor) = &hunk.anchor {
            let found = text.lines[cursor.min(text.lines.len())..]
                .iter()
                .position(|l| l.trim() == anchor.trim())
                .ok_or_else(|| HunkError::AnchorNotFound {
                    path: path.to_owned(),
                    hunk: number,
                    anchor: anchor.clone(),
                })?;
            cursor += found;
            anchored_at = Some(cursor);
        }
        let start = if hunk.old.is_empty() {
            match anchored_at {
                Some(line) if !hunk.at_end => line + 1,
                _ => text.lines.len(),
            }
        } else {
            seek(&text.lines, &hunk.old, cursor, hunk.at_end).ok_or_else(|| {
                HunkError::NotFound {
                    path: path.to_owned(),
                    hunk: number,
                    first: hunk.old.first().cloned().unwrap_or_default(),
                }
            })?
        };
        edits.push((start, hunk.old.len(), &hunk.new));
        cursor = start + hunk.old.len();
    }
    for (start, removed, new) in edits.into_iter().rev() {
        text.lines
            .splice(start..start + removed, new.iter().cloned());
    }
    if content.is_empty() {
        text.final_newline = true;
    }
    Ok(text.join())
}

/// Where `wanted` occurs in `lines` at or after `from`: exactly, then ignoring trailing
/// whitespace, then ignoring surrounding whitespace. With `at_end`, only at the end.
fn seek(lines: &[String], wanted: &[String], from: usize, at_end: bool) -> Option<usize> {
    if wanted.len() > lines.len() {
        return None;
    }
    let last_start = lines.len() - wanted.len();
    let starts: Vec<usize> = if at_end {
        (last_start >= from)
            .then_some(last_start)
            .into_iter()
            .collect()
    } else {
        (from..=last_start).collect()
    };
    let tiers: [fn(&str, &str) -> bool; 3] = [
        |a, b| a == b,
        |a, b| a.trim_end() == b.trim_end(),
        |a, b| a.trim() == b.trim(),
    ];
    tiers.iter().find_map(|same| {
        starts.iter().copied().find(|&s| {
            lines[s..s + wanted.len()]
                .iter()
                .zip(wanted)
                .all(|(a, b)| same(a, b))
        })
    })
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
