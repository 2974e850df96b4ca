//! The dependency rules that keep the architecture legible, checked with `cargo metadata`:
//! services never depend on each other; only the executor talks to Docker, only the
//! gateway to SQLite, only the agent and the bridge make outbound HTTP calls; fakes are
//! for tests only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::Value;

const SERVICES: &[&str] = &[
    "pincer-gateway",
    "pincer-bridge",
    "pincer-agent",
    "pincer-executor",
    "pincer-docker-guard",
    "pincer",
];

/// Normal (non-dev, non-build) dependencies of each workspace package.
fn normal_deps() -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
            manifest,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_owned(),
                        d["kind"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn users_of(deps: &BTreeMap<String, Vec<(String, Option<String>)>>, dep: &str) -> Vec<String> {
    deps.iter()
        .filter(|(_, ds)| ds.iter().any(|(name, kind)| name == dep && kind.is_none()))
        .map(|(pkg, _)| pkg.clone())
        .collect()
}

#[test]
fn the_workspace_has_the_documented_crates() {
    let deps = normal_deps();
    for name in [
        "pincer-proto",
        "pincer-runtime",
        "pincer-identity",
        "pincer-jail",
        "pincer-egress",
        "pincer-testkit",
        "pincer-gateway",
        "pincer-bridge",
        "pincer-agent",
        "pincer-executor",
        "pincer-docker-guard",
        "pincer",
    ] {
        assert!(deps.contains_key(name), "missing crate {name}");
    }
}

#[test]
fn services_never_depend_on_each_other() {
    let deps = normal_deps();
    for service in SERVICES {
        for (dep, kind) in &deps[*service] {
            // The one exception: `pincer sandbox exec --backend docker` runs exactly the
            // executor's Docker backend (posture, validation) in-process.
            if *service == "pincer" && dep == "pincer-executor" {
                continue;
            }
            assert!(
                kind.as_deref() == Some("dev") || !SERVICES.contains(&dep.as_str()),
                "{service} depends on {dep}: services talk over gRPC, not through each other's code"
            );
        }
    }
    for lib in [
        "pincer-proto",
        "pincer-runtime",
        "pincer-identity",
        "pincer-jail",
        "pincer-egress",
    ] {
        for (dep, _) in &deps[lib] {
            assert!(
                !SERVICES.contains(&dep.as_str()),
                "{lib} depends on the service {dep}"
            );
        }
    }
}

#[test]
fn side_effects_live_in_one_service_each() {
    let deps = normal_deps();
    assert_eq!(
        users_of(&deps, "bollard"),
        ["pincer-executor"],
        "only the executor reaches Docker"
    );
    assert_eq!(
        users_of(&deps, "rusqlite"),
        ["pincer-gateway"],
        "only the gateway owns a database"
    );
    // The testkit drives test servers over HTTP (Synapse's admin API); it is only ever a
    // dev-dependency, which the next assertion checks.
    let mut http: Vec<_> = users_of(&deps, "reqwest")
        .into_iter()
        .filter(|user| user != "pincer-testkit")
        .collect();
    http.sort();
    assert_eq!(
        http,
        ["pincer-agent", "pincer-bridge"],
        "only the agent (LLMs) and the bridge (chat APIs) call out"
    );
    assert!(
        users_of(&deps, "pincer-testkit").is_empty(),
        "the fakes are dev-dependencies only"
    );
    assert_eq!(
        users_of(&deps, "landlock"),
        ["pincer-jail"],
        "kernel sandboxing lives in the jail crate"
    );
    assert_eq!(
        users_of(&deps, "hickory-resolver"),
        ["pincer-egress"],
        "DNS for untrusted URLs goes only through the SSRF guard"
    );
}
