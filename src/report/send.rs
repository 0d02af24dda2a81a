//! Running a report: fetch the period from Weiban, plan what each destination of the route
//! receives, and deliver it exactly once per period and destination through the ledger.
//!
//! The destinations are the route's own robots and `email_to` (always, even for a period
//! without losses) and its department robots and mailboxes that have losses in the period;
//! each gets the losses it gets as alerts: the route's filters apply, and a route robot that
//! stands in for departments without a robot of their own reports only those. Staff members'
//! own robots and mailboxes get no reports: reports are for managers. Reports make no
//! still-followed lookups, so `skip_if_still_followed` does not thin them.

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;

use super::compose::{self, BuildError, Heading, Rendered};
use super::period::Period;
use super::stats::{trend_span, Summary};
use super::ReportSpec;
use crate::config::Config;
use crate::destination::{DestinationId, DestinationKind};
use crate::loss::Loss;
use crate::pipeline::Pipeline;
use crate::render::escape::{terminal, terminal_lines};
use crate::render::Renderer;
use crate::shutdown::Shutdown;
use crate::sink::{Sink, Sinks};
use crate::source::{WeibanError, Window};
use crate::store::ledger::{LedgerKey, Progress};
use crate::store::{Store, StoreError};
use crate::time::unix_now;
use crate::transform::enrich;
use crate::transform::route::{Destination, Target};
use crate::transform::Router;

/// How many tags a report lists.
const TOP_TAGS: usize = 5;

/// Why a report could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error("report `{report}`: fetching the period from Weiban failed: {source}")]
    Weiban { report: String, source: WeibanError },
    #[error("report `{report}`: {source}")]
    Build { report: String, source: BuildError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("report `{report}`: cannot write {path}: {source}")]
    Write {
        report: String,
        path: String,
        source: std::io::Error,
    },
}

/// One destination's report, ready to send.
pub(crate) struct Planned<'a> {
    pub destination: Destination<'a>,
    pub rendered: Rendered,
}

/// What happened at one destination.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// Every message was accepted (`messages` of them now).
    Sent { messages: usize },
    /// The ledger says this period already reached it.
    AlreadySent,
    /// A message was refused; the ledger keeps how far it got, and a later run goes on.
    Failed(String),
    /// Shutdown began; a later run goes on.
    Interrupted,
}

/// What a run of one report for one period did.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Files written for `out`.
    pub written: Vec<String>,
    /// Each destination's outcome; empty for a dry run.
    pub delivered: Vec<(DestinationId, Delivered)>,
}

impl Run {
    /// Every destination has the report now (sent by this run or an earlier one).
    pub fn all_delivered(&self) -> bool {
        self.delivered
            .iter()
            .all(|(_, d)| matches!(d, Delivered::Sent { .. } | Delivered::AlreadySent))
    }
}

/// One report for one period, the way every caller runs it: fetched from Weiban, planned
/// per destination, its files written into `out` when asked, then delivered through the
/// ledger — or, `dry_run`, printed instead.
pub(crate) async fn run(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    period: Period,
    now: i64,
    out: Option<&Path>,
    dry_run: bool,
    shutdown: &Shutdown,
) -> Result<Run, ReportError> {
    let losses = fetch(pipeline, spec, &period, now).await?;
    let directory = pipeline.org().current();
    let router = Router::with_directory(pipeline.config(), directory.as_deref());
    let planned = plan(
        pipeline.config(),
        &router,
        pipeline.renderer(),
        spec,
        period,
        &losses,
    )?;
    let mut run = Run::default();
    if let Some(dir) = out {
        run.written = write_plan(dir, spec, &planned)?;
    }
    if dry_run {
        print_plan(&planned);
    } else {
        run.delivered = deliver(
            pipeline.store(),
            pipeline.sinks(),
            spec,
            &period,
            &planned,
            shutdown,
        )
        .await?;
    }
    Ok(run)
}

/// The documented example moved into the middle of `period`: what `check` and `preview`
/// render a report from without asking Weiban.
pub(crate) fn sample_in(period: &Period, tz: Tz) -> Vec<Loss> {
    let window = period.window(tz);
    crate::source::model::documented_example()
        .into_iter()
        .map(|mut loss| {
            loss.outflow_at = window.start + (window.end - window.start) / 2;
            loss
        })
        .collect()
}

/// The span a report for `period` needs from Weiban: the period, the one before, the trend.
pub(crate) fn span_needed(period: &Period) -> Period {
    let (_, trend) = trend_span(period);
    Period {
        first: trend.first.min(period.previous().first),
        last: period.last,
    }
}

