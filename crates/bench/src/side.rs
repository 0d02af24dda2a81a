//! Scenario 6: churn-alert side by side with the shared floor and the Python peer.
//!
//! The two references are kept byte for byte as they were given (`crates/bench-floor`, the
//! least any poller must spend: fetch and parse into a typed struct; `python_peer.py`, what a
//! team would write in an afternoon). Each program runs as its own process against fresh
//! simulators holding the same losses; only its own CPU time counts (user + system, from
//! `getrusage` of this process's children, to the microsecond) and its peak RSS (from
//! `/usr/bin/time`), so the simulators in this process never do. The median of `runs` rounds
//! is reported, as the goals ask.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use churn_alert_sim::WeibanSimOptions;

use super::{spread, Rig};

/// The Python peer, kept beside the harness and written out at run time.
const PEER: &str = include_str!("../python_peer.py");

/// One program's cost in one run.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub cpu: f64,
    pub peak_mb: f64,
}

/// Scenario 6's medians; `None` where a reference could not run (no floor binary, no
/// python3 with `requests`).
pub(crate) struct SideBySide {
    pub floor: Option<Cost>,
    pub python: Option<Cost>,
    pub churn: Cost,
    /// `--against`: the other churn-alert binary of a before-and-after round.
    pub against: Option<Cost>,
    /// `--decompose`: `preview --live` of the measured binary on the same losses.
    pub preview: Option<Cost>,
    pub runs: usize,
}

/// The shared floor's binary, built from `crates/bench-floor` (its own lock file, outside the
/// workspace) when it is missing and `build` allows it.
pub(crate) fn floor_exe(build: bool) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-floor");
    let exe = dir.join("target/release/floor");
    if exe.exists() {
        return Some(exe);
    }
    if !build {
        return None;
    }
    eprintln!("churn-alert-bench: building the shared floor (crates/bench-floor) once");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .ok()?;
    (status.success() && exe.exists()).then_some(exe)
}

