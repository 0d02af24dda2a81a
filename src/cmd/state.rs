//! `churn-alert state`: look into the store and repair it.

use std::process::ExitCode;

use chrono::Utc;
use chrono_tz::Tz;
use serde::Serialize;

use crate::cli::{StateCommand, StateOpts};
use crate::config::Config;
use crate::destination::DestinationId;
use crate::render::escape::terminal;
use crate::store::{DeliveryStatus, Store};
use crate::transform::Router;

pub(crate) async fn state(command: StateCommand) -> anyhow::Result<ExitCode> {
    match command {
        StateCommand::Stats(opts) => stats(&opts),
        StateCommand::Pending(opts) => pending(&opts),
        StateCommand::Retry { opts, route } => retry(&opts, route.as_deref()).await,
        StateCommand::Forget { opts, customer } => forget(&opts, &customer).await,
        StateCommand::Drop { opts, destination } => drop_pending(&opts, &destination).await,
    }
}

fn open(opts: &StateOpts) -> anyhow::Result<(Config, Store, Tz)> {
    let config = super::load_config(&opts.config.config)?;
    let tz = config.timezone();
    let store = Store::open(&config.store.path)?;
    Ok((config, store, tz))
}

use crate::time::rfc3339 as time;

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn stats(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (_, store, tz) = open(opts)?;
    let stats = store.stats()?;
    if opts.json {
        print_json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("remembered losses:   {}", stats.remembered_losses);
    println!(
        "last window fetched: {}",
        stats
            .last_window_end
            .map_or_else(|| "never".to_owned(), |t| format!("up to {}", time(tz, t)))
    );
    println!("store size on disk:  {} bytes", stats.size_on_disk);
    if stats.pending.is_empty() {
        println!("pending deliveries:  none");
    } else {
        println!("pending deliveries:");
        for (destination, count) in &stats.pending {
            println!("  {destination}: {count}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One destination's waiting deliveries.
#[derive(Serialize)]
struct PendingReport {
    destination: DestinationId,
    description: String,
    pending: usize,
    oldest_enqueued_at: Option<i64>,
    status: String,
    reason: Option<String>,
    failing_since: Option<i64>,
    retry_at: Option<i64>,
    customers: Vec<String>,
}

fn pending(opts: &StateOpts) -> anyhow::Result<ExitCode> {
    let (config, store, tz) = open(opts)?;
    let router = Router::new(&config);
    let states = store.destination_states()?;
    let held = quiet_now(&config);
    let mut reports = Vec::new();
    for (id, count) in store.pending_counts()? {
        let items = store.pending(&id)?;
        let state = states.get(&id);
        let destination = router.get(&id);
        reports.push(PendingReport {
            description: destination.as_ref().map_or_else(
                || format!("{id} (no longer in the config)"),
                |d| d.describe(),
            ),
            destination: id,
            pending: count,
            oldest_enqueued_at: items.iter().map(|p| p.enqueued_at).min(),
            status: match (&destination, state.map(|s| s.status)) {
                (None, _) => "stranded",
                (_, Some(DeliveryStatus::Failed)) => "failed",
                (_, Some(DeliveryStatus::Retrying)) => "retrying",
                (_, None) if held => "held for quiet hours",
                (_, None) => "due",
            }
            .to_owned(),
            reason: state.map(|s| s.reason.clone()),
            failing_since: state.map(|s| s.since),
            retry_at: state.and_then(|s| s.retry_at),
            customers: items
                .iter()
                .map(|p| format!("{} ({})", p.loss.customer_name, p.loss.customer_id))
                .collect(),
        });
    }
    if opts.json {
        print_json(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!("nothing is pending: every loss found so far was delivered");
    }
    for r in &reports {
        println!(
            "{}: {} pending, {}",
            terminal(&r.description),
            r.pending,
            r.status
        );
        if let Some(since) = r.oldest_enqueued_at {
            println!("  waiting since {}", time(tz, since));
        }
        if let Some(reason) = &r.reason {
            println!("  why: {}", terminal(reason));
        }
        if let Some(since) = r.failing_since {
            println!("  failing since {}", time(tz, since));
        }
        if let Some(at) = r.retry_at {
            println!("  next attempt after {}", time(tz, at));
        }
        if r.status == "stranded" {
            println!(
                "  this destination left the config: restore it, or discard with `churn-alert state drop --destination {}`",
                r.destination
            );
        }
        if r.status == "failed" {
            let route = &r.destination.route;
            println!("  after fixing the config: churn-alert state retry --route {route}");
        }
        for customer in r.customers.iter().take(10) {
            println!("  - {}", terminal(customer));
        }
        if r.customers.len() > 10 {
            println!("  … and {} more", r.customers.len() - 10);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(opts: &StateOpts, route: Option<&str>) -> anyhow::Result<ExitCode> {
    let (config, store, _) = open(opts)?;
    if let Some(route) = route {
        if config.route(route).is_none() {
            anyhow::bail!("no route named `{route}` in the config");
        }
    }
    let mut cleared = Vec::new();
    for id in store.destination_states()?.keys() {
        let in_route = route.is_none_or(|r| id.route == r);
        if in_route && store.clear_destination_state(id).await? {
            cleared.push(id.clone());
        }
    }
    if opts.json {
        print_json(&serde_json::json!({ "cleared": cleared }))?;
    } else if cleared.is_empty() {
        println!("no failed or waiting destination to clear");
    } else {
        for id in &cleared {
            println!("cleared {id}: its pending deliveries are tried on the next cycle");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn drop_pending(opts: &StateOpts, destination: &str) -> anyhow::Result<ExitCode> {
    let id: DestinationId = destination.parse()?;
    let (_, store, _) = open(opts)?;
    let dropped = store.drop_pending(&id).await?;
    if opts.json {
        print_json(&serde_json::json!({ "destination": destination, "dropped": dropped }))?;
    } else {
        println!("dropped {dropped} pending loss(es) of {destination}; they will not be delivered");
    }
    Ok(ExitCode::SUCCESS)
}

async fn forget(opts: &StateOpts, customer: &str) -> anyhow::Result<ExitCode> {
    let (_, store, _) = open(opts)?;
    let forgotten = store.forget_customer(customer).await?;
    if opts.json {
        print_json(&serde_json::json!({ "customer": customer, "forgotten": forgotten }))?;
    } else if forgotten == 0 {
        println!("no remembered loss of customer {customer}");
    } else {
        println!(
            "forgot {forgotten} loss(es) of customer {customer}; they are reported again when a window that contains them is fetched"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether deliveries are held for quiet hours right now.
fn quiet_now(config: &Config) -> bool {
    let now = Utc::now().with_timezone(&config.timezone());
    config
        .quiet_hours()
        .is_some_and(|quiet| quiet.ends_after(now).is_some())
}
