//! `churn-alert preview`: what each destination would receive, without sending anything.
//!
//! Renders through the same code path as delivery ([`compose`]), for the documented example
//! or, with `--live`, for the losses Weiban reports in the first-run window; `--staff USERID`
//! shows them as lost by that staff member. The store is opened only to read the org chart it
//! saved, when it exists and the daemon does not hold it; nothing is written, so a live
//! preview cannot tell which of those losses were already reported.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::cli::PreviewArgs;
use crate::config::Config;
use crate::destination::DestinationId;
use crate::loss::Loss;
use crate::render::compose::{compose, Composed, Queued};
use crate::render::escape::{terminal, terminal_lines};
use crate::render::Renderer;
use crate::sink::{EmailMessage, Sinks, WecomBody, WecomMessage};
use crate::source::model::documented_example;
use crate::source::{WeibanClient, Window};
use crate::time::unix_now;
use crate::transform::{Router, Routing};

pub(crate) async fn preview(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.report {
        return preview_report(args, name).await;
    }
    let config = super::load_config(&args.config)?;
    if let Some(route) = &args.route {
        if config.route(route).is_none() {
            anyhow::bail!("no route named `{route}` in the config");
        }
    }
    let renderer = Renderer::new(config.timezone(), config.templates.dir.as_deref())?;
    let mut losses = if args.live {
        live_losses(&config).await?
    } else {
        documented_example()
    };
    let routing = Routing::new(&config, saved_directory(&config).map(std::sync::Arc::new));
    if let Some(staff) = &args.staff {
        as_lost_by(&mut losses, staff, routing.directory());
    }
    crate::transform::enrich::departments(&mut losses, routing.directory());
    let router = routing.router();
    let mut per_destination = router.route_all(&losses);
    per_destination.retain(|id, _| args.route.as_ref().is_none_or(|r| id.route == *r));
    crate::cmd::console::show!(
        "preview of {} loss(es) ({}); nothing is sent, the store is not touched\n",
        losses.len(),
        if args.live {
            "live from Weiban"
        } else {
            "the documented example"
        }
    );
    if per_destination.is_empty() {
        crate::cmd::console::show!("no destination would receive anything");
        if args.staff.is_none() && config.uses_departments() {
            crate::cmd::console::show!(
                "(department robots and mailboxes get the losses of their own staff: try `--staff USERID`, see `churn-alert staff`)"
            );
        }
    }
    print_plan(&renderer, &Sinks::new(&config)?, &router, per_destination);
    Ok(ExitCode::SUCCESS)
}

/// Prints what each destination would receive, as its sink would get it.
pub(super) fn print_plan(
    renderer: &Renderer,
    sinks: &Sinks,
    router: &Router<'_>,
    per_destination: BTreeMap<DestinationId, Vec<Loss>>,
) {
    for (id, losses) in per_destination {
        let Some(destination) = router.get(&id) else {
            continue;
        };
        let described = terminal(&destination.describe()).into_owned();
        let composed = match compose(renderer, sinks, &destination, &Queued::one_poll(losses)) {
            Ok(composed) => composed,
            Err(e) => {
                crate::cmd::console::show!("══ {described} ══\n(cannot be delivered: {e})\n");
                continue;
            }
        };
        crate::cmd::console::show!("══ {described} — {} message(s) ══", composed.len());
        let shown: Vec<String> = match composed {
            Composed::Wecom(_, messages) => {
                messages.iter().map(|m| show_wecom(&m.message)).collect()
            }
            Composed::Email(_, messages) => {
                messages.iter().map(|m| show_email(&m.message)).collect()
            }
        };
        let parts = shown.len();
        for (i, text) in shown.into_iter().enumerate() {
            crate::cmd::console::show!("── {}/{parts} · {}", i + 1, terminal_lines(&text));
        }
    }
}