/// Fetches the losses a report for `period` needs, with departments filled in.
pub(crate) async fn fetch(
    pipeline: &Pipeline,
    spec: &ReportSpec,
    period: &Period,
    now: i64,
) -> Result<Vec<Loss>, ReportError> {
    let tz = pipeline.config().timezone();
    let span = span_needed(period).window(tz);
    let window = Window {
        start: span.start,
        end: span.end.min(now),
    };
    pipeline.org().refresh(pipeline.weiban(), now, false).await;
    let mut losses = pipeline
        .weiban()
        .losses_in(window)
        .await
        .map_err(|source| ReportError::Weiban {
            report: spec.name.clone(),
            source,
        })?;
    enrich::departments(&mut losses, pipeline.org().current().as_deref());
    Ok(losses)
}

/// What each destination of the report's route receives for `period`.
pub(crate) fn plan<'a>(
    config: &'a Config,
    router: &Router<'a>,
    renderer: &Renderer,
    spec: &ReportSpec,
    period: Period,
    losses: &[Loss],
) -> Result<Vec<Planned<'a>>, ReportError> {
    let tz = config.timezone();
    let mut per_destination: BTreeMap<DestinationId, Vec<Loss>> = BTreeMap::new();
    if let Some(route) = config.route(&spec.route) {
        for id in Router::own_destinations(route) {
            per_destination.insert(id, Vec::new());
        }
    }
    // Department destinations take part when they have losses in the period itself.
    let in_period: Vec<&Loss> = losses
        .iter()
        .filter(|l| period.contains(super::period::date_of(l.outflow_at, tz)))
        .collect();
    let reporting: std::collections::BTreeSet<DestinationId> =
        router.route_all(in_period).into_keys().collect();
    for (id, routed) in router.route_all(losses) {
        let for_managers = !matches!(
            id.kind,
            DestinationKind::StaffWecom | DestinationKind::StaffEmail
        );
        if id.route == spec.route
            && for_managers
            && (reporting.contains(&id) || per_destination.contains_key(&id))
        {
            per_destination.insert(id, routed);
        }
    }
    let word = if Period::last_whole(spec.period, period.last.succ_opt().unwrap_or(period.last))
        == period
    {
        spec.period.word()
    } else {
        "期"
    };
    let title = spec.title();
    let heading = Heading {
        title: &title,
        word,
        top: spec.top,
    };
    let build = |source| ReportError::Build {
        report: spec.name.clone(),
        source,
    };
    let mut planned = Vec::new();
    for (id, routed) in per_destination {
        let Some(destination) = router.get(&id) else {
            continue;
        };
        let summary = Summary::of(&routed, period, tz, TOP_TAGS);
        let rendered = compose::render(renderer, &heading, &summary, tz).map_err(build)?;
        planned.push(Planned {
            destination,
            rendered,
        });
    }
    Ok(planned)
}

