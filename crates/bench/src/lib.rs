//! The benchmark harness (`churn-alert-bench`): the five figures of BENCHMARKS.md, measured
//! on the real pipeline.
//!
//! Each scenario starts the loopback simulators (`churn-alert-sim`) in this process and the
//! real `churn-alert` binary as a child, the way an operator runs it, and reads the child's
//! CPU time and memory from `/proc` while it runs. `--smoke` runs every scenario at a small
//! scale so that the test suite keeps the harness working; the figures only mean something
//! at full scale, in a release build.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use std::io::Write;

use churn_alert::loss::{DeleteBy, Loss};
use churn_alert::store::Store;
use churn_alert_sim::{RobotSim, SimLoss, WeibanSim, WeibanSimOptions};

mod corps;
mod side;

pub use side::{timed, Cost};

/// What to measure.
#[derive(Debug, clap::Parser)]
#[command(name = "churn-alert-bench", about = "The figures of BENCHMARKS.md")]
pub struct BenchArgs {
    /// Every scenario at a small scale, to check the harness (figures not meaningful).
    #[arg(long)]
    pub smoke: bool,
    /// Simulated Weiban latency per request for the throughput scenario, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Run only these scenarios (1–5), for profiling one of them.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<u8>,
    /// Losses of the host-cost scenario (default 100 000; smoke 2 000).
    #[arg(long)]
    pub host_losses: Option<usize>,
    /// Losses of the store-footprint scenario (default 1 000 000; smoke 20 000).
    #[arg(long)]
    pub store_losses: Option<usize>,
    /// The `churn-alert` binary to measure (default: the one beside this executable).
    #[arg(long)]
    pub exe: Option<PathBuf>,
    /// Losses of the side-by-side scenario 6 (default 10 000; smoke 1 000).
    #[arg(long)]
    pub side_losses: Option<usize>,
    /// Rounds of scenario 6; the median is reported (default 3; smoke 1).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Corps of scenario 7 (default 200; smoke 3).
    #[arg(long)]
    pub corps: Option<usize>,
    /// The shared floor's binary (default: `crates/bench-floor`, built when missing; at smoke
    /// scale only when already built).
    #[arg(long)]
    pub floor_exe: Option<PathBuf>,
    /// Scenario 6 before and after: this other `churn-alert` binary runs in every round too,
    /// right after `--exe` on the same losses, and its median is reported beside it.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Scenario 6 in parts: every round also times `churn-alert preview --live` on the same
    /// losses (fetch, parse, route and render, with nothing stored or sent), to show how much
    /// of `once` is left for the store and the sends.
    #[arg(long)]
    pub decompose: bool,
}

/// Now, in unix seconds.
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sizes of one benchmark run.
struct Scale {
    backfill_losses: usize,
    host_losses: usize,
    packing_losses: usize,
    store_losses: usize,
    latency_schedule_secs: u64,
    latency_samples: usize,
    side_losses: usize,
}

const FULL: Scale = Scale {
    backfill_losses: 20_000,
    host_losses: 100_000,
    packing_losses: 1_000,
    store_losses: 1_000_000,
    latency_schedule_secs: 10,
    latency_samples: 3,
    side_losses: 10_000,
};

const SMOKE: Scale = Scale {
    backfill_losses: 1_000,
    host_losses: 2_000,
    packing_losses: 1_000,
    store_losses: 20_000,
    latency_schedule_secs: 2,
    latency_samples: 1,
    side_losses: 1_000,
};

