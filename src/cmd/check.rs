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
use crate::render::split::{pack, Batch};
use crate::render::{Renderer, BUILTIN, MARKDOWN_LIMIT};
use crate::source::model::documented_example;
use crate::transform::Router;

pub(crate) fn check(args: &ConfigArg) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let schedule = config.schedule()?;
    let renderer = Renderer::markdown(schedule.timezone(), config.templates.dir.as_deref())?;
    let sample = documented_example();
    for (name, _) in BUILTIN {
        pack(
            &renderer,
            &Batch {
                template: name,
                losses: &sample,
                window: None,
                list_at_most: None,
                limit: MARKDOWN_LIMIT,
            },
        )
        .with_context(|| format!("template {name} fails on the documented example"))?;
    }
    let destinations = Router::new(&config).all().len();
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
