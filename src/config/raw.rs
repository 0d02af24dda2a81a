//! The configuration file as written: serde structs, defaults, and nothing parsed yet that has
//! a type of its own (a schedule, a time zone, an address). [`super::validate`] turns them into
//! a [`super::Config`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::directory::DepartmentRef;
use crate::loss::DeleteBy;
use crate::secret::Secret;

const DAY: Duration = Duration::from_secs(86_400);

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub weiban: WeibanConfig,
    pub schedule: RawSchedule,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub wecom: WecomConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub directory: DirectoryConfig,
    pub smtp: Option<super::SmtpConfig>,
    pub server: Option<RawServer>,
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteConfig>,
    #[serde(rename = "report", default)]
    pub reports: Vec<RawReport>,
    pub fallback: Option<RawFallback>,
}

/// `[fallback]` as written: where losses go that routing has held for `directory.hold_for`
/// and whose route has no robot or mailbox of its own to take them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    #[serde(default)]
    pub wecom_webhooks: Vec<crate::secret::Secret>,
    #[serde(default)]
    pub email_to: Vec<String>,
}

/// `[[report]]` as written: a scheduled summary of a whole period. Parsed into
/// [`super::ReportSpec`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    pub name: String,
    /// Crontab, in `schedule.timezone`.
    pub cron: String,
    pub period: super::PeriodKind,
    /// The route whose robots and mailboxes receive it.
    pub route: String,
    /// How many staff members (and departments) the summary lists by name.
    #[serde(default = "RawReport::top_default")]
    pub top: usize,
}

impl RawReport {
    fn top_default() -> usize {
        10
    }
}

/// `[weiban]`: where and how to poll the Weiban OpenAPI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeibanConfig {
    pub base_url: String,
    pub corp_id: String,
    pub secret: Secret,
    /// How far each window reaches back before the end of the previous one, for late records.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// How far the very first window reaches back.
    #[serde(with = "humantime_serde")]
    pub first_lookback: Duration,
    /// Items asked for per page (Weiban caps it at 100).
    pub page_size: u32,
    /// Requests in flight at once (Weiban allows fewer than 5 per company).
    pub max_in_flight: usize,
    /// Requests per minute to one API (Weiban allows 600).
    pub requests_per_minute: u32,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of one request within a cycle after a transient fault.
    pub max_retries: u32,
    /// First back-off after a transient fault; doubles each retry, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// How long a 10053 (rate limit) block is waited out.
    #[serde(with = "humantime_serde")]
    pub rate_limit_wait: Duration,
}

impl Default for WeibanConfig {
    fn default() -> Self {
        Self {
            base_url: "https://open.weibanzhushou.com".into(),
            // Required: an empty value is reported by validation, naming the key.
            corp_id: String::new(),
            secret: Secret::default(),
            overlap: Duration::from_secs(15 * 60),
            first_lookback: DAY,
            page_size: 100,
            max_in_flight: 4,
            requests_per_minute: 600,
            request_timeout: Duration::from_secs(20),
            max_retries: 5,
            retry_base: Duration::from_millis(500),
            rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// `[schedule]` as written: when cycles run. Parsed into [`super::ScheduleSettings`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub cron: String,
    #[serde(default = "RawSchedule::timezone_default")]
    pub timezone: String,
    /// A daily span (`21:00-08:30`, in `timezone`) during which deliveries are held.
    pub quiet_hours: Option<String>,
}

/// `[store]`: the embedded database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Remembered losses older than this are forgotten, and never reported again.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/churn-alert"),
            retention: DAY * 90,
        }
    }
}

/// `[wecom]`: how robots are paced and retried.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WecomConfig {
    /// Messages per rolling minute per robot URL (WeCom allows 20); 0 disables pacing.
    pub messages_per_minute: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries of one message within a cycle after `-1`, 5xx or a network fault.
    pub max_retries: u32,
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// How long a robot that answered 45009 (blocked) is left alone.
    #[serde(with = "humantime_serde")]
    pub blocked_wait: Duration,
}

impl Default for WecomConfig {
    fn default() -> Self {
        Self {
            messages_per_minute: 20,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            retry_base: Duration::from_secs(1),
            blocked_wait: Duration::from_secs(60),
        }
    }
}

impl RawSchedule {
    fn timezone_default() -> String {
        "Asia/Shanghai".into()
    }
}

/// `[templates]`: where to look for template overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// A folder whose `*.hbs` files replace the built-in templates of the same name.
    pub dir: Option<PathBuf>,
}

