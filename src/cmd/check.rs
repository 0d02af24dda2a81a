//! `churn-alert check`: validates config, templates and schedule without side effects.
//!
//! Templates are rendered against the documented example in strict mode, so a misspelt
//! variable fails here rather than at delivery time. The store is not opened: `check` works
//! while the daemon runs. `--online` and `--send-test` then talk to Weiban and to every
//! destination ([`online`]).

mod online;

use std::process::ExitCode;

use std::path::Path;

use anyhow::Context as _;

use crate::cli::CheckArgs;
use crate::render::compose::{compose, Queued};
use crate::render::Renderer;
use crate::sink::Sinks;
use crate::source::model::documented_example;
use crate::transform::route::listed;
use crate::transform::Router;

/// Every corp of the config (or the one `--corp` names), each checked whole; an error names
/// its corp.
pub(crate) async fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config.config;
    let mut configs = super::load_all(path)?;
    if let Some(name) = &args.config.corp {
        configs = vec![crate::config::Config::select(configs, Some(name), path)?];
    }
    let several = configs.len() > 1 || configs.iter().any(|c| !c.corp.is_default());
    let mut refused = 0;
    for config in &configs {
        if several {
            crate::cmd::console::say!("corp `{}`:", config.corp);
        }
        let checked = check_corp(config, args).await;
        refused += if several {
            checked.with_context(|| format!("corp `{}`", config.corp))?
        } else {
            checked?
        };
    }
    if several {
        crate::cmd::console::say!("all {} corps are valid", configs.len());
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        crate::cmd::console::say!(
            "churn-alert: {refused} destination(s) refused the test message (see above)"
        );
        ExitCode::FAILURE
    })
}

/// Checks one corp; returns how many destinations refused the test message.
async fn check_corp(config: &crate::config::Config, args: &CheckArgs) -> anyhow::Result<usize> {
    let path = &args.config.config;
    check_store_path(&config.store.path)?;
    let schedule = config.schedule();
    let renderer = Renderer::new(schedule.timezone(), config.templates.dir.as_deref())?;
    // Every route renders the documented example through each of its destinations' templates.
    let mut sample = documented_example();
    for loss in &mut sample {
        loss.staff_email
            .get_or_insert_with(|| "staff@example.com".into());
    }
    let router = Router::new(config);
    let sinks = Sinks::new(config)?;
    crate::report::anomaly::check_templates(&renderer)
        .context("the staff deletion alert's templates (alert.*) cannot be rendered")?;
    for (id, losses) in router.route_all(&sample) {
        if let Some(destination) = router.get(&id) {
            compose(&renderer, &sinks, &destination, &Queued::one_poll(losses))
                .with_context(|| format!("{} cannot be rendered", destination.describe()))?;
        }
    }
    let mut destinations = 0;
    for route in &config.routes {
        let listed = listed(route);
        destinations += listed.len();
        let labels: Vec<&str> = listed.iter().map(|l| l.label.as_str()).collect();
        crate::cmd::console::say!(
            "route `{}` ({}): {} destination(s): {}",
            route.name,
            route.audience.as_str(),
            listed.len(),
            labels.join(", ")
        );
        if route.staff_delete_alert > 0 && !listed.iter().any(|l| l.for_managers) {
            anyhow::bail!(
                "route `{}`: `staff_delete_alert` is set, but the route has no destination an alert can go to (`wecom_webhooks`, `email_to`, `department_webhooks` or `department_emails`; staff members' own robots and mailboxes never get it); add one, or move the alert to a managers' route",
                route.name
            );
        }
        let covers_everybody =
            !route.wecom_webhooks.is_empty() || !route.email_to.is_empty() || route.email_staff;
        if !covers_everybody {
            crate::cmd::console::say!(
                "note: route `{}` has only staff or department robots and mailboxes: losses of staff members none of them covers are held (see `state pending`) until `[directory] hold_for` passes, then go to `[fallback]` if it is set",
                route.name
            );
        }
    }
    crate::cmd::console::say!(
        "config {} is valid: {} route(s), {} destination(s), templates render; next runs ({}):",
        path.display(),
        config.routes.len(),
        destinations,
        config.timezone()
    );
    for run in schedule.upcoming(crate::time::now_utc(), 5) {
        crate::cmd::console::show!("{}", run.to_rfc3339());
    }
    check_reports(config, &renderer, &router)?;
    if !(args.online || args.send_test) {
        return Ok(0);
    }
    online::weiban(config).await?;
    if !args.send_test {
        return Ok(0);
    }
    Ok(online::send_tests(config, &sinks).await)
}

/// `store.path` can be created and written, checked without opening the store (which the
/// running daemon holds): the nearest folder that exists must take a new file.
fn check_store_path(path: &Path) -> anyhow::Result<()> {
    let fail = |why: String| {
        anyhow::anyhow!(
            "config key `store.path`: {} {why}; point it at a folder the service user can write (the systemd unit uses /var/lib/churn-alert)",
            path.display()
        )
    };
    if path.exists() && !path.is_dir() {
        return Err(fail("exists but is not a folder".into()));
    }
    let existing = path
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(fail(format!(
            "cannot be created: {} is not a folder",
            existing.display()
        )));
    }
    let probe = existing.join(format!(".churn-alert-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            let verb = if existing == path {
                "cannot be written"
            } else {
                "cannot be created"
            };
            fail(format!(
                "{verb}: {} refuses new files ({e})",
                existing.display()
            ))
        })
}

/// Renders every report once from the sample (templates, chart, spreadsheet) and says when it
/// runs next and for which period.
fn check_reports(
    config: &crate::config::Config,
    renderer: &crate::render::Renderer,
    router: &crate::transform::Router<'_>,
) -> anyhow::Result<()> {
    use crate::report::plan::plan;
    use crate::report::send::{sample_in, today};
    use crate::report::Period;
    for spec in &config.reports {
        let next = spec.schedule.next_after(crate::time::now_utc());
        let Some(next) = next else {
            anyhow::bail!("report `{}`: cron `{}` never fires", spec.name, spec.cron);
        };
        let period = Period::last_whole(spec.period, today(config.timezone(), next.timestamp()));
        let sample = sample_in(&period, config.timezone());
        plan(config, router, renderer, spec, period, &sample)
            .with_context(|| format!("report `{}` cannot be rendered", spec.name))?;
        let receivers: Vec<String> = config
            .route(&spec.route)
            .map(listed)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.for_managers)
            .map(|l| l.label)
            .collect();
        if receivers.is_empty() {
            anyhow::bail!(
                "report `{}`: route `{}` has no destination a report can go to (`wecom_webhooks`, `email_to`, `department_webhooks` or `department_emails`; staff members' own robots and mailboxes never get reports); add one, or point the report at a managers' route",
                spec.name,
                spec.route
            );
        }
        crate::cmd::console::say!(
            "report `{}` ({}) → route `{}`, {} destination(s): {}; next at {} for {}",
            spec.name,
            spec.cron,
            spec.route,
            receivers.len(),
            receivers.join(", "),
            next.to_rfc3339(),
            period.key()
        );
    }
    Ok(())
}
