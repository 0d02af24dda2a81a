//! Scenario 7: many corps in one daemon. One cycle of N corps with 10 losses each: its CPU and
//! wall time, the idle RSS of `run` against one corp's, and the Weiban requests per corp.
//!
//! One Weiban simulator stands in for the N accounts (its limits are off: they are each
//! account's own, not shared), and each corp has its own robot key, so robot pacing never
//! couples them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use churn_alert_sim::{RobotSim, SimLoss, WeibanSim, WeibanSimOptions};

use super::{sample, spawn_run};

/// What one run of N corps cost.
pub(crate) struct Corps {
    pub corps: usize,
    /// From the first Weiban request of the cycle to the last corp's message accepted.
    pub cycle_wall: f64,
    pub cycle_cpu: f64,
    /// Median RSS between cycles after the first, MB.
    pub idle_mb: f64,
    /// Outflow requests per corp: the first cycle (a day's look-back: a count, then the page)
    /// and a regular one.
    pub first_requests: f64,
    pub regular_requests: f64,
}

fn config(dir: &Path, weiban: &str, robot: &RobotSim, corps: usize) -> anyhow::Result<String> {
    let mut text = format!(
        "[schedule]\ncron = \"*/20 * * * * *\"\n[store]\npath = \"{}\"\n[wecom]\nmessages_per_minute = 0\n",
        dir.join("store").display()
    );
    for i in 0..corps {
        text.push_str(&format!(
            "\n[[corp]]\nname = \"corp-{i:03}\"\n[corp.weiban]\nbase_url = \"{weiban}\"\ncorp_id = \"sim-corp\"\nsecret = \"sim-secret\"\n[[corp.route]]\nname = \"managers\"\naudience = \"managers\"\nwecom_webhooks = [\"{}\"]\n",
            robot.url(&format!("k{i:03}"))
        ));
    }
    let path = dir.join("corps.toml");
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// Runs `run` over `corps` corps for two cycles.
pub(crate) async fn corps(exe: &Path, corps: usize) -> anyhow::Result<Corps> {
    let weiban = WeibanSim::start(WeibanSimOptions {
        enforce_limits: false,
        ..WeibanSimOptions::default()
    })
    .await?;
    let now = chrono::Utc::now().timestamp();
    weiban.add_losses(&SimLoss::generate("多企业", 10, 3, now - 60, 5));
    let robot = RobotSim::start().await?;
    robot.set_per_minute(None);
    let dir = tempfile::tempdir()?;
    let config = config(dir.path(), &weiban.base_url(), &robot, corps)?;
    let mut child = spawn_run(exe, &config)?;
    let pid = child.id().context("child pid")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Before the first cycle: startup done, nothing polled yet.
    let mut before = None;
    while weiban.stats().outflow_requests == 0 {
        anyhow::ensure!(Instant::now() < deadline, "no corp polled Weiban");
        before = sample(pid).or(before);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let before = before.context("no sample of the daemon")?;
    let served = |robot: &RobotSim| {
        let mut keys: Vec<String> = robot.received().into_iter().map(|m| m.key).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    };
    while served(&robot) < corps {
        anyhow::ensure!(Instant::now() < deadline, "not every corp was served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cycle_wall = started.elapsed().as_secs_f64();
    let after = sample(pid).context("no sample of the daemon")?;
    let first = weiban.stats().outflow_requests;
    // The next cycle, 20 s after the first: regular windows. Then idle.
    let next = Instant::now() + Duration::from_secs(25);
    let mut rss = Vec::new();
    while Instant::now() < next {
        if let Some(s) = sample(pid) {
            rss.push(s.rss_kb);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let regular = weiban.stats().outflow_requests - first;
    child.start_kill()?;
    let _ = child.wait().await;
    rss.sort_unstable();
    let idle_kb = rss.get(rss.len() / 2).copied().unwrap_or(0);
    Ok(Corps {
        corps,
        cycle_wall,
        cycle_cpu: after.cpu - before.cpu,
        idle_mb: idle_kb as f64 / 1024.0,
        first_requests: first as f64 / corps as f64,
        regular_requests: regular as f64 / corps as f64,
    })
}

/// The line of BENCHMARKS.md: N corps against one.
pub(crate) fn line(one: &Corps, many: &Corps) -> String {
    let growth =
        (many.idle_mb - one.idle_mb) / (many.corps.saturating_sub(one.corps).max(1)) as f64;
    format!(
        "7. corps: one cycle of {} corps x 10 losses in {:.2} s wall ({:.1} % of a 5-minute schedule; target < 10 %), {:.2} CPU s; idle RSS {:.1} MB against {:.1} MB for {} corp = {:.3} MB per corp (target <= 0.1); Weiban outflow requests per corp: {:.2} in the first cycle, {:.2} in a regular one (one corp alone: {:.2} and {:.2})",
        many.corps,
        many.cycle_wall,
        many.cycle_wall / 300.0 * 100.0,
        many.cycle_cpu,
        many.idle_mb,
        one.idle_mb,
        one.corps,
        growth,
        many.first_requests,
        many.regular_requests,
        one.first_requests,
        one.regular_requests,
    )
}
