//! The workspace file tools through the real gRPC service, on real files in a temporary
//! directory: each tool's happy path, the confinement battery (absolute paths, `..`,
//! symbolic links and hard links out of the workspace, NUL, long paths), all-or-nothing
//! patches, and the grant checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tool_harness;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use pincer_proto::v1::{
    ApplyPatchRequest, EditFileRequest, EntryKind, ListDirRequest, PatchAction, ReadFileRequest,
    TurnGrant, WorkspaceAccess, WriteFileRequest,
};
use tonic::Code;
use tool_harness::*;

fn read(path: &str) -> ReadFileRequest {
    ReadFileRequest {
        grant: grant(FILE_TOOLS),
        session_key: SESSION.into(),
        path: path.into(),
        ..Default::default()
    }
}

fn write(path: &str, content: &str) -> WriteFileRequest {
    WriteFileRequest {
        grant: grant(FILE_TOOLS),
        session_key: SESSION.into(),
        path: path.into(),
        content: content.as_bytes().to_vec(),
        create_parents: true,
    }
}

fn edit(path: &str, old: &str, new: &str, all: bool) -> EditFileRequest {
    EditFileRequest {
        grant: grant(FILE_TOOLS),
        session_key: SESSION.into(),
        path: path.into(),
        old_string: old.into(),
        new_string: new.into(),
        replace_all: all,
    }
}

fn patch(text: &str) -> ApplyPatchRequest {
    ApplyPatchRequest {
        grant: grant(FILE_TOOLS),
        session_key: SESSION.into(),
        patch: text.into(),
    }
}

fn list(path: &str) -> ListDirRequest {
    ListDirRequest {
        grant: grant(FILE_TOOLS),
        session_key: SESSION.into(),
        path: path.into(),
    }
}

fn sandbox_ids() -> (u32, u32) {
    let user = pincer_executor::SandboxUser::for_this_process();
    (user.uid, user.gid)
}

