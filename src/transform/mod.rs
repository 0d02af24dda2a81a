//! Transform stage: which destinations a loss goes to.
//!
//! Grouping by staff member happens at render time ([`crate::render::group_by_staff`]), from
//! whatever is pending for a destination, so that retried and new losses share one message.

pub(crate) mod decide;
pub(crate) mod departments;
pub(crate) mod enrich;
pub(crate) mod route;

pub(crate) use route::{Destination, Router};
