//! `churn-alert demo`: the whole pipeline against the built-in simulators, no credentials.
//!
//! Starts a Weiban stand-in holding generated losses (plus the documented example) and a
//! robot stand-in that prints what WeCom would show, writes a config with both audiences (a
//! managers' digest and per-salesperson messages with @-mentions) and a store in a temporary
//! folder, and runs one real cycle.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::DemoArgs;
use crate::config::{env_from, Config};
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::time::unix_now;
use churn_alert_sim::{RobotSim, SimLoss, WeibanSim, WeibanSimOptions};

pub(crate) async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let weiban = WeibanSim::start(WeibanSimOptions::default()).await?;
    weiban.add_losses(&SimLoss::generate(
        "演示",
        args.losses,
        args.staff,
        now - 60,
        7 * 60,
    ));
    let mut example: serde_json::Value = serde_json::from_str(churn_alert_sim::OUTFLOW_EXAMPLE)?;
    example["external_user_list"][0]["outflow_at"] = (now - 300).into();
    if let Some(items) = example["external_user_list"].as_array() {
        weiban.add_raw(items.clone());
    }
    let robot = RobotSim::start().await?;
    robot.set_print(true);

    let dir = tempfile::tempdir()?;
    let text = demo_config(
        &weiban.base_url(),
        &robot.url("demo-managers"),
        &robot.url("demo-sales"),
        &dir.path().join("store"),
    );
    let config = Config::from_toml(&text, Path::new("demo.toml"), &env_from(BTreeMap::new()))?;
    config.register_secrets();
    let store = Store::open(&config.store.path)?;
    let pipeline = Pipeline::new(config, store)?;

    println!(
        "churn-alert demo: 模拟微伴中有 {} 位流失客户（{} 位员工），运行一次完整周期……\n",
        args.losses + 1,
        args.staff
    );
    let report = pipeline.cycle(&Shutdown::never()).await?;
    let received = robot.received();
    println!(
        "demo 完成：拉取 {} 条流失记录，新增 {} 条，机器人接收 {} 条消息，待发送 {} 条。",
        report.poll.fetched,
        report.poll.new_losses,
        received.len(),
        report.pending
    );
    println!("go live: copy config.example.toml, set WEIBAN_CORP_ID / WEIBAN_SECRET and your robot URL, then `churn-alert check` and `churn-alert run`.");
    Ok(if report.is_clean() && !received.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Both audiences: the managers' digest, and one message per salesperson with a mention.
fn demo_config(weiban: &str, managers: &str, sales: &str, store: &Path) -> String {
    format!(
        r#"
[weiban]
base_url = "{weiban}"
corp_id = "sim-corp"
secret = "sim-secret"
[schedule]
cron = "*/5 * * * *"
[store]
path = "{}"
[[route]]
name = "managers"
audience = "managers"
wecom_webhooks = ["{managers}"]
[[route]]
name = "sales"
audience = "staff"
mention = true
wecom_webhooks = ["{sales}"]
"#,
        store.display().to_string().replace('\\', "/")
    )
}
