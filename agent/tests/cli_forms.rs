//! Issue 15 "Done when": the real `openstack` CLI runs keypair
//! create/list/delete, server create with `--key-name` and `--min/--max`,
//! reboot/stop/start with `--wait`, an admin's `server list --all-projects`
//! and `hypervisor show` against a 4-cloudlet federation through any agent,
//! with results identical in form (the fields of each answer, the columns
//! of each list) to the same commands against one mock.
//! Skipped with a message when the venv is missing, unless CI=true.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use test_support::federation::*;
use test_support::fixtures::cli_boot;
use test_support::openstack_cli::{tool, Cli};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaL4t3/NhYFlyFmeuKHH3YwTV2EeUPhZEdvWjTJ25Qh t";

/// How long a stop or start may take (a few model seconds at time scale 0.1).
const LIMIT: Duration = Duration::from_secs(30);

/// The form of a CLI answer: an object's field names, or the union of a
/// list's column names.
fn form(v: &Value) -> Value {
    let keys: BTreeSet<String> = match v {
        Value::Object(o) => o.keys().cloned().collect(),
        Value::Array(rows) => rows
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|o| o.keys().cloned())
            .collect(),
        _ => BTreeSet::new(),
    };
    json!(keys)
}

/// The names in a `-f json` list.
fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Name"].as_str().map(str::to_string))
        .collect()
}

/// The commands, each through the next runner of `via` (a
/// federation's agents in turn, or one mock); returns each step's form.
/// `who` names the target in failure messages.
async fn session(who: &str, via: &[Cli], admin: &Cli, key: &Path) -> Vec<(&'static str, Value)> {
    let at = |i: usize| &via[i % via.len()];
    let key = key.to_str().expect("key path");
    let mut forms = vec![];

    let v = at(0)
        .json(&["keypair", "create", "--public-key", key, "-f", "json", "k1"])
        .await;
    assert_eq!(v["name"], "k1", "{who}: {v}");
    forms.push(("keypair create", form(&v)));
    let v = at(1).json(&["keypair", "list", "-f", "json"]).await;
    assert!(names(&v).contains("k1"), "{who}: k1 not listed: {v}");
    forms.push(("keypair list", form(&v)));

    let v = at(2)
        .json(&cli_boot(&[
            "--key-name",
            "k1",
            "--wait",
            "-f",
            "json",
            "withkey",
        ]))
        .await;
    assert_eq!(
        (&v["status"], &v["key_name"]),
        (&json!("ACTIVE"), &json!("k1")),
        "{who}: {v}"
    );
    forms.push(("server create --key-name --wait", form(&v)));
    let v = at(3)
        .json(&cli_boot(&[
            "--min", "3", "--max", "3", "--wait", "-f", "json", "multi",
        ]))
        .await;
    forms.push(("server create --min 3 --max 3 --wait", form(&v)));

    let out = at(1).ok(&["server", "reboot", "--wait", "withkey"]).await;
    forms.push(("server reboot --wait", json!(out.trim().is_empty())));
    // `server stop`/`start` of OSC 10.5 have no `--wait`: the client
    // polls `server show` as `--wait` would.
    let out = at(2).ok(&["server", "stop", "withkey"]).await;
    forms.push(("server stop", json!(out.trim().is_empty())));
    let v = at(3).wait_for_status("withkey", "SHUTOFF", LIMIT).await;
    forms.push(("server show (stopped)", form(&v)));
    let out = at(0).ok(&["server", "start", "withkey"]).await;
    forms.push(("server start", json!(out.trim().is_empty())));
    at(1).wait_for_status("withkey", "ACTIVE", LIMIT).await;

    // Every demo server, all ACTIVE, in the admin's all-projects list.
    let v = admin
        .json(&["server", "list", "--all-projects", "-f", "json"])
        .await;
    let want = ["multi-1", "multi-2", "multi-3", "withkey"];
    let demos: Vec<&Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["Name"].as_str().is_some_and(|n| want.contains(&n)))
        .collect();
    assert!(
        demos.len() == 4 && demos.iter().all(|r| r["Status"] == "ACTIVE"),
        "{who}: admin's --all-projects misses demo's servers: {v}"
    );
    forms.push(("server list --all-projects (admin)", form(&v)));
    let v = admin.json(&["hypervisor", "list", "-f", "json"]).await;
    forms.push(("hypervisor list (admin)", form(&v)));
    let id = v[0]["ID"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v[0]["ID"].as_i64().map(|i| i.to_string()))
        .unwrap_or_else(|| panic!("{who}: no hypervisor: {v}"));
    let v = admin.json(&["hypervisor", "show", "-f", "json", &id]).await;
    assert!(v["hypervisor_hostname"].is_string(), "{who}: {v}");
    forms.push(("hypervisor show (admin)", form(&v)));

    at(2).ok(&["keypair", "delete", "k1"]).await;
    let v = at(3).json(&["keypair", "list", "-f", "json"]).await;
    assert!(!names(&v).contains("k1"), "{who}: k1 still listed: {v}");
    forms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_through_any_agent_answers_as_one_mock_does() {
    let Some(bin) = tool("openstack") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k1.pub");
    std::fs::write(&key, PUBLIC_KEY).expect("public key");

    let mock = start_mock(9, 8, 0.1, "devstack").await;
    let one = [Cli::with_password(
        bin.clone(),
        &mock.auth_url(),
        "demo",
        "demo",
    )];
    let one_admin = Cli::with_password(bin.clone(), &mock.auth_url(), "admin", "admin");
    // Two vCPUs each: the three servers of `--min 3` cannot all stay on
    // the entry's cloudlet.
    let fed = federation(&[2, 2, 2, 2]).await;
    let agents: Vec<Cli> = (1..=4)
        .map(|i| Cli::with_password(bin.clone(), &fed.agent(i).auth_url(), "demo", "demo"))
        .collect();
    let fed_admin = Cli::with_password(bin.clone(), &fed.agent(2).auth_url(), "admin", "admin");

    let (on_mock, through_agents) = tokio::join!(
        session("one mock", &one, &one_admin, &key),
        session("the federation", &agents, &fed_admin, &key),
    );
    assert_eq!(on_mock.len(), through_agents.len());
    for ((step, m), (_, f)) in on_mock.iter().zip(&through_agents) {
        eprintln!("{step}: {m}");
        assert_ne!(m, &json!([]), "`{step}`: an empty answer proves nothing");
        assert_eq!(
            f, m,
            "`{step}`: the federation's form differs from one mock's"
        );
    }
}
