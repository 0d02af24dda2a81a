//! Routing by department: a route's `departments` and `exclude_departments` filters, and
//! which of its `department_webhooks` / `department_emails` a loss goes to.
//!
//! A department named in the config covers its sub-departments. Names are resolved against
//! the org chart; a name two departments share matches both here (over-reporting beats
//! losing a loss) and is an error `check --online` reports. A staff member the org chart does
//! not know, a department it does not know, or no org chart at all: routing holds the loss
//! ([`super::decide`]) instead of guessing.

use crate::config::RouteConfig;
use crate::directory::{DepartmentRef, Directory};

/// Whether the route's department filters let `staff_id` through.
pub(crate) fn in_scope(route: &RouteConfig, directory: Option<&Directory>, staff_id: &str) -> bool {
    let Some(directory) = directory.filter(|d| d.knows(staff_id)) else {
        return true;
    };
    let within = |refs: &[DepartmentRef]| {
        refs.iter()
            .flat_map(|r| directory.lookup(r))
            .any(|id| directory.staff_within(staff_id, id))
    };
    (route.departments.is_empty() || within(&route.departments))
        && !within(&route.exclude_departments)
}

/// The departments among `keys` (config keys: names or ids) that `staff_id` sits in, as ids.
pub(crate) fn matching<'k>(
    keys: impl IntoIterator<Item = &'k String>,
    directory: Option<&Directory>,
    staff_id: &str,
) -> Vec<i64> {
    let known = directory.filter(|d| d.knows(staff_id));
    let mut ids: Vec<i64> = keys
        .into_iter()
        .flat_map(|key| match (DepartmentRef::from_key(key), directory) {
            (DepartmentRef::Id(id), _) => vec![id],
            (name, Some(directory)) => directory.lookup(&name),
            (_, None) => Vec::new(),
        })
        .filter(|id| known.is_none_or(|d| d.staff_within(staff_id, *id)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The config key (name or id) among `keys` that names department `id`.
pub(crate) fn key_for<'k>(
    keys: impl IntoIterator<Item = &'k String>,
    directory: Option<&Directory>,
    id: i64,
) -> Option<&'k String> {
    keys.into_iter()
        .find(|key| match DepartmentRef::from_key(key) {
            DepartmentRef::Id(n) => n == id,
            name => directory.is_some_and(|d| d.lookup(&name).contains(&id)),
        })
}
