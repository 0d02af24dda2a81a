//! The TOML configuration file: parsing, `${VAR}` expansion and validation.
//!
//! Loading is three steps so that every error can name the key it is about:
//! 1. parse the file into a `toml::Value` tree,
//! 2. replace `${VAR}` in every string from the environment, tracking the key path,
//! 3. deserialize into [`Config`] (unknown keys are errors) and [`Config::validate`] it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::schedule::{QuietHours, Schedule, ScheduleError};
use crate::secret::{redact_url, Secret};

/// Why a configuration could not be used. Every variant names the key or the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", unset_message(.0))]
    UnsetVariables(Vec<(String, String)>),
    #[error("config key `{key}`: unterminated `${{` (write `${{NAME}}`)")]
    BadPlaceholder { key: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// One line per unset variable, so that one run shows them all.
fn unset_message(unset: &[(String, String)]) -> String {
    let lines: Vec<String> = unset
        .iter()
        .map(|(key, var)| {
            format!("config key `{key}` uses environment variable `{var}`, which is not set")
        })
        .collect();
    if let [one] = lines.as_slice() {
        return one.clone();
    }
    format!(
        "{} environment variables are not set:\n  {}",
        lines.len(),
        lines.join("\n  ")
    )
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub weiban: WeibanConfig,
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub wecom: WecomConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    pub smtp: Option<SmtpConfig>,
    pub server: Option<ServerConfig>,
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteConfig>,
}

/// `[weiban]`: where and how to poll the Weiban OpenAPI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeibanConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub corp_id: String,
    pub secret: Secret,
    /// How far each window reaches back before the end of the previous one, for late records.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// How far the very first window reaches back.
    #[serde(default = "default_first_lookback", with = "humantime_serde")]
    pub first_lookback: Duration,
    /// Items asked for per page (Weiban caps it at 100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Requests in flight at once (Weiban allows fewer than 5 per company).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Requests per minute to one API (Weiban allows 600).
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of one request within a cycle after a transient fault.
    #[serde(default = "default_weiban_retries")]
    pub max_retries: u32,
    /// First back-off after a transient fault; doubles each retry, with jitter.
    #[serde(default = "default_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    /// How long a 10053 (rate limit) block is waited out.
    #[serde(default = "default_rate_limit_wait", with = "humantime_serde")]
    pub rate_limit_wait: Duration,
}

/// `[schedule]`: when cycles run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub cron: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// A daily span (`21:00-08:30`, in `timezone`) during which deliveries are held.
    pub quiet_hours: Option<String>,
}

/// `[store]`: the embedded database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Remembered losses older than this are forgotten, and never reported again.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            retention: default_retention(),
        }
    }
}

/// `[wecom]`: how robots are paced and retried.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// Messages per rolling minute per robot URL (WeCom allows 20); 0 disables pacing.
    #[serde(default = "default_messages_per_minute")]
    pub messages_per_minute: u32,
    #[serde(default = "default_robot_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries of one message within a cycle after `-1`, 5xx or a network fault.
    #[serde(default = "default_robot_retries")]
    pub max_retries: u32,
    #[serde(default = "default_robot_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    /// How long a robot that answered 45009 (blocked) is left alone.
    #[serde(default = "default_blocked_wait", with = "humantime_serde")]
    pub blocked_wait: Duration,
}

impl Default for WecomConfig {
    fn default() -> Self {
        Self {
            messages_per_minute: default_messages_per_minute(),
            timeout: default_robot_timeout(),
            max_retries: default_robot_retries(),
            retry_base: default_robot_retry_base(),
            blocked_wait: default_blocked_wait(),
        }
    }
}

/// `[templates]`: where to look for template overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// A folder whose `*.hbs` files replace the built-in templates of the same name.
    pub dir: Option<PathBuf>,
}

/// `[server]`: the optional HTTP endpoint for `/healthz` and `/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, for example `127.0.0.1:9898`.
    pub listen: String,
    /// `/healthz` fails when the last successful poll is older than this. Default: twice the
    /// schedule's interval plus five minutes.
    #[serde(default, with = "humantime_serde")]
    pub healthy_poll_age: Option<Duration>,
}

/// `[smtp]`: the mail server for email destinations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults by `security`: 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::None => 25,
        })
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// No encryption: only for a relay on localhost or a test server.
    None,
}

/// Who a route's messages are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// One digest of everybody's losses, grouped by staff member.
    Managers,
    /// One message per staff member about their own losses.
    Staff,
}

