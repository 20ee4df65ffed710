//! The operator side of slot migration through the CLI: `cluster migrate` records a
//! migration and prints its id, `cluster migrations` and `status` list it, bad requests are
//! refused with one-line errors before anything is queued, `cluster rebalance --dry-run`
//! plans moves to a new group, and `cluster migration cancel` is accepted. Whether keys
//! actually move is the driver's business (tested with it): here a registered router that
//! never applies the new epochs holds every migration in `preparing`, so the test sees the
//! same states whatever the driver can do.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// A router registration that never applies a newer epoch: the driver keeps every migration
/// in `preparing` while it is registered, so the test sees migrations that have not finished
/// whatever the driver can do. The node vanishes with its session when this is dropped.
struct StaleRouter {
    _rt: tokio::runtime::Runtime,
    _zk: zedis_coord::Zk,
}

impl StaleRouter {
    fn register(h: &Harness, epoch: u64) -> StaleRouter {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let paths = zedis_coord::ClusterPaths::new("/zedis", &h.cluster).expect("cluster paths");
        let record = serde_json::json!({"id": "stale", "epoch": epoch, "session_timeout_ms": SESSION_TIMEOUT_MS});
        let zk = rt.block_on(async {
            let zk = zedis_coord::Zk::connect(&zedis_coord::ZkOptions::new(h.zk.connect_string()))
                .await
                .expect("test connects to ZooKeeper");
            zk.ensure_path(&paths.clients()).await.expect("clients directory");
            let path = format!("{}/stale", paths.clients());
            zk.put_ephemeral(&path, record.to_string().as_bytes()).await.expect("stale router registered");
            zk
        });
        StaleRouter { _rt: rt, _zk: zk }
    }
}

/// `cluster migrations --json`, parsed.
fn migrations(h: &Harness) -> Vec<Value> {
    let out = h.zedis_ok(&["cluster", "migrations", "--json"]);
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(list)) => list,
        other => panic!("[{}] migrations --json is not a JSON array: {other:?}\n{out}", h.test),
    }
}

fn find(list: &[Value], id: u64) -> Value {
    list.iter()
        .find(|m| m["id"].as_u64() == Some(id))
        .cloned()
        .unwrap_or_else(|| panic!("migration {id} not listed: {list:#?}"))
}

/// The id in `migration N: ...`.
fn migration_id(out: &str) -> u64 {
    out.strip_prefix("migration ")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or_else(|| panic!("no migration id in: {out}"))
}

