//! Log set-up: `RUST_LOG` filters, `--log-format text|json`, always to stderr.
//!
//! Credentials are kept out of log lines twice over. First, they never reach a formatter:
//! they live in [`crate::secret::Secret`], and URLs that carry them pass through
//! [`crate::secret::redact_url`] before they are logged. Second, because dependencies log at
//! debug and trace level with texts we do not control, every formatted line goes through
//! [`RedactingWriter`], which masks each registered secret value ([`register_secret`]: the
//! Weiban secret, access tokens, robot URLs' keys, the SMTP password) and every
//! `key=` / `access_token=` query value before it reaches stderr.

use std::io::{self, Write};

use crate::secret::SECRET_PARAMS;
use std::sync::{OnceLock, RwLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The zone log times are shown in: the configured one once a config is loaded.
static LOG_ZONE: OnceLock<crate::zone::Zone> = OnceLock::new();

/// Shows log times in `tz` from now on (the first call wins).
pub fn set_timezone(tz: crate::zone::Zone) {
    let _ = LOG_ZONE.set(tz);
}

/// Log timestamps in RFC 3339 with the zone's offset (`2026-11-26T20:15:03.042+08:00`): in
/// the configured zone once known, the machine's before.
struct ZonedTime;

impl tracing_subscriber::fmt::time::FormatTime for ZonedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = crate::time::now_utc();
        let shown = match LOG_ZONE.get() {
            Some(tz) => now
                .with_timezone(tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            None => now
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        };
        w.write_str(&shown)
    }
}

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
        .with_writer(RedactingStderr)
        .with_timer(ZonedTime)
        // Colours only for a person at a terminal, never in journald, files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("churn-alert: logging could not be set up: {e}");
    }
}

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(RwLock::default)
}

/// Masks `value` in every log line from now on. Values shorter than 4 bytes are ignored, as
/// masking them would garble ordinary text without protecting anything.
pub fn register_secret(value: &str) {
    if value.len() < 4 {
        return;
    }
    let mut list = secrets().write().unwrap_or_else(|p| p.into_inner());
    // JSON logs escape quotes and backslashes before the writer sees them.
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"');
    for form in [value, json] {
        if !form.is_empty() && !list.iter().any(|s| s == form) {
            list.push(form.to_owned());
        }
    }
    // Longest first, so that a secret containing another is masked whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the secret parts of a URL: the values of its credential query parameters.
pub fn register_url_secrets(url: &str) {
    let Some((_, query)) = url.split_once('?') else {
        return;
    };
    for pair in query.split(['&', '#']) {
        if let Some((name, value)) = pair.split_once('=') {
            if SECRET_PARAMS.contains(&name) {
                register_secret(value);
            }
        }
    }
}

/// `text` with every registered secret and credential query value masked.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets().read().unwrap_or_else(|p| p.into_inner()).iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    for param in SECRET_PARAMS {
        out = mask_after(&out, &format!("{param}="));
    }
    out
}

/// Masks the value after each `param` (up to `&`, whitespace or a quote).
fn mask_after(text: &str, param: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(param) {
        let (head, tail) = rest.split_at(pos + param.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == ')')
            .unwrap_or(tail.len());
        if end > 0 && &tail[..end] != "***" {
            out.push_str("***");
        } else {
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Makes a [`RedactingWriter`] over stderr for each event.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buffer: Vec::new(),
            to: None,
        }
    }
}

/// Makes a [`RedactingWriter`] into an in-process command's capture for each event.
struct RedactingCapture(crate::cmd::console::Captured);

impl<'a> MakeWriter<'a> for RedactingCapture {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buffer: Vec::new(),
            to: Some(self.0.clone()),
        }
    }
}

/// The log of a command run in process ([`crate::cmd::in_process`]): the same lines, redacted
/// the same way, at `churn_alert=debug`, into `captured`, on this thread until the guard drops.
pub(crate) fn capture(
    captured: crate::cmd::console::Captured,
) -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("warn,churn_alert=debug"))
        .with_writer(RedactingCapture(captured))
        .with_timer(ZonedTime)
        .with_ansi(false)
        .with_target(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// Collects one formatted event and writes it redacted when dropped: to stderr, or to an
/// in-process capture.
pub struct RedactingWriter {
    buffer: Vec<u8>,
    to: Option<crate::cmd::console::Captured>,
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = redact(&String::from_utf8_lossy(&self.buffer));
        match &mut self.to {
            Some(captured) => {
                let _ = captured.write_all(text.as_bytes());
            }
            None => {
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }
}

/// An error and its causes on one line, `outer: cause: cause`, each cause said once: many
/// errors already print their source in their own message (`cannot open the store at X: No
/// such file`), and anyhow's `{:#}` would repeat it.
pub(crate) fn chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_query_credentials_are_masked() {
        register_secret("s3cret-value");
        let line = redact("secret s3cret-value in http://h/x?a=1&access_token=tok123&key=abc def");
        assert_eq!(
            line,
            "secret *** in http://h/x?a=1&access_token=***&key=*** def"
        );
        register_url_secrets("http://h/send?key=robot-key-1");
        assert_eq!(redact("robot-key-1 leaked"), "*** leaked");
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(io)
            .context("cannot open the store at /x: No such file or directory");
        let error = error.context("config c.toml cannot be used");
        assert_eq!(
            chain(&error),
            "config c.toml cannot be used: cannot open the store at /x: No such file or directory"
        );
    }
}
