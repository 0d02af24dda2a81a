//! Routes expanded into destinations, and the choice of destinations for each loss.
//!
//! A destination is one place a message is delivered to: one robot URL of one route. Its id,
//! `<route>/wecom/<index>`, is what the outbox is keyed by; it names the robot by position, not
//! by URL, so that fixing a wrong URL in the config re-targets what is pending for it.

use crate::config::{Config, RouteConfig};
use crate::loss::Loss;
use crate::secret::{redact_url, Secret};

/// One place messages are delivered to.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    pub id: String,
    pub route: String,
    pub target: Target,
}

/// How a destination is reached.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A WeCom group robot, by its full webhook URL.
    Wecom { robot: Secret, position: usize },
}

impl Destination {
    /// A human description that never contains a credential.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Wecom { robot, position } => format!(
                "route `{}`, robot #{} ({})",
                self.route,
                position + 1,
                redact_url(robot.expose())
            ),
        }
    }
}

/// The configured routes, expanded into destinations.
pub(crate) struct Router {
    destinations: Vec<Destination>,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        let destinations = config.routes.iter().flat_map(wecom_destinations).collect();
        Self { destinations }
    }

    /// Ids of the destinations that `loss` must reach.
    pub fn destinations_for(&self, _loss: &Loss) -> Vec<String> {
        self.destinations.iter().map(|d| d.id.clone()).collect()
    }

    pub fn get(&self, id: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.id == id)
    }

    pub fn all(&self) -> &[Destination] {
        &self.destinations
    }
}

fn wecom_destinations(route: &RouteConfig) -> Vec<Destination> {
    route
        .wecom_webhooks
        .iter()
        .enumerate()
        .map(|(position, robot)| Destination {
            id: format!("{}/wecom/{position}", route.name),
            route: route.name.clone(),
            target: Target::Wecom {
                robot: robot.clone(),
                position,
            },
        })
        .collect()
}