/// WeCom message type used for a route's robots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WecomMsgType {
    /// Up to 4096 bytes, formatting, `<@userid>` mentions.
    #[default]
    Markdown,
    /// Up to 2048 bytes, plain text, mentions through `mentioned_list`.
    Text,
}

/// Which losses a route takes, by who deleted whom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteByFilter {
    /// The customer deleted the staff member.
    Customer,
    /// The staff member deleted the customer.
    Staff,
    #[default]
    Any,
}

/// `[[route]]`: one set of destinations and what they receive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    pub audience: Audience,
    /// Full robot URLs as pasted from WeCom (they carry the key: never logged).
    #[serde(default)]
    pub wecom_webhooks: Vec<Secret>,
    #[serde(default)]
    pub wecom_msgtype: WecomMsgType,
    /// Staff routes: @-mention the staff member in the group.
    #[serde(default)]
    pub mention: bool,
    /// Staff routes: a staff member's own robot, by Weiban staff id (WeCom userid).
    #[serde(default)]
    pub staff_webhooks: BTreeMap<String, Secret>,
    /// Email recipients of the full digest (never cut by storm protection).
    #[serde(default)]
    pub email_to: Vec<String>,
    /// Staff routes: email each staff member at the address Weiban holds.
    #[serde(default)]
    pub email_staff: bool,
    /// Staff routes: email addresses by staff id, overriding or filling in Weiban's.
    #[serde(default)]
    pub staff_emails: BTreeMap<String, String>,
    /// More losses than this for one staff member in one batch are summarized (0 = never).
    #[serde(default = "default_storm_threshold")]
    pub storm_threshold: usize,
    /// How many customers a summarized staff member still lists.
    #[serde(default = "default_storm_list")]
    pub storm_list: usize,
    /// Only these staff ids (empty = everybody).
    #[serde(default)]
    pub staff: Vec<String>,
    #[serde(default)]
    pub exclude_staff: Vec<String>,
    #[serde(default)]
    pub delete_by: DeleteByFilter,
    /// Only customers with at least one of these tags (empty = any).
    #[serde(default)]
    pub tags_any: Vec<String>,
}

