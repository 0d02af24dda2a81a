//! Validation: from the file as written ([`RawConfig`]) to a [`Config`] whose values are
//! parsed into their types once (schedule, time zone, quiet hours, listen address) and make
//! sense together. Every error names its key.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::addresses::{check_http_url, check_mailbox, check_robot_url};
use super::raw::{RawConfig, RawSchedule, RawServer, RouteConfig, WeibanConfig};
use super::{Config, ConfigError, ScheduleSettings, ServerSettings};
use crate::config::Audience;
use crate::schedule::{QuietHours, Schedule, ScheduleError};

/// Checks `raw` and parses what has a type of its own.
pub(super) fn parse(raw: RawConfig, corp: crate::corp::CorpName) -> Result<Config, ConfigError> {
    check_weiban(&raw.weiban)?;
    check_durations(&raw)?;
    check_retention(&raw)?;
    let schedule = parse_schedule(&raw.schedule)?;
    let server = raw.server.as_ref().map(parse_server).transpose()?;
    check_routes(&raw)?;
    check_smtp(&raw)?;
    let reports = parse_reports(&raw)?;
    let fallback = parse_fallback(&raw)?;
    Ok(Config {
        corp,
        weiban: raw.weiban,
        schedule,
        store: raw.store,
        wecom: raw.wecom,
        templates: raw.templates,
        directory: raw.directory,
        smtp: raw.smtp,
        server,
        routes: raw.routes,
        reports,
        fallback,
    })
}

/// `[fallback]` into a managers' route of its own, its robots and mailboxes checked like a
/// route's.
fn parse_fallback(raw: &RawConfig) -> Result<Option<RouteConfig>, ConfigError> {
    let Some(fallback) = &raw.fallback else {
        return Ok(None);
    };
    if fallback.wecom_webhooks.is_empty() && fallback.email_to.is_empty() {
        return Err(ConfigError::invalid(
            "fallback",
            "has neither `wecom_webhooks` nor `email_to`: give it a robot or a mailbox, or remove it",
        ));
    }
    for (j, url) in fallback.wecom_webhooks.iter().enumerate() {
        check_robot_url(&format!("fallback.wecom_webhooks[{j}]"), url.expose())?;
    }
    for (j, address) in fallback.email_to.iter().enumerate() {
        check_mailbox(&format!("fallback.email_to[{j}]"), address)?;
    }
    if !fallback.email_to.is_empty() && raw.smtp.is_none() {
        return Err(ConfigError::invalid(
            "smtp",
            "[fallback] sends email, but there is no [smtp] section",
        ));
    }
    let mut route: RouteConfig = toml::from_str(&format!(
        "name = \"{}\"\naudience = \"managers\"\nstorm_threshold = 0\n",
        crate::config::FALLBACK_ROUTE
    ))
    .map_err(|e| ConfigError::invalid("fallback", e.message().to_owned()))?;
    route.wecom_webhooks = fallback.wecom_webhooks.clone();
    route.email_to = fallback.email_to.clone();
    Ok(Some(route))
}

/// `[[report]]`: unique names, a crontab in the schedule's zone, an existing route.
fn parse_reports(raw: &RawConfig) -> Result<Vec<super::ReportSpec>, ConfigError> {
    let mut names = HashSet::new();
    let mut specs = Vec::new();
    for (i, report) in raw.reports.iter().enumerate() {
        let key = |field: &str| format!("report[{i}].{field}");
        let name = report.name.trim();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ':') {
            return Err(ConfigError::invalid(
                key("name"),
                "must be a non-empty name without control characters or `:`",
            ));
        }
        if !names.insert(name) {
            return Err(ConfigError::invalid(
                key("name"),
                format!("`{name}` is used by another report; names must be unique"),
            ));
        }
        let schedule = Schedule::parse(&report.cron, &raw.schedule.timezone)
            .map_err(|e| ConfigError::invalid(key("cron"), e.to_string()))?;
        if !raw.routes.iter().any(|r| r.name == report.route) {
            let known: Vec<&str> = raw.routes.iter().map(|r| r.name.as_str()).collect();
            return Err(ConfigError::invalid(
                key("route"),
                format!(
                    "no route is named `{}`; routes: {}",
                    report.route,
                    known.join(", ")
                ),
            ));
        }
        specs.push(super::ReportSpec {
            name: name.to_owned(),
            cron: report.cron.clone(),
            schedule,
            period: report.period,
            route: report.route.clone(),
            top: report.top.max(1),
        });
    }
    Ok(specs)
}

