//! What each destination receives: templates chosen, losses split or summarized, per sink.
//!
//! The one place that decides the shape of a delivery, used to send, to preview and to check,
//! so that `preview` shows exactly what would be sent. Messages come out typed for the sink
//! that takes them ([`Composed`]), with the byte limit the sink gives.

use std::collections::HashMap;

use crate::config::{Audience, GroupBy, RouteConfig, WecomMsgType};
use crate::loss::{Loss, LossKey};
use crate::render::escape::is_userid;
use crate::render::split::{omits_any, pack, render_whole, Batch, Storm};
use crate::render::{group_by_staff, RenderError, Renderer, WindowContext};
use crate::sink::{
    EmailMessage, EmailSink, Format, Sink, Sinks, WecomBody, WecomMessage, WecomSink,
};
use crate::store::Pending;
use crate::transform::route::{Destination, Target};

/// One message for one destination, and the losses it reports.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing<M> {
    pub message: M,
    pub losses: Vec<LossKey>,
    /// An extra (a storm's full list) that a permanent refusal skips instead of holding back
    /// the messages that report losses.
    pub best_effort: bool,
    /// A prepared message (a report's part, an alert): its key in the store's `prepared`
    /// tree, removed once accepted. Quiet hours do not hold it.
    pub prepared: Option<Vec<u8>>,
}

/// A destination's messages, in sending order, with the sink that takes them.
pub(crate) enum Composed<'s> {
    Wecom(&'s WecomSink, Vec<Outgoing<WecomMessage>>),
    Email(&'s EmailSink, Vec<Outgoing<EmailMessage>>),
}

impl Composed<'_> {
    pub fn len(&self) -> usize {
        match self {
            Self::Wecom(_, m) => m.len(),
            Self::Email(_, m) => m.len(),
        }
    }
}

/// Why a destination's messages could not be composed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ComposeError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(
        "no email address for staff member {staff}: Weiban has none; add it to `staff_emails` of route `{route}`"
    )]
    NoAddress { staff: String, route: String },
    #[error(transparent)]
    NoSmtp(#[from] crate::sink::NoSmtp),
}

/// What a destination has pending, as composing reads it: the losses, and when each entered
/// the outbox (storm protection counts per poll). Made from the outbox's records by moving
/// their losses, not copying them: a delivery batch holds hundreds (a robot's) or thousands
/// (an email's).
pub(crate) struct Queued {
    pub losses: Vec<Loss>,
    enqueued: HashMap<LossKey, i64>,
}

impl From<Vec<Pending>> for Queued {
    fn from(pending: Vec<Pending>) -> Self {
        let enqueued = pending
            .iter()
            .map(|p| (p.loss.key(), p.enqueued_at))
            .collect();
        Self {
            losses: pending.into_iter().map(|p| p.loss).collect(),
            enqueued,
        }
    }
}

impl Queued {
    /// Losses as one poll would queue them now (previews, checks).
    pub fn one_poll(losses: Vec<Loss>) -> Self {
        Self::from(Pending::one_poll(losses))
    }
}

/// The messages `destination` receives for what it has `queued`, in sending order.
pub(crate) fn compose<'s>(
    renderer: &Renderer,
    sinks: &'s Sinks,
    destination: &Destination<'_>,
    queued: &Queued,
) -> Result<Composed<'s>, ComposeError> {
    let Queued { losses, enqueued } = queued;
    match &destination.target {
        Target::Wecom { robot, msgtype, .. } => {
            let robot = Robot {
                renderer,
                destination,
                enqueued,
                robot,
                msgtype: *msgtype,
                limit: sinks.wecom.limit(format_of(*msgtype)).unwrap_or(usize::MAX),
            };
            Ok(Composed::Wecom(&sinks.wecom, robot.compose(losses)?))
        }
        Target::Email { to, staff } => {
            let email = sinks.email_for(&destination.route.name)?;
            let limit = email.limit(Format::Email).unwrap_or(usize::MAX);
            let to = address(destination, to.as_deref(), staff.as_deref(), losses)?;
            let mut message = mail(
                renderer,
                losses,
                to,
                staff.is_some(),
                by_department(destination.route),
                limit,
            )?;
            // Email lists everyone, but a storm's list is easier to work through in a sheet.
            if is_storm(destination.route, losses, enqueued) {
                if let Some(WecomBody::File { filename, bytes }) = full_list(renderer, losses) {
                    message.message.files.push(crate::sink::EmailFile {
                        filename,
                        content_type:
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        bytes,
                        inline_id: None,
                    });
                }
            }
            Ok(Composed::Email(email, vec![message]))
        }
    }
}

/// Whether a route's digests group by department (`group_by = "department"`).
fn by_department(route: &RouteConfig) -> bool {
    route.audience == Audience::Managers && route.group_by == GroupBy::Department
}

pub(crate) fn format_of(msgtype: WecomMsgType) -> Format {
    match msgtype {
        WecomMsgType::Markdown => Format::Markdown,
        WecomMsgType::Text => Format::Text,
    }
}

/// The time span the losses left in: the digest's 统计区间.
fn window_of(losses: &[Loss]) -> Option<WindowContext> {
    let start = losses.iter().map(|l| l.outflow_at).min()?;
    let end = losses.iter().map(|l| l.outflow_at).max()?;
    Some(WindowContext { start, end })
}

/// Composing for one robot.
struct Robot<'a> {
    renderer: &'a Renderer,
    destination: &'a Destination<'a>,
    enqueued: &'a HashMap<LossKey, i64>,
    robot: &'a crate::sink::RobotUrl,
    msgtype: WecomMsgType,
    limit: usize,
}

