//! Render stage: turns losses into message texts with Handlebars templates.
//!
//! Templates are strict (a misspelt variable is an error, found by `check`, not a blank line
//! at 3 a.m.), and everything a customer controls is escaped for the channel by the
//! registry's escape function ([`escape`]). [`split`] packs the rendered entries into messages
//! that fit the channel's byte limit.

pub(crate) mod compose;
mod context;
pub(crate) mod escape;
pub(crate) mod helpers;
pub(crate) mod reuse;
pub(crate) mod split;

use std::collections::BTreeMap;
use std::path::Path;

use crate::zone::Zone;
use handlebars::Handlebars;
use serde::Serialize;

use crate::loss::Loss;

pub(crate) use context::{
    CustomerContext, Directions, FrameContext, GroupContext, MessageContext, MessageFacts,
    StaffContext, StaffGroup, WindowContext, NO_DEPARTMENT,
};

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
    is_loss_frame(name) && source.contains("each groups")
}

/// Whether `name` is the frame of a loss message (`digest.md.hbs`, not `digest.entry.md.hbs`).
fn is_loss_frame(name: &str) -> bool {
    name.split('.').count() == 3 && (name.starts_with("digest.") || name.starts_with("staff."))
}

/// Renders messages from named templates, each escaped for its channel.
///
/// One Handlebars registry per escape rule: WeCom markdown ([`escape::markdown`]), HTML
/// (Handlebars' own escaping) and plain text (none). Strict mode everywhere.
pub(crate) struct Renderer {
    tz: Zone,
    markdown: Handlebars<'static>,
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    /// Loss frames that are whole-message templates of 0.1 (their own `{{#each groups}}`):
    /// they are rendered whole, as then, and their pieces are not used.
    whole: std::collections::HashSet<String>,
}

impl Renderer {
    /// Loads the built-in templates and the overrides in `dir`.
    pub fn new(tz: Zone, dir: Option<&Path>) -> Result<Self, RenderError> {
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
            if !is_loss_frame(name) || self.is_whole(name) {
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
    pub fn timezone(&self) -> Zone {
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

    /// An entry appended to `out`, from a context reused entry to entry ([`reuse`]): many
    /// entries share one buffer, so that thousands of entries cost one allocation.
    pub fn render_entry_into(
        &self,
        name: &str,
        context: &handlebars::Context,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.registry(name)
            .render_with_context_to_write(name, context, out)
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
