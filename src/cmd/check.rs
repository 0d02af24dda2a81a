//! `churn-alert check`: validates config, templates and schedule without side effects.
//!
//! Templates are rendered against the documented example in strict mode, so a misspelt
//! variable fails here rather than at delivery time. The store is not opened: `check` works
//! while the daemon runs.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use crate::cli::ConfigArg;
use crate::config::Config;
use crate::render::compose::compose;
use crate::render::Renderer;
use crate::source::model::documented_example;
use crate::store::Pending;
use crate::transform::Router;

pub(crate) fn check(args: &ConfigArg) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let schedule = config.schedule()?;
    let renderer = Renderer::new(schedule.timezone(), config.templates.dir.as_deref())?;
    // Every route renders the documented example through each of its destinations' templates.
    let mut sample = documented_example();
    for loss in &mut sample {
        loss.staff_email
            .get_or_insert_with(|| "staff@example.com".into());
    }
    let router = Router::new(&config);
    let pending = Pending::one_poll(sample.clone());
    let mut destinations = 0;
    for loss in &sample {
        for id in router.destinations_for(loss) {
            if let Some(destination) = router.get(&id) {
                compose(&renderer, &destination, &pending)
                    .with_context(|| format!("{} cannot be rendered", destination.describe()))?;
                destinations += 1;
            }
        }
    }
    for route in &config.routes {
        let covers_everybody =
            !route.wecom_webhooks.is_empty() || !route.email_to.is_empty() || route.email_staff;
        if !covers_everybody {
            eprintln!(
                "note: route `{}` only has staff_webhooks: staff members not listed there get nothing from it",
                route.name
            );
        }
    }
    eprintln!(
        "config {} is valid: {} route(s), {} destination(s), templates render; next runs ({}):",
        args.config.display(),
        config.routes.len(),
        destinations,
        config.schedule.timezone
    );
    for run in schedule.upcoming(Utc::now(), 5) {
        println!("{}", run.to_rfc3339());
    }
    Ok(ExitCode::SUCCESS)
}
