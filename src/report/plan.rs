//! Planning a report: what each destination of the report's route receives for a period,
//! rendered. `send` queues the plan, `output` prints or writes it.

use std::collections::BTreeMap;

use super::compose::{self, BuildError, Heading, Rendered};
use super::period::Period;
use super::stats::Summary;
use super::ReportSpec;
use crate::config::Config;
use crate::destination::{DestinationId, DestinationKind};
use crate::loss::Loss;
use crate::render::Renderer;
use crate::source::WeibanError;
use crate::store::StoreError;
use crate::transform::route::Destination;
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