/// Sends each planned report that the ledger does not show as sent, from where it stopped.
pub(crate) async fn deliver(
    store: &Store,
    sinks: &Sinks,
    spec: &ReportSpec,
    period: &Period,
    planned: &[Planned<'_>],
    shutdown: &Shutdown,
) -> Result<Vec<(DestinationId, Delivered)>, StoreError> {
    let mut out = Vec::new();
    for item in planned {
        let id = item.destination.id.clone();
        let key = LedgerKey {
            report: spec.name.clone(),
            period: period.key(),
            destination: id.clone(),
        };
        let delivered = send_to(store, sinks, &key, item, shutdown).await?;
        match &delivered {
            Delivered::Failed(reason) => tracing::warn!(
                report = %spec.name, period = %period.key(), destination = %id,
                "report not delivered: {}; it is tried again after a later poll (15 minutes at first, backing off to 6 hours, for 7 days)",
                crate::logging::redact(reason)
            ),
            Delivered::Sent { messages } => tracing::info!(
                report = %spec.name, period = %period.key(), destination = %id, messages,
                "report delivered"
            ),
            Delivered::AlreadySent | Delivered::Interrupted => {}
        }
        out.push((id, delivered));
    }
    Ok(out)
}

async fn send_to(
    store: &Store,
    sinks: &Sinks,
    key: &LedgerKey,
    item: &Planned<'_>,
    shutdown: &Shutdown,
) -> Result<Delivered, StoreError> {
    let progress = store.progress(key)?.unwrap_or_default();
    if progress.done {
        return Ok(Delivered::AlreadySent);
    }
    match &item.destination.target {
        Target::Wecom { robot, msgtype, .. } => {
            let limit = sinks
                .wecom
                .limit(crate::render::compose::format_of(*msgtype))
                .unwrap_or(usize::MAX);
            let messages: Vec<_> = item
                .rendered
                .robot_bodies(*msgtype, limit)
                .into_iter()
                .map(|(label, body)| {
                    let robot = robot.clone();
                    (label, crate::sink::WecomMessage { robot, body })
                })
                .collect();
            ledgered(store, key, progress, &sinks.wecom, &messages, shutdown).await
        }
        Target::Email { to, .. } => {
            let Some(email) = &sinks.email else {
                return Ok(Delivered::Failed(format!(
                    "route `{}` sends email, but there is no [smtp] section in the config",
                    item.destination.route.name
                )));
            };
            let Some(to) = to.clone() else {
                return Ok(Delivered::Failed("no email address".into()));
            };
            let messages = [("email".to_owned(), item.rendered.email(to))];
            ledgered(store, key, progress, email, &messages, shutdown).await
        }
    }
}

/// Sends the labelled `messages` whose labels `progress` does not list yet, recording each in
/// the ledger before the next goes out.
pub(crate) async fn ledgered<S: Sink>(
    store: &Store,
    key: &LedgerKey,
    mut progress: Progress,
    sink: &S,
    messages: &[(String, S::Message)],
    shutdown: &Shutdown,
) -> Result<Delivered, StoreError> {
    progress.at = unix_now();
    if progress.since == 0 {
        progress.since = progress.at;
    }
    // Recorded before the first send: the period is claimed for this destination.
    store.set_progress(key, &progress).await?;
    let channel = sink.channel().as_str();
    let mut sent_now = 0;
    for (label, message) in messages {
        if progress.sent.contains(label) {
            continue;
        }
        if shutdown.is_shutdown() {
            return Ok(Delivered::Interrupted);
        }
        let mut signal = shutdown.clone();
        let answer = tokio::select! {
            answer = sink.send(message) => answer,
            () = signal.recv() => return Ok(Delivered::Interrupted),
        };
        progress.at = unix_now();
        if let Err(e) = answer {
            metrics::counter!("churn_alert_messages_failed_total", "sink" => channel).increment(1);
            progress.error = Some(e.to_string());
            progress.attempts += 1;
            store.set_progress(key, &progress).await?;
            return Ok(Delivered::Failed(e.to_string()));
        }
        metrics::counter!("churn_alert_messages_sent_total", "sink" => channel).increment(1);
        progress.sent.push(label.clone());
        progress.error = None;
        sent_now += 1;
        store.set_progress(key, &progress).await?;
    }
    progress.done = true;
    store.set_progress(key, &progress).await?;
    Ok(Delivered::Sent { messages: sent_now })
}

/// Prints each planned report as its destination would get it.
pub(crate) fn print_plan(planned: &[Planned<'_>]) {
    for item in planned {
        let r = &item.rendered;
        crate::cmd::console::show!("══ {} ══", terminal(&item.destination.describe()));
        let summary = match &item.destination.target {
            Target::Wecom { msgtype, .. } if *msgtype == crate::config::WecomMsgType::Text => {
                &r.text
            }
            Target::Wecom { .. } => &r.markdown,
            Target::Email { .. } => &r.text,
        };
        crate::cmd::console::show!("{}\n", terminal_lines(summary));
        crate::cmd::console::show!("── image · trend chart, PNG, {} bytes", r.png.len());
        match &r.xlsx {
            Some((name, bytes)) => {
                crate::cmd::console::show!("── file · {name}, XLSX, {} bytes\n", bytes.len())
            }
            None => crate::cmd::console::show!("── no spreadsheet: no losses in the period\n"),
        }
    }
}

/// Writes each planned report's markdown, HTML, PNG and XLSX into `dir`, one file name per
/// destination. Returns the files written.
pub(crate) fn write_plan(
    dir: &Path,
    spec: &ReportSpec,
    planned: &[Planned<'_>],
) -> Result<Vec<String>, ReportError> {
    let write_error = |path: &Path, source| ReportError::Write {
        report: spec.name.clone(),
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let mut written = Vec::new();
    for item in planned {
        let stem: String = item
            .destination
            .id
            .to_string()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let r = &item.rendered;
        let mut files: Vec<(String, &[u8])> = vec![
            (format!("{stem}.md"), r.markdown.as_bytes()),
            (format!("{stem}.txt"), r.text.as_bytes()),
            (format!("{stem}.html"), r.html.as_bytes()),
            (format!("{stem}.png"), &r.png),
        ];
        if let Some((_, bytes)) = &r.xlsx {
            files.push((format!("{stem}.xlsx"), bytes));
        }
        for (name, bytes) in files {
            let path = dir.join(&name);
            std::fs::write(&path, bytes).map_err(|e| write_error(&path, e))?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}

/// The date today in `tz`.
pub(crate) fn today(tz: Tz, now: i64) -> chrono::NaiveDate {
    super::period::date_of(now, tz)
}
