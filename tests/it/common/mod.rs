//! Test harness: loopback simulators in this process, the real `churn-alert` binary as a child.
#![allow(dead_code)]

pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub use churn_alert::cmd::{in_process, in_process_reloadable, InProcess};
pub use churn_alert::reload::Reload;
pub use churn_alert::shutdown::{Shutdown, ShutdownTrigger};
use churn_alert_sim::{RobotSim, SimDepartment, SimStaff, WeibanSim, WeibanSimOptions};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_churn-alert");

/// Simulators, a temporary store and a config pointing at them.
pub struct Env {
    pub weiban: WeibanSim,
    pub robot: RobotSim,
    pub dir: TempDir,
    pub config: PathBuf,
}

/// The variables the example configs (`config.example*.toml`) read, with test values.
pub const VARS: &[(&str, &str)] = &[
    ("WEIBAN_CORP_ID", "corp"),
    ("WEIBAN_SECRET", "secret"),
    ("WECOM_MANAGERS_KEY", "key"),
    ("WECOM_SALES_KEY", "key2"),
    ("WECOM_TEAM1_KEY", "key3"),
    ("WECOM_TEAM2_KEY", "key4"),
    ("SMTP_PASSWORD", "pw"),
];

/// Settings that keep test cycles fast: short timeouts and back-offs.
pub const FAST: &str = r#"
[wecom]
messages_per_minute = 0
timeout = "2s"
max_retries = 2
retry_base = "10ms"
blocked_wait = "1s"
"#;

pub const FAST_WEIBAN: &str = r#"
request_timeout = "1s"
retry_base = "10ms"
rate_limit_wait = "200ms"
max_retries = 8
"#;

impl Env {
    /// How many managers' digests the robot received, counted by their first parts.
    pub fn digests_received(&self) -> usize {
        self.robot
            .received()
            .iter()
            .filter(|m| m.content.starts_with("## 客户流失提醒 (1/"))
            .count()
    }

    pub async fn new() -> Self {
        Self::with_options(WeibanSimOptions::default()).await
    }

    pub async fn with_options(options: WeibanSimOptions) -> Self {
        let weiban = WeibanSim::start(options)
            .await
            .expect("start Weiban simulator");
        let robot = RobotSim::start().await.expect("start robot simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let env = Self {
            weiban,
            robot,
            dir,
            config,
        };
        env.write_config(&env.managers_route(&["k1"]), FAST);
        env
    }