fn show_wecom(message: &WecomMessage) -> String {
    let mentions = match &message.body {
        WecomBody::Text { mentioned, .. } if !mentioned.is_empty() => {
            format!(" · mentions {}", mentioned.join(", "))
        }
        _ => String::new(),
    };
    match &message.body {
        WecomBody::Image(png) => format!("image · PNG, {} bytes ──\n", png.len()),
        WecomBody::File { filename, bytes } => {
            format!("file · {filename}, {} bytes ──\n", bytes.len())
        }
        body => format!(
            "{} · {} bytes{mentions} ──\n{}\n",
            body.msgtype(),
            body.content().len(),
            body.content()
        ),
    }
}

fn show_email(message: &EmailMessage) -> String {
    format!(
        "email ──\nTo: {}\nSubject: {}\n── text/plain ──\n{}\n── text/html ({} bytes) ──\n{}\n",
        message.to,
        message.subject,
        message.text,
        message.html.len(),
        message.html
    )
}

/// A report for the last whole period: the sample moved into it, or Weiban's with `--live`.
/// The store is not opened.
async fn preview_report(args: &PreviewArgs, name: &str) -> anyhow::Result<ExitCode> {
    use crate::report::output::print_plan;
    use crate::report::plan::plan;
    use crate::report::send::{fetch, sample_in, today};
    use crate::report::Period;
    let config = super::load_config(&args.config)?;
    let pipeline = crate::pipeline::Pipeline::new(config, crate::store::Store::temporary()?)?;
    let config = pipeline.config();
    let Some(spec) = config.report(name) else {
        anyhow::bail!("no report named `{name}` in the config");
    };
    let now = unix_now();
    let period = Period::last_whole(spec.period, today(config.timezone(), now));
    let losses = if args.live {
        fetch(&pipeline, spec, &period, now).await?
    } else {
        sample_in(&period, config.timezone())
    };
    crate::cmd::console::show!(
        "preview of report `{name}` for {} ({}); nothing is sent, the store is not touched\n",
        period.key(),
        if args.live {
            "live from Weiban"
        } else {
            "the documented example"
        }
    );
    let routing = pipeline.routing();
    let router = routing.router();
    print_plan(&plan(
        config,
        &router,
        pipeline.renderer(),
        spec,
        period,
        &losses,
    )?);
    Ok(ExitCode::SUCCESS)
}

/// The org chart the store saved, when the store exists and is free; a preview never waits
/// for Weiban nor creates a store.
fn saved_directory(config: &Config) -> Option<crate::directory::Directory> {
    if !crate::store::Store::exists(&config.store.path) {
        return None;
    }
    match crate::store::Store::open(&config.store.path)
        .and_then(|store| store.corp(&config.corp))
        .and_then(|store| store.directory())
    {
        Ok(directory) => directory,
        Err(e) => {
            crate::cmd::console::show!("(the org chart saved in the store cannot be read: {e}; departments are not shown)\n");
            None
        }
    }
}

/// The sample as lost by `staff`: their name and mailbox from the org chart when it knows them.
fn as_lost_by(losses: &mut [Loss], staff: &str, directory: Option<&crate::directory::Directory>) {
    let member = directory.and_then(|d| d.staff.get(staff));
    if member.is_none() {
        crate::cmd::console::show!(
            "(staff member `{}` is not in the org chart the store saved; department destinations cannot be shown for them)\n",
            terminal(staff)
        );
    }
    for loss in losses {
        loss.staff_id = staff.to_owned();
        if let Some(member) = member {
            loss.staff_name.clone_from(&member.name);
            loss.staff_email.clone_from(&member.email);
        }
    }
}

async fn live_losses(config: &Config) -> anyhow::Result<Vec<Loss>> {
    let client = WeibanClient::new(&config.weiban)?;
    let now = unix_now();
    let window = Window {
        start: now - i64::try_from(config.weiban.first_lookback.as_secs()).unwrap_or(86_400),
        end: now,
    };
    Ok(client.losses_in(window).await?)
}