fn check_weiban(weiban: &WeibanConfig) -> Result<(), ConfigError> {
    check_http_url("weiban.base_url", &weiban.base_url)?;
    if weiban.corp_id.trim().is_empty() {
        return Err(ConfigError::invalid("weiban.corp_id", "must not be empty"));
    }
    if weiban.secret.is_empty() {
        return Err(ConfigError::invalid("weiban.secret", "must not be empty"));
    }
    let ranges = [
        (
            "weiban.page_size",
            u64::from(weiban.page_size),
            100,
            "Weiban's page cap",
        ),
        (
            "weiban.max_in_flight",
            weiban.max_in_flight as u64,
            4,
            "Weiban allows fewer than 5 requests in flight",
        ),
        (
            "weiban.requests_per_minute",
            u64::from(weiban.requests_per_minute),
            600,
            "Weiban's limit per API",
        ),
    ];
    for (key, value, max, why) in ranges {
        if !(1..=max).contains(&value) {
            return Err(ConfigError::invalid(
                key,
                format!("must be between 1 and {max} ({why})"),
            ));
        }
    }
    Ok(())
}

fn check_retention(raw: &RawConfig) -> Result<(), ConfigError> {
    let lookback = raw.weiban.first_lookback + raw.weiban.overlap;
    if raw.store.retention <= lookback {
        return Err(ConfigError::invalid(
            "store.retention",
            format!(
                "{} is not longer than weiban.first_lookback + weiban.overlap ({}): losses older than the retention are forgotten at once and never reported; raise it (default 90d)",
                humantime::format_duration(raw.store.retention),
                humantime::format_duration(lookback)
            ),
        ));
    }
    Ok(())
}

fn parse_schedule(raw: &RawSchedule) -> Result<ScheduleSettings, ConfigError> {
    let schedule = Schedule::parse(&raw.cron, &raw.timezone).map_err(|e| match e {
        ScheduleError::Timezone(_) => ConfigError::invalid("schedule.timezone", e.to_string()),
        ScheduleError::Cron { .. } => ConfigError::invalid("schedule.cron", e.to_string()),
    })?;
    if schedule.next_after(crate::time::now_utc()).is_none() {
        return Err(ConfigError::invalid(
            "schedule.cron",
            format!(
                "`{}` never fires (no such date in any year); pick days that exist",
                raw.cron
            ),
        ));
    }
    let quiet_hours = raw
        .quiet_hours
        .as_deref()
        .map(|spec| {
            QuietHours::parse(spec).map_err(|e| ConfigError::invalid("schedule.quiet_hours", e))
        })
        .transpose()?;
    Ok(ScheduleSettings {
        cron: raw.cron.clone(),
        schedule,
        quiet_hours,
    })
}

fn parse_server(raw: &RawServer) -> Result<ServerSettings, ConfigError> {
    let listen = raw.listen.parse().map_err(|e| {
        ConfigError::invalid(
            "server.listen",
            format!(
                "`{}` is not an address like 127.0.0.1:9898: {e}",
                raw.listen
            ),
        )
    })?;
    if raw.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        return Err(ConfigError::invalid(
            "server.token",
            "is shorter than 16 characters; use a long random string (`openssl rand -hex 32`)",
        ));
    }
    Ok(ServerSettings {
        listen,
        healthy_poll_age: raw.healthy_poll_age,
        token: raw.token.clone(),
    })
}

fn check_routes(raw: &RawConfig) -> Result<(), ConfigError> {
    if raw.routes.is_empty() {
        return Err(ConfigError::invalid(
            "route",
            "no [[route]] is configured: add one so that losses have somewhere to go",
        ));
    }
    let mut names = HashSet::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let key = format!("route[{i}].name");
        if route.name.trim().is_empty() || route.name.contains(['/', '\0']) {
            return Err(ConfigError::invalid(
                key,
                "must be a non-empty name without `/`",
            ));
        }
        if route.name == crate::config::FALLBACK_ROUTE {
            return Err(ConfigError::invalid(
                key,
                "the route name `fallback` is reserved for the [fallback] table; rename the route",
            ));
        }
        if !names.insert(route.name.as_str()) {
            return Err(ConfigError::invalid(
                key,
                format!("route name `{}` is used twice", route.name),
            ));
        }
        check_route(raw, i, route)?;
    }
    Ok(())
}

fn check_smtp(raw: &RawConfig) -> Result<(), ConfigError> {
    let Some(smtp) = &raw.smtp else {
        return Ok(());
    };
    if smtp.host.trim().is_empty() {
        return Err(ConfigError::invalid("smtp.host", "must not be empty"));
    }
    check_mailbox("smtp.from", &smtp.from)?;
    if smtp.password.is_some() && smtp.username.is_none() {
        return Err(ConfigError::invalid(
            "smtp.username",
            "is required when smtp.password is set",
        ));
    }
    Ok(())
}

