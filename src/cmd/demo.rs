//! `churn-alert demo`: the whole pipeline against the built-in simulators, no credentials.
//!
//! Starts a Weiban stand-in holding generated losses (plus the documented example) and a
//! robot stand-in that prints what WeCom would show, writes a config with both audiences (a
//! managers' digest and per-salesperson messages with @-mentions) and a store in a temporary
//! folder, and runs one real cycle. Then it sends the weekly report for last week, from a
//! month of older losses the simulator also holds: the summary, the trend chart and the
//! spreadsheet, as a robot receives them.
//!
//! The config has two corps (`[[corp]]`): the head office `hq`, all of the above, and a
//! subsidiary brand `brand-b` with a Weiban account and a managers' robot of its own, whose
//! digest follows under its own heading, as one daemon serves several corps.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::DemoArgs;
use crate::config::{env_from, Config};
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::time::unix_now;
use churn_alert_sim::{RobotSim, SimDepartment, SimLoss, SimStaff, WeibanSim, WeibanSimOptions};

pub(crate) async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let weiban = simulated_weiban(args, now).await?;
    let robot = RobotSim::start().await?;
    robot.set_print(true);

    let brand = WeibanSim::start(WeibanSimOptions::default()).await?;
    brand.add_losses(&SimLoss::generate("品牌B", 3, 2, now - 120, 9 * 60));

    let dir = tempfile::tempdir()?;
    let text = demo_config(
        &weiban.base_url(),
        &brand.base_url(),
        &robot,
        &dir.path().join("store"),
    );
    let mut configs =
        Config::from_toml_all(&text, Path::new("demo.toml"), &env_from(BTreeMap::new()))?;
    for config in &configs {
        config.register_secrets();
    }
    anyhow::ensure!(configs.len() == 2, "the demo config has two corps");
    let brand_config = configs.remove(1);
    let config = configs.remove(0);
    let whole = Store::open(&config.store.path)?;
    let hq_store = whole.corp(&config.corp)?;
    let pipeline = Pipeline::new(config, hq_store)?;
    let brand_store = whole.corp(&brand_config.corp)?;
    let brand_pipeline = Pipeline::new(brand_config, brand_store)?;
    use crate::server::corp_label::scope;

    // The generated staff, plus the documented example's own staff member.
    let staff = args.staff.min(args.losses.max(1)) + 1;
    crate::cmd::console::show!(
        "churn-alert demo: 一个守护进程服务两个企业（[[corp]]）：总部 `hq` 与子品牌 `brand-b`。\n"
    );
    crate::cmd::console::show!(
        "━━ 企业 hq（总部）━━ 模拟微伴中有 {} 位流失客户（{staff} 位员工），运行一次完整周期……",
        args.losses + 1,
    );
    crate::cmd::console::show!("  路由 managers（经理汇总）→ 群机器人 `{MANAGERS_ROBOT}`");
    crate::cmd::console::show!("  路由 sales（员工各自的消息，@提及）→ 群机器人 `{SALES_ROBOT}`\n");
    let hq = pipeline.config().corp.clone();
    let (report, weekly) = scope(hq, async {
        let report = pipeline.cycle(&Shutdown::never()).await?;
        if crate::report::anomaly::alert(&pipeline, now).await? > 0 {
            pipeline.deliver(now, &Shutdown::never()).await?;
        }
        let weekly = weekly_report(&pipeline, now, args.out.as_deref()).await?;
        anyhow::Ok((report, weekly))
    })
    .await?;
    crate::cmd::console::show!(
        "\n━━ 企业 brand-b（子品牌：自己的微伴账号，自己的群机器人 `{BRAND_ROBOT}`）━━ 模拟微伴中有 3 位流失客户，运行一次完整周期……\n"
    );
    let brand_corp = brand_pipeline.config().corp.clone();
    let brand_report = scope(brand_corp, brand_pipeline.cycle(&Shutdown::never())).await?;
    let received = robot.received();
    crate::cmd::console::show!(
        "demo 完成：拉取 {} 条流失记录，新增 {} 条，机器人接收 {} 条消息，待发送 {} 条。",
        report.poll.fetched,
        report.poll.new_losses,
        received.len(),
        report.pending
    );
    let org_requests: u64 = weiban.directory_requests().values().sum();
    crate::cmd::console::show!(
        "  微伴请求：流失列表 {} 次，员工目录与客户详情 {} 次（{:?}）",
        weiban.stats().outflow_requests,
        org_requests,
        weiban.directory_requests()
    );
    let to = |key: &str| received.iter().filter(|m| m.key == key).count();
    crate::cmd::console::show!(
        "  企业 hq：群机器人 `{MANAGERS_ROBOT}`（路由 managers）：{} 条；群机器人 `{SALES_ROBOT}`（路由 sales）：{} 条",
        to(MANAGERS_ROBOT),
        to(SALES_ROBOT)
    );
    crate::cmd::console::show!(
        "  企业 brand-b：群机器人 `{BRAND_ROBOT}`（路由 managers）：{} 条，新增流失 {} 条",
        to(BRAND_ROBOT),
        brand_report.poll.new_losses
    );
    crate::cmd::console::show!(
        "\n下一步 / next steps: README.zh-CN.md「从零到第一条测试消息」(README.md: \"From zero to the first test message\")\n  # 第 3 步：把 README 中的最小配置保存为 config.toml（第一次测试不要用 config.example.toml：\n  #         它的示例机器人与邮箱会让测试消息失败）\n  # step 3: save the README's minimal config as config.toml (not config.example.toml, whose\n  #         sample robots and mailboxes make the test message fail)\n  cp deploy/churn-alert.env.example churn-alert.env && chmod 0600 churn-alert.env && vi churn-alert.env\n  set -a && . ./churn-alert.env && set +a\n  churn-alert check --config config.toml --online --send-test\n  churn-alert once --config config.toml\n  churn-alert run --config config.toml"
    );
    Ok(
        if report.is_clean() && brand_report.is_clean() && weekly && to(BRAND_ROBOT) > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// The simulated Weiban: the requested losses, a month of history for the weekly report, the
/// documented example, the org chart, and a colleague who still follows one customer.
async fn simulated_weiban(args: &DemoArgs, now: i64) -> anyhow::Result<WeibanSim> {
    let weiban = WeibanSim::start(WeibanSimOptions::default()).await?;
    weiban.add_losses(&SimLoss::generate(
        "演示",
        args.losses,
        args.staff,
        now - 60,
        7 * 60,
    ));
    // A month of history, for the weekly report: older than the first poll's window (a
    // day), so the alerts do not repeat it.
    weiban.add_losses(&SimLoss::generate(
        "历史",
        160,
        args.staff.max(1) + 2,
        now - 2 * 86_400,
        4 * 3600 + 1234,
    ));
    let mut example: serde_json::Value = serde_json::from_str(churn_alert_sim::OUTFLOW_EXAMPLE)?;
    example["external_user_list"][0]["outflow_at"] = (now - 300).into();
    if let Some(items) = example["external_user_list"].as_array() {
        weiban.add_raw(items.clone());
    }
    weiban.set_directory(
        DEPARTMENTS.iter().map(department).collect(),
        org_staff(args.staff),
    );
    // A colleague still has one of the customers: the digest says so.
    weiban.set_followers("wm_演示_000001", &[("staff02", "销售02")]);
    Ok(weiban)
}

/// Sends last week's report to the managers' robot; true when it was delivered.
async fn weekly_report(pipeline: &Pipeline, now: i64, out: Option<&Path>) -> anyhow::Result<bool> {
    use crate::report::send::{run, send_now, today};
    use crate::report::Period;
    let config = pipeline.config();
    let Some(spec) = config.report("weekly") else {
        anyhow::bail!("the demo config has no weekly report");
    };
    let period = Period::last_whole(spec.period, today(config.timezone(), now));
    crate::cmd::console::show!(
        "\n运行周报 `weekly`（{}，等同于 churn-alert report --name weekly）……\n",
        period.label()
    );
    let run = run(pipeline, spec, period, now, out, false, &Shutdown::never()).await?;
    for path in &run.written {
        crate::cmd::console::show!("  写入 {path}");
    }
    let sent = send_now(pipeline, &run, now, &Shutdown::never()).await?;
    Ok(sent.iter().all(|(_, s)| {
        matches!(
            s,
            crate::report::send::Sent::Delivered { .. }
                | crate::report::send::Sent::AlreadyDelivered
        )
    }))
}

/// The demo's org chart: (id, name, parent).
const DEPARTMENTS: [(i64, &str, i64); 4] = [
    (1, "演示公司", 0),
    (2, "销售一部", 1),
    (3, "华东组", 2),
    (4, "销售二部", 1),
];

fn department(&(id, name, parent): &(i64, &str, i64)) -> SimDepartment {
    SimDepartment {
        id,
        name: name.to_owned(),
        parent,
    }
}

/// The generated staff, spread over the teams (`mia`, the documented example's, has left).
fn org_staff(count: usize) -> Vec<SimStaff> {
    let mut staff: Vec<SimStaff> = (0..count)
        .map(|i| SimStaff {
            id: format!("staff{i:02}"),
            name: format!("销售{i:02}"),
            email: Some(format!("staff{i:02}@example.com")),
            status: 1,
            departments: vec![[3, 4][i % 2]],
        })
        .collect();
    staff.push(SimStaff {
        id: "mia".into(),
        name: "左的超长无限同城的名称".into(),
        email: None,
        status: 4,
        departments: vec![2],
    });
    staff
}

/// The demo's robots, by key.
const MANAGERS_ROBOT: &str = "demo-managers";
const SALES_ROBOT: &str = "demo-sales";
const BRAND_ROBOT: &str = "brand-b-managers";

/// Two corps. `hq` has both audiences (the managers' digest, and one message per salesperson
/// with a mention) and the weekly report; `brand-b` has a managers' digest of its own.
fn demo_config(weiban: &str, brand: &str, robot: &RobotSim, store: &Path) -> String {
    let (managers, sales, brand_robot) = (
        robot.url(MANAGERS_ROBOT),
        robot.url(SALES_ROBOT),
        robot.url(BRAND_ROBOT),
    );
    format!(
        r#"
[schedule]
cron = "*/5 * * * *"
[store]
path = "{}"

[[corp]]
name = "hq"
[corp.weiban]
base_url = "{weiban}"
corp_id = "sim-corp"
secret = "sim-secret"
[[corp.route]]
name = "managers"
audience = "managers"
group_by = "department"
wecom_webhooks = ["{managers}"]
[[corp.route]]
name = "sales"
audience = "staff"
mention = true
wecom_webhooks = ["{sales}"]
[[corp.report]]
name = "weekly"
cron = "0 9 * * 1"
period = "week"
route = "managers"

[[corp]]
name = "brand-b"
[corp.weiban]
base_url = "{brand}"
corp_id = "sim-corp"
secret = "sim-secret"
[[corp.route]]
name = "managers"
audience = "managers"
wecom_webhooks = ["{brand_robot}"]
"#,
        store.display().to_string().replace('\\', "/")
    )
}
