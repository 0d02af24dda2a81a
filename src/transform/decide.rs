//! The routing decision for one new loss: queued, filtered or held, never nothing.
//!
//! Each route decides on its own ([`Router::decide`]): its filters may turn the loss away (an
//! explicit choice in the config, counted by `churn_alert_losses_filtered_total`); it may lack
//! the data to decide (no org chart, a staff member or a department Weiban does not know), and
//! then it holds the loss; or it names its destinations. A loss that no route queued, held or
//! filtered (its routes have no destination for this staff member) is held too, so that no
//! path records a loss as done with nobody told and no reason given ([`Routed`]).

use super::departments;
use super::Router;
use crate::config::RouteConfig;
use crate::destination::DestinationId;
use crate::directory::{DepartmentRef, Directory};
pub(crate) use crate::hold::HoldReason;
use crate::loss::Loss;

/// What one route does with one loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Queued(Vec<DestinationId>),
    /// Turned away by the route's own filter (the config key's name).
    Filtered(&'static str),
    Held(HoldReason),
    /// Taken, but the route has no destination for this staff member.
    Uncovered,
}

/// What all routes do with one loss: at least one of the three is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Routed {
    pub destinations: Vec<DestinationId>,
    pub filtered: Vec<(String, &'static str)>,
    pub held: Vec<(String, HoldReason)>,
}

impl Router<'_> {
    /// What `route` does with `loss`.
    pub fn decide(&self, route: &RouteConfig, loss: &Loss) -> Decision {
        if let Some(filter) = filter_reason(route, loss) {
            return Decision::Filtered(filter);
        }
        match department_scope(route, self.directory(), &loss.staff_id) {
            Err(hold) => return Decision::Held(hold),
            Ok(Some(filter)) => return Decision::Filtered(filter),
            Ok(None) => {}
        }
        let ids = self.route_destinations(route, &loss.staff_id);
        if ids.is_empty() {
            Decision::Uncovered
        } else {
            Decision::Queued(ids)
        }
    }

    /// What every route does with `loss`.
    pub fn route_loss(&self, loss: &Loss) -> Routed {
        let mut routed = Routed::default();
        let mut uncovered = Vec::new();
        for route in &self.config().routes {
            match self.decide(route, loss) {
                Decision::Queued(ids) => routed.destinations.extend(ids),
                Decision::Filtered(filter) => routed.filtered.push((route.name.clone(), filter)),
                Decision::Held(reason) => routed.held.push((route.name.clone(), reason)),
                Decision::Uncovered => uncovered.push(route.name.clone()),
            }
        }
        if routed.destinations.is_empty() && routed.held.is_empty() {
            routed.held.extend(
                uncovered
                    .into_iter()
                    .map(|route| (route, HoldReason::NoDestination)),
            );
        }
        routed
    }
}

/// The route filter (its config key) that turns `loss` away, if any; departments apart.
pub(crate) fn filter_reason(route: &RouteConfig, loss: &Loss) -> Option<&'static str> {
    if route.skip_if_still_followed && !loss.still_followed_by.is_empty() {
        Some("skip_if_still_followed")
    } else if !route.staff.is_empty() && !route.staff.contains(&loss.staff_id) {
        Some("staff")
    } else if route.exclude_staff.contains(&loss.staff_id) {
        Some("exclude_staff")
    } else if !route.delete_by.accepts(loss.delete_by) {
        Some("delete_by")
    } else if !route.tags_any.is_empty() && !loss.tags.iter().any(|t| route.tags_any.contains(t)) {
        Some("tags_any")
    } else {
        None
    }
}

/// Whether the route's department settings take `staff_id`: `Ok(None)` yes, `Ok(Some(key))`
/// turned away by that filter, `Err` when the org chart cannot say.
fn department_scope(
    route: &RouteConfig,
    directory: Option<&Directory>,
    staff_id: &str,
) -> Result<Option<&'static str>, HoldReason> {
    let keys = route
        .department_webhooks
        .keys()
        .chain(route.department_emails.keys())
        .map(|k| DepartmentRef::from_key(k));
    let refs: Vec<DepartmentRef> = route
        .departments
        .iter()
        .chain(&route.exclude_departments)
        .cloned()
        .chain(keys)
        .collect();
    if refs.is_empty() {
        return Ok(None);
    }
    let directory = directory.ok_or(HoldReason::NoOrgChart)?;
    if let Some(unknown) = refs.iter().find(|r| directory.lookup(r).is_empty()) {
        return Err(HoldReason::UnknownDepartment(shown(unknown)));
    }
    if !directory.knows(staff_id) {
        return Err(HoldReason::UnknownStaff);
    }
    let within = |refs: &[DepartmentRef]| {
        refs.iter()
            .flat_map(|r| directory.lookup(r))
            .any(|id| directory.staff_within(staff_id, id))
    };
    if !route.departments.is_empty() && !within(&route.departments) {
        return Ok(Some("departments"));
    }
    if within(&route.exclude_departments) {
        return Ok(Some("exclude_departments"));
    }
    debug_assert!(departments::in_scope(route, Some(directory), staff_id));
    Ok(None)
}

fn shown(reference: &DepartmentRef) -> String {
    match reference {
        DepartmentRef::Id(id) => id.to_string(),
        DepartmentRef::Name(name) => name.clone(),
    }
}
