//! The renderer: the thesis listings render as written (whole-text
//! snapshots in `thesis/*.expected`), and templates that try to do harm
//! fail with a clear error, quickly.
//!
//! `BOOTLER_UPDATE_SNAPSHOTS=1 cargo test -p bootler-domain templates`
//! rewrites the snapshots; review the diff before committing.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn context() -> RenderContext {
    RenderContext {
        host: HostContext {
            id: 7,
            name: "node7".into(),
            interface: "eth1".into(),
            mac: "52:54:00:12:34:56".into(),
            ip: "10.10.0.7".into(),
        },
        mac: MacContext {
            mac_address: "52-54-00-12-34-56".into(),
        },
        vars: serde_json::json!({"disk": "vda", "user": "gsd"}),
        base_url: "http://bootler.lab".into(),
        email: "ana@uminho.pt".into(),
        user: UserContext {
            username: "ana".into(),
            display_name: "Ana Silva".into(),
            email: "ana@uminho.pt".into(),
        },
        ssh_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa"
                .into(),
        ],
        unattended_url: "http://bootler.lab/boot/52-54-00-12-34-56/unattended".into(),
        done_url: "http://bootler.lab/boot/52-54-00-12-34-56/done".into(),
    }
}

fn snapshot(file: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/templates/thesis");
    let body = std::fs::read_to_string(dir.join(file)).unwrap();
    let output = render(file, &body, &context(), Limits::default()).unwrap();
    let expected_path = dir.join(format!("{file}.expected"));
    if std::env::var_os("BOOTLER_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&expected_path, &output).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(output, expected, "{file}");
    assert!(!output.contains("{{"), "{file}: unrendered placeholders");
}

#[test]
fn the_thesis_listings_render_as_written() {
    snapshot("a1-kickstart.cfg");
    snapshot("a2-preseed.cfg");
    snapshot("a4-system.ipxe");
}

#[test]
fn defaults_work_and_missing_names_are_errors_with_a_line() {
    let ctx = context();
    let out = render(
        "t",
        "{{ vars.size|default('20G') }} {{ vars.disk }}",
        &ctx,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(out, "20G vda");
    let err = render(
        "disk.cfg",
        "line one\nclearpart --drives={{ vars.missing }}\n",
        &ctx,
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.template, "disk.cfg");
    assert_eq!(err.line, Some(2));
    assert!(err.reason.starts_with("undefined value"), "{err}");
    assert!(
        err.to_string()
            .starts_with("template “disk.cfg”, line 2: undefined value"),
        "{err}"
    );
    let err = render("t", "{% if %}", &ctx, Limits::default()).unwrap_err();
    assert!(err.reason.starts_with("syntax error"), "{err}");
    assert_eq!(err.line, Some(1));
    // Nothing is escaped: these are scripts, not HTML.
    let out = render("t.html", "{{ '<a & b>' }}", &ctx, Limits::default()).unwrap();
    assert_eq!(out, "<a & b>");
}

/// Each harmful template fails within a bounded time with a clear reason.
#[test]
fn the_sandbox_holds() {
    let ctx = context();
    let cases = [
        (
            "endless",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "does too much work",
        ),
        (
            "recursive",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recursion limit",
        ),
        (
            "huge",
            "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            "the output is longer than 1048576 bytes",
        ),
        (
            "include",
            "{% include '/etc/passwd' %}",
            "no other templates",
        ),
        (
            "import",
            "{% import 'secrets' as s %}",
            "no other templates",
        ),
        ("env", "{{ env.HOME }}", "undefined value"),
        (
            "config",
            "{{ config.ldap.bind_password }}",
            "undefined value",
        ),
    ];
    for (name, body, reason) in cases {
        let started = Instant::now();
        let err = render(name, body, &ctx, Limits::default()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        assert!(err.reason.contains(reason), "{name}: {err}");
    }
    // Output past the limit stops the render.
    let limits = Limits {
        output_bytes: 1000,
        ..Limits::default()
    };
    let err = render(
        "long",
        "{% for i in range(200) %}0123456789{% endfor %}",
        &ctx,
        limits,
    )
    .unwrap_err();
    assert_eq!(err.reason, "the output is longer than 1000 bytes");
    let ok = render(
        "short",
        "{% for i in range(100) %}0123456789{% endfor %}",
        &ctx,
        limits,
    )
    .unwrap();
    assert_eq!(ok.len(), 1000);
}

#[tokio::test]
async fn shipped_templates_are_added_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let templates = Templates::new(db.clone());
    let now = chrono::Utc::now();
    let added = templates.seed_shipped(now).await.unwrap();
    let names: Vec<&str> = defaults::SHIPPED.iter().map(|s| s.name).collect();
    assert_eq!(added, names);
    let admin = Actor {
        user_id: 0,
        admin: true,
    };
    let listed = templates.list(admin).await.unwrap();
    assert_eq!(listed.len(), names.len());
    assert!(listed.iter().all(|t| t.owner.is_none() && t.version == 1));
    // Deleted by an admin: not brought back by the next start.
    let local = listed.iter().find(|t| t.name == "local-boot").unwrap();
    templates.delete(admin, local.id).await.unwrap();
    assert!(templates.seed_shipped(now).await.unwrap().is_empty());
    assert_eq!(templates.list(admin).await.unwrap().len(), names.len() - 1);
}