/// `[server]` as written: the optional HTTP endpoint for `/healthz` and `/metrics`. Parsed
/// into [`super::ServerSettings`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    /// Address to listen on, for example `127.0.0.1:9898`.
    pub listen: String,
    /// `/healthz` fails when the last successful poll is older than this. Default: twice the
    /// schedule's interval plus five minutes.
    #[serde(default, with = "humantime_serde")]
    pub healthy_poll_age: Option<Duration>,
    /// When set, `/state/*` answers only `Authorization: Bearer <token>` (401 otherwise).
    #[serde(default)]
    pub token: Option<crate::secret::Secret>,
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

impl Audience {
    /// The config value: `managers` or `staff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managers => "managers",
            Self::Staff => "staff",
        }
    }
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

/// Which losses a route takes, by who ended the relationship: `"customer"`, `"staff"`,
/// `"both"`, `"unknown"`, a list of them, or `"any"` (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteByFilter(Option<BTreeSet<DeleteBy>>);

impl DeleteByFilter {
    /// Whether a loss ended by `who` passes.
    pub fn accepts(&self, who: DeleteBy) -> bool {
        self.0.as_ref().is_none_or(|set| set.contains(&who))
    }
}

impl<'de> Deserialize<'de> for DeleteByFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Word {
            Customer,
            Staff,
            Both,
            Unknown,
            Any,
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "\"customer\", \"staff\", \"both\", \"unknown\", \"any\" or a list of them"
        )]
        enum OneOrMany {
            One(Word),
            Many(Vec<Word>),
        }
        let words = match OneOrMany::deserialize(d)? {
            OneOrMany::One(word) => vec![word],
            OneOrMany::Many(words) => words,
        };
        let mut set = BTreeSet::new();
        for word in words {
            set.insert(match word {
                Word::Customer => DeleteBy::Customer,
                Word::Staff => DeleteBy::Staff,
                Word::Both => DeleteBy::Both,
                Word::Unknown => DeleteBy::Unknown,
                Word::Any => return Ok(Self(None)),
            });
        }
        Ok(Self(Some(set)))
    }
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
    #[serde(default = "RouteConfig::storm_threshold_default")]
    pub storm_threshold: usize,
    /// How many customers a summarized staff member still lists.
    #[serde(default = "RouteConfig::storm_list_default")]
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
    /// Only staff in these departments or their sub-departments (names or ids; empty = all).
    #[serde(default)]
    pub departments: Vec<DepartmentRef>,
    /// Not staff in these departments or their sub-departments.
    #[serde(default)]
    pub exclude_departments: Vec<DepartmentRef>,
    /// A department's own robot (key: name or id): its losses, sub-departments included.
    /// A loss whose department has none goes to `wecom_webhooks`, if any.
    #[serde(default)]
    pub department_webhooks: BTreeMap<String, Secret>,
    /// A department's own mailbox (key: name or id), like `department_webhooks`.
    #[serde(default)]
    pub department_emails: BTreeMap<String, String>,
    /// How a managers' digest groups staff: `staff` (default) or `department` then staff.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Leave out customers that a colleague still follows.
    #[serde(default)]
    pub skip_if_still_followed: bool,
    /// Alert this route at once when one staff member deletes this many customers in a day
    /// (once per staff member per day; 0 = off).
    #[serde(default)]
    pub staff_delete_alert: usize,
}

/// How a digest groups its losses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Staff,
    Department,
}

impl RouteConfig {
    /// Whether this route needs the org chart.
    pub fn uses_departments(&self) -> bool {
        !self.departments.is_empty()
            || !self.exclude_departments.is_empty()
            || !self.department_webhooks.is_empty()
            || !self.department_emails.is_empty()
            || self.group_by == GroupBy::Department
    }
}

/// `[directory]`: the org chart and customer lookups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// How often the staff directory is read again (also whenever a loss names a staff
    /// member it does not know).
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// Look each new loss's customer up to say who still follows them (仍由…跟进).
    pub still_followed: bool,
    /// At most this many lookups per poll: more new losses are a storm, and go without.
    pub lookups_per_poll: usize,
    /// How long a loss that routing cannot place (no org chart, an unknown staff member or
    /// department) waits for the data before it goes to its route's own robots and mailboxes,
    /// else to `[fallback]`.
    #[serde(with = "humantime_serde")]
    pub hold_for: Duration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            refresh: DAY,
            still_followed: true,
            lookups_per_poll: 20,
            hold_for: Duration::from_secs(3600),
        }
    }
}

impl RouteConfig {
    fn storm_threshold_default() -> usize {
        100
    }
    fn storm_list_default() -> usize {
        20
    }
}
