//! What templates receive: the contexts of a loss message and its pieces, built from losses.
//! Every field here is part of the template contract documented in docs/templates.md.

use std::borrow::Cow;

use serde::Serialize;

use super::helpers;
use crate::loss::{DeleteBy, Loss};

/// A loss message's own facts, as every loss template sees them at its top level.
/// Documented for template authors in docs/templates.md.
#[derive(Debug, Serialize)]
pub(crate) struct MessageFacts<'a> {
    /// Part number of this message (1-based) and how many parts the batch has.
    pub part: usize,
    pub parts: usize,
    /// Losses in the whole batch, over all parts.
    pub total: usize,
    pub staff_count: usize,
    /// The polling window (unix seconds), when known.
    pub window: Option<WindowContext>,
    /// Whether to @-mention the staff member (staff templates).
    pub mention: bool,
    /// The batch's losses by who ended them.
    pub directions: Directions,
    /// Groups come by department (`group_by = "department"`), with department headings.
    pub by_department: bool,
    /// The staff member, when the message is about exactly one (staff templates).
    pub staff: Option<&'a StaffContext>,
}

/// What a 0.1 whole-message loss template receives: the facts and every group.
#[derive(Debug, Serialize)]
pub(crate) struct MessageContext<'a> {
    #[serde(flatten)]
    pub facts: MessageFacts<'a>,
    pub groups: Vec<StaffGroup<'a>>,
}

/// What a loss message's frame (`digest.md.hbs`…) receives: the facts, and its groups
/// already rendered (`{{{body}}}`).
#[derive(Debug, Serialize)]
pub(crate) struct FrameContext<'a> {
    #[serde(flatten)]
    pub facts: MessageFacts<'a>,
    /// The groups of this part: headings, entries and ends, escaped already.
    pub body: &'a str,
}

/// What a group's heading (`digest.group.md.hbs`) and its end (`digest.end.md.hbs`) receive.
#[derive(Debug, Serialize)]
pub(crate) struct GroupContext<'a> {
    pub department_heading: Option<&'a str>,
    pub staff: &'a StaffContext,
    /// This staff member's losses in the whole batch (a group may span parts).
    pub count: usize,
    /// At the group's last end: losses left out by storm protection; 0 elsewhere.
    pub omitted: usize,
    pub by_department: bool,
}

/// Losses by who ended them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Directions {
    pub customer: usize,
    pub staff: usize,
    pub both: usize,
    pub unknown: usize,
}

impl Directions {
    pub fn of<'a>(losses: impl IntoIterator<Item = &'a Loss>) -> Self {
        let mut counts = Self::default();
        for loss in losses {
            match loss.delete_by {
                DeleteBy::Customer => counts.customer += 1,
                DeleteBy::Staff => counts.staff += 1,
                DeleteBy::Both => counts.both += 1,
                DeleteBy::Unknown => counts.unknown += 1,
            }
        }
        counts
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct WindowContext {
    pub start: i64,
    pub end: i64,
}

/// Where staff without a known department are listed in department-grouped digests.
pub(crate) const NO_DEPARTMENT: &str = "未分配部门";

/// One staff member's losses in this message.
#[derive(Debug, Serialize)]
pub(crate) struct StaffGroup<'a> {
    /// Set on the first group of each department in a department-grouped digest: the
    /// department path to show as a heading.
    pub department_heading: Option<String>,
    pub staff: StaffContext,
    /// This staff member's losses in the whole batch (a group may span parts).
    pub count: usize,
    pub customers: Vec<CustomerContext<'a>>,
    /// Losses of this staff member left out of every message (storm protection).
    pub omitted: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct StaffContext {
    pub id: String,
    pub name: String,
    /// The name, with the userid beside it when another staff member of the message has the
    /// same name (`张伟（zhangwei2）`).
    pub label: String,
    pub email: Option<String>,
    /// The department paths (销售一部 / 华东组), joined with `、`, when the org chart is read.
    pub departments: Option<String>,
    /// The staff member left the company (已离职).
    pub left: bool,
}

impl From<&Loss> for StaffContext {
    fn from(loss: &Loss) -> Self {
        Self {
            id: loss.staff_id.clone(),
            name: loss.staff_name.clone(),
            label: loss.staff_name.clone(),
            email: loss.staff_email.clone(),
            departments: (!loss.departments.is_empty()).then(|| loss.departments.join("、")),
            left: loss.staff_left,
        }
    }
}

impl StaffContext {
    /// Shortens the customer-controlled texts to `max` characters (see [`super::split`]).
    pub(crate) fn shorten(&mut self, max: usize) {
        shorten(&mut self.name, max);
        shorten(&mut self.label, max);
    }

    /// Tells staff members with one name apart by their userid.
    pub fn disambiguate(&mut self) {
        self.label = format!("{}（{}）", self.name, self.id);
    }
}

/// Shortens `text` to `max` characters, the last one `…`, when it is longer.
fn shorten(text: &mut String, max: usize) {
    if text.chars().count() > max {
        let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        *text = short;
    }
}

/// One lost customer. Every key is always present (null when unknown), as strict mode wants.
/// Its texts are borrowed from the loss, and copied only when they are shortened.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CustomerContext<'a> {
    pub id: &'a str,
    pub name: Cow<'a, str>,
    /// The remark, when it differs from the name.
    pub remark: Option<Cow<'a, str>>,
    pub corp_name: Option<Cow<'a, str>>,
    pub outflow_at: i64,
    /// `customer` or `staff`.
    pub delete_by: DeleteBy,
    pub tags: Cow<'a, [String]>,
    pub added_at: Option<i64>,
    /// Whole days between being added and the loss.
    pub days_known: Option<i64>,
    /// The channel (渠道) parameter the customer came in by, when known.
    pub channel: Option<Cow<'a, str>>,
    /// How the customer was added (扫描二维码, 名片分享…), when known.
    pub add_way: Option<&'static str>,
    /// Colleagues who still follow the customer (仍由…跟进); empty when none or not known.
    pub still_followed_by: &'a [String],
}

impl CustomerContext<'_> {
    /// Shortens the customer-controlled texts to `max` characters (see [`super::split`]).
    pub(crate) fn shorten(&mut self, max: usize) {
        shorten_borrowed(&mut self.name, max);
        for text in [&mut self.remark, &mut self.corp_name, &mut self.channel]
            .into_iter()
            .flatten()
        {
            shorten_borrowed(text, max);
        }
        if self.tags.iter().any(|t| t.chars().count() > max) {
            self.tags.to_mut().iter_mut().for_each(|t| shorten(t, max));
        }
    }
}

/// [`shorten`] for a borrowed text: copied only when it is longer than `max`.
fn shorten_borrowed(text: &mut Cow<'_, str>, max: usize) {
    if text.chars().count() > max {
        shorten(text.to_mut(), max);
    }
}

impl<'a> From<&'a Loss> for CustomerContext<'a> {
    fn from(loss: &'a Loss) -> Self {
        Self {
            id: &loss.customer_id,
            name: Cow::Borrowed(&loss.customer_name),
            remark: loss.display_remark().map(Cow::Borrowed),
            corp_name: loss.corp_name.as_deref().map(Cow::Borrowed),
            outflow_at: loss.outflow_at,
            delete_by: loss.delete_by,
            tags: Cow::Borrowed(&loss.tags),
            added_at: loss.added_at,
            days_known: helpers::days_between(loss.added_at, loss.outflow_at),
            channel: loss.channel.as_deref().map(Cow::Borrowed),
            add_way: loss.add_way.and_then(helpers::add_way_text),
            still_followed_by: &loss.still_followed_by,
        }
    }
}
