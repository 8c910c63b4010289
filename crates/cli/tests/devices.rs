//! `iotflow devices …` end to end: real processes on an embedded registry.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn devices(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotflow"))
        .arg("devices")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("IOTFLOW_REGISTRY")
        .env_remove("IOTFLOW_DEVICES_MASTER_KEY")
        .output()
        .expect("iotflow runs")
}

/// Runs with `--json` and returns the parsed stdout; the command must succeed.
fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = devices(dir, &all);
    assert!(
        out.status.success(),
        "iotflow devices {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn fails(dir: &Path, args: &[&str], message: &str) {
    let out = devices(dir, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(message), "{args:?}: {err:?} lacks {message:?}");
}

#[test]
fn provision_group_list_and_change_a_fleet() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    json(dir, &["tenant", "create", "acme", "--name", "Acme"]);
    json(dir, &["tenant", "create", "other"]);
    let g = json(dir, &["group", "create", "--tenant", "acme", "north"]);
    let gid = g["id"].as_str().expect("group id").to_owned();

    let d = json(
        dir,
        &[
            "register",
            "--tenant",
            "acme",
            "--name",
            "Pump 1",
            "--type",
            "pump",
            "--id",
            "pump-1",
            "--firmware",
            "1.0",
            "--metadata",
            r#"{"site":"north"}"#,
            "--group",
            &gid,
            "--hmac-key",
        ],
    );
    assert_eq!(d["id"], "pump-1");
    assert_eq!(d["groups"], serde_json::json!([gid]));
    assert_eq!(d["metadata"]["site"], "north");
    let secret = d["hmac_key"]["secret"].as_str().expect("secret shown once");
    assert_eq!(secret.len(), 44, "base64 of 32 bytes");
    let key_id = d["hmac_key"]["key_id"].as_str().expect("key id").to_owned();

    let csv = dir.join("fleet.csv");
    std::fs::write(
        &csv,
        "id,name,type,tenant_id,firmware_version,groups\n\
         t-1,T1,thermo,acme,2.0,north\n\
         t-2,T2,thermo,acme,,south\n\
         o-1,O1,thermo,other,,\n",
    )
    .expect("write csv");
    let p = json(
        dir,
        &[
            "provision",
            csv.to_str().expect("utf-8 path"),
            "--issue-keys",
        ],
    );
    let provisioned = p["provisioned"].as_array().expect("array");
    assert_eq!(provisioned.len(), 3);
    assert!(
        provisioned
            .iter()
            .all(|d| d["hmac_key"]["secret"].is_string())
    );

    // A bad file stores nothing and names its line.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "id,name,type,tenant_id\nx-1,X,t,acme\nx-2,X,t,nobody\n",
    )
    .expect("write csv");
    fails(
        dir,
        &["provision", bad.to_str().expect("utf-8 path")],
        "line 3",
    );
    fails(dir, &["get", "x-1"], "device \"x-1\" not found");

    let ids = |v: &Value| -> Vec<String> {
        v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&json(dir, &["list", "--tenant", "acme"])),
        ["pump-1", "t-1", "t-2"]
    );
    assert_eq!(
        ids(&json(dir, &["list", "--group", &gid])),
        ["pump-1", "t-1"]
    );
    let page = json(dir, &["list", "--limit", "2"]);
    assert_eq!(ids(&page), ["o-1", "pump-1"]);
    assert_eq!(page["next"], "pump-1");
    assert_eq!(
        ids(&json(dir, &["list", "--limit", "2", "--all"])),
        ["o-1", "pump-1", "t-1", "t-2"]
    );

    json(dir, &["status", "t-1", "suspended"]);
    assert_eq!(ids(&json(dir, &["list", "--status", "suspended"])), ["t-1"]);
    let set = json(
        dir,
        &[
            "set",
            "t-2",
            "--firmware",
            "2.1",
            "--metadata",
            r#"{"floor":3}"#,
        ],
    );
    assert_eq!(set["firmware_version"], "2.1");
    assert_eq!(set["metadata"]["floor"], 3);

    let removed = json(dir, &["group", "remove", &gid, "t-1", "t-2"]);
    assert_eq!(removed["removed"], serde_json::json!(["t-1"]));
    assert_eq!(removed["not_members"], serde_json::json!(["t-2"]));
    let show = json(dir, &["group", "show", &gid]);
    assert_eq!(show["members"], serde_json::json!(["pump-1"]));

    // Credentials: listed without secrets; rotation revokes the old key.
    let listed = json(dir, &["credentials", "list", "pump-1"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(secret));
    let rotated = json(dir, &["credentials", "rotate-hmac", "pump-1"]);
    assert_ne!(rotated["key_id"], key_id.as_str());
    let listed = json(dir, &["credentials", "list", "pump-1"]);
    let old = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["id"] == key_id.as_str())
        .expect("old key listed");
    assert!(old["revoked_at"].is_i64(), "rotation revoked {old}");
    let fp = "AB:".repeat(31) + "AB";
    let cert = json(
        dir,
        &["credentials", "add-cert", "pump-1", "--fingerprint", &fp],
    );
    json(
        dir,
        &["credentials", "revoke", cert["id"].as_str().expect("id")],
    );
    fails(dir, &["credentials", "revoke", "nope"], "not found");

    // The change log shows each change with the description after it.
    let changes = json(dir, &["changes"]);
    let changes = changes.as_array().expect("array");
    let seqs: Vec<u64> = changes.iter().filter_map(|c| c["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let last_t1 = changes
        .iter()
        .rev()
        .find(|c| c["device"] == "t-1")
        .expect("t-1 changed");
    assert_eq!(last_t1["info"]["status"], "suspended");
    assert_eq!(last_t1["info"]["groups"], serde_json::json!([]));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    fails(
        dir,
        &[
            "register", "--tenant", "nobody", "--name", "x", "--type", "y",
        ],
        "tenant \"nobody\" not found",
    );
    fails(
        dir,
        &[
            "register",
            "--tenant",
            "a",
            "--name",
            "x",
            "--type",
            "y",
            "--metadata",
            "[1]",
        ],
        "must be a JSON object",
    );
    fails(dir, &["set", "x"], "nothing to set");
    fails(
        dir,
        &["status", "x", "sleeping"],
        "invalid value 'sleeping'",
    );
    fails(dir, &["list", "--limit", "0"], "limit");
    fails(
        dir,
        &["credentials", "add-cert", "x", "--fingerprint", "zz"],
        "expected 64 hex digits",
    );
    json(dir, &["tenant", "create", "a"]);
    fails(dir, &["tenant", "create", "a"], "already exists");
    // The table output of an empty list says so.
    let out = devices(dir, &["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(none)"));
}
