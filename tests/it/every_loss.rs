//! Issue 18's reproductions: no loss without a destination or a visible reason, and robots
//! known by who they are.

use crate::common::*;
use churn_alert_sim::{SimLoss, SimStaff, WeibanSimOptions};

fn org(env: &Env) {
    let without_email = SimStaff {
        email: None,
        ..staff("staff00", "销售00", vec![2])
    };
    env.weiban.set_directory(
        vec![department(1, "公司", 0), department(2, "销售一部", 1)],
        vec![without_email],
    );
}

/// Asserts that `key` received each of `losses` exactly once.
fn each_delivered_once(env: &Env, key: &str, losses: &[SimLoss]) {
    let text = got(env, key);
    for loss in losses {
        assert_eq!(
            text.matches(&loss.customer_name).count(),
            1,
            "{}: {text}",
            loss.customer_name
        );
    }
}

fn route(env: &Env, keys: &[&str]) -> String {
    env.managers_route(keys) + "storm_threshold = 0\n"
}

fn team_route(env: &Env, department: &str) -> String {
    format!(
        "[[route]]\nname = \"teams\"\naudience = \"managers\"\n[route.department_webhooks]\n\"{department}\" = \"{}\"\n",
        env.robot.url("k-team")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_robots_without_an_org_chart_hold_the_loss_visibly_until_it_is_read() {
    let env = Env::new().await;
    org(&env);
    env.weiban.set_down("department/list", true);
    env.write_config(&team_route(&env, "销售一部"), FAST);
    let losses = SimLoss::generate("暂", 1, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let _ = env.once().await;
    assert!(got(&env, "k-team").is_empty(), "nothing to send it to yet");

    let pending = stdout(&env.cmd(&["state", "pending"]).await);
    assert!(!pending.contains("nothing is pending"), "{pending}");
    assert!(pending.contains("held"), "{pending}");
    assert!(pending.contains("org chart"), "{pending}");
    assert!(pending.contains(&losses[0].customer_name), "{pending}");
    assert!(pending.contains("staff00"), "{pending}");
    let stats = stdout(&env.cmd(&["state", "stats"]).await);
    assert!(stats.contains("route `teams`: 1"), "{stats}");

    // Weiban answers again: the next poll reads the org chart and routes the held loss.
    env.weiban.set_down("department/list", false);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        got(&env, "k-team").contains(&losses[0].customer_name),
        "the held loss reached the department robot"
    );
    let pending = stdout(&env.cmd(&["state", "pending"]).await);
    assert!(pending.contains("nothing is pending"), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_department_name_holds_and_then_goes_to_the_fallback_robot() {
    let env = Env::new().await;
    org(&env);
    let fallback = format!(
        "{FAST}\n[directory]\nhold_for = \"0s\"\n[fallback]\nwecom_webhooks = [\"{}\"]\n",
        env.robot.url("k-fallback")
    );
    // A typo: 销售1部 for 销售一部.
    env.write_config(&team_route(&env, "销售1部"), FAST);
    let losses = SimLoss::generate("错", 1, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let _ = env.once().await;
    let pending = stdout(&env.cmd(&["state", "pending"]).await);
    assert!(
        pending.contains("销售1部"),
        "the unknown name is named: {pending}"
    );
    assert!(got(&env, "k-team").is_empty());

    env.write_config(&team_route(&env, "销售1部"), &fallback);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        got(&env, "k-fallback").contains(&losses[0].customer_name),
        "after hold_for the loss reached [fallback]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_are_known_by_their_key_so_removing_or_fixing_one_never_resends_or_drops() {
    // Robot A refuses, B delivers; the operator removes A: B does not get the loss again.
    let env = Env::new().await;
    env.write_config(&route(&env, &["kA", "kB"]), FAST);
    env.robot.set_removed("kA", true);
    let losses = SimLoss::generate("键", 3, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    assert!(!env.once().await.status.success());
    env.write_config(&route(&env, &["kB"]), FAST);
    let _ = env.once().await;
    for loss in &losses {
        assert_eq!(
            got(&env, "kB").matches(&loss.customer_name).count(),
            1,
            "{} sent to B again",
            loss.customer_name
        );
    }

    // A delivers, B has a mistyped key; fixing B and removing A in one edit: B gets its
    // backlog, not treated as delivered by a sibling.
    let env = Env::new().await;
    env.write_config(&route(&env, &["kA", "kB-typo"]), FAST);
    env.robot.set_removed("kB-typo", true);
    let losses = SimLoss::generate("修", 3, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    assert!(!env.once().await.status.success());
    env.write_config(&route(&env, &["kB"]), FAST);
    let retry = env.cmd(&["state", "retry"]).await;
    assert!(retry.status.success(), "{}", stderr(&retry));
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    for loss in &losses {
        assert!(
            got(&env, "kB").contains(&loss.customer_name),
            "{} dropped from B's backlog",
            loss.customer_name
        );
    }
}

/// A store written by release 0.1: robot #2 (`kB`, refused) and `Boss@Example.COM` (SMTP
/// down) each hold 3 pending losses, keyed by position and by the address as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_release_0_1_delivers_its_pending_to_the_right_robots() {
    let env = Env::new().await;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v0.1");
    let store = env.store_path();
    std::fs::create_dir_all(&store).unwrap();
    copy_dir(&fixture, &store);
    let smtp = crate::common::smtp::SmtpServer::start();
    // Positions mean what the config that opens the store says: upgrade with the config the
    // old release ran with (the README says so)...
    let routes = |first: &str, second: &str| {
        format!(
            "[[route]]\nname = \"managers\"\naudience = \"managers\"\nwecom_webhooks = [\"{}\", \"{}\"]\nemail_to = [\"boss@example.com\"]\nstorm_threshold = 0\n",
            env.robot.url(first),
            env.robot.url(second),
        )
    };
    env.write_config(&routes("kA", "kB"), &format!("{FAST}\n{}", smtp.config()));
    let stats = stdout(&env.cmd(&["state", "stats"]).await);
    assert!(stats.contains(": 3"), "{stats}");
    assert!(
        !stats.contains("managers/wecom/1:"),
        "migrated ids: {stats}"
    );
    // ...after which the order no longer matters: kB first now.
    env.write_config(&routes("kB", "kA"), &format!("{FAST}\n{}", smtp.config()));
    let retry = env.cmd(&["state", "retry"]).await;
    assert!(retry.status.success(), "{}", stderr(&retry));
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let to_b = got(&env, "kB");
    for i in 0..3 {
        assert!(to_b.contains(&format!("旧客户{i:05}号")), "{to_b}");
    }
    assert!(
        got(&env, "kA").is_empty(),
        "kA had delivered them: nothing again"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "the mailbox's backlog was kept");
    let pending = stdout(&env.cmd(&["state", "pending"]).await);
    assert!(pending.contains("nothing is pending"), "{pending}");
}

/// §5: a `total_count` of 9e18 is refused with a clear error; it never sizes memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_total_count_is_a_clear_error_not_an_abort() {
    let env = Env::with_options(WeibanSimOptions {
        total_count: Some(9_000_000_000_000_000_000),
        ..Default::default()
    })
    .await;
    env.write_config(&route(&env, &["k1"]), FAST);
    env.weiban
        .add_losses(&SimLoss::generate("巨", 3, 1, now() - 60, 5));
    let out = env.once().await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("total_count is 9000000000000000000") && err.contains("1000000"),
        "{err}"
    );
    // The first run's window is long: one request counts it (`SLICE_LOSSES`), one fetches
    // its first page, and that is all: refused at once, not fetched again as a list that
    // moved.
    assert_eq!(
        env.weiban.stats().outflow_requests,
        2,
        "refused at once, not fetched again as a list that moved"
    );
}

/// §5: one row listed twice (same customer, staff member and second) does not fail the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_row_is_one_loss_and_the_window_advances() {
    let env = Env::new().await;
    env.write_config(&route(&env, &["k1"]), FAST);
    let losses = SimLoss::generate("重", 3, 1, now() - 60, 5);
    env.weiban.add_losses(&losses);
    env.weiban.add_losses(&losses[1..2]);
    let out = env.once().await;
    assert!(out.status.success(), "{}", stderr(&out));
    each_delivered_once(&env, "k1", &losses);
    // The count of the long first window, then its one page.
    assert_eq!(
        env.weiban.stats().outflow_requests,
        2,
        "fetched once, not refetched as a moving list"
    );
}

/// §7: `/state/*` is never served over TCP without a token, answers 401 without the right
/// one, and `churn-alert state` reaches the running daemon over its 0600 unix socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_private_over_tcp_and_the_cli_reaches_the_daemon_over_its_socket() {
    use std::os::unix::fs::PermissionsExt as _;

    let env = Env::new().await;
    let port = free_port();
    let server = format!("{FAST}\n[server]\nlisten = \"127.0.0.1:{port}\"\n");
    env.write_config(&route(&env, &["k1"]), &server);
    env.weiban
        .add_losses(&SimLoss::generate("私", 2, 1, now() - 60, 5));
    env.robot.set_removed("k1", true);
    let daemon = spawn_quiet_run(&env.config);
    let socket = std::path::PathBuf::from(format!("{}.sock", env.store_path().display()));
    let http = http_client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("http://127.0.0.1:{port}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let answer = request.send().await.ok()?;
            Some((answer.status().as_u16(), answer.text().await.ok()?))
        }
    };
    // Ready when the socket is there and the first cycle queued the losses.
    let mut ready = false;
    for _ in 0..200 {
        if socket.exists() && !env.robot.attempts().is_empty() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the daemon made no socket, or never tried the robot");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the owner's only");
    let (status, body) = get("/state/pending", None)
        .await
        .expect("the server answers");
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("私"), "no customer data over TCP: {body}");
    let pending = env.cmd(&["state", "pending"]).await;
    assert!(pending.status.success(), "{}", stderr(&pending));
    assert!(stdout(&pending).contains("私"), "{}", stdout(&pending));
    sigterm(&daemon);
    let _ = daemon.wait_with_output().await;
    assert!(!socket.exists(), "the socket is removed on shutdown");

    let token = "a-token-of-enough-length";
    env.write_config(
        &route(&env, &["k1"]),
        &format!("{server}token = \"{token}\"\n"),
    );
    let daemon = spawn_quiet_run(&env.config);
    let mut answer = None;
    for _ in 0..200 {
        answer = get("/state/stats", None).await;
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answer.map(|(status, _)| status), Some(401));
    let (status, _) = get("/state/stats", Some("wrong-token-of-some-length"))
        .await
        .expect("the server answers");
    assert_eq!(status, 401);
    let (status, body) = get("/state/pending", Some(token))
        .await
        .expect("the server answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("私"), "{body}");
    sigterm(&daemon);
    let _ = daemon.wait_with_output().await;
}

/// §5: ids that differ only around a NUL byte are two losses, and both are delivered.
#[tokio::test(start_paused = true)]
async fn ids_that_differ_only_around_a_nul_byte_are_two_losses_both_delivered() {
    let env = Env::new().await;
    env.write_config(&route(&env, &["k1"]), FAST);
    let mut losses = SimLoss::generate("零", 2, 1, now() - 60, 0);
    losses[0].customer_id = "wm_a\0b".into();
    losses[0].staff_id = "c".into();
    losses[1].customer_id = "wm_a".into();
    losses[1].staff_id = "b\0c".into();
    env.weiban.add_losses(&losses);
    let out = env.once_in_process().await;
    assert_eq!(out.code, std::process::ExitCode::SUCCESS, "{}", out.stderr);
    each_delivered_once(&env, "k1", &losses);
}

/// §8: a reload that moves `store.path` is refused with an ERROR naming the key; the daemon
/// goes on with the store it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_moves_the_store_is_refused_naming_the_key() {
    let env = Env::new().await;
    env.write_config(&route(&env, &["k1"]), FAST);
    let daemon = spawn_run(&env.config, "churn_alert=info");
    let socket = std::path::PathBuf::from(format!("{}.sock", env.store_path().display()));
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let moved = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("/store\"", "/elsewhere\"");
    std::fs::write(&env.config, moved).unwrap();
    let pid = daemon.id().expect("the daemon runs").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    // Losses after the reload still reach the robot: the running config and store stay.
    env.weiban
        .add_losses(&SimLoss::generate("迁", 1, 1, now() - 5, 1));
    for _ in 0..200 {
        if !got(&env, "k1").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sigterm(&daemon);
    let output = daemon.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("ERROR") && log.contains("config key `store.path` changed"),
        "{log}"
    );
    assert!(got(&env, "k1").contains("迁"), "still polling: {log}");
    assert!(
        !env.dir.path().join("elsewhere").exists(),
        "no new store was made"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A long first window (6 000 losses over 10 hours) is polled in slices of about 2 000
/// (`SLICE_LOSSES`), each delivered before the next is fetched, so the outbox never holds the
/// whole window: every loss still arrives exactly once.
#[tokio::test(start_paused = true)]
async fn a_long_window_is_polled_and_delivered_in_slices_and_nothing_is_lost() {
    let env = Env::new().await;
    env.write_config(&route(&env, &["k1"]), FAST);
    let losses = SimLoss::generate("片", 6_000, 40, now() - 60, 6);
    env.weiban.add_losses(&losses);
    // Pacing is not under test: the robot takes them as fast as they come.
    env.robot.set_per_minute(None);
    let out = env.once_in_process().await;
    assert_eq!(out.code, std::process::ExitCode::SUCCESS, "{}", out.stderr);
    // Every name once (counted in one pass: 6 000 searches of the whole text would be slow).
    let text = got(&env, "k1");
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for (at, _) in text.match_indices("片客户") {
        let name = text[at..].split('号').next().unwrap_or_default();
        *seen.entry(name).or_default() += 1;
    }
    for loss in &losses {
        let name = loss.customer_name.trim_end_matches('号');
        assert_eq!(seen.get(name), Some(&1), "{name}");
    }
    let digests = env.digests_received();
    // Each slice in digests of at most 500 (a delivery pass's batch): 6 000 losses make at
    // least 12 of them.
    assert!(digests >= 12, "{digests} digests");
    // A slice starts where the last one ended, not an overlap (15 minutes, 150 of these
    // losses) before it: only the slice that ends within the overlap of now is fetched again
    // from there (here at most 150), plus one item per count and a slice's last second.
    let served = env.weiban.stats().items_served;
    assert!(
        served < 6_000 + 150 + 30,
        "{served} items served for 6 000 losses: slices fetched their overlap again"
    );
    assert!(
        out.stderr.contains("a long window: polled in slices"),
        "{}",
        out.stderr
    );
}

/// A window's pages are recorded a few at a time (`RECORD_GROUP`, 300 losses), not one
/// transaction per page: 1 050 losses in 11 pages of 100 are recorded in 4 transactions
/// (300, 300, 300 and 150, or 350, 300, 300 and 100: pages after the first arrive in any
/// order, the counts below hold for each), each written as records of at most 100 losses
/// (`RECORD_LOSSES`) under its own id, for the robot that refuses them; all stay pending.
#[tokio::test(start_paused = true)]
async fn a_windows_pages_are_recorded_a_group_at_a_time() {
    let env = Env::new().await;
    env.write_config(&route(&env, &["k1"]), FAST);
    env.robot.set_removed("k1", true);
    let losses = SimLoss::generate("组", 1_050, 10, now() - 60, 5);
    env.weiban.add_losses(&losses);
    let out = env.once_in_process().await;
    assert_ne!(
        out.code,
        std::process::ExitCode::SUCCESS,
        "the robot refuses"
    );

    // Asked first: the daemon's store waits for sled to let go of its lock when it closes
    // (`store/reopen.rs`), a bare `sled::open` does not.
    let pending = env.in_process(&["state", "pending"]).await;
    assert!(
        pending.stdout.contains("1050 pending"),
        "{}{}",
        pending.stdout,
        pending.stderr
    );
    let db = sled::open(env.store_path()).expect("open store");
    let pages = db.open_tree("outbox_pages").expect("tree");
    // A record's key: the destination, a NUL, the recording's id (8 bytes), its first loss.
    let mut ids = std::collections::BTreeSet::new();
    for entry in pages.iter() {
        let (key, _) = entry.expect("read record");
        let at = key.iter().position(|b| *b == 0).expect("destination's end") + 1;
        ids.insert(key[at..at + 8].to_vec());
    }
    assert_eq!(ids.len(), 4, "transactions for 1 050 losses in 11 pages");
    assert_eq!(
        pages.len(),
        11,
        "records of at most 100 losses: 3 + 3 + 3 + 2"
    );
    drop(db);
}