impl Robot<'_> {
    /// A managers' digest of everything, or one message per staff member.
    fn compose(&self, losses: &[Loss]) -> Result<Vec<Outgoing<WecomMessage>>, ComposeError> {
        let route = self.destination.route;
        let suffix = match self.msgtype {
            WecomMsgType::Markdown => "md",
            WecomMsgType::Text => "txt",
        };
        if route.audience != Audience::Staff {
            return self.pack(&format!("digest.{suffix}.hbs"), losses, None);
        }
        let template = format!("staff.{suffix}.hbs");
        let mut out = Vec::new();
        for (staff_id, group) in group_by_staff(losses) {
            let group: Vec<Loss> = group.into_iter().cloned().collect();
            let mention = route.mention.then_some(staff_id.as_str());
            out.extend(self.pack(&template, &group, mention)?);
        }
        Ok(out)
    }

    fn pack(
        &self,
        template: &str,
        losses: &[Loss],
        mention: Option<&str>,
    ) -> Result<Vec<Outgoing<WecomMessage>>, ComposeError> {
        let route = self.destination.route;
        let batch = Batch {
            template,
            losses,
            window: window_of(losses),
            storm: (route.storm_threshold > 0).then_some(Storm {
                threshold: route.storm_threshold,
                list: route.storm_list,
            }),
            enqueued: Some(self.enqueued),
            mention: mention.is_some(),
            by_department: by_department(route),
            limit: self.limit,
        };
        let mentioned: Vec<String> = match (self.msgtype, mention) {
            (WecomMsgType::Text, Some(id)) if is_userid(id) => vec![id.to_owned()],
            _ => Vec::new(),
        };
        // The full list goes first and reports nothing itself: if it is refused, the summary
        // that says "完整名单见附件" stays pending with it.
        let full_list = omits_any(&batch)
            .then(|| full_list(self.renderer, losses))
            .flatten()
            .map(|body| Outgoing {
                message: WecomMessage {
                    robot: self.robot.clone(),
                    body,
                },
                losses: Vec::new(),
                best_effort: true,
                prepared: None,
            });
        Ok(full_list
            .into_iter()
            .chain(pack(self.renderer, &batch)?.into_iter().map(|m| Outgoing {
                message: WecomMessage {
                    robot: self.robot.clone(),
                    body: WecomBody::written(self.msgtype, m.content, mentioned.clone()),
                },
                losses: m.losses,
                best_effort: false,
                prepared: None,
            }))
            .collect())
    }
}

/// Whether storm protection would leave losses of `losses` out of a robot message.
fn is_storm(route: &RouteConfig, losses: &[Loss], enqueued: &HashMap<LossKey, i64>) -> bool {
    route.storm_threshold > 0
        && omits_any(&Batch {
            template: "",
            losses,
            window: None,
            storm: Some(Storm {
                threshold: route.storm_threshold,
                list: route.storm_list,
            }),
            enqueued: Some(enqueued),
            mention: false,
            by_department: by_department(route),
            limit: usize::MAX,
        })
}

/// A storm's full list as a spreadsheet `file` message; `None` (logged) if it cannot be
/// written, so that the summary still goes out.
fn full_list(renderer: &Renderer, losses: &[Loss]) -> Option<WecomBody> {
    let tz = renderer.timezone();
    let mut sorted: Vec<Loss> = losses.to_vec();
    sorted.sort_by_key(|l| l.outflow_at);
    let last = sorted.last().map_or(0, |l| l.outflow_at);
    let stamp = crate::time::local(tz, last)
        .map(|t| t.format("%Y-%m-%d_%H%M").to_string())
        .unwrap_or_default();
    match crate::report::xlsx::workbook(&sorted, tz) {
        Ok(bytes) => Some(WecomBody::File {
            filename: format!("客户流失完整名单_{stamp}.xlsx"),
            bytes: bytes.into(),
        }),
        Err(e) => {
            tracing::error!("the storm's full list cannot be attached: {e}");
            None
        }
    }
}

/// The address an email destination writes to: configured, or Weiban's for the staff member.
fn address(
    destination: &Destination<'_>,
    to: Option<&str>,
    staff: Option<&str>,
    losses: &[Loss],
) -> Result<String, ComposeError> {
    let missing = |staff: &str| ComposeError::NoAddress {
        staff: staff.to_owned(),
        route: destination.route.name.clone(),
    };
    match (to, staff) {
        (Some(to), _) => Ok(to.to_owned()),
        (None, Some(staff)) => losses
            .iter()
            .find_map(|l| l.staff_email.clone())
            .ok_or_else(|| missing(staff)),
        (None, None) => Err(missing("?")),
    }
}

/// One email with the full list: email has no storm cut.
fn mail(
    renderer: &Renderer,
    losses: &[Loss],
    to: String,
    to_staff: bool,
    by_department: bool,
    limit: usize,
) -> Result<Outgoing<EmailMessage>, ComposeError> {
    let (kind, subject) = if to_staff {
        (
            "staff",
            format!("【客户流失提醒】您有 {} 位客户流失", losses.len()),
        )
    } else {
        (
            "digest",
            format!("【客户流失提醒】共 {} 位客户流失", losses.len()),
        )
    };
    let batch = |template| Batch {
        template,
        losses,
        window: window_of(losses),
        storm: None,
        enqueued: None,
        mention: false,
        by_department,
        limit,
    };
    let (text_name, html_name) = (format!("{kind}.txt.hbs"), format!("{kind}.html.hbs"));
    let text = render_whole(renderer, &batch(&text_name))?;
    let html = render_whole(renderer, &batch(&html_name))?;
    Ok(Outgoing {
        message: EmailMessage {
            to,
            subject,
            text: text.content,
            html: html.content,
            files: Vec::new(),
        },
        losses: text.losses,
        best_effort: false,
        prepared: None,
    })
}
