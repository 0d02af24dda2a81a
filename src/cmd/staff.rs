//! `churn-alert staff`: Weiban's staff directory as churn-alert sees it.
//!
//! Read fresh from Weiban (the same calls the daemon makes), so that an operator can look up
//! the userids and department names to put in the config.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::StaffArgs;
use crate::directory::DepartmentRef;
use crate::render::escape::terminal;
use crate::source::WeibanClient;
use crate::time::unix_now;

/// One line of the directory.
#[derive(Serialize)]
struct Row<'a> {
    /// The WeCom userid: what `staff`, `staff_webhooks` and mentions use.
    id: &'a str,
    name: &'a str,
    departments: Vec<String>,
    status: &'static str,
    email_known: bool,
}

pub(crate) async fn staff(args: &StaffArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let directory = WeibanClient::new(&config.weiban)?
        .directory(unix_now())
        .await?;
    let within = match &args.department {
        Some(name) => Some(directory.resolve(&DepartmentRef::from_key(name))?),
        None => None,
    };
    let rows: Vec<Row> = directory
        .staff
        .values()
        .filter(|s| within.is_none_or(|d| directory.staff_within(&s.id, d)))
        .map(|s| Row {
            id: &s.id,
            name: &s.name,
            departments: directory.paths_of(&s.id),
            status: s.status_text(),
            email_known: s.email.is_some(),
        })
        .collect();
    if args.json {
        crate::cmd::console::show!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    crate::cmd::console::show!(
        "{:<20} {:<12} {:<6} {:<6} 部门",
        "userid",
        "姓名",
        "状态",
        "邮箱"
    );
    for row in &rows {
        crate::cmd::console::show!(
            "{:<20} {:<12} {:<6} {:<6} {}",
            terminal(row.id),
            terminal(row.name),
            row.status,
            if row.email_known { "有" } else { "无" },
            terminal(&row.departments.join("、"))
        );
    }
    crate::cmd::console::say!("{} staff member(s)", rows.len());
    Ok(ExitCode::SUCCESS)
}
