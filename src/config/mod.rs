//! The TOML configuration file: parsing, `${VAR}` expansion and validation, into typed values.
//!
//! Loading is five steps so that every error can name the key it is about:
//! 1. parse the file into a `toml::Value` tree,
//! 2. split it into corps ([`corps`]: `[[corp]]` tables and `include`d files; a file without
//!    them is one corp named `default`), replacing `${VAR}` in every string from the
//!    environment on the way, tracking the key path ([`env`]),
//! 3. deserialize into the file as written ([`raw`]; unknown keys are errors, a value of the
//!    wrong type names its key and never shows the value),
//! 4. check and parse what has a type of its own ([`validate`]) into a [`Config`]: the
//!    schedule, time zone, quiet hours and listen address are parsed here once, never again.

mod addresses;
mod corps;
mod env;
mod raw;
mod report;
mod smtp;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::zone::Zone;

#[cfg(any(test, feature = "demo"))]
pub use env::env_from;
use raw::RawConfig;
pub use raw::{
    Audience, DirectoryConfig, GroupBy, RouteConfig, StoreConfig, TemplatesConfig, WecomConfig,
    WecomMsgType, WeibanConfig,
};
pub use report::{PeriodKind, ReportSpec};
pub use smtp::{SmtpConfig, SmtpSecurity};

use crate::corp::CorpName;
use crate::schedule::{QuietHours, Schedule};

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
    #[error("{}", env::unset_message(.0))]
    UnsetVariables(Vec<(String, String)>),
    #[error("config key `{key}`: unterminated `${{` (write `${{NAME}}`)")]
    BadPlaceholder { key: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("corp `{corp}` (in {}): {source}", origin.display())]
    InCorp {
        corp: CorpName,
        origin: PathBuf,
        source: Box<ConfigError>,
    },
    #[error(
        "{path} configures {} corps ({}): name one with `--corp NAME`",
        corps.len(),
        corps.join(", ")
    )]
    SeveralCorps { path: PathBuf, corps: Vec<String> },
    #[error(
        "{path} has no corp named `{name}` (--corp); its corps: {}",
        corps.join(", ")
    )]
    NoSuchCorp {
        path: PathBuf,
        name: String,
        corps: Vec<String>,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A valid configuration of one corp, its values parsed into their types: a single-corp
/// file, or one `[[corp]]` with the shared settings laid under it.
#[derive(Debug)]
pub struct Config {
    /// `default` for a single-corp file.
    pub corp: CorpName,
    pub weiban: WeibanConfig,
    pub schedule: ScheduleSettings,
    pub store: StoreConfig,
    pub wecom: WecomConfig,
    pub templates: TemplatesConfig,
    pub directory: DirectoryConfig,
    pub smtp: Option<SmtpConfig>,
    pub server: Option<ServerSettings>,
    pub routes: Vec<RouteConfig>,
    pub reports: Vec<ReportSpec>,
    /// `[fallback]`, as a managers' route named [`FALLBACK_ROUTE`] that no loss is routed to:
    /// it receives only held losses whose own route has no robot or mailbox to take them.
    pub fallback: Option<RouteConfig>,
}

/// The route name `[fallback]` goes by in destination ids and `state` output (reserved).
pub const FALLBACK_ROUTE: &str = "fallback";

/// `[schedule]`, parsed.
#[derive(Debug)]
pub struct ScheduleSettings {
    /// The expression as written, for logs.
    pub cron: String,
    pub schedule: Schedule,
    /// A daily span in the schedule's zone during which deliveries are held.
    pub quiet_hours: Option<QuietHours>,
}

/// `[server]`, parsed.
#[derive(Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// `/healthz` fails when the last successful poll is older than this. Default: twice the
    /// schedule's interval plus five minutes.
    pub healthy_poll_age: Option<Duration>,
    /// Guards `/state/*`, which holds customer names.
    pub token: Option<crate::secret::Secret>,
}

