use super::*;

fn p(body: &str) -> String {
    format!("*** Begin Patch\n{body}*** End Patch\n")
}

fn path(raw: &str) -> WorkspacePath {
    WorkspacePath::parse_file(raw).unwrap()
}

#[test]
fn parses_every_section_kind() {
    let patch = parse(&p("*** Add File: docs/new.md\n+# Title\n+\n+text\n\
         *** Update File: src/a.py\n@@ def main():\n     x = 1\n-    y = 2\n+    y = 3\n\
         *** Delete File: old.txt\n"))
    .unwrap();
    assert_eq!(patch.changes.len(), 3);
    assert_eq!(
        patch.changes[0],
        FileChange::Add {
            path: path("docs/new.md"),
            content: "# Title\n\ntext\n".into()
        }
    );
    let FileChange::Update { path: p1, hunks } = &patch.changes[1] else {
        panic!("{patch:?}")
    };
    assert_eq!(p1, &path("src/a.py"));
    assert_eq!(hunks.len(), 1);
    assert_eq!(hunks[0].anchor.as_deref(), Some("def main():"));
    assert_eq!(hunks[0].old, ["    x = 1", "    y = 2"]);
    assert_eq!(hunks[0].new, ["    x = 1", "    y = 3"]);
    assert_eq!(
        patch.changes[2],
        FileChange::Delete {
            path: path("old.txt")
        }
    );
}

#[test]
fn tolerates_crlf_blank_lines_and_a_missing_first_at_at() {
    let text = "\n  *** Begin Patch\r\n*** Update File: a\r\n-x\r\n+y\r\n\r\n*** End Patch\r\n\n";
    let patch = parse(text).unwrap();
    let FileChange::Update { hunks, .. } = &patch.changes[0] else {
        panic!()
    };
    assert_eq!(hunks[0].old, ["x"]);
    assert_eq!(hunks[0].new, ["y"]);
}

#[test]
fn refuses_malformed_patches_with_the_line() {
    type Expect = fn(&PatchError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        ("*** Add File: a\n+x\n*** End Patch".into(), |e| {
            matches!(e, PatchError::MissingBegin)
        }),
        ("*** Begin Patch\n*** Add File: a\n+x\n".into(), |e| {
            matches!(e, PatchError::MissingEnd)
        }),
        (p(""), |e| matches!(e, PatchError::NoChanges)),
        (p("hello\n"), |e| {
            matches!(e, PatchError::UnexpectedLine { line: 2, .. })
        }),
        (p("*** Add File: /etc/passwd\n+x\n"), |e| {
            matches!(
                e,
                PatchError::BadPath {
                    line: 2,
                    source: PathError::Absolute(_)
                }
            )
        }),
        (p("*** Add File: ../x\n+x\n"), |e| {
            matches!(
                e,
                PatchError::BadPath {
                    source: PathError::Escapes(_),
                    ..
                }
            )
        }),
        (p("*** Delete File: a/../../x\n"), |e| {
            matches!(
                e,
                PatchError::BadPath {
                    source: PathError::Escapes(_),
                    ..
                }
            )
        }),
        (p("*** Add File: a\nx\n"), |e| {
            matches!(e, PatchError::AddLine { line: 3 })
        }),
        (p("*** Delete File: a\n-x\n"), |e| {
            matches!(e, PatchError::DeleteBody { line: 3 })
        }),
        (p("*** Update File: a\n*** Move to: b\n@@\n-x\n+y\n"), |e| {
            matches!(e, PatchError::MoveUnsupported { line: 3 })
        }),
        (p("*** Update File: a\n"), |e| {
            matches!(e, PatchError::EmptyUpdate { line: 2, .. })
        }),
        (p("*** Update File: a\n@@\n x\n"), |e| {
            matches!(e, PatchError::NoopHunk { line: 3 })
        }),
        (p("*** Update File: a\n@@\n*x\n"), |e| {
            matches!(e, PatchError::HunkLine { line: 4, .. })
        }),
        (p("*** Add File: a\n+x\n*** Delete File: ./a\n"), |e| {
            matches!(e, PatchError::DuplicatePath { .. })
        }),
    ];
    for (text, ok) in cases {
        let err = parse(&text).unwrap_err();
        assert!(ok(&err), "{text:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

fn hunk(anchor: Option<&str>, old: &[&str], new: &[&str]) -> Hunk {
    Hunk {
        anchor: anchor.map(str::to_owned),
        old: old.iter().map(|s| (*s).to_owned()).collect(),
        new: new.iter().map(|s| (*s).to_owned()).collect(),
        at_end: false,
    }
}

#[test]
fn applies_hunks_in_order() {
    let text = "a\nb\nc\nb\nd\n";
    // The second hunk's "b" is searched after the first hunk.
    let out = apply_hunks(
        "f",
        text,
        &[hunk(None, &["b"], &["B1"]), hunk(None, &["b"], &["B2"])],
    )
    .unwrap();
    assert_eq!(out, "a\nB1\nc\nB2\nd\n");
    // An anchor moves the search; an insertion goes after it.
    let out = apply_hunks("f", text, &[hunk(Some("c"), &["b"], &["x"])]).unwrap();
    assert_eq!(out, "a\nb\nc\nx\nd\n");
    let out = apply_hunks("f", text, &[hunk(Some("c"), &[], &["new"])]).unwrap();
    assert_eq!(out, "a\nb\nc\nnew\nb\nd\n");
    // Pure additions without an anchor append.
    let out = apply_hunks("f", "a", &[hunk(None, &[], &["z"])]).unwrap();
    assert_eq!(out, "a\nz");
    // At the end of file only.
    let mut end = hunk(None, &["b"], &["END"]);
    end.at_end = true;
    assert!(apply_hunks("f", text, std::slice::from_ref(&end)).is_err());
    assert_eq!(
        apply_hunks("f", "b\nx\nb\n", &[end]).unwrap(),
        "b\nx\nEND\n"
    );
}

#[test]
fn matches_loosely_on_whitespace_and_keeps_crlf() {
    let out = apply_hunks(
        "f",
        "  x = 1  \r\ny\r\n",
        &[hunk(None, &["x = 1", "y"], &["x = 2", "y"])],
    )
    .unwrap();
    assert_eq!(out, "x = 2\r\ny\r\n");
}

#[test]
fn reports_hunks_that_do_not_apply() {
    let err = apply_hunks(
        "f",
        "a\nb\n",
        &[hunk(None, &["a"], &["A"]), hunk(None, &["zzz"], &["y"])],
    )
    .unwrap_err();
    assert!(matches!(err, HunkError::NotFound { hunk: 2, .. }), "{err}");
    let err = apply_hunks("f", "a\n", &[hunk(Some("nope"), &["a"], &["b"])]).unwrap_err();
    assert!(
        matches!(err, HunkError::AnchorNotFound { hunk: 1, .. }),
        "{err}"
    );
}

#[test]
fn round_trips_a_realistic_update() {
    let before = "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n";
    let patch = parse(&p("*** Update File: src/main.rs\n@@ fn main() {\n-    let x = 1;\n+    let x = 2;\n     println!(\"{x}\");\n")).unwrap();
    let FileChange::Update { hunks, .. } = &patch.changes[0] else {
        panic!()
    };
    assert_eq!(
        apply_hunks("src/main.rs", before, hunks).unwrap(),
        "fn main() {\n    let x = 2;\n    println!(\"{x}\");\n}\n"
    );
}