/// Runs the scenarios `args` asks for against the `churn-alert` binary `exe`, writing one
/// line per figure to `out`.
pub async fn bench(args: &BenchArgs, exe: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let scale = if args.smoke { &SMOKE } else { &FULL };
    let exe = exe.to_path_buf();
    anyhow::ensure!(
        exe.exists(),
        "{} does not exist: build it first with `cargo build --release -p churn-alert`, or pass --exe",
        exe.display()
    );
    let latency = Duration::from_millis(args.latency_ms);
    writeln!(
        out,
        "churn-alert bench ({}; {} build; {} cores)",
        if args.smoke {
            "smoke scale: figures are not meaningful"
        } else {
            "full scale"
        },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;

    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    if wanted(1) {
        let backfill = backfill_throughput(&exe, scale.backfill_losses, latency).await?;
        writeln!(
        out,
        "1. backfill throughput: {} losses, {} requests in {:.1} s = {:.0} requests/min = {:.1} % of the 600/min ceiling; limit errors (10052/10053): {} (target >= 90 %, 0); peak RSS {:.1} MB",
        scale.backfill_losses, backfill.requests, backfill.seconds, backfill.per_minute,
        backfill.per_minute / 6.0, backfill.limit_errors, backfill.peak_mb
    )?;
    }
    if wanted(2) {
        let host_losses = args.host_losses.unwrap_or(scale.host_losses);
        let host = host_cost(&exe, host_losses).await?;
        writeln!(
        out,
        "2. host cost: {} losses end to end in {:.1} s wall, {:.2} CPU s, peak RSS {:.1} MB, {} messages; idle RSS of `run` {:.1} MB (targets <= 40 MB, <= 10 MB)",
        host_losses, host.wall, host.cpu, host.peak_mb, host.messages, host.idle_mb
    )?;
    }
    if wanted(3) {
        let packing = robot_packing(&exe, scale.packing_losses).await?;
        writeln!(
        out,
        "3. robot packing: {} losses over 20 staff in {} messages for {} bytes; ceil(bytes/4096) = {}; ratio {:.3} (target <= 1.15)",
        scale.packing_losses, packing.messages, packing.bytes, packing.floor, packing.ratio
    )?;
    }
    if wanted(4) {
        let store_losses = args.store_losses.unwrap_or(scale.store_losses);
        let footprint = store_footprint(store_losses).await?;
        writeln!(
        out,
        "4. store footprint: {} losses recorded, {} pruned, {} remembered, {} bytes on disk = {:.0} bytes per remembered loss (target <= 300)",
        store_losses, footprint.pruned, footprint.remembered, footprint.bytes, footprint.per_loss
    )?;
    }
    if wanted(5) {
        let latencies =
            end_to_end_latency(&exe, scale.latency_schedule_secs, scale.latency_samples).await?;
        let worst = latencies.iter().cloned().fold(0.0, f64::max);
        writeln!(
        out,
        "5. latency: loss appears -> robot receives, schedule every {} s: {} (worst {:.1} s; target <= {} s)",
        scale.latency_schedule_secs,
        latencies.iter().map(|l| format!("{l:.1} s")).collect::<Vec<_>>().join(", "),
        worst,
        scale.latency_schedule_secs + 5
    )?;
    }
    if wanted(6) {
        let losses = args.side_losses.unwrap_or(scale.side_losses);
        let runs = args.runs.unwrap_or(if args.smoke { 1 } else { 3 });
        let floor = args
            .floor_exe
            .clone()
            .or_else(|| side::floor_exe(!args.smoke));
        let side = side::side_by_side(
            &exe,
            args.against.as_deref(),
            floor.as_deref(),
            losses,
            runs,
            args.decompose,
        )
        .await?;
        writeln!(out, "{}", side::line(&side, losses))?;
    }
    // Two daemons waiting on real schedule ticks (about a minute): not part of `--smoke`,
    // which keeps the test suite fast, unless asked for with `--only 7`.
    if args.only.contains(&7) || (!args.smoke && args.only.is_empty()) {
        let many = args.corps.unwrap_or(if args.smoke { 3 } else { 200 });
        let one = corps::corps(&exe, 1).await?;
        let many = corps::corps(&exe, many).await?;
        writeln!(out, "{}", corps::line(&one, &many))?;
    }
    Ok(())
}

/// A config for the simulators, with a store in `dir`.
fn write_config(
    dir: &Path,
    weiban: &str,
    robot: &str,
    cron: &str,
    per_minute: u32,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("bench.toml");
    let text = format!(
        r#"
[weiban]
base_url = "{weiban}"
corp_id = "sim-corp"
secret = "sim-secret"
first_lookback = "48h"
[schedule]
cron = "{cron}"
[store]
path = "{}"
[wecom]
messages_per_minute = {per_minute}
[[route]]
name = "managers"
audience = "managers"
storm_threshold = 0
wecom_webhooks = ["{robot}"]
"#,
        dir.join("store").display()
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The simulators and a config pointing at them, with a store in a temporary folder.
struct Rig {
    weiban: WeibanSim,
    robot: RobotSim,
    /// Path of the config file.
    config: String,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// `per_minute = 0` turns pacing off, on our side and on the robot's.
    async fn start(
        options: WeibanSimOptions,
        losses: &[SimLoss],
        cron: &str,
        per_minute: u32,
    ) -> anyhow::Result<Self> {
        let weiban = WeibanSim::start(options).await?;
        weiban.add_losses(losses);
        let robot = RobotSim::start().await?;
        if per_minute == 0 {
            robot.set_per_minute(None);
        }
        let dir = tempfile::tempdir()?;
        let config = write_config(
            dir.path(),
            &weiban.base_url(),
            &robot.url("bench"),
            cron,
            per_minute,
        )?;
        Ok(Self {
            weiban,
            robot,
            config: config.display().to_string(),
            _dir: dir,
        })
    }
}

/// CPU seconds and memory of a running child, read from /proc.
#[derive(Debug, Default, Clone, Copy)]
struct ProcSample {
    cpu: f64,
    peak_kb: u64,
    rss_kb: u64,
}

fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name; 100 ticks/s.
    let cpu = (ticks(11)? + ticks(12)?) as f64 / 100.0;
    Some(ProcSample {
        cpu,
        peak_kb: field("VmHWM:")?,
        rss_kb: field("VmRSS:")?,
    })
}

/// Starts `churn-alert run` on `config` in the background.
fn spawn_run(exe: &Path, config: &str) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .args(["run", "--config", config])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// Runs the binary to completion, sampling it every 20 ms.
async fn run_measured(exe: &Path, args: &[&str]) -> anyhow::Result<(f64, ProcSample)> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("child pid")?;
    let mut last = ProcSample::default();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(
                status.success(),
                "churn-alert {} failed: {status}",
                args.join(" ")
            );
            return Ok((started.elapsed().as_secs_f64(), last));
        }
        if let Some(s) = sample(pid) {
            last = ProcSample {
                cpu: s.cpu,
                peak_kb: s.peak_kb.max(last.peak_kb),
                rss_kb: s.rss_kb,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spread(prefix: &str, n: usize, staff: usize, span_secs: i64) -> Vec<SimLoss> {
    let spacing = (span_secs / n.max(1) as i64).max(1);
    SimLoss::generate(prefix, n, staff, unix_now() - 60, spacing)
}

struct Backfill {
    peak_mb: f64,
    requests: u64,
    seconds: f64,
    per_minute: f64,
    limit_errors: u64,
}

async fn backfill_throughput(
    exe: &Path,
    losses: usize,
    latency: Duration,
) -> anyhow::Result<Backfill> {
    let options = WeibanSimOptions {
        latency,
        ..Default::default()
    };
    let rig = Rig::start(
        options,
        &spread("回填", losses, 50, 20 * 3600),
        "0 0 * * * *",
        20,
    )
    .await?;
    let since = chrono::DateTime::from_timestamp(unix_now() - 86_400, 0)
        .context("time")?
        .to_rfc3339();
    let config = &rig.config;
    let (seconds, measured) = run_measured(
        exe,
        &[
            "backfill",
            "--config",
            config,
            "--since",
            &since,
            "--mark-only",
            "--window",
            "2d",
        ],
    )
    .await?;
    let stats = rig.weiban.stats();
    Ok(Backfill {
        peak_mb: measured.peak_kb as f64 / 1024.0,
        requests: stats.outflow_requests,
        seconds,
        per_minute: stats.outflow_requests as f64 / seconds * 60.0,
        limit_errors: stats.limit_errors.values().sum(),
    })
}

struct Host {
    wall: f64,
    cpu: f64,
    peak_mb: f64,
    messages: usize,
    idle_mb: f64,
}

async fn host_cost(exe: &Path, losses: usize) -> anyhow::Result<Host> {
    let rig = Rig::start(
        WeibanSimOptions::default(),
        &spread("成本", losses, 50, 40 * 3600),
        "*/3 * * * * *",
        0,
    )
    .await?;
    let config = &rig.config;
    let (wall, measured) = run_measured(exe, &["once", "--config", config]).await?;
    let messages = rig.robot.received().len();

    // Idle: `run` on the same store, sampled between its cycles (every 3 s).
    let mut child = spawn_run(exe, config)?;
    let pid = child.id().context("child pid")?;
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        if let Some(s) = sample(pid) {
            samples.push(s.rss_kb);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.start_kill()?;
    let _ = child.wait().await;
    samples.sort_unstable();
    let idle_kb = samples.get(samples.len() / 2).copied().unwrap_or(0);
    Ok(Host {
        wall,
        cpu: measured.cpu,
        peak_mb: measured.peak_kb as f64 / 1024.0,
        messages,
        idle_mb: idle_kb as f64 / 1024.0,
    })
}

struct Packing {
    messages: usize,
    bytes: usize,
    floor: usize,
    ratio: f64,
}

async fn robot_packing(exe: &Path, losses: usize) -> anyhow::Result<Packing> {
    let rig = Rig::start(
        WeibanSimOptions::default(),
        &spread("装箱", losses, 20, 3600),
        "0 0 * * * *",
        0,
    )
    .await?;
    run_measured(exe, &["once", "--config", &rig.config]).await?;
    let received = rig.robot.received();
    let bytes: usize = received.iter().map(|m| m.content.len()).sum();
    let floor = bytes.div_ceil(4096).max(1);
    Ok(Packing {
        messages: received.len(),
        bytes,
        floor,
        ratio: received.len() as f64 / floor as f64,
    })
}

struct Footprint {
    pruned: usize,
    remembered: usize,
    bytes: u64,
    per_loss: f64,
}

async fn store_footprint(losses: usize) -> anyhow::Result<Footprint> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store");
    let now = unix_now();
    // Spread over 100 days, pruned at 90 days: a tenth goes.
    let span = 100 * 86_400;
    let store = Store::open(&path)?;
    let mut batch = Vec::with_capacity(1000);
    for i in 0..losses {
        let staff = i % 50;
        batch.push((
            Loss {
                customer_id: format!("wmP_2OPAAA{i:022}"),
                customer_name: String::new(),
                remark: None,
                corp_name: None,
                staff_id: format!("staff{staff:02}"),
                staff_name: String::new(),
                staff_email: None,
                outflow_at: now - (i as i64 * span / losses as i64),
                delete_by: DeleteBy::Customer,
                tags: Vec::new(),
                added_at: None,
                channel: None,
                add_way: None,
                departments: Vec::new(),
                staff_left: false,
                still_followed_by: Vec::new(),
            },
            Vec::new(),
        ));
        if batch.len() == 1000 {
            store.record(&batch, |_| now).await?;
            batch.clear();
        }
    }
    store.record(&batch, |_| now).await?;
    let pruned = store.prune(now - 90 * 86_400).await?;
    let remembered = store.stats()?.remembered_losses;
    store.flush().await?;
    drop(store);
    let bytes = dir_size(&path)?;
    Ok(Footprint {
        pruned,
        remembered,
        bytes,
        per_loss: bytes as f64 / remembered.max(1) as f64,
    })
}

fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

async fn end_to_end_latency(
    exe: &Path,
    schedule_secs: u64,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let cron = format!("*/{schedule_secs} * * * * *");
    let rig = Rig::start(WeibanSimOptions::default(), &[], &cron, 20).await?;
    let mut child = spawn_run(exe, &rig.config)?;
    let mut latencies = Vec::new();
    for i in 0..samples {
        // A random moment within the schedule's period.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(
            500..schedule_secs * 1000,
        )))
        .await;
        let before = rig.robot.received().len();
        let appeared = Instant::now();
        rig.weiban
            .add_losses(&SimLoss::generate(&format!("延迟{i}"), 1, 1, unix_now(), 1));
        let deadline = appeared + Duration::from_secs(schedule_secs * 3 + 30);
        while rig.robot.received().len() == before {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the loss never reached the robot"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.push(appeared.elapsed().as_secs_f64());
    }
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(latencies)
}