impl Config {
    /// Reads, expands and validates the file at `path` and the files it includes: every
    /// corp's config, in the order written.
    pub fn load_all(path: &Path) -> Result<Vec<Self>, ConfigError> {
        let text = read(path)?;
        Self::from_toml_all(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses `text` (named `path` in errors), taking `${VAR}` values from `env`; it must
    /// configure one corp.
    #[cfg(test)]
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::select(Self::from_toml_all(text, path, env)?, None, path)
    }

    /// Parses `text` (named `path` in errors) into every corp's config.
    pub fn from_toml_all(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Self>, ConfigError> {
        let tree = parse_tree(text, path)?;
        let included = |file: &Path| parse_tree(&read(file)?, file);
        let mut unset = Vec::new();
        let mut expand =
            |value: &mut toml::Value, key: &str| env::expand_env(value, key, env, &mut unset);
        let corps = corps::split(tree, path, &included, &mut expand)?;
        if !unset.is_empty() {
            return Err(ConfigError::UnsetVariables(unset));
        }
        let several = corps.len() > 1 || corps.iter().any(|c| !c.name.is_default());
        corps
            .into_iter()
            .map(|corp| {
                let origin = corp.origin.clone();
                let parsed = serde_path_to_error::deserialize::<_, RawConfig>(corp.tree)
                    .map_err(|e| validate::type_error(&origin, e))
                    .and_then(|raw| validate::parse(raw, corp.name.clone()));
                parsed.map_err(|source| {
                    if several {
                        ConfigError::InCorp {
                            corp: corp.name,
                            origin,
                            source: Box::new(source),
                        }
                    } else {
                        source
                    }
                })
            })
            .collect()
    }

    /// Tells the log writer which values to mask, whatever logs them. Called by the commands
    /// that run with this config (parsing itself changes no global state).
    pub fn register_secrets(&self) {
        use crate::logging::{register_secret, register_url_secrets};
        register_secret(self.weiban.secret.expose());
        if let Some(token) = self.server.as_ref().and_then(|s| s.token.as_ref()) {
            register_secret(token.expose());
        }
        if let Some(password) = self.smtp.as_ref().and_then(|s| s.password.as_ref()) {
            register_secret(password.expose());
        }
        for route in self.routes.iter().chain(self.fallback.as_ref()) {
            for url in route
                .wecom_webhooks
                .iter()
                .chain(route.staff_webhooks.values())
                .chain(route.department_webhooks.values())
            {
                register_url_secrets(url.expose());
            }
        }
    }

    /// The schedule, in its zone.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule.schedule
    }

    /// The configured time zone: schedules, quiet hours and times in messages.
    pub fn timezone(&self) -> Zone {
        self.schedule.schedule.timezone()
    }

    /// Quiet hours, if any.
    pub fn quiet_hours(&self) -> Option<QuietHours> {
        self.schedule.quiet_hours
    }

    /// If `now` (unix seconds) falls in quiet hours, when they end (for `state pending`).
    pub fn quiet_until(&self, now: i64) -> Option<i64> {
        crate::schedule::quiet_until(self.quiet_hours(), self.timezone(), now)
    }

    /// Whether any route routes or groups by department.
    pub fn uses_departments(&self) -> bool {
        self.routes.iter().any(RouteConfig::uses_departments)
    }

    /// Report by name.
    pub fn report(&self, name: &str) -> Option<&ReportSpec> {
        self.reports.iter().find(|r| r.name == name)
    }

    /// Route by name.
    /// The route named `name`, `[fallback]` included.
    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .chain(self.fallback.as_ref())
            .find(|r| r.name == name)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The file's TOML tree. The parser's own rendering quotes the offending line, which may hold
/// a secret typed into the file: only the position and the message are given.
fn parse_tree(text: &str, path: &Path) -> Result<toml::Value, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let position = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        ConfigError::Parse {
            path: path.to_owned(),
            message: format!("{position}{}", e.message()),
        }
    })
}

impl Config {
    /// The corp named `wanted` (`--corp`) among `configs`, the corps of the file at `path`; or,
    /// with no name, its only corp.
    pub(crate) fn select(
        mut configs: Vec<Config>,
        wanted: Option<&str>,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        let names = |configs: &[Config]| configs.iter().map(|c| c.corp.to_string()).collect();
        match wanted {
            Some(name) => match configs.iter().position(|c| c.corp.as_str() == name) {
                Some(i) => Ok(configs.swap_remove(i)),
                None => Err(ConfigError::NoSuchCorp {
                    path: path.to_owned(),
                    name: name.to_owned(),
                    corps: names(&configs),
                }),
            },
            None if configs.len() == 1 => Ok(configs.remove(0)),
            None => Err(ConfigError::SeveralCorps {
                path: path.to_owned(),
                corps: names(&configs),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        assert_eq!(config.timezone(), crate::zone::Zone::shanghai());
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
    fn webhook_errors_never_show_the_key() {
        let text = MINIMAL.replace("http://127.0.0.1:1/cgi-bin", "ftp://x/cgi-bin");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("route[0].wecom_webhooks[0]"), "{err}");
        assert!(!err.contains("key=k"), "{err}");
    }
}
