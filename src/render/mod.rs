//! Render stage: turns losses into message texts with Handlebars templates.
//!
//! Templates are strict (a misspelt variable is an error, found by `check`, not a blank line
//! at 3 a.m.), and everything a customer controls is escaped for the channel by the
//! registry's escape function ([`escape`]). [`split`] packs the rendered entries into messages
//! that fit the channel's byte limit.

pub(crate) mod compose;
pub(crate) mod escape;
pub(crate) mod helpers;
pub(crate) mod split;

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;
use handlebars::Handlebars;
use serde::Serialize;

use crate::loss::{DeleteBy, Loss};

/// The built-in templates, by file name. A file of the same name in `[templates] dir` wins.
/// The extension picks the escaping: `.md` for WeCom markdown, `.html` for HTML, `.txt` none.
///
/// A loss message comes in four pieces (see [`split`]): the frame (`digest.md.hbs`, which
/// places the groups with `{{{body}}}`), a staff member's heading (`digest.group.md.hbs`),
/// one customer (`digest.entry.md.hbs`) and the close of a group (`digest.end.md.hbs`).
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    (
        "digest.md.hbs",
        include_str!("../../templates/digest.md.hbs"),
    ),
    (
        "digest.group.md.hbs",
        include_str!("../../templates/digest.group.md.hbs"),
    ),
    (
        "digest.entry.md.hbs",
        include_str!("../../templates/digest.entry.md.hbs"),
    ),
    (
        "digest.end.md.hbs",
        include_str!("../../templates/digest.end.md.hbs"),
    ),
    (
        "digest.txt.hbs",
        include_str!("../../templates/digest.txt.hbs"),
    ),
    (
        "digest.group.txt.hbs",
        include_str!("../../templates/digest.group.txt.hbs"),
    ),
    (
        "digest.entry.txt.hbs",
        include_str!("../../templates/digest.entry.txt.hbs"),
    ),
    (
        "digest.end.txt.hbs",
        include_str!("../../templates/digest.end.txt.hbs"),
    ),
    (
        "digest.html.hbs",
        include_str!("../../templates/digest.html.hbs"),
    ),
    (
        "digest.group.html.hbs",
        include_str!("../../templates/digest.group.html.hbs"),
    ),
    (
        "digest.entry.html.hbs",
        include_str!("../../templates/digest.entry.html.hbs"),
    ),
    (
        "digest.end.html.hbs",
        include_str!("../../templates/digest.end.html.hbs"),
    ),
    ("staff.md.hbs", include_str!("../../templates/staff.md.hbs")),
    (
        "staff.group.md.hbs",
        include_str!("../../templates/staff.group.md.hbs"),
    ),
    (
        "staff.entry.md.hbs",
        include_str!("../../templates/staff.entry.md.hbs"),
    ),
    (
        "staff.end.md.hbs",
        include_str!("../../templates/staff.end.md.hbs"),
    ),
    (
        "staff.txt.hbs",
        include_str!("../../templates/staff.txt.hbs"),
    ),
    (
        "staff.group.txt.hbs",
        include_str!("../../templates/staff.group.txt.hbs"),
    ),
    (
        "staff.entry.txt.hbs",
        include_str!("../../templates/staff.entry.txt.hbs"),
    ),
    (
        "staff.end.txt.hbs",
        include_str!("../../templates/staff.end.txt.hbs"),
    ),
    (
        "staff.html.hbs",
        include_str!("../../templates/staff.html.hbs"),
    ),
    (
        "staff.group.html.hbs",
        include_str!("../../templates/staff.group.html.hbs"),
    ),
    (
        "staff.entry.html.hbs",
        include_str!("../../templates/staff.entry.html.hbs"),
    ),
    (
        "staff.end.html.hbs",
        include_str!("../../templates/staff.end.html.hbs"),
    ),
    (
        "report.md.hbs",
        include_str!("../../templates/report.md.hbs"),
    ),
    (
        "report.txt.hbs",
        include_str!("../../templates/report.txt.hbs"),
    ),
    (
        "report.html.hbs",
        include_str!("../../templates/report.html.hbs"),
    ),
    ("alert.md.hbs", include_str!("../../templates/alert.md.hbs")),
    (
        "alert.txt.hbs",
        include_str!("../../templates/alert.txt.hbs"),
    ),
    (
        "alert.html.hbs",
        include_str!("../../templates/alert.html.hbs"),
    ),
];

/// A template that cannot be loaded or rendered; names the template file.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("cannot read template {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("templates.dir {dir}: {reason}")]
    Dir { dir: String, reason: String },
}