/// Every duration within a range that makes sense (and cannot overflow a clock).
fn check_durations(raw: &RawConfig) -> Result<(), ConfigError> {
    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);
    let w = &raw.weiban;
    let mut checks = vec![
        ("weiban.overlap", w.overlap, Duration::ZERO, 7 * DAY),
        (
            "weiban.first_lookback",
            w.first_lookback,
            Duration::ZERO,
            400 * DAY,
        ),
        (
            "weiban.request_timeout",
            w.request_timeout,
            100 * MS,
            10 * MIN,
        ),
        ("weiban.retry_base", w.retry_base, MS, 5 * MIN),
        (
            "weiban.rate_limit_wait",
            w.rate_limit_wait,
            100 * MS,
            2 * HOUR,
        ),
        ("store.retention", raw.store.retention, HOUR, 3650 * DAY),
        ("wecom.timeout", raw.wecom.timeout, 100 * MS, 10 * MIN),
        ("wecom.retry_base", raw.wecom.retry_base, MS, 5 * MIN),
        ("wecom.blocked_wait", raw.wecom.blocked_wait, SEC, HOUR),
        ("directory.refresh", raw.directory.refresh, MIN, 30 * DAY),
    ];
    if let Some(smtp) = &raw.smtp {
        checks.push(("smtp.timeout", smtp.timeout, 100 * MS, 10 * MIN));
    }
    if let Some(age) = raw.server.as_ref().and_then(|s| s.healthy_poll_age) {
        checks.push(("server.healthy_poll_age", age, SEC, 90 * DAY));
    }
    for (key, value, min, max) in checks {
        if value < min || value > max {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{} is out of range: use between {} and {}",
                    humantime::format_duration(value),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ));
        }
    }
    Ok(())
}

fn check_route(raw: &RawConfig, i: usize, route: &RouteConfig) -> Result<(), ConfigError> {
    let key = |name: &str| format!("route[{i}].{name}");
    let staff_only = [
        ("mention", route.mention),
        ("staff_webhooks", !route.staff_webhooks.is_empty()),
        ("email_staff", route.email_staff),
        ("staff_emails", !route.staff_emails.is_empty()),
    ];
    if route.audience == Audience::Managers {
        if let Some((name, _)) = staff_only.iter().find(|(_, set)| *set) {
            return Err(ConfigError::invalid(
                key(name),
                "only applies to `audience = \"staff\"` routes",
            ));
        }
    }
    let has_destination = !route.wecom_webhooks.is_empty()
        || !route.staff_webhooks.is_empty()
        || !route.department_webhooks.is_empty()
        || !route.department_emails.is_empty()
        || !route.email_to.is_empty()
        || route.email_staff;
    if !has_destination {
        return Err(ConfigError::invalid(
            key("wecom_webhooks"),
            format!(
                "route `{}` has no destination: set wecom_webhooks, staff_webhooks, department_webhooks, email_to, department_emails or email_staff",
                route.name
            ),
        ));
    }
    for (j, url) in route.wecom_webhooks.iter().enumerate() {
        check_robot_url(&key(&format!("wecom_webhooks[{j}]")), url.expose())?;
    }
    for (staff, url) in &route.staff_webhooks {
        check_robot_url(&key(&format!("staff_webhooks.{staff}")), url.expose())?;
    }
    for (j, address) in route.email_to.iter().enumerate() {
        check_mailbox(&key(&format!("email_to[{j}]")), address)?;
    }
    for (staff, address) in &route.staff_emails {
        check_mailbox(&key(&format!("staff_emails.{staff}")), address)?;
    }
    for (department, url) in &route.department_webhooks {
        check_robot_url(
            &key(&format!("department_webhooks.{department}")),
            url.expose(),
        )?;
    }
    for (department, address) in &route.department_emails {
        check_mailbox(&key(&format!("department_emails.{department}")), address)?;
    }
    let emails =
        !route.email_to.is_empty() || route.email_staff || !route.department_emails.is_empty();
    if emails && raw.smtp.is_none() {
        return Err(ConfigError::invalid(
            "smtp",
            format!(
                "route `{}` sends email, but there is no [smtp] section",
                route.name
            ),
        ));
    }
    if route.storm_threshold > 0 && route.storm_list == 0 {
        return Err(ConfigError::invalid(
            key("storm_list"),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// A deserialization error as the user should read it: the key it is about, and never the
/// value (it may be a secret typed into the wrong place).
pub(super) fn type_error(
    path: &Path,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let key = err.path().to_string().replace("route[", "[[route]][");
    let message = err.inner().message().to_owned();
    let message = match message.split_once(", expected ") {
        Some((found, expected))
            if found.starts_with("invalid type") || found.starts_with("invalid value") =>
        {
            let kind = found
                .trim_start_matches("invalid type: ")
                .trim_start_matches("invalid value: ");
            let kind = kind.split('`').next().unwrap_or(kind).trim();
            format!("has the wrong type or value ({kind}); expected {expected}")
        }
        _ => message,
    };
    if key.is_empty() || key == "." {
        return ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
    }
    ConfigError::Invalid { key, message }
}