fn default_storm_threshold() -> usize {
    100
}
fn default_storm_list() -> usize {
    20
}
fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_base_url() -> String {
    "https://open.weibanzhushou.com".into()
}
fn default_overlap() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_first_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_page_size() -> u32 {
    100
}
fn default_max_in_flight() -> usize {
    4
}
fn default_requests_per_minute() -> u32 {
    600
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_weiban_retries() -> u32 {
    5
}
fn default_retry_base() -> Duration {
    Duration::from_millis(500)
}
fn default_rate_limit_wait() -> Duration {
    Duration::from_secs(60)
}
fn default_timezone() -> String {
    "Asia/Shanghai".into()
}
fn default_store_path() -> PathBuf {
    PathBuf::from("data/churn-alert")
}
fn default_retention() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
fn default_messages_per_minute() -> u32 {
    20
}
fn default_robot_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_robot_retries() -> u32 {
    3
}
fn default_robot_retry_base() -> Duration {
    Duration::from_secs(1)
}
fn default_blocked_wait() -> Duration {
    Duration::from_secs(60)
}

impl Config {
    /// Reads, expands and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses `text` (named `path` in errors), taking `${VAR}` values from `env`.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        // The error's own rendering quotes the offending line, which may hold a secret typed
        // into the file: give the position and the message only.
        let mut tree: toml::Value = toml::from_str(text).map_err(|e: toml::de::Error| {
            let position = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            parse_error(format!("{position}{}", e.message()))
        })?;
        let mut unset = Vec::new();
        expand_env(&mut tree, "", env, &mut unset)?;
        if !unset.is_empty() {
            return Err(ConfigError::UnsetVariables(unset));
        }
        let config: Config =
            serde_path_to_error::deserialize(tree).map_err(|e| type_error(path, e))?;
        config.validate()?;
        config.register_secrets();
        Ok(config)
    }

    /// Tells the log writer which values to mask, whatever logs them.
    fn register_secrets(&self) {
        use crate::logging::{register_secret, register_url_secrets};
        register_secret(self.weiban.secret.expose());
        if let Some(password) = self.smtp.as_ref().and_then(|s| s.password.as_ref()) {
            register_secret(password.expose());
        }
        for route in &self.routes {
            for url in route
                .wecom_webhooks
                .iter()
                .chain(route.staff_webhooks.values())
            {
                register_url_secrets(url.expose());
            }
        }
    }

    /// Checks what serde cannot: values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_http_url("weiban.base_url", &self.weiban.base_url)?;
        if self.weiban.corp_id.trim().is_empty() {
            return Err(ConfigError::invalid("weiban.corp_id", "must not be empty"));
        }
        if self.weiban.secret.is_empty() {
            return Err(ConfigError::invalid("weiban.secret", "must not be empty"));
        }
        if !(1..=100).contains(&self.weiban.page_size) {
            return Err(ConfigError::invalid(
                "weiban.page_size",
                "must be between 1 and 100 (Weiban's page cap)",
            ));
        }
        if !(1..=4).contains(&self.weiban.max_in_flight) {
            return Err(ConfigError::invalid(
                "weiban.max_in_flight",
                "must be between 1 and 4 (Weiban allows fewer than 5 requests in flight)",
            ));
        }
        if !(1..=600).contains(&self.weiban.requests_per_minute) {
            return Err(ConfigError::invalid(
                "weiban.requests_per_minute",
                "must be between 1 and 600 (Weiban's limit per API)",
            ));
        }
        self.check_durations()?;
        let lookback = self.weiban.first_lookback + self.weiban.overlap;
        if self.store.retention <= lookback {
            return Err(ConfigError::invalid(
                "store.retention",
                format!(
                    "{} is not longer than weiban.first_lookback + weiban.overlap ({}): losses older than the retention are forgotten at once and never reported; raise it (default 90d)",
                    humantime::format_duration(self.store.retention),
                    humantime::format_duration(lookback)
                ),
            ));
        }
        let schedule = self.schedule()?;
        if schedule.next_after(chrono::Utc::now()).is_none() {
            return Err(ConfigError::invalid(
                "schedule.cron",
                format!(
                    "`{}` never fires (no such date in any year); pick days that exist",
                    self.schedule.cron
                ),
            ));
        }
        self.quiet_hours()?;
        if let Some(server) = &self.server {
            server.listen.parse::<std::net::SocketAddr>().map_err(|e| {
                ConfigError::invalid(
                    "server.listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:9898: {e}",
                        server.listen
                    ),
                )
            })?;
        }
        if self.routes.is_empty() {
            return Err(ConfigError::invalid(
                "route",
                "no [[route]] is configured: add one so that losses have somewhere to go",
            ));
        }
        let mut names = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("route[{i}].name");
            if route.name.trim().is_empty() || route.name.contains(['/', '\0']) {
                return Err(ConfigError::invalid(
                    key,
                    "must be a non-empty name without `/`",
                ));
            }
            if !names.insert(route.name.as_str()) {
                return Err(ConfigError::invalid(
                    key,
                    format!("route name `{}` is used twice", route.name),
                ));
            }
            self.validate_route(i, route)?;
        }
        if let Some(smtp) = &self.smtp {
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
        }
        Ok(())
    }

    /// Every duration within a range that makes sense (and cannot overflow a clock).
    fn check_durations(&self) -> Result<(), ConfigError> {
        const MS: Duration = Duration::from_millis(1);
        const SEC: Duration = Duration::from_secs(1);
        const MIN: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        let w = &self.weiban;
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
            ("store.retention", self.store.retention, HOUR, 3650 * DAY),
            ("wecom.timeout", self.wecom.timeout, 100 * MS, 10 * MIN),
            ("wecom.retry_base", self.wecom.retry_base, MS, 5 * MIN),
            ("wecom.blocked_wait", self.wecom.blocked_wait, SEC, HOUR),
        ];
        if let Some(smtp) = &self.smtp {
            checks.push(("smtp.timeout", smtp.timeout, 100 * MS, 10 * MIN));
        }
        if let Some(age) = self.server.as_ref().and_then(|s| s.healthy_poll_age) {
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

    fn validate_route(&self, i: usize, route: &RouteConfig) -> Result<(), ConfigError> {
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
            || !route.email_to.is_empty()
            || route.email_staff;
        if !has_destination {
            return Err(ConfigError::invalid(
                key("wecom_webhooks"),
                format!(
                    "route `{}` has no destination: set wecom_webhooks, staff_webhooks, email_to or email_staff",
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
        if (!route.email_to.is_empty() || route.email_staff) && self.smtp.is_none() {
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

    /// The parsed schedule, in the configured time zone.
    pub fn schedule(&self) -> Result<Schedule, ConfigError> {
        Schedule::parse(&self.schedule.cron, &self.schedule.timezone).map_err(|e| match e {
            ScheduleError::Timezone(_) => ConfigError::invalid("schedule.timezone", e.to_string()),
            ScheduleError::Cron { .. } => ConfigError::invalid("schedule.cron", e.to_string()),
        })
    }

    /// The parsed quiet hours, if any.
    pub fn quiet_hours(&self) -> Result<Option<QuietHours>, ConfigError> {
        self.schedule
            .quiet_hours
            .as_deref()
            .map(|spec| {
                QuietHours::parse(spec).map_err(|e| ConfigError::invalid("schedule.quiet_hours", e))
            })
            .transpose()
    }

    /// Route by name.
    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }
}

fn check_mailbox(key: &str, address: &str) -> Result<(), ConfigError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(key, format!("`{address}` is not an email address: {e}")))
}

/// A robot URL as pasted from WeCom: http(s), with a non-empty `key`.
fn check_robot_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let paste = "paste the whole robot URL from the group's robot settings, like https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…";
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    let Some(parsed) = parsed else {
        // Not a URL: most likely the bare key, which must not be echoed.
        return Err(ConfigError::invalid(
            key,
            format!("is not a robot URL: {paste}"),
        ));
    };
    let has_key = parsed
        .query_pairs()
        .any(|(name, value)| name == "key" && !value.trim().is_empty());
    if !has_key {
        return Err(ConfigError::invalid(
            key,
            format!(
                "`{}` has no `key=` or an empty one: {paste}",
                redact_url(url)
            ),
        ));
    }
    Ok(())
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("`{}` is not an http(s) URL", redact_url(url)),
        )),
    }
}