/// The template folder exists, and every `*.hbs` file in it replaces a built-in template: a
/// misspelt file name would otherwise be ignored without a word.
fn check_template_dir(dir: &Path) -> Result<(), RenderError> {
    let error = |reason: String| RenderError::Dir {
        dir: dir.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        error(format!(
            "cannot be read ({e}); create it, or remove `[templates] dir` to use the built-in templates"
        ))
    })?;
    let expected: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
    let mut unknown = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(|e| error(e.to_string()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".hbs") && !expected.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(error(format!(
        "{} is not a template name, so it would never be used; expected names: {}",
        unknown.join(", "),
        expected.join(", ")
    )))
}

/// Whether `source`, the loss frame `name`, lists the groups itself (`{{#each groups}}`), as
/// every loss template did before messages came in pieces.
fn is_whole_message(name: &str, source: &str) -> bool {
    let frame = name.split('.').count() == 3;
    let loss = name.starts_with("digest.") || name.starts_with("staff.");
    frame && loss && source.contains("each groups")
}

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
    pub groups: Vec<StaffGroup>,
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
const NO_DEPARTMENT: &str = "未分配部门";

/// One staff member's losses in this message.
#[derive(Debug, Serialize)]
pub(crate) struct StaffGroup {
    /// Set on the first group of each department in a department-grouped digest: the
    /// department path to show as a heading.
    pub department_heading: Option<String>,
    pub staff: StaffContext,
    /// This staff member's losses in the whole batch (a group may span parts).
    pub count: usize,
    pub customers: Vec<CustomerContext>,
    /// Losses of this staff member left out of every message (storm protection).
    pub omitted: usize,
}

#[derive(Debug, Clone, Serialize)]
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
    /// A group without a loss to name its staff member (never rendered in practice).
    pub fn empty() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            label: String::new(),
            email: None,
            departments: None,
            left: false,
        }
    }

    /// Shortens the customer-controlled texts to `max` characters (see [`split`]).
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
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CustomerContext {
    pub id: String,
    pub name: String,
    /// The remark, when it differs from the name.
    pub remark: Option<String>,
    pub corp_name: Option<String>,
    pub outflow_at: i64,
    /// `customer` or `staff`.
    pub delete_by: DeleteBy,
    pub tags: Vec<String>,
    pub added_at: Option<i64>,
    /// Whole days between being added and the loss.
    pub days_known: Option<i64>,
    /// The channel (渠道) parameter the customer came in by, when known.
    pub channel: Option<String>,
    /// How the customer was added (扫描二维码, 名片分享…), when known.
    pub add_way: Option<&'static str>,
    /// Colleagues who still follow the customer (仍由…跟进); empty when none or not known.
    pub still_followed_by: Vec<String>,
}

impl CustomerContext {
    /// Shortens the customer-controlled texts to `max` characters (see [`split`]).
    pub(crate) fn shorten(&mut self, max: usize) {
        shorten(&mut self.name, max);
        for text in [&mut self.remark, &mut self.corp_name, &mut self.channel]
            .into_iter()
            .flatten()
        {
            shorten(text, max);
        }
        self.tags.iter_mut().for_each(|t| shorten(t, max));
    }
}

impl From<&Loss> for CustomerContext {
    fn from(loss: &Loss) -> Self {
        Self {
            id: loss.customer_id.clone(),
            name: loss.customer_name.clone(),
            remark: loss.display_remark().map(str::to_owned),
            corp_name: loss.corp_name.clone(),
            outflow_at: loss.outflow_at,
            delete_by: loss.delete_by,
            tags: loss.tags.clone(),
            added_at: loss.added_at,
            days_known: helpers::days_between(loss.added_at, loss.outflow_at),
            channel: loss.channel.clone(),
            add_way: loss.add_way.and_then(helpers::add_way_text),
            still_followed_by: loss.still_followed_by.clone(),
        }
    }
}

/// Renders messages from named templates, each escaped for its channel.
///
/// One Handlebars registry per escape rule: WeCom markdown ([`escape::markdown`]), HTML
/// (Handlebars' own escaping) and plain text (none). Strict mode everywhere.
pub(crate) struct Renderer {
    tz: Tz,
    markdown: Handlebars<'static>,
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    /// Loss frames that are whole-message templates of 0.1 (their own `{{#each groups}}`):
    /// they are rendered whole, as then, and their pieces are not used.
    whole: std::collections::HashSet<String>,
}

