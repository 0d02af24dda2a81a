//! Routes expanded into destinations, and the choice of destinations for each loss.
//!
//! A destination ([`DestinationId`]) is one place a message is delivered to; the outbox is
//! keyed by it. Ids are resolved against the current config at delivery time, so a staff
//! member's destination exists as soon as they lose a customer, without listing staff
//! anywhere.

use super::departments;
use crate::config::{Audience, Config, RouteConfig, WecomMsgType};
use crate::destination::{normalise_mailbox, robot_fingerprint, DestinationId, DestinationKind};
use crate::directory::Directory;
use crate::loss::Loss;
use crate::secret::redact_url;
use crate::sink::RobotUrl;

/// One place messages are delivered to, resolved against the config.
#[derive(Debug, Clone)]
pub(crate) struct Destination<'a> {
    pub id: DestinationId,
    pub route: &'a RouteConfig,
    pub target: Target,
}

/// How a destination is reached.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A WeCom group robot, by its full webhook URL.
    Wecom {
        robot: crate::sink::RobotUrl,
        msgtype: WecomMsgType,
        /// Set for a staff member's own robot: only their losses go there.
        staff: Option<String>,
    },
    /// An email recipient; `staff` is set for a staff member's own mailbox.
    Email {
        to: Option<String>,
        staff: Option<String>,
    },
}

impl Destination<'_> {
    /// A fingerprint of where this destination sends (the robot URL, the configured
    /// mailbox), so that a failure can tell whether the address changed since.
    pub fn fingerprint(&self) -> u64 {
        let address = match &self.target {
            Target::Wecom { robot, .. } => robot.expose(),
            Target::Email { to, .. } => to.as_deref().unwrap_or_default(),
        };
        xxhash_rust::xxh3::xxh3_64(address.as_bytes())
    }

    /// A human description that never contains a credential.
    pub fn describe(&self) -> String {
        let route = &self.route.name;
        match &self.target {
            Target::Wecom {
                robot,
                staff: Some(staff),
                ..
            } => format!(
                "route `{route}`, robot of staff {staff} ({})",
                redact_url(robot.expose())
            ),
            Target::Wecom { robot, .. } if self.id.kind == DestinationKind::DepartmentWecom => {
                format!(
                    "route `{route}`, robot of department {} ({})",
                    self.id.arg,
                    redact_url(robot.expose())
                )
            }
            Target::Wecom { robot, .. } => {
                let position = self
                    .route
                    .wecom_webhooks
                    .iter()
                    .position(|r| r.expose() == robot.expose())
                    .unwrap_or(0);
                format!(
                    "route `{route}`, robot #{} ({})",
                    position + 1,
                    redact_url(robot.expose())
                )
            }
            Target::Email {
                to: Some(to),
                staff: Some(staff),
            } => format!("route `{route}`, email to staff {staff} <{to}>"),
            Target::Email {
                to: None,
                staff: Some(staff),
            } => format!("route `{route}`, email to staff {staff} (no address known)"),
            Target::Email { to, .. } => {
                format!("route `{route}`, email to {}", to.as_deref().unwrap_or("?"))
            }
        }
    }
}

/// The configured routes, expanding losses into destination ids and ids into destinations.
pub(crate) struct Router<'a> {
    config: &'a Config,
    directory: Option<&'a Directory>,
}

impl<'a> Router<'a> {
    /// Routes without the org chart: department filters let everything through.
    pub fn new(config: &'a Config) -> Self {
        Self {
            config,
            directory: None,
        }
    }

    /// Routes with the org chart, when one was ever read.
    pub fn with_directory(config: &'a Config, directory: Option<&'a Directory>) -> Self {
        Self { config, directory }
    }

    /// Ids of the destinations that `loss` must reach now (what routes hold or filter, aside:
    /// see [`Router::route_loss`]).
    pub fn destinations_for(&self, loss: &Loss) -> Vec<DestinationId> {
        self.route_loss(loss).destinations
    }