#[tokio::test]
async fn write_read_edit_and_list_a_file() {
    let server = start("{}").await;
    let mut c = server.client().await;

    let w = c
        .write_file(write("notes/todo.md", "one\ntwo\nthree\n"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((w.bytes_written, w.created), (14, true));
    let file = server.ws().join("notes/todo.md");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\ntwo\nthree\n");
    // 0644 / 0755, owned by the sandbox user (chowned when the executor is root).
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_eq!((meta.uid(), meta.gid()), sandbox_ids());
    let dir = std::fs::metadata(server.ws().join("notes")).unwrap();
    assert_eq!(dir.permissions().mode() & 0o7777, 0o755);
    assert_eq!((dir.uid(), dir.gid()), sandbox_ids());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(server.ws().join("notes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["todo.md"]);

    // Replacing keeps the mode of the replaced file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = c
        .write_file(write("notes/todo.md", "one\ntwo\nthree\nfour\n"))
        .await
        .unwrap()
        .into_inner();
    assert!(!w.created);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o755
    );

    let r = c
        .read_file(read("./notes/../notes/todo.md"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.content, b"one\ntwo\nthree\nfour\n");
    assert_eq!((r.total_bytes, r.truncated, r.next_offset), (19, false, 19));
    // A window: 6 bytes from offset 4 end inside "three", so the chunk ends at the last
    // whole line.
    let mut windowed = read("notes/todo.md");
    windowed.offset = 4;
    windowed.limit = 6;
    let r = c.read_file(windowed).await.unwrap().into_inner();
    assert_eq!(r.content, b"two\n");
    assert_eq!((r.offset, r.next_offset, r.truncated), (4, 8, true));
    let mut past = read("notes/todo.md");
    past.offset = 1_000;
    let r = c.read_file(past).await.unwrap().into_inner();
    assert!(r.content.is_empty() && !r.truncated);

    let e = c
        .edit_file(edit("notes/todo.md", "two", "TWO", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.replacements, 1);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "one\nTWO\nthree\nfour\n"
    );
    let err = c
        .edit_file(edit("notes/todo.md", "o", "0", false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("occurs 2 times"),
        "{}",
        err.message()
    );
    let err = c
        .edit_file(edit("notes/todo.md", "absent", "x", false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("not found"), "{}", err.message());
    let e = c
        .edit_file(edit("notes/todo.md", "o", "0", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.replacements, 2);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "0ne\nTWO\nthree\nf0ur\n"
    );
    let err = c
        .edit_file(edit("missing.md", "a", "b", false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    std::fs::write(server.ws().join("b.bin"), [0u8, 159, 146, 150]).unwrap();
    symlink("notes/todo.md", server.ws().join("link")).unwrap();
    let l = c.list_dir(list("")).await.unwrap().into_inner();
    let summary: Vec<(String, EntryKind, u64, String)> = l
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.kind(), e.size, e.symlink_target.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("b.bin".into(), EntryKind::File, 4, String::new()),
            ("link".into(), EntryKind::Symlink, 0, "notes/todo.md".into()),
            ("notes".into(), EntryKind::Dir, 0, String::new()),
        ]
    );
    assert_eq!((l.total_entries, l.truncated), (3, false));
    // Binary content comes back as bytes.
    assert_eq!(
        c.read_file(read("b.bin"))
            .await
            .unwrap()
            .into_inner()
            .content,
        [0u8, 159, 146, 150]
    );
    // A link that stays inside the workspace is followed for reading.
    assert_eq!(
        c.read_file(read("link"))
            .await
            .unwrap()
            .into_inner()
            .total_bytes,
        19
    );
    // Directories are not files and vice versa.
    let err = c.read_file(read("notes")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("list_dir"));
    let err = c.list_dir(list("b.bin")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn write_without_create_parents_needs_the_directory() {
    let server = start("{}").await;
    let mut c = server.client().await;
    let mut req = write("a/b/c.txt", "x");
    req.create_parents = false;
    let err = c.write_file(req).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(!server.ws().join("a").exists());
    server.stop().await;
}

#[tokio::test]
async fn listing_is_sorted_and_capped() {
    let server = start("{}").await;
    let ws = server.make_ws();
    std::fs::create_dir(ws.join("many")).unwrap();
    for i in 0..1005 {
        std::fs::write(ws.join(format!("many/f{i:04}")), b"").unwrap();
    }
    let mut c = server.client().await;
    let l = c.list_dir(list("many")).await.unwrap().into_inner();
    assert_eq!(l.entries.len(), 1000);
    assert_eq!((l.total_entries, l.truncated), (1005, true));
    assert_eq!(l.entries[0].name, "f0000");
    assert_eq!(l.entries[999].name, "f0999");
    server.stop().await;
}

#[tokio::test]
async fn writes_over_the_size_limit_are_refused() {
    let server = start("{}").await;
    let mut c = server.client().await;
    let mut req = write("big.bin", "");
    req.content = vec![b'x'; 8 * 1024 * 1024 + 1];
    let err = c.write_file(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("limit"));
    assert!(!server.ws().join("big.bin").exists());
    let mut req = write("ok.bin", "");
    req.content = vec![b'x'; 8 * 1024 * 1024];
    c.write_file(req).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn apply_patch_adds_updates_and_deletes() {
    let server = start("{}").await;
    let ws = server.make_ws();
    std::fs::create_dir(ws.join("src")).unwrap();
    std::fs::write(
        ws.join("src/app.py"),
        "def main():\n    x = 1\n    return x\n",
    )
    .unwrap();
    std::fs::write(ws.join("old.txt"), "bye\n").unwrap();
    let mut c = server.client().await;
    let r = c
        .apply_patch(patch(
            "*** Begin Patch\n\
             *** Add File: docs/new/readme.md\n+# Hello\n+\n+world\n\
             *** Update File: src/app.py\n@@ def main():\n-    x = 1\n+    x = 2\n     return x\n\
             *** Delete File: old.txt\n\
             *** End Patch\n",
        ))
        .await
        .unwrap()
        .into_inner();
    let done: Vec<(String, PatchAction)> = r
        .files
        .iter()
        .map(|f| (f.path.clone(), f.action()))
        .collect();
    assert_eq!(
        done,
        [
            ("docs/new/readme.md".into(), PatchAction::Added),
            ("src/app.py".into(), PatchAction::Updated),
            ("old.txt".into(), PatchAction::Deleted),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("docs/new/readme.md")).unwrap(),
        "# Hello\n\nworld\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("src/app.py")).unwrap(),
        "def main():\n    x = 2\n    return x\n"
    );
    assert!(!ws.join("old.txt").exists());
    assert_eq!(
        std::fs::metadata(ws.join("docs/new/readme.md"))
            .unwrap()
            .uid(),
        sandbox_ids().0
    );
    server.stop().await;
}

/// A snapshot of every file under `dir` (path → content) to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(&path)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                ));
            } else if kind.is_dir() {
                out.push((rel.clone() + "/", Vec::new()));
                walk(&path, base, out);
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn a_patch_with_one_bad_hunk_or_path_changes_nothing() {
    let server = start("{}").await;
    let ws = server.make_ws();
    let outside = server.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(ws.join("a.txt"), "alpha\nbeta\n").unwrap();
    std::fs::write(ws.join("b.txt"), "one\ntwo\n").unwrap();
    symlink(&outside, ws.join("out")).unwrap();
    let before = snapshot(&ws);
    let mut c = server.client().await;
    let cases = [
        // The second file's hunk does not match.
        (
            "*** Begin Patch\n*** Update File: a.txt\n-alpha\n+ALPHA\n\
             *** Add File: new/dir/c.txt\n+c\n\
             *** Update File: b.txt\n@@\n-three\n+3\n*** End Patch",
            Code::FailedPrecondition,
            "hunk 1",
        ),
        // A path outside the workspace: refused when parsing.
        (
            "*** Begin Patch\n*** Update File: a.txt\n-alpha\n+ALPHA\n\
             *** Add File: ../escape.txt\n+x\n*** End Patch",
            Code::InvalidArgument,
            "climbs above",
        ),
        (
            "*** Begin Patch\n*** Delete File: b.txt\n\
             *** Add File: /tmp/abs.txt\n+x\n*** End Patch",
            Code::InvalidArgument,
            "absolute",
        ),
        // Through a symbolic link to a directory outside: refused by the kernel.
        (
            "*** Begin Patch\n*** Update File: a.txt\n-alpha\n+ALPHA\n\
             *** Add File: out/planted.txt\n+x\n*** End Patch",
            Code::PermissionDenied,
            "outside the workspace",
        ),
        // Adding a file that exists.
        (
            "*** Begin Patch\n*** Delete File: b.txt\n*** Add File: a.txt\n+x\n*** End Patch",
            Code::AlreadyExists,
            "already exists",
        ),
        // Deleting a file that does not exist.
        (
            "*** Begin Patch\n*** Update File: a.txt\n-alpha\n+ALPHA\n*** Delete File: nope.txt\n*** End Patch",
            Code::NotFound,
            "nope.txt",
        ),
    ];
    for (text, code, says) in cases {
        let err = c.apply_patch(patch(text)).await.unwrap_err();
        assert_eq!(err.code(), code, "{text}: {}", err.message());
        assert!(err.message().contains(says), "{text}: {}", err.message());
        assert_eq!(snapshot(&ws), before, "{text}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn paths_never_leave_the_workspace() {
    let server = start("{}").await;
    let ws = server.make_ws();
    let outside = server.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret\n").unwrap();
    symlink("/etc/passwd", ws.join("passwd")).unwrap();
    symlink(&outside, ws.join("outdir")).unwrap();
    symlink("../outside/secret.txt", ws.join("rel_out")).unwrap();
    // A chain that ends outside, and one that stays inside.
    symlink("chain2", ws.join("chain1")).unwrap();
    symlink("rel_out", ws.join("chain2")).unwrap();
    std::fs::write(ws.join("real.txt"), "real\n").unwrap();
    symlink("hop2", ws.join("hop1")).unwrap();
    symlink("real.txt", ws.join("hop2")).unwrap();
    // A dangling link pointing outside.
    symlink(
        outside.join("created-through-link.txt"),
        ws.join("dangling"),
    )
    .unwrap();
    // A hard link to a file outside (same file system).
    std::fs::hard_link(outside.join("secret.txt"), ws.join("hard.txt")).unwrap();
    let mut c = server.client().await;

    let long = "a/".repeat(2100) + "x";
    // (what, path, code, a word of the message)
    let reads: Vec<(&str, String, Code, &str)> = vec![
        (
            "absolute",
            "/etc/passwd".into(),
            Code::InvalidArgument,
            "absolute",
        ),
        (
            "dot-dot",
            "../x".into(),
            Code::InvalidArgument,
            "climbs above",
        ),
        (
            "folded dot-dot",
            "a/../../x".into(),
            Code::InvalidArgument,
            "climbs above",
        ),
        (
            "link to /etc/passwd",
            "passwd".into(),
            Code::PermissionDenied,
            "outside the workspace",
        ),
        (
            "dir link out",
            "outdir/secret.txt".into(),
            Code::PermissionDenied,
            "outside the",
        ),
        (
            "relative link out",
            "rel_out".into(),
            Code::PermissionDenied,
            "outside the workspace",
        ),
        (
            "link chain out",
            "chain1".into(),
            Code::PermissionDenied,
            "outside the workspace",
        ),
        (
            "hard link",
            "hard.txt".into(),
            Code::PermissionDenied,
            "hard links",
        ),
        ("NUL", "a\0b".into(), Code::InvalidArgument, "NUL"),
        ("long path", long.clone(), Code::InvalidArgument, "limit"),
        (
            "long component",
            "x".repeat(300),
            Code::InvalidArgument,
            "limit",
        ),
        (
            "magic link",
            "/proc/self/root/etc/passwd".into(),
            Code::InvalidArgument,
            "absolute",
        ),
    ];
    for (what, path, code, says) in &reads {
        let err = c.read_file(read(path)).await.unwrap_err();
        assert_eq!(err.code(), *code, "{what}: {}", err.message());
        assert!(err.message().contains(says), "{what}: {}", err.message());
        assert!(!err.message().contains("top secret"));
    }
    // A FIFO would block a reader forever: refused, not opened for waiting.
    nix::unistd::mkfifo(&ws.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = c.read_file(read("fifo")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains("not a regular file"),
        "{}",
        err.message()
    );
    // The chain that stays inside is fine.
    assert_eq!(
        c.read_file(read("hop1"))
            .await
            .unwrap()
            .into_inner()
            .content,
        b"real\n"
    );

    // Listing through a link to a directory outside.
    let err = c.list_dir(list("outdir")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    for escape in ["..", "/", "../outside"] {
        let err = c.list_dir(list(escape)).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{escape}: {}",
            err.message()
        );
    }

    // Writes: through a dir link out, through a dangling link out, over a hard link,
    // over a link (even one inside), and the escapes again.
    let writes: Vec<(&str, &str, Code, &str)> = vec![
        (
            "write via dir link",
            "outdir/planted.txt",
            Code::PermissionDenied,
            "outside the",
        ),
        (
            "mkdir via dir link",
            "outdir/new/planted.txt",
            Code::PermissionDenied,
            "outside the",
        ),
        (
            "dangling link",
            "dangling",
            Code::PermissionDenied,
            "symbolic link",
        ),
        (
            "link to /etc/passwd",
            "passwd",
            Code::PermissionDenied,
            "symbolic link",
        ),
        (
            "link inside",
            "hop1",
            Code::PermissionDenied,
            "symbolic link",
        ),
        (
            "hard link",
            "hard.txt",
            Code::PermissionDenied,
            "hard links",
        ),
        (
            "dot-dot",
            "../escape.txt",
            Code::InvalidArgument,
            "climbs above",
        ),
        (
            "absolute",
            "/tmp/abs.txt",
            Code::InvalidArgument,
            "absolute",
        ),
    ];
    for (what, path, code, says) in &writes {
        let err = c.write_file(write(path, "pwned\n")).await.unwrap_err();
        assert_eq!(err.code(), *code, "{what}: {}", err.message());
        assert!(err.message().contains(says), "{what}: {}", err.message());
        let err = c
            .edit_file(edit(path, "secret", "pwned", false))
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok, "{what}");
    }
    // Nothing was created or changed outside.
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "top secret\n"
    );
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("pwned")
    );
    assert!(
        std::fs::symlink_metadata(ws.join("dangling"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    server.stop().await;
}

fn grant_with(
    tools: &[&str],
    tweak: impl FnOnce(&mut pincer_proto::v1::GrantClaims),
) -> Option<TurnGrant> {
    let mut c = claims(tools);
    tweak(&mut c);
    sign(&c)
}

#[tokio::test]
async fn the_grant_decides_first() {
    let server = start("{}").await;
    let ws = server.make_ws();
    std::fs::write(ws.join("f.txt"), "content\n").unwrap();
    let mut c = server.client().await;

    // Missing grant; tool not in the grant; another session; expired.
    let refused: Vec<(&str, Option<TurnGrant>, &str)> = vec![
        ("missing", None, "no turn grant"),
        (
            "other tool",
            grant(&["exec", "web_fetch"]),
            "does not allow",
        ),
        (
            "other session",
            grant_with(FILE_TOOLS, |c| c.session_key = "other:dm:2".into()),
            "session",
        ),
        (
            "expired",
            grant_with(FILE_TOOLS, |c| c.expires_at_ms = now_ms() - 1),
            "expired",
        ),
        (
            "no workspace",
            grant_with(FILE_TOOLS, |c| {
                c.workspace_access = WorkspaceAccess::None.into()
            }),
            "workspace",
        ),
    ];
    for (why, g, says) in refused {
        let mut r = read("f.txt");
        r.grant = g.clone();
        let err = c.read_file(r).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::PermissionDenied,
            "{why}: {}",
            err.message()
        );
        assert!(err.message().contains(says), "{why}: {}", err.message());
        let mut w = write("f.txt", "changed");
        w.grant = g.clone();
        assert_eq!(
            c.write_file(w).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{why}"
        );
        let mut l = list("");
        l.grant = g;
        assert_eq!(
            c.list_dir(l).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{why}"
        );
    }
    // The grant is checked before the arguments: a bad path with a bad grant says grant.
    let mut r = read("/etc/passwd");
    r.grant = grant(&["list_dir"]);
    let err = c.read_file(r).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Read-only workspace: reading and listing work, changing does not.
    let ro = grant_with(FILE_TOOLS, |c| {
        c.workspace_access = WorkspaceAccess::ReadOnly.into()
    });
    let mut r = read("f.txt");
    r.grant = ro.clone();
    assert_eq!(
        c.read_file(r).await.unwrap().into_inner().content,
        b"content\n"
    );
    let mut l = list("");
    l.grant = ro.clone();
    assert_eq!(c.list_dir(l).await.unwrap().into_inner().entries.len(), 1);
    let mut w = write("f.txt", "changed");
    w.grant = ro.clone();
    let err = c.write_file(w).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("read-only"), "{}", err.message());
    let mut e = edit("f.txt", "content", "changed", false);
    e.grant = ro.clone();
    assert_eq!(
        c.edit_file(e).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut p = patch("*** Begin Patch\n*** Delete File: f.txt\n*** End Patch");
    p.grant = ro;
    assert_eq!(
        c.apply_patch(p).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("f.txt")).unwrap(),
        "content\n"
    );

    // Each tool needs its own name in the grant.
    let mut w = write("f.txt", "changed");
    w.grant = grant(&["read_file", "edit_file"]);
    let err = c.write_file(w).await.unwrap_err();
    assert!(err.message().contains("write_file"), "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn disabled_file_tools_are_refused_whatever_the_grant() {
    let server = start("{ files: { enabled: false } }").await;
    let mut c = server.client().await;
    let err = c.read_file(read("f.txt")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("tools.files.enabled"),
        "{}",
        err.message()
    );
    let err = c.write_file(write("f.txt", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(!server.ws().join("f.txt").exists());
    server.stop().await;
}