/// Whether python3 with `requests` is here (the peer needs it).
fn python_ready() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `exe args` to completion under `/usr/bin/time`, and returns its own CPU and peak RSS.
///
/// The CPU comes from this process's `getrusage(RUSAGE_CHILDREN)` before and after, to the
/// microsecond (no other child runs meanwhile), and includes `/usr/bin/time`'s own (about a
/// millisecond). `/usr/bin/time` prints user and system time cut down to hundredths of a
/// second, each: 5 ms too little on average for each, a fifth of the floor's 0.04 s, and that
/// is the figure every ratio to the floor divides by. `/usr/bin/time` is kept for the peak
/// RSS, which `RUSAGE_CHILDREN` gives only for all children together. Without it (Debian's
/// `time` package), the peak comes from sampling `/proc`, which misses the last few
/// milliseconds: good enough for the smoke run, not for the figures.
pub async fn timed(exe: &Path, args: &[String]) -> anyhow::Result<Cost> {
    let before = children_cpu()?;
    if !Path::new("/usr/bin/time").exists() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, sample) = super::run_measured(exe, &args).await?;
        return Ok(Cost {
            cpu: children_cpu()? - before,
            peak_mb: sample.peak_kb as f64 / 1024.0,
        });
    }
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("time");
    let output = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&report)
        .arg(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .context("/usr/bin/time could not be started (Debian: apt-get install time)")?;
    let cpu = children_cpu()? - before;
    anyhow::ensure!(
        output.status.success(),
        "{} {} failed: {}",
        exe.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    if std::env::var_os("BENCH_SHOW_OUTPUT").is_some() {
        eprintln!(
            "{}: {}",
            exe.display(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    let text = std::fs::read_to_string(&report)?;
    let fields: Vec<f64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [user, system, peak_kb] = fields[..] else {
        anyhow::bail!("/usr/bin/time wrote {text:?}");
    };
    if std::env::var_os("BENCH_SHOW_OUTPUT").is_some() {
        eprintln!(
            "{}: {cpu:.4} CPU s (getrusage), {:.2} (/usr/bin/time)",
            exe.display(),
            user + system
        );
    }
    Ok(Cost {
        cpu,
        peak_mb: peak_kb / 1024.0,
    })
}

/// User and system CPU seconds of every child this process has waited for.
fn children_cpu() -> anyhow::Result<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(seconds(usage.user_time()) + seconds(usage.system_time()))
}

/// One `churn-alert once` of `exe` against fresh simulators, which must have received
/// messages: a build that fetches and sends nothing must not pass for a fast one.
/// `BENCH_PROFILE="perf record -g -o /tmp/once.perf"` runs it under that command, whose own
/// cost then counts too: for profiling only. With `--decompose` the command wraps `preview`
/// as well (its second argument is the subcommand), so a command that writes one file must
/// tell the two apart.
async fn churn_once<F, Fut>(exe: &Path, fresh: &F) -> anyhow::Result<Cost>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Rig>>,
{
    let rig = fresh().await?;
    let cost = profiled(exe, &["once", "--config", &rig.config]).await?;
    let received = rig.robot.received();
    anyhow::ensure!(
        !received.is_empty(),
        "{} sent nothing to the robot",
        exe.display()
    );
    if std::env::var_os("BENCH_SHOW_OUTPUT").is_some() {
        let bytes: usize = received.iter().map(|m| m.content.len()).sum();
        let served = rig.weiban.stats();
        eprintln!(
            "{}: {} messages, {bytes} bytes of markdown; {} outflow requests, {} items served",
            exe.display(),
            received.len(),
            served.outflow_requests,
            served.items_served
        );
    }
    Ok(cost)
}

/// One churn-alert run of a round of scenario 6.
#[derive(Clone, Copy)]
enum Run<'a> {
    /// `once` of the measured binary.
    Once,
    /// `once` of the `--against` binary.
    Against(&'a Path),
    /// `preview --live` of the measured binary (`--decompose`).
    Preview,
}

/// One `churn-alert preview --live` of `exe` against fresh simulators holding `losses`: it
/// must have read them all and sent nothing.
async fn preview<F, Fut>(exe: &Path, fresh: &F, losses: usize) -> anyhow::Result<Cost>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Rig>>,
{
    let rig = fresh().await?;
    let cost = profiled(exe, &["preview", "--live", "--config", &rig.config]).await?;
    let served = rig.weiban.stats().items_served;
    anyhow::ensure!(
        served >= losses as u64,
        "preview --live read {served} of the {losses} losses"
    );
    anyhow::ensure!(
        rig.robot.received().is_empty(),
        "preview --live sent to the robot"
    );
    Ok(cost)
}

/// [`timed`], under the command in `BENCH_PROFILE` when it is set.
async fn profiled(exe: &Path, args: &[&str]) -> anyhow::Result<Cost> {
    let args = args.iter().map(|a| a.to_string());
    match std::env::var("BENCH_PROFILE") {
        Ok(wrapper) => {
            let mut words = wrapper.split_whitespace().map(str::to_owned);
            let program = words.next().context("BENCH_PROFILE is empty")?;
            let args: Vec<String> = words
                .chain([exe.display().to_string()])
                .chain(args)
                .collect();
            timed(Path::new(&program), &args).await
        }
        Err(_) => timed(exe, &args.collect::<Vec<_>>()).await,
    }
}

fn median(mut costs: Vec<Cost>) -> Option<Cost> {
    costs.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
    let mid = costs.get(costs.len() / 2).copied()?;
    let mut peaks: Vec<f64> = costs.iter().map(|c| c.peak_mb).collect();
    peaks.sort_by(f64::total_cmp);
    Some(Cost {
        cpu: mid.cpu,
        peak_mb: peaks[peaks.len() / 2],
    })
}

/// The floor, the Python peer and churn-alert on the same `losses`, `runs` times each, as
/// separate processes against fresh simulators (the same limits for all: none enforced, since
/// neither reference paces itself; churn-alert paces itself as configured).
pub(crate) async fn side_by_side(
    exe: &Path,
    against: Option<&Path>,
    floor: Option<&Path>,
    losses: usize,
    runs: usize,
    decompose: bool,
) -> anyhow::Result<SideBySide> {
    // Inside the references' 24-hour window.
    let data = spread("对照", losses, 50, 20 * 3600);
    let options = || WeibanSimOptions {
        enforce_limits: false,
        ..WeibanSimOptions::default()
    };
    let fresh = || Rig::start(options(), &data, "*/3 * * * * *", 0);
    let python = python_ready();
    if !python {
        eprintln!("churn-alert-bench: python3 with `requests` is missing; the Python peer's figure is left out");
    }
    let (mut churn, mut floors, mut pythons) = (Vec::new(), Vec::new(), Vec::new());
    let (mut againsts, mut previews) = (Vec::new(), Vec::new());
    for round in 0..runs {
        // The churn-alert runs of a round take turns going first, so that none always runs on
        // a warmer machine.
        let mut order = vec![Run::Once];
        order.extend(against.map(Run::Against));
        if decompose {
            order.push(Run::Preview);
        }
        if round % 2 == 1 {
            order.reverse();
        }
        for run in order {
            match run {
                Run::Once => churn.push(churn_once(exe, &fresh).await?),
                Run::Against(other) => againsts.push(churn_once(other, &fresh).await?),
                Run::Preview => previews.push(preview(exe, &fresh, losses).await?),
            }
        }
        if let Some(floor) = floor {
            let rig = fresh().await?;
            let args = [
                rig.weiban.base_url(),
                "sim-corp".into(),
                "sim-secret".into(),
            ];
            floors.push(timed(floor, &args).await?);
        }
        if python {
            let rig = fresh().await?;
            let dir = tempfile::tempdir()?;
            let script = dir.path().join("python_peer.py");
            std::fs::write(&script, PEER)?;
            let args = [
                script.display().to_string(),
                rig.weiban.base_url(),
                "sim-corp".into(),
                "sim-secret".into(),
                rig.robot.url("bench"),
                dir.path().join("peer.db").display().to_string(),
            ];
            pythons.push(timed(Path::new("python3"), &args).await?);
        }
    }
    Ok(SideBySide {
        floor: median(floors),
        python: median(pythons),
        churn: median(churn).context("no run")?,
        against: median(againsts),
        preview: median(previews),
        runs,
    })
}

/// Scenario 6's line of output.
pub(crate) fn line(side: &SideBySide, losses: usize) -> String {
    let show = |c: Option<Cost>| {
        c.map_or("not run".to_owned(), |c| {
            format!("{:.3} CPU s, peak RSS {:.1} MB", c.cpu, c.peak_mb)
        })
    };
    let churn = side.churn.cpu.max(1e-6);
    format!(
        "6. side by side, {losses} losses in {} pages, median of {} runs: floor (shared: reqwest + typed serde) {}; Python peer (shared: requests + sqlite3 + f-strings) {}; churn-alert `once` {}; churn-alert / floor = {} (target <= 3), Python / churn-alert = {} (target >= 4)",
        losses.div_ceil(100),
        side.runs,
        show(side.floor),
        show(side.python),
        show(Some(side.churn)),
        side.floor.map_or("-".to_owned(), |f| format!("{:.2}x", churn / f.cpu.max(1e-6))),
        side.python.map_or("-".to_owned(), |p| format!("{:.2}x", p.cpu / churn)),
    ) + &side.against.map_or(String::new(), |against| {
        format!("; against: churn-alert `once` {}", show(Some(against)))
    }) + &side.preview.map_or(String::new(), |preview| {
        format!(
            "; churn-alert `preview --live` (fetch, parse, route and render; nothing stored or sent) {}{}",
            show(Some(preview)),
            side.floor.map_or(String::new(), |f| format!(
                "; preview / floor = {:.2}x",
                preview.cpu / f.cpu.max(1e-6)
            ))
        )
    })
}