    pub(crate) fn config(&self) -> &'a Config {
        self.config
    }

    pub(crate) fn directory(&self) -> Option<&'a Directory> {
        self.directory
    }

    /// Whether `route` takes losses of `staff_id` at all: its staff lists and departments
    /// (the staff deletion alert, which is about a person, not a loss).
    pub fn covers_staff(&self, route: &RouteConfig, staff_id: &str) -> bool {
        let listed = route.staff.is_empty() || route.staff.iter().any(|s| s == staff_id);
        let excluded = route.exclude_staff.iter().any(|s| s == staff_id);
        listed && !excluded && departments::in_scope(route, self.directory, staff_id)
    }

    /// Ids of `route`'s destinations for a loss of `staff_id`, whatever its filters say.
    pub fn route_destinations(&self, route: &RouteConfig, staff_id: &str) -> Vec<DestinationId> {
        let mut ids = Vec::new();
        {
            let id = |kind, arg: &str| DestinationId::new(&route.name, kind, arg);
            let own_robot =
                route.audience == Audience::Staff && route.staff_webhooks.contains_key(staff_id);
            let team_robots =
                departments::matching(route.department_webhooks.keys(), self.directory, staff_id);
            if own_robot {
                ids.push(id(DestinationKind::StaffWecom, staff_id));
            } else if !team_robots.is_empty() {
                ids.extend(
                    team_robots
                        .iter()
                        .map(|d| id(DestinationKind::DepartmentWecom, &d.to_string())),
                );
            } else {
                ids.extend(
                    route
                        .wecom_webhooks
                        .iter()
                        .map(|url| DestinationId::robot(&route.name, url.expose())),
                );
            }
            let team_mailboxes =
                departments::matching(route.department_emails.keys(), self.directory, staff_id);
            ids.extend(
                team_mailboxes
                    .iter()
                    .map(|d| id(DestinationKind::DepartmentEmail, &d.to_string())),
            );
            if route.email_staff {
                ids.push(id(DestinationKind::StaffEmail, staff_id));
            }
            ids.extend(
                route
                    .email_to
                    .iter()
                    .map(|to| DestinationId::mailbox(&route.name, to)),
            );
        }
        dedup_in_order(&mut ids);
        ids
    }

    /// A route's own robots and fixed mailboxes: where its held losses go after
    /// `directory.hold_for`.
    pub fn own_destinations(route: &RouteConfig) -> Vec<DestinationId> {
        let mut ids: Vec<DestinationId> = route
            .wecom_webhooks
            .iter()
            .map(|url| DestinationId::robot(&route.name, url.expose()))
            .chain(
                route
                    .email_to
                    .iter()
                    .map(|to| DestinationId::mailbox(&route.name, to)),
            )
            .collect();
        dedup_in_order(&mut ids);
        ids
    }

    /// Every loss of `losses` under each destination it must reach (previews, checks, plans).
    pub fn route_all<'l>(
        &self,
        losses: impl IntoIterator<Item = &'l Loss>,
    ) -> std::collections::BTreeMap<DestinationId, Vec<Loss>> {
        let mut routed: std::collections::BTreeMap<DestinationId, Vec<Loss>> = Default::default();
        for loss in losses {
            for id in self.destinations_for(loss) {
                routed.entry(id).or_default().push(loss.clone());
            }
        }
        routed
    }

    /// Resolves an outbox id against the current config; `None` if it is no longer there.
    pub fn get(&self, id: &DestinationId) -> Option<Destination<'a>> {
        let route = self.config.route(&id.route)?;
        let arg = id.arg.as_str();
        let target = match id.kind {
            DestinationKind::Wecom => Target::Wecom {
                robot: RobotUrl::parse(
                    route
                        .wecom_webhooks
                        .iter()
                        .find(|url| robot_fingerprint(url.expose()) == arg)?,
                )?,
                msgtype: route.wecom_msgtype,
                staff: None,
            },
            DestinationKind::StaffWecom => Target::Wecom {
                robot: RobotUrl::parse(route.staff_webhooks.get(arg)?)?,
                msgtype: route.wecom_msgtype,
                staff: Some(arg.to_owned()),
            },
            DestinationKind::Email => Target::Email {
                to: Some(
                    route
                        .email_to
                        .iter()
                        .find(|to| normalise_mailbox(to) == arg)?
                        .clone(),
                ),
                staff: None,
            },
            DestinationKind::StaffEmail if route.email_staff => Target::Email {
                // Filled in from the losses (Weiban's address) when not configured.
                to: route.staff_emails.get(arg).cloned(),
                staff: Some(arg.to_owned()),
            },
            DestinationKind::StaffEmail => return None,
            DestinationKind::DepartmentWecom => {
                let department = id.arg.parse().ok()?;
                let key = departments::key_for(
                    route.department_webhooks.keys(),
                    self.directory,
                    department,
                )?;
                Target::Wecom {
                    robot: RobotUrl::parse(route.department_webhooks.get(key)?)?,
                    msgtype: route.wecom_msgtype,
                    staff: None,
                }
            }
            DestinationKind::DepartmentEmail => {
                let department = id.arg.parse().ok()?;
                let key = departments::key_for(
                    route.department_emails.keys(),
                    self.directory,
                    department,
                )?;
                Target::Email {
                    to: route.department_emails.get(key).cloned(),
                    staff: None,
                }
            }
        };
        Some(Destination {
            id: id.clone(),
            route,
            target,
        })
    }
}