/// Replaces `${VAR}` in every string of `value`; `$$` stands for a literal `$`. Every unset
/// variable is collected in `unset` (key, variable), so that one run reports them all.
fn expand_env(
    value: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => *s = expand_str(s, key, env, unset)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{key}[{i}]"), env, unset)?;
            }
        }
        toml::Value::Table(table) => {
            for (name, item) in table.iter_mut() {
                let child = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                expand_env(item, &child, env, unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<(String, String)>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| ConfigError::BadPlaceholder {
                key: key.to_owned(),
            })?;
            let var = &tail[..end];
            match env(var) {
                Some(value) => out.push_str(&value),
                None => unset.push((key.to_owned(), var.to_owned())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A deserialization error as the user should read it: the key it is about, and never the
/// value (it may be a secret typed into the wrong place).
fn type_error(path: &Path, err: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
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

/// Environment lookups from a fixed map, for tests and the demo.
pub fn env_from(vars: BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> {
    move |name| vars.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[weiban]
corp_id = "${CORP}"
secret = "${SECRET}"
[schedule]
cron = "*/5 * * * *"
[[route]]
name = "managers"
audience = "managers"
wecom_webhooks = ["http://127.0.0.1:1/cgi-bin/webhook/send?key=k"]
"#;

    fn env() -> impl Fn(&str) -> Option<String> {
        env_from(BTreeMap::from([
            ("CORP".to_owned(), "corp".to_owned()),
            ("SECRET".to_owned(), "s3cret".to_owned()),
        ]))
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), &env())
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = load(MINIMAL).unwrap();
        assert_eq!(config.weiban.base_url, "https://open.weibanzhushou.com");
        assert_eq!(config.weiban.corp_id, "corp");
        assert_eq!(config.weiban.secret.expose(), "s3cret");
        assert_eq!(config.schedule.timezone, "Asia/Shanghai");
        assert_eq!(config.weiban.overlap, Duration::from_secs(900));
    }

    #[test]
    fn unset_variable_names_key_and_variable() {
        let text = MINIMAL.replace("${CORP}", "${NOPE}");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("weiban.corp_id") && err.contains("NOPE"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let text = MINIMAL.replace("[schedule]", "[schedule]\ncorn = \"x\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("corn"), "{err}");
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(
            expand_str("a$$b$c", "k", &env(), &mut Vec::new()).unwrap(),
            "a$b$c"
        );
    }

    #[test]
    fn webhook_errors_never_show_the_key() {
        let text = MINIMAL.replace("http://127.0.0.1:1/cgi-bin", "ftp://x/cgi-bin");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("route[0].wecom_webhooks[0]"), "{err}");
        assert!(!err.contains("key=k"), "{err}");
    }
}