impl Renderer {
    /// Loads the built-in templates and the overrides in `dir`.
    pub fn new(tz: Tz, dir: Option<&Path>) -> Result<Self, RenderError> {
        let registry = |escape: fn(&str) -> String| {
            let mut registry = Handlebars::new();
            registry.set_strict_mode(true);
            registry.register_escape_fn(escape);
            helpers::register(&mut registry, tz);
            registry
        };
        let mut renderer = Self {
            tz,
            markdown: registry(escape::markdown),
            html: registry(escape::html),
            text: registry(escape::text),
            whole: Default::default(),
        };
        if let Some(dir) = dir {
            check_template_dir(dir)?;
        }
        for (name, builtin) in BUILTIN {
            let source = match dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => {
                    std::fs::read_to_string(&path).map_err(|source| RenderError::Read {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                _ => (*builtin).to_owned(),
            };
            if is_whole_message(name, &source) {
                renderer.whole.insert((*name).to_owned());
            }
            renderer
                .registry_mut(name)
                .register_template_string(name, source)
                .map_err(|e| RenderError::Template {
                    name: (*name).to_owned(),
                    reason: e.to_string(),
                })?;
        }
        renderer.check_frames()?;
        Ok(renderer)
    }

    /// Every loss frame places the message's groups exactly once, unescaped: a frame without
    /// `{{{body}}}` would send headings while its losses count as delivered.
    fn check_frames(&self) -> Result<(), RenderError> {
        const MARKER: &str = "<churn-alert body/>";
        let staff = StaffContext {
            id: "zhangsan".into(),
            name: "张三".into(),
            label: "张三".into(),
            email: None,
            departments: None,
            left: false,
        };
        for (name, _) in BUILTIN {
            let frame = name.split('.').count() == 3
                && (name.starts_with("digest.") || name.starts_with("staff."));
            if !frame || self.is_whole(name) {
                continue;
            }
            let context = FrameContext {
                facts: MessageFacts {
                    part: 1,
                    parts: 2,
                    total: 1,
                    staff_count: 1,
                    window: Some(WindowContext { start: 0, end: 0 }),
                    mention: true,
                    directions: Directions::default(),
                    by_department: false,
                    staff: Some(&staff),
                },
                body: MARKER,
            };
            let rendered = self.render_piece(name, &context)?;
            if rendered.matches(MARKER).count() != 1 {
                return Err(RenderError::Template {
                    name: (*name).to_owned(),
                    reason: "the frame must place the message's groups exactly once, with three braces: {{{body}}}".into(),
                });
            }
        }
        Ok(())
    }

    /// The zone times are shown in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn registry_mut(&mut self, name: &str) -> &mut Handlebars<'static> {
        if name.ends_with(".md.hbs") {
            &mut self.markdown
        } else if name.ends_with(".html.hbs") {
            &mut self.html
        } else {
            &mut self.text
        }
    }

    fn registry(&self, name: &str) -> &Handlebars<'static> {
        if name.ends_with(".md.hbs") {
            &self.markdown
        } else if name.ends_with(".html.hbs") {
            &self.html
        } else {
            &self.text
        }
    }

    /// A whole message: `name` over `context`, without trailing whitespace.
    pub fn render<C: Serialize>(&self, name: &str, context: &C) -> Result<String, RenderError> {
        let mut text = self.render_piece(name, context)?;
        text.truncate(text.trim_end().len());
        Ok(text)
    }

    /// A piece of a message, exactly as the template writes it (newlines kept).
    pub fn render_piece<C: Serialize>(
        &self,
        name: &str,
        context: &C,
    ) -> Result<String, RenderError> {
        self.registry(name)
            .render(name, context)
            .map_err(|e| RenderError::Template {
                name: name.to_owned(),
                reason: e.to_string(),
            })
    }

    /// A piece of a message appended to `out`: many pieces share one buffer, so that
    /// thousands of entries cost one allocation instead of one each.
    pub fn render_piece_into<C: Serialize>(
        &self,
        name: &str,
        context: &C,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.registry(name)
            .render_to_write(name, context, out)
            .map_err(|e| RenderError::Template {
                name: name.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Whether the loss frame `name` is a whole-message template of 0.1 (see [`split`]).
    pub fn is_whole(&self, name: &str) -> bool {
        self.whole.contains(name)
    }
}

/// Losses grouped by staff member: groups by staff name, customers newest first.
pub(crate) fn group_by_staff(losses: &[Loss]) -> Vec<(String, Vec<&Loss>)> {
    grouped(losses, false)
}

/// Losses grouped by staff member, ordered by staff name — or, `by_department`, by their
/// (first) department path, then staff name; customers newest first.
pub(crate) fn grouped(losses: &[Loss], by_department: bool) -> Vec<(String, Vec<&Loss>)> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Loss>> = BTreeMap::new();
    for loss in losses {
        let department = if by_department {
            loss.departments
                .first()
                .cloned()
                .unwrap_or_else(|| NO_DEPARTMENT.to_owned())
        } else {
            String::new()
        };
        groups
            .entry((department, loss.staff_name.clone(), loss.staff_id.clone()))
            .or_default()
            .push(loss);
    }
    groups
        .into_iter()
        .map(|((_, _, id), mut items)| {
            items.sort_by(|a, b| {
                b.outflow_at
                    .cmp(&a.outflow_at)
                    .then_with(|| a.customer_id.cmp(&b.customer_id))
            });
            (id, items)
        })
        .collect()
}
