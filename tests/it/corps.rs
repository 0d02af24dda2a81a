//! Several corps in one daemon (`[[corp]]`, `include`), and shards of them across daemons.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use churn_alert::store::Store;
use churn_alert_sim::{RobotSim, SimLoss, WeibanFaults, WeibanSim, WeibanSimOptions};

use crate::common::*;

/// One `[[corp]]` table: its Weiban at `weiban`, one managers' route to the robot `key`.
fn corp_table(name: &str, weiban: &WeibanSim, robot: &RobotSim, key: &str) -> String {
    format!(
        r#"
[[corp]]
name = "{name}"
[corp.weiban]
base_url = "{}"
corp_id = "sim-corp"
secret = "sim-secret"
{FAST_WEIBAN}
[[corp.route]]
name = "managers"
audience = "managers"
wecom_webhooks = ["{}"]
storm_threshold = 0
"#,
        weiban.base_url(),
        robot.url(key)
    )
}

/// The shared part of a multi-corp file: schedule, store and fast robots.
fn shared(store: &Path, extra: &str) -> String {
    format!(
        "[schedule]\ncron = \"* * * * * *\"\n[store]\npath = \"{}\"\n{FAST}\n{extra}\n",
        store.display()
    )
}

fn messages_to(robot: &RobotSim, key: &str) -> Vec<String> {
    robot
        .received()
        .into_iter()
        .filter(|m| m.key == key)
        .map(|m| m.content)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

async fn in_process_with(config: &Path, args: &[&str]) -> InProcess {
    let config = config.display().to_string();
    let mut args = args.to_vec();
    args.extend(["--config", &config]);
    let (_never, shutdown) = Shutdown::new();
    in_process(&args, shutdown).await
}

/// The single-corp release's store (`tests/fixtures/store-v0.2.md`) opens as the store of
/// the corp `default`, its pending deliveries intact, whether the config stays single-corp
/// or names that corp in a `[[corp]]` table.
#[tokio::test(start_paused = true)]
async fn a_store_of_the_single_corp_release_opens_as_the_default_corp() {
    for as_corp_table in [false, true] {
        let env = Env::new().await;
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v0.2");
        copy_dir(&fixture, &env.store_path());
        let config = if as_corp_table {
            let text = format!(
                "{}{}",
                shared(&env.store_path(), ""),
                corp_table("default", &env.weiban, &env.robot, "kA")
            )
            .replace(
                &format!("wecom_webhooks = [\"{}\"]", env.robot.url("kA")),
                &format!(
                    "wecom_webhooks = [\"{}\", \"{}\"]",
                    env.robot.url("kA"),
                    env.robot.url("kB")
                ),
            );
            let path = env.dir.path().join("corps.toml");
            std::fs::write(&path, text).unwrap();
            path
        } else {
            let route = format!(
                "[[route]]\nname = \"managers\"\naudience = \"managers\"\nwecom_webhooks = [\"{}\", \"{}\"]\nstorm_threshold = 0\n",
                env.robot.url("kA"),
                env.robot.url("kB")
            );
            env.write_config(&route, FAST);
            let text = std::fs::read_to_string(&env.config)
                .unwrap()
                .replace("${TEST_WEIBAN_SECRET}", "sim-secret");
            let path = env.dir.path().join("single.toml");
            std::fs::write(&path, text).unwrap();
            path
        };
        let stats = in_process_with(&config, &["state", "stats"]).await;
        assert!(
            stats.stdout.contains("managers/wecom/6d0a1ef0f5e91b53: 3"),
            "as corp table: {as_corp_table}: {}{}",
            stats.stdout,
            stats.stderr
        );
        let once = in_process_with(&config, &["once"]).await;
        assert_eq!(once.code, ExitCode::SUCCESS, "{}", once.stderr);
        let to_b = messages_to(&env.robot, "kB").join("\n");
        for i in 0..3 {
            assert!(to_b.contains(&format!("今日客户{i:05}号")), "{to_b}");
        }
        assert!(
            messages_to(&env.robot, "kA").is_empty(),
            "kA had them already"
        );
        let pending = in_process_with(&config, &["state", "pending"]).await;
        assert!(
            pending.stdout.contains("nothing is pending"),
            "{}",
            pending.stdout
        );
    }
}

/// Two corps; one's Weiban hangs and answers 502 on every request. The other's alerts
/// arrive in its first cycle, `/healthz` names the failing corp, and every metric of theirs
/// carries its `corp` label.
#[tokio::test(start_paused = true)]
async fn a_corp_whose_weiban_is_down_never_delays_another() {
    let good = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let bad = WeibanSim::start(WeibanSimOptions {
        faults: WeibanFaults {
            rate: 1.0,
            server_error: true,
            timeout: true,
            timeout_delay: Duration::from_secs(3600),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let robot = RobotSim::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            shared(
                &dir.path().join("store"),
                &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n")
            ),
            corp_table("acme", &good, &robot, "k-acme"),
            corp_table("globex", &bad, &robot, "k-globex"),
        ),
    )
    .unwrap();
    let losses = SimLoss::generate("甲", 3, 1, now() - 30, 2);
    good.add_losses(&losses);
    bad.add_losses(&SimLoss::generate("乙", 3, 1, now() - 30, 2));

    let (stop, shutdown) = Shutdown::new();
    let path = config.display().to_string();
    let args = ["run", "--config", &path];
    let daemon = in_process(&args, shutdown);
    let started = tokio::time::Instant::now();
    let probe = async {
        let http = http_client();
        let mut arrived = None;
        let mut health = String::new();
        let mut metrics = String::new();
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if arrived.is_none() && !messages_to(&robot, "k-acme").is_empty() {
                arrived = Some(started.elapsed());
            }
            let answer = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await;
            if let Ok(answer) = answer {
                health = answer.text().await.unwrap_or_default();
            }
            if arrived.is_some() && health.starts_with("failing corps: globex") {
                metrics = http
                    .get(format!("http://127.0.0.1:{port}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                break;
            }
        }
        stop.trigger();
        (arrived, health, metrics)
    };
    let (ran, (arrived, health, metrics)) = tokio::join!(daemon, probe);
    assert_eq!(ran.code, ExitCode::SUCCESS, "{}", ran.stderr);
    let arrived = arrived.expect("acme's alerts arrived");
    // Its first cycle starts at the first whole second; globex's requests hang for an hour.
    assert!(arrived < Duration::from_secs(3), "acme waited {arrived:?}");
    let to_acme = messages_to(&robot, "k-acme").join("\n");
    for loss in &losses {
        assert_eq!(to_acme.matches(&loss.customer_name).count(), 1, "{to_acme}");
    }
    assert!(messages_to(&robot, "k-globex").is_empty());
    assert!(health.contains("corp acme: ok"), "{health}");
    assert!(health.contains("corp globex: failing"), "{health}");
    assert!(
        metrics.contains("churn_alert_cycles_total{corp=\"acme\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("churn_alert_poll_failures_total{corp=\"globex\"}"),
        "{metrics}"
    );
    assert!(
        ran.stderr.contains("corp{corp=globex}") && ran.stderr.contains("corp{corp=acme}"),
        "log lines name their corp: {}",
        ran.stderr
    );
}

/// Two daemons, shards 0/2 and 1/2, over one `corps.d/` of six corps (each with a store of
/// its own): every corp is served by exactly one of them, and its losses arrive once.
#[tokio::test(start_paused = true)]
async fn two_shards_serve_every_corp_exactly_once() {
    let weiban = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let robot = RobotSim::start().await.unwrap();
    let losses = SimLoss::generate("丙", 2, 1, now() - 30, 2);
    weiban.add_losses(&losses);
    let dir = tempfile::tempdir().unwrap();
    let corps_d = dir.path().join("corps.d");
    std::fs::create_dir_all(&corps_d).unwrap();
    let names: Vec<String> = (1..=6).map(|i| format!("corp-{i}")).collect();
    for name in &names {
        let key = format!("k-{name}");
        std::fs::write(
            corps_d.join(format!("{name}.toml")),
            corp_table(name, &weiban, &robot, &key),
        )
        .unwrap();
    }
    let config_of = |shard: usize| -> PathBuf {
        let path = dir.path().join(format!("shard-{shard}.toml"));
        let store = dir.path().join(format!("store-{shard}"));
        let text = format!("include = [\"corps.d/*.toml\"]\n{}", shared(&store, ""));
        std::fs::write(&path, text).unwrap();
        path
    };
    let (first, second) = (config_of(0), config_of(1));
    let (stop, shutdown) = Shutdown::new();
    let (a, b) = (first.display().to_string(), second.display().to_string());
    let (args0, args1) = (
        ["run", "--config", &a, "--shard", "0/2"],
        ["run", "--config", &b, "--shard", "1/2"],
    );
    let shard0 = in_process(&args0, shutdown.clone());
    let shard1 = in_process(&args1, shutdown);
    let probe = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let served = names
                .iter()
                .filter(|n| !messages_to(&robot, &format!("k-{n}")).is_empty())
                .count();
            if served == names.len() {
                // One more cycle: nothing is sent twice.
                tokio::time::sleep(Duration::from_secs(2)).await;
                break;
            }
        }
        stop.trigger();
    };
    let (ran0, ran1, ()) = tokio::join!(shard0, shard1, probe);
    assert_eq!(ran0.code, ExitCode::SUCCESS, "{}", ran0.stderr);
    assert_eq!(ran1.code, ExitCode::SUCCESS, "{}", ran1.stderr);
    for name in &names {
        let got = messages_to(&robot, &format!("k-{name}")).join("\n");
        for loss in &losses {
            assert_eq!(got.matches(&loss.customer_name).count(), 1, "{name}: {got}");
        }
    }
    let served_by = |shard: usize| -> Vec<String> {
        let store = Store::open(&dir.path().join(format!("store-{shard}"))).unwrap();
        store
            .corps()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let (zero, one) = (served_by(0), served_by(1));
    assert!(zero.iter().all(|c| !one.contains(c)), "{zero:?} {one:?}");
    assert_eq!(zero.len() + one.len(), names.len(), "{zero:?} {one:?}");
    assert!(
        !zero.is_empty() && !one.is_empty(),
        "six corps split: {zero:?} {one:?}"
    );
}

/// A corp moves between stores: `state export --remove` in one, `state import` in the other,
/// its pending deliveries with it.
#[tokio::test(start_paused = true)]
async fn state_export_and_import_move_a_corp_with_what_waits() {
    let weiban = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let robot = RobotSim::start().await.unwrap();
    let losses = SimLoss::generate("丁", 2, 1, now() - 30, 2);
    weiban.add_losses(&losses);
    robot.set_removed("k-acme", true);
    let dir = tempfile::tempdir().unwrap();
    let config_of = |store: &str| -> PathBuf {
        let path = dir.path().join(format!("{store}.toml"));
        let text = format!(
            "{}{}{}",
            shared(&dir.path().join(store), ""),
            corp_table("acme", &weiban, &robot, "k-acme"),
            corp_table("globex", &weiban, &robot, "k-globex")
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let (old, new) = (config_of("old"), config_of("new"));
    let once = in_process_with(&old, &["once", "--corp", "acme"]).await;
    assert_eq!(
        once.code,
        ExitCode::FAILURE,
        "the robot is removed: {}",
        once.stderr
    );

    let ambiguous = in_process_with(&old, &["once"]).await;
    assert!(
        ambiguous
            .stderr
            .contains("configures 2 corps (acme, globex)")
            && ambiguous.stderr.contains("--corp"),
        "{}",
        ambiguous.stderr
    );

    let file = dir.path().join("acme.export");
    let file_arg = file.display().to_string();
    let export = in_process_with(
        &old,
        &[
            "state", "export", "--corp", "acme", "--out", &file_arg, "--remove",
        ],
    )
    .await;
    assert_eq!(export.code, ExitCode::SUCCESS, "{}", export.stderr);
    let old_stats = in_process_with(&old, &["state", "stats", "--corp", "acme"]).await;
    assert!(
        old_stats.stdout.contains("remembered losses:   0")
            && old_stats.stdout.contains("pending deliveries:  none"),
        "removed from the old store: {}",
        old_stats.stdout
    );

    // The new store has globex already: its namespace is not touched.
    let globex = in_process_with(&new, &["once", "--corp", "globex"]).await;
    assert_eq!(globex.code, ExitCode::SUCCESS, "{}", globex.stderr);
    let import = in_process_with(&new, &["state", "import", "--from", &file_arg]).await;
    assert_eq!(import.code, ExitCode::SUCCESS, "{}", import.stderr);
    let again = in_process_with(&new, &["state", "import", "--from", &file_arg]).await;
    assert!(
        again.stderr.contains("already holds data of corp `acme`"),
        "{}",
        again.stderr
    );
    // A new shard's volume has no store yet: the import makes it.
    let fresh = config_of("fresh");
    let onto_nothing = in_process_with(&fresh, &["state", "import", "--from", &file_arg]).await;
    assert_eq!(
        onto_nothing.code,
        ExitCode::SUCCESS,
        "{}",
        onto_nothing.stderr
    );
    let stats = in_process_with(&new, &["state", "stats", "--corp", "acme"]).await;
    assert!(
        stats.stdout.contains("remembered losses:   2"),
        "{}",
        stats.stdout
    );
    assert!(
        stats.stdout.contains(": 2"),
        "pending moved: {}",
        stats.stdout
    );

    robot.set_removed("k-acme", false);
    let retry = in_process_with(&new, &["state", "retry", "--corp", "acme"]).await;
    assert_eq!(retry.code, ExitCode::SUCCESS, "{}", retry.stderr);
    let delivered = in_process_with(&new, &["once", "--corp", "acme"]).await;
    assert_eq!(delivered.code, ExitCode::SUCCESS, "{}", delivered.stderr);
    let got = messages_to(&robot, "k-acme").join("\n");
    for loss in &losses {
        assert_eq!(got.matches(&loss.customer_name).count(), 1, "{got}");
    }
}

/// `check` validates every corp and names the corp of each error.
#[tokio::test(start_paused = true)]
async fn check_names_the_corp_of_every_error() {
    let weiban = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let robot = RobotSim::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let good = format!(
        "{}{}{}",
        shared(&dir.path().join("store"), ""),
        corp_table("acme", &weiban, &robot, "k1"),
        corp_table("globex", &weiban, &robot, "k2")
    );
    std::fs::write(&config, &good).unwrap();
    let ok = in_process_with(&config, &["check"]).await;
    assert_eq!(ok.code, ExitCode::SUCCESS, "{}", ok.stderr);
    assert!(ok.stderr.contains("all 2 corps are valid"), "{}", ok.stderr);

    let bad = good.replacen("audience = \"managers\"", "audience = \"everyone\"", 2);
    let bad = bad.replacen("audience = \"everyone\"", "audience = \"managers\"", 1);
    std::fs::write(&config, bad).unwrap();
    let refused = in_process_with(&config, &["check"]).await;
    assert_eq!(refused.code, ExitCode::FAILURE);
    assert!(
        refused.stderr.contains("corp `globex`") && refused.stderr.contains("audience"),
        "{}",
        refused.stderr
    );
}

/// Waits (virtual time) until `done`, or fails naming `what` after a virtual minute.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}");
}

/// A reload (what SIGHUP asks for) adds a corp (it starts with its own first-run look-back)
/// and removes one: the removed corp's pending deliveries stay in the store, `state` shows
/// them (over the daemon's socket), and adding it back resumes where it was. In process under
/// paused time, with the reload trigger in place of SIGHUP.
#[tokio::test(start_paused = true)]
async fn a_reload_adds_and_removes_corps_and_a_removed_corp_keeps_what_waits() {
    let acme = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let globex = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let robot = RobotSim::start().await.unwrap();
    let acme_losses = SimLoss::generate("戊", 2, 1, now() - 60, 5);
    acme.add_losses(&acme_losses);
    let globex_losses = SimLoss::generate("己", 2, 1, now() - 3 * 3600, 5);
    globex.add_losses(&globex_losses);
    robot.set_removed("k-acme", true);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let base = shared(&dir.path().join("store"), "");
    let acme_table = corp_table("acme", &acme, &robot, "k-acme");
    let globex_table = corp_table("globex", &globex, &robot, "k-globex");
    std::fs::write(&config, format!("{base}{acme_table}")).unwrap();
    let (stop, shutdown) = Shutdown::new();
    let (reload, reloads) = Reload::new();
    let path = config.display().to_string();
    let args = ["run", "--config", &path];
    let daemon = in_process_reloadable(&args, shutdown, Some(reloads));
    let steps = async {
        until("acme never tried its robot", || {
            robot.attempts().iter().any(|a| a.key == "k-acme")
        })
        .await;

        // Added: globex's losses of three hours ago are inside its own first look-back (a day).
        std::fs::write(&config, format!("{base}{acme_table}{globex_table}")).unwrap();
        reload.trigger();
        until("globex was not served after the reload", || {
            !messages_to(&robot, "k-globex").is_empty()
        })
        .await;

        // Removed: acme's two deliveries wait in its namespace, shown by `state`.
        std::fs::write(&config, format!("{base}{globex_table}")).unwrap();
        reload.trigger();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stats = in_process_with(&config, &["state", "stats"]).await;
        assert!(
            stats
                .stdout
                .contains("corp acme (not in the config: kept in the store):")
                && stats.stdout.contains("managers/wecom/"),
            "{}{}",
            stats.stdout,
            stats.stderr
        );
        let pending = in_process_with(&config, &["state", "pending", "--corp", "acme"]).await;
        assert!(pending.stdout.contains("2 pending"), "{}", pending.stdout);

        // Back: it resumes where it was, its two deliveries still waiting for the fix of the
        // robot that refused them for good (93000 waits for a person and `state retry`).
        std::fs::write(&config, format!("{base}{acme_table}{globex_table}")).unwrap();
        reload.trigger();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stats = in_process_with(&config, &["state", "stats"]).await;
        assert!(stats.stdout.contains("corp acme:\n"), "{}", stats.stdout);
        let pending = in_process_with(&config, &["state", "pending", "--corp", "acme"]).await;
        assert!(
            pending.stdout.contains("2 pending, failed"),
            "{}",
            pending.stdout
        );
        stop.trigger();
    };
    let (ran, ()) = tokio::join!(daemon, steps);
    assert_eq!(ran.code, ExitCode::SUCCESS, "{}", ran.stderr);
    robot.set_removed("k-acme", false);
    let retry = in_process_with(&config, &["state", "retry", "--corp", "acme"]).await;
    assert_eq!(retry.code, ExitCode::SUCCESS, "{}", retry.stderr);
    let once = in_process_with(&config, &["once", "--corp", "acme"]).await;
    assert_eq!(once.code, ExitCode::SUCCESS, "{}", once.stderr);
    let got = messages_to(&robot, "k-acme").join("\n");
    for loss in &acme_losses {
        assert_eq!(got.matches(&loss.customer_name).count(), 1, "{got}");
    }
    let got = messages_to(&robot, "k-globex").join("\n");
    for loss in &globex_losses {
        assert_eq!(got.matches(&loss.customer_name).count(), 1, "{got}");
    }
}

/// A storm in one corp (more messages than its robot takes in a minute) does not hold up
/// another corp, whose robot is another.
#[tokio::test(start_paused = true)]
async fn a_storm_in_one_corp_never_starves_another_of_robot_pacing() {
    let stormy = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let calm = WeibanSim::start(WeibanSimOptions::default()).await.unwrap();
    let robot = RobotSim::start().await.unwrap();
    // 45 staff members of a staff route: 45 messages to one robot, 20 a minute.
    stormy.add_losses(&SimLoss::generate("风", 45, 45, now() - 60, 1));
    calm.add_losses(&SimLoss::generate("静", 1, 1, now() - 60, 1));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let paced = shared(&dir.path().join("store"), "")
        .replace("messages_per_minute = 0", "messages_per_minute = 20");
    let storm_table = corp_table("stormy", &stormy, &robot, "k-storm")
        .replace("audience = \"managers\"", "audience = \"staff\"");
    let calm_table = corp_table("calm", &calm, &robot, "k-calm");
    std::fs::write(&config, format!("{paced}{storm_table}{calm_table}")).unwrap();
    let (stop, shutdown) = Shutdown::new();
    let path = config.display().to_string();
    let args = ["run", "--config", &path];
    let daemon = in_process(&args, shutdown);
    let probe = async {
        let started = tokio::time::Instant::now();
        let mut calm_at = None;
        for _ in 0..1800 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if calm_at.is_none() && !messages_to(&robot, "k-calm").is_empty() {
                calm_at = Some(started.elapsed());
            }
            if messages_to(&robot, "k-storm").len() >= 45 {
                break;
            }
        }
        stop.trigger();
        (calm_at, started.elapsed())
    };
    let (ran, (calm_at, storm_took)) = tokio::join!(daemon, probe);
    assert_eq!(ran.code, ExitCode::SUCCESS, "{}", ran.stderr);
    let calm_at = calm_at.expect("the calm corp's alert arrived");
    assert!(calm_at < Duration::from_secs(3), "calm waited {calm_at:?}");
    assert!(
        storm_took > Duration::from_secs(120),
        "the stormy robot was paced at 20 a minute: {storm_took:?}"
    );
    assert_eq!(messages_to(&robot, "k-storm").len(), 45);
}
