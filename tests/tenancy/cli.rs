//! The `voicegate tenant|number|key|migrate` commands, run as the real binary.

use std::process::Output;

use serde_json::Value;

use super::common::{Backend, TestDb, both_backends};

struct Cli<'a> {
    db: &'a TestDb,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_voicegate"))
            .args(args)
            .env("VOICEGATE_DATABASE_URL", &self.db.config.url)
            .env("VOICEGATE_DATABASE_SPOOL_DIR", &self.db.config.spool_dir)
            .env("VOICEGATE_TENANCY_DEFAULT_TENANT", "")
            .env("RUST_LOG", "warn")
            .output()
            .expect("voicegate runs")
    }

    fn ok_json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    fn usage_error(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        stderr(&output)
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn cli_manages_tenants(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cli = Cli { db: &db };

    let migrated = cli.ok_json(&["migrate", "--json"]);
    assert_eq!(migrated["migrated"], true);

    let tenant = cli.ok_json(&[
        "tenant",
        "add",
        "acme",
        "--max-calls",
        "5",
        "--plan",
        "pro",
        "--json",
    ]);
    assert_eq!(tenant["name"], "acme");
    assert_eq!(tenant["limits"]["max_concurrent_calls"], 5);
    assert_eq!(tenant["status"], "active");

    let err = cli.usage_error(&["tenant", "add", "acme"]);
    assert!(err.contains("already exists"), "{err}");
    let err = cli.usage_error(&["tenant", "add", "Bad Name"]);
    assert!(err.contains("invalid name"), "{err}");
    let err = cli.usage_error(&["tenant", "add", "x", "--max-calls", "lots"]);
    assert!(err.contains("--max-calls"), "{err}");
    let err = cli.usage_error(&["tenant", "show", "ghost"]);
    assert!(err.contains("tenant `ghost` not found"), "{err}");

    let settings = db.dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"greeting": "Hi", "answer_delay_ms": "soon"}"#,
    )
    .unwrap();
    let settings_arg = settings.display().to_string();
    let err = cli.usage_error(&["tenant", "add", "shop", "--settings", &settings_arg]);
    assert!(err.contains("answer_delay_ms"), "{err}");
    std::fs::write(&settings, r#"{"greeting": "Hi", "tts": ["espeak"]}"#).unwrap();
    let shop = cli.ok_json(&[
        "tenant",
        "add",
        "shop",
        "--settings",
        &settings_arg,
        "--json",
    ]);
    assert_eq!(shop["settings"]["greeting"], "Hi");

    let listed = cli.ok_json(&["tenant", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let text = cli.run(&["tenant", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().next().unwrap().starts_with("NAME"), "{text}");
    assert!(text.contains("acme"), "{text}");
    assert!(text.contains("shop"), "{text}");

    let suspended = cli.ok_json(&["tenant", "suspend", "acme", "--json"]);
    assert_eq!(suspended["status"], "suspended");
    let shown = cli.run(&["tenant", "show", "acme"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("suspended"));
    let resumed = cli.ok_json(&["tenant", "resume", "acme", "--json"]);
    assert_eq!(resumed["status"], "active");
}
both_backends!(tenants, cli_manages_tenants);

async fn cli_manages_numbers_and_keys(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cli = Cli { db: &db };
    cli.ok_json(&["tenant", "add", "acme", "--json"]);
    cli.ok_json(&["tenant", "add", "other", "--json"]);

    let number = cli.ok_json(&[
        "number",
        "add",
        "acme",
        "2025550100",
        "--country",
        "1",
        "--json",
    ]);
    assert_eq!(number["number"], "+12025550100");
    let err = cli.usage_error(&["number", "add", "other", "+1 (202) 555-0100"]);
    assert!(err.contains("already belongs to tenant `acme`"), "{err}");
    let err = cli.usage_error(&["number", "add", "acme", "reception"]);
    assert!(err.contains("invalid number"), "{err}");
    let err = cli.usage_error(&["number", "add", "ghost", "+12025550111"]);
    assert!(err.contains("tenant `ghost` not found"), "{err}");

    let numbers = cli.ok_json(&["number", "list", "--tenant", "acme", "--json"]);
    assert_eq!(numbers.as_array().unwrap().len(), 1);
    let err = cli.usage_error(&["number", "remove", "+12025550100", "--tenant", "other"]);
    assert!(err.contains("not found"), "{err}");
    cli.ok_json(&["number", "remove", "+12025550100", "--json"]);
    let numbers = cli.ok_json(&["number", "list", "--json"]);
    assert!(numbers.as_array().unwrap().is_empty());

    let key = cli.ok_json(&["key", "create", "acme", "--name", "crm", "--json"]);
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("vg_"), "{secret}");
    let prefix = key["prefix"].as_str().unwrap();
    let text = cli.run(&["key", "create", "acme"]);
    assert_eq!(text.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .trim()
            .starts_with("vg_")
    );
    assert!(stderr(&text).contains("cannot be shown again"));

    let err = cli.usage_error(&["key", "revoke", prefix, "--tenant", "other"]);
    assert!(err.contains("not found"), "{err}");
    let revoked = cli.ok_json(&["key", "revoke", prefix, "--json"]);
    assert!(revoked["revoked_at"].is_string());
    let err = cli.usage_error(&["key", "revoke", "vg_ffffffffffff"]);
    assert!(err.contains("not found"), "{err}");
    let err = cli.usage_error(&["key", "create", "ghost"]);
    assert!(err.contains("not found"), "{err}");
}
both_backends!(numbers_keys, cli_manages_numbers_and_keys);

#[test]
fn unreachable_database_is_runtime_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_voicegate"))
        .args(["tenant", "list"])
        .env(
            "VOICEGATE_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env("VOICEGATE_DATABASE_TIMEOUT_MS", "500")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with("voicegate: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_database_url_is_usage_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_voicegate"))
        .args(["migrate"])
        .env("VOICEGATE_DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("database.url"),
        "{}",
        stderr(&output)
    );
}