#[test]
fn migrate_list_refuse_and_cancel() {
    let mut h = Harness::start("migration_cli", &[1, 1]);

    h.phase("cluster create, one controller, settled");
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));
    let out = h.zedis_ok(&["cluster", "migrations"]);
    assert!(out.starts_with("no migrations"), "before any migration: {out}");

    h.phase("bad requests fail with one line, nothing queued");
    let bad: &[(&[&str], &str)] = &[
        (&["--slots", "5-1", "--to", "2"], "reversed"),
        (&["--slots", "0-99999", "--to", "2"], "out of range"),
        (&["--slots", "abc", "--to", "2"], "bad slot range"),
        (&["--slots", "0-99", "--to", "9"], "no group 9"),
        (&["--slots", "0-99,50-60", "--to", "2"], "overlap"),
        (&["--slots", "0-99", "--to", "2", "--rate", "0"], "rate 0"),
        (&["--slots", "8192-8200", "--to", "2"], "already owns them all"),
    ];
    for (args, needle) in bad {
        let mut all = vec!["cluster", "migrate"];
        all.extend_from_slice(args);
        let line = h.zedis_fails(&all, needle);
        eprintln!("  {}: {line}", args.join(" "));
    }
    let line = h.zedis_fails(&["cluster", "migration", "pause", "42"], "no migration 42");
    eprintln!("  pause of an unknown id: {line}");
    assert_eq!(epoch(&h.status()), 1, "refused requests change nothing");

    h.phase("add-group, then rebalance --dry-run plans slots for the new group");
    let extra = start_redis();
    h.zedis_ok(&["cluster", "add-group", &extra.addr()]);
    let epoch_before = epoch(&h.status());
    let plan = h.zedis_ok(&["cluster", "rebalance", "--dry-run"]);
    eprintln!("{plan}");
    assert!(plan.contains("dry run"), "{plan}");
    assert!(plan.contains("to group 3 (5461 slots)"), "the new group gets a third: {plan}");
    assert!(plan.contains("group 3: 0 -> 5461"), "{plan}");
    let line = h.zedis_fails(&["cluster", "rebalance", "--dry-run", "--weights", "9=1"], "no group 9");
    eprintln!("  rebalance with an unknown group: {line}");
    let line = h.zedis_fails(&["cluster", "rebalance", "--dry-run", "--weights", "1=0,2=0,3=0"], "weight 0");
    eprintln!("  rebalance with every weight 0: {line}");
    assert_eq!(epoch(&h.status()), epoch_before, "a dry run queues nothing");

    h.phase("a router stuck at this epoch holds new migrations in preparing");
    let stale = StaleRouter::register(&h, epoch_before);

    h.phase("cluster migrate --slots 0-99 --to 2 --rate 1");
    let out = h.zedis_ok(&["cluster", "migrate", "--slots", "0-99", "--to", "2", "--rate", "1"]);
    eprintln!("  migrate says: {out}");
    let id = migration_id(&out);
    assert!(out.contains("slots 0-99 from group 1 to group 2"), "migrate says: {out}");
    let st = h.status();
    assert_eq!(epoch(&st), epoch_before + 1, "a migration starts under a new epoch: {st:#}");

    h.phase("cluster migrations and status list it");
    let m = find(&migrations(&h), id);
    let state = m["state"].as_str().unwrap_or_default().to_string();
    assert_eq!(state, "preparing", "a router has not applied its epoch: {m:#}");
    assert_eq!((m["target"].as_u64(), m["slots_total"].as_u64()), (Some(2), Some(100)), "{m:#}");
    assert_eq!(m["rate"].as_u64(), Some(1), "{m:#}");
    let in_status = find(st["migrations"].as_array().expect("status lists migrations"), id);
    assert!(in_status["state"].is_string(), "{in_status:#}");
    let table = h.zedis_ok(&["cluster", "migrations"]);
    eprintln!("{table}");
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&format!("{id} ")) && l.contains("1→2")), "{table}");
    let text = h.zedis_ok(&["status"]);
    assert!(text.lines().any(|l| l.starts_with(&format!("migration {id}  groups 1→2"))), "{text}");
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "migration_started" && e["message"].as_str().is_some_and(|m| m.contains("0-99"))),
        "a migration_started event: {events:#?}"
    );

    h.phase("requests that collide with it are refused");
    h.zedis_fails(&["cluster", "migrate", "--slots", "50-150", "--to", "3"], &format!("migration {id}"));
    h.zedis_fails(&["cluster", "rebalance"], "still in progress");
    h.zedis_fails(&["cluster", "rebalance", "--dry-run"], "still in progress");

    h.phase("--wait on a second migration gives up at --timeout, the migration goes on");
    let out =
        h.zedis(&["cluster", "migrate", "--slots", "200-209", "--to", "3", "--rate", "1", "--wait", "--timeout", "3"]);
    expect_one_line_error(&out, "after 3s");
    eprintln!("{}", out.describe());
    let second = migration_id(&out.stdout);
    assert!(
        out.stdout.lines().filter(|l| l.starts_with(&format!("migration {second}: "))).count() >= 2,
        "{}",
        out.describe()
    );

    h.phase("cluster migration cancel");
    for id in [id, second] {
        let out = h.zedis_ok(&["cluster", "migration", "cancel", &id.to_string()]);
        eprintln!("  cancel says: {out}");
        assert!(out.contains(&format!("migration {id} cancel")), "cancel says: {out}");
        let m = find(&migrations(&h), id);
        assert!(["cancelled", "cancelling"].contains(&m["state"].as_str().unwrap_or_default()), "{m:#}");
    }
    h.zedis_fails(&["cluster", "migration", "resume", &id.to_string()], &format!("migration {id}"));
    let events = h.events();
    assert!(events.iter().any(|e| e["kind"] == "migration_changed"), "a migration_changed event: {events:#?}");
    drop(stale);
}