    pub fn managers_route(&self, keys: &[&str]) -> String {
        let urls: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{}\"", self.robot.url(k)))
            .collect();
        format!(
            "[[route]]\nname = \"managers\"\naudience = \"managers\"\nwecom_webhooks = [{}]\n",
            urls.join(", ")
        )
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Writes the config: simulator URLs, fast settings, then `routes` and `extra` sections.
    pub fn write_config(&self, routes: &str, extra: &str) {
        let text = format!(
            r#"
[weiban]
base_url = "{}"
corp_id = "sim-corp"
secret = "${{TEST_WEIBAN_SECRET}}"
{FAST_WEIBAN}
[schedule]
cron = "* * * * * *"
[store]
path = "{}"
{extra}
{routes}
"#,
            self.weiban.base_url(),
            self.store_path().display()
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    pub async fn cmd(&self, args: &[&str]) -> Output {
        run(args, &self.config).await
    }

    pub async fn once(&self) -> Output {
        self.cmd(&["once"]).await
    }

    /// The config as the in-process commands read it: the same file with the secret written
    /// in (the environment is the process's own, and setting it while other tests run would
    /// race them).
    fn in_process_config(&self) -> String {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let path = self.dir.path().join("config.in-process.toml");
        std::fs::write(&path, text.replace("${TEST_WEIBAN_SECRET}", "sim-secret"))
            .expect("write config");
        path.display().to_string()
    }

    /// Runs `args --config <config>` in this process (the daemon's own code, on this test's
    /// runtime: under `start_paused` time it runs in milliseconds).
    pub async fn in_process(&self, args: &[&str]) -> InProcess {
        let config = self.in_process_config();
        let mut args = args.to_vec();
        args.extend(["--config", &config]);
        let (_never, shutdown) = Shutdown::new();
        in_process(&args, shutdown).await
    }

    /// `once` in this process.
    pub async fn once_in_process(&self) -> InProcess {
        self.in_process(&["once"]).await
    }

    /// `run` in this process, until `trigger` is pulled: poll the returned future together
    /// with the test's own steps (`tokio::join!`).
    pub fn run_in_process(
        &self,
    ) -> (
        ShutdownTrigger,
        impl std::future::Future<Output = InProcess> + '_,
    ) {
        let config = self.in_process_config();
        let (trigger, shutdown) = Shutdown::new();
        let daemon = async move { in_process(&["run", "--config", &config], shutdown).await };
        (trigger, daemon)
    }
}

/// Runs the binary with `args` and `--config config`, with the test secret in its environment.
///
/// The child is waited for on tokio's blocking pool: a test under paused time would otherwise
/// see its clock jump past the timeout while the child works.
pub async fn run(args: &[&str], config: &Path) -> Output {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_WEIBAN_SECRET", "sim-secret")
        .env("RUST_LOG", "churn_alert=debug");
    let child = tokio::task::spawn_blocking(move || command.output());
    tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("churn-alert did not finish within 300 s")
        .expect("wait for churn-alert")
        .expect("run churn-alert")
}

/// A plain HTTP client for the tests (churn-alert's reqwest brings no crypto provider of its
/// own: ring is installed first, as the daemon does).
pub fn http_client() -> reqwest::Client {
    churn_alert::http::use_ring();
    reqwest::Client::new()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// All accepted message contents, concatenated.
/// A department of the simulated org chart.
pub fn department(id: i64, name: &str, parent: i64) -> SimDepartment {
    SimDepartment {
        id,
        name: name.into(),
        parent,
    }
}

/// An active staff member of the simulated org chart, with an `<id>@example.com` address.
pub fn staff(id: &str, name: &str, departments: Vec<i64>) -> SimStaff {
    SimStaff {
        id: id.into(),
        name: name.into(),
        email: Some(format!("{id}@example.com")),
        status: 1,
        departments,
    }
}

/// What the robot with `key` accepted, one message per line block.
pub fn got(env: &Env, key: &str) -> String {
    env.robot
        .received()
        .into_iter()
        .filter(|m| m.key == key)
        .map(|m| m.content)
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn all_text(robot: &RobotSim) -> String {
    robot
        .received()
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Now, in unix seconds, on the daemon's clock: the system's, or under paused time the
/// virtual wall time an in-process daemon sees.
pub fn now() -> i64 {
    churn_alert::time::unix_now()
}

/// Starts `churn-alert run` on `config` with its logs discarded.
pub fn spawn_quiet_run(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("TEST_WEIBAN_SECRET", "sim-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn churn-alert run")
}

/// Starts `churn-alert run` on the env's config, stderr piped (read it after stopping).
pub fn spawn_run(config: &Path, rust_log: &str) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("TEST_WEIBAN_SECRET", "sim-secret")
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn churn-alert run")
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("child is running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Adds `line` under the `[schedule]` table of the config file.
pub fn add_to_schedule(config: &Path, line: &str) {
    let text = std::fs::read_to_string(config).expect("read config");
    std::fs::write(
        config,
        text.replace("[schedule]\n", &format!("[schedule]\n{line}\n")),
    )
    .expect("write config");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Sets where the live window ends in the store at `store`, as a daemon stopped at `end`
/// would have left it (the store must not be open).
pub fn set_window_end(store: &Path, end: i64) {
    let db = sled::open(store).expect("open store");
    let meta = db.open_tree("meta").expect("meta tree");
    meta.insert("window_end", &end.to_be_bytes())
        .expect("write");
    db.flush().expect("flush");
}
