//! What each destination receives: templates chosen, losses split or summarized, per channel.
//!
//! The one place that decides the shape of a delivery, used both to send and to preview, so
//! that `preview` shows exactly what would be sent.

use crate::config::{Audience, WecomMsgType};
use std::collections::HashMap;

use crate::loss::{Loss, LossKey};
use crate::render::escape::is_userid;
use crate::render::split::{pack, render_whole, Batch, Storm};
use crate::render::{group_by_staff, RenderError, Renderer, MARKDOWN_LIMIT};
use crate::store::Pending;
use crate::transform::route::{Destination, Target};

/// WeCom text content limit, in UTF-8 bytes.
pub(crate) const TEXT_LIMIT: usize = 2048;

/// One message for one destination, and the losses it reports.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub body: Body,
    pub losses: Vec<LossKey>,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Wecom {
        msgtype: WecomMsgType,
        content: String,
        /// For `text` messages: user ids to @-mention.
        mentioned: Vec<String>,
    },
    Email {
        to: String,
        subject: String,
        text: String,
        html: String,
    },
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
}

/// The messages `destination` receives for `losses`, in sending order.
pub(crate) fn compose(
    renderer: &Renderer,
    destination: &Destination<'_>,
    pending: &[Pending],
) -> Result<Vec<Outgoing>, ComposeError> {
    let losses: Vec<Loss> = pending.iter().map(|p| p.loss.clone()).collect();
    let losses = losses.as_slice();
    let enqueued: HashMap<LossKey, i64> = pending
        .iter()
        .map(|p| (p.loss.key(), p.enqueued_at))
        .collect();
    let route = destination.route;
    let per_staff = route.audience == Audience::Staff;
    let storm = (route.storm_threshold > 0).then_some(Storm {
        threshold: route.storm_threshold,
        list: route.storm_list,
    });
    match &destination.target {
        Target::Wecom { msgtype, .. } => {
            let (suffix, limit) = match msgtype {
                WecomMsgType::Markdown => ("md", MARKDOWN_LIMIT),
                WecomMsgType::Text => ("txt", TEXT_LIMIT),
            };
            let wecom = |template: &str, losses: &[Loss], mention: Option<&str>| {
                let batch = Batch {
                    template,
                    losses,
                    window: None,
                    storm,
                    enqueued: Some(&enqueued),
                    mention: mention.is_some(),
                    limit,
                };
                let mentioned: Vec<String> = match (msgtype, mention) {
                    (WecomMsgType::Text, Some(id)) if is_userid(id) => vec![id.to_owned()],
                    _ => Vec::new(),
                };
                let messages = pack(renderer, &batch)?;
                Ok::<_, ComposeError>(
                    messages
                        .into_iter()
                        .map(|m| Outgoing {
                            body: Body::Wecom {
                                msgtype: *msgtype,
                                content: m.content,
                                mentioned: mentioned.clone(),
                            },
                            losses: m.losses,
                        })
                        .collect::<Vec<_>>(),
                )
            };
            if !per_staff {
                return wecom(&format!("digest.{suffix}.hbs"), losses, None);
            }
            let template = format!("staff.{suffix}.hbs");
            let mut out = Vec::new();
            for (staff_id, group) in group_by_staff(losses) {
                let group: Vec<Loss> = group.into_iter().cloned().collect();
                let group = group.as_slice();
                let mention = route.mention.then_some(staff_id.as_str());
                out.extend(wecom(&template, group, mention)?);
            }
            Ok(out)
        }
        Target::Email { to, staff } => {
            let (kind, subject) = match staff {
                Some(_) => (
                    "staff",
                    format!("【客户流失提醒】您有 {} 位客户流失", losses.len()),
                ),
                None => (
                    "digest",
                    format!("【客户流失提醒】共 {} 位客户流失", losses.len()),
                ),
            };
            let to = match (to, staff) {
                (Some(to), _) => to.clone(),
                (None, Some(staff)) => losses
                    .iter()
                    .find_map(|l| l.staff_email.clone())
                    .ok_or_else(|| ComposeError::NoAddress {
                        staff: staff.clone(),
                        route: route.name.clone(),
                    })?,
                (None, None) => {
                    return Err(ComposeError::NoAddress {
                        staff: "?".into(),
                        route: route.name.clone(),
                    })
                }
            };
            // Email has no size limit and gets the full list: no storm cut.
            let batch = |template| Batch {
                template,
                losses,
                window: None,
                storm: None,
                enqueued: None,
                mention: false,
                limit: usize::MAX,
            };
            let (text_name, html_name) = (format!("{kind}.txt.hbs"), format!("{kind}.html.hbs"));
            let text = render_whole(renderer, &batch(&text_name))?;
            let html = render_whole(renderer, &batch(&html_name))?;
            Ok(vec![Outgoing {
                body: Body::Email {
                    to,
                    subject,
                    text: text.content,
                    html: html.content,
                },
                losses: text.losses,
            }])
        }
    }
}
