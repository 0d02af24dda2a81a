//! Log set-up: `RUST_LOG` filters, `--log-format text|json`, always to stderr.
//!
//! Credentials never reach a log line because they never reach a formatter: they live in
//! [`crate::secret::Secret`], and URLs that carry them are passed through
//! [`crate::secret::redact_url`] before they are logged.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; the default level is `info` for churn-alert, `warn` else.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,churn_alert=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("churn-alert: logging could not be set up: {e}");
    }
}