/// Drops repeated ids (one robot or mailbox listed twice), keeping the first.
fn dedup_in_order(ids: &mut Vec<DestinationId>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

/// One destination a route can deliver to, named as the operator wrote it (`check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// How `check` names it: never a credential.
    pub label: String,
    /// Whether a report or a staff deletion alert can go there (a managers' destination, not
    /// a staff member's own robot or mailbox).
    pub for_managers: bool,
}

/// Every destination `route` can deliver to, in the order of its config keys.
pub(crate) fn listed(route: &RouteConfig) -> Vec<Listed> {
    let managers = |label: String| Listed {
        label,
        for_managers: true,
    };
    let staffs = |label: String| Listed {
        label,
        for_managers: false,
    };
    let mut out = Vec::new();
    for (i, robot) in route.wecom_webhooks.iter().enumerate() {
        out.push(managers(format!(
            "robot #{} ({})",
            i + 1,
            redact_url(robot.expose())
        )));
    }
    for (department, robot) in &route.department_webhooks {
        out.push(managers(format!(
            "robot of department `{department}` ({})",
            redact_url(robot.expose())
        )));
    }
    for (department, to) in &route.department_emails {
        out.push(managers(format!(
            "mailbox of department `{department}` <{to}>"
        )));
    }
    for to in &route.email_to {
        out.push(managers(format!("email to <{to}>")));
    }
    for (staff, robot) in &route.staff_webhooks {
        out.push(staffs(format!(
            "robot of staff member `{staff}` ({})",
            redact_url(robot.expose())
        )));
    }
    if route.email_staff {
        out.push(staffs("each staff member's own mailbox".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::DeleteBy;
    use std::path::Path;

    fn config(routes: &str) -> Config {
        let text = format!(
            "[weiban]\ncorp_id = \"c\"\nsecret = \"s\"\n[schedule]\ncron = \"* * * * *\"\n[smtp]\nhost = \"localhost\"\nfrom = \"a@example.com\"\n{routes}"
        );
        Config::from_toml(&text, Path::new("t.toml"), &|_| None).unwrap()
    }

    fn loss(staff: &str, by: DeleteBy, tags: &[&str]) -> Loss {
        Loss {
            delete_by: by,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Loss::sample("c1", staff, 1)
        }
    }

    #[test]
    fn staff_routes_prefer_the_staff_members_own_robot() {
        let config = config(
            r#"
[[route]]
name = "sales"
audience = "staff"
wecom_webhooks = ["http://h/send?key=group"]
staff_webhooks = { zhang = "http://h/send?key=zhang" }
email_staff = true
email_to = ["boss@example.com"]
"#,
        );
        let router = Router::new(&config);
        let ids = |staff| {
            router
                .destinations_for(&loss(staff, DeleteBy::Customer, &[]))
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids("zhang"),
            [
                "sales/staff-wecom/zhang",
                "sales/staff-email/zhang",
                "sales/email/boss@example.com"
            ]
        );
        let group = DestinationId::robot("sales", "http://h/send?key=group").to_string();
        assert_eq!(
            ids("li"),
            [
                group.as_str(),
                "sales/staff-email/li",
                "sales/email/boss@example.com"
            ]
        );
        let get = |text: &str| router.get(&text.parse().unwrap());
        assert!(get("sales/staff-wecom/zhang").is_some());
        assert!(get("sales/staff-wecom/li").is_none());
        assert!(get(&group).is_some());
        assert!(get("gone/wecom/0").is_none());
        let described = get("sales/staff-wecom/zhang").unwrap().describe();
        assert!(!described.contains("key=zhang"), "{described}");
    }

    #[test]
    fn filters_select_staff_delete_by_and_tags() {
        let config = config(
            r#"
[[route]]
name = "vip"
audience = "managers"
wecom_webhooks = ["http://h/send?key=k"]
exclude_staff = ["bot"]
delete_by = "customer"
tags_any = ["VIP"]
"#,
        );
        let router = Router::new(&config);
        assert_eq!(
            router
                .destinations_for(&loss("a", DeleteBy::Customer, &["VIP"]))
                .len(),
            1
        );
        assert!(router
            .destinations_for(&loss("a", DeleteBy::Staff, &["VIP"]))
            .is_empty());
        assert!(router
            .destinations_for(&loss("a", DeleteBy::Customer, &["x"]))
            .is_empty());
        assert!(router
            .destinations_for(&loss("bot", DeleteBy::Customer, &["VIP"]))
            .is_empty());
        assert!(
            router
                .destinations_for(&loss("a", DeleteBy::Unknown, &["VIP"]))
                .is_empty(),
            "an unknown direction is not a customer's"
        );
    }
}
