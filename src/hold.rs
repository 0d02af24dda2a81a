//! Held losses: new losses that routing could not place yet, and why.
//!
//! A held loss is remembered as seen (it is not fetched as new again) and waits in the store's
//! `held` tree, per route, with its reason. It is routed again after every read of the org
//! chart and every reload; after `directory.hold_for` it goes to its route's own robots and
//! mailboxes, else to `[fallback]`, else it stays, shown by `state pending`, `state stats` and
//! `/healthz`. Nothing drops it but a route filter that now turns it away (counted) or the
//! route taking it after all.

use serde::{Deserialize, Serialize};

/// Why a route cannot place a loss yet. Held losses are routed again after every read of the
/// org chart and every reload, and after `directory.hold_for` go to the route's own robots and
/// mailboxes, else to `[fallback]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The route routes by department and the org chart was never read.
    NoOrgChart,
    /// The org chart does not know the staff member (a new hire before the next read).
    UnknownStaff,
    /// A department the route names is not in Weiban's org chart (a typo, a renamed team).
    UnknownDepartment(String),
    /// The route took the loss but has no destination for this staff member, and no other
    /// route reached anybody.
    NoDestination,
    /// The route left the config while the loss was held.
    RouteGone,
}

impl HoldReason {
    /// The reason in words, for `state pending`, `/healthz` and the log.
    pub fn describe(&self, route: &str) -> String {
        match self {
            Self::NoOrgChart => format!("route `{route}` routes by department and the org chart has not been read from Weiban (see `churn-alert check --online`)"),
            Self::UnknownStaff => format!("route `{route}` routes by department and the org chart does not know this staff member (read again at every poll)"),
            Self::UnknownDepartment(name) => format!("route `{route}` names department `{}`, which Weiban does not know (see `churn-alert staff`)", name),
            Self::NoDestination => format!("route `{route}` has no robot or mailbox for this staff member, and no other route took the loss"),
            Self::RouteGone => format!("route `{route}` left the config"),
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoOrgChart => "no_org_chart",
            Self::UnknownStaff => "unknown_staff",
            Self::UnknownDepartment(_) => "unknown_department",
            Self::NoDestination => "no_destination",
            Self::RouteGone => "route_gone",
        }
    }
}
