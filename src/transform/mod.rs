//! Transform stage: which destinations a loss goes to.
//!
//! Grouping by staff member happens at render time ([`crate::render::group_by_staff`]), from
//! whatever is pending for a destination, so that retried and new losses share one message.

pub(crate) mod decide;
pub(crate) mod departments;
pub(crate) mod enrich;
pub(crate) mod route;

pub(crate) use route::{Destination, Router};

use std::sync::Arc;

use crate::config::Config;
use crate::directory::Directory;

/// One routing snapshot: the config and the org chart as read at one moment.
///
/// Every stage that routes (the poll, delivery, reports, the staff-deletion alert, `preview`,
/// the dry run, `state`) takes one and builds its [`Router`] from it, never from the org chart
/// read again half-way: a refresh of the chart or a reload (which builds a new pipeline) shows
/// in the next snapshot, and one decision never mixes two charts. The chart is shared, not
/// copied: a snapshot is an `Arc` and a borrow.
pub(crate) struct Routing<'a> {
    config: &'a Config,
    directory: Option<Arc<Directory>>,
}

impl<'a> Routing<'a> {
    pub fn new(config: &'a Config, directory: Option<Arc<Directory>>) -> Self {
        Self { config, directory }
    }

    /// The router of this snapshot.
    pub fn router(&self) -> Router<'_> {
        Router::with_directory(self.config, self.directory.as_deref())
    }

    /// The org chart of this snapshot, if one was ever read.
    pub fn directory(&self) -> Option<&Directory> {
        self.directory.as_deref()
    }
}
