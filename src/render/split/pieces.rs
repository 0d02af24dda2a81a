//! Packing from pieces: each customer entry and each group heading rendered once, parts
//! packed by adding up their exact sizes.
//!
//! A message is its frame around a body; the body is, for each staff member in the part, the
//! group heading, the entries and the group's end. The frame is a Handlebars template that
//! places the body with `{{{body}}}`, so a part's size is the frame's own size (rendered once
//! per part, with the widest part count) plus the sizes of its pieces: packing is byte arithmetic over
//! texts that are rendered once, and a part is rendered once more only to put its frame
//! around it. The limit stays exact: every assembled part is measured before it is kept.
//!
//! In a department digest a group's heading names its department when the group opens a part
//! or follows another department, so a heading exists in two forms, both rendered once.

use std::borrow::Cow;
use std::ops::Range;

use super::fit::{self, Measured};
use super::{Packer, PLACEHOLDER_PARTS, SHORTEN_STEPS};
use crate::render::reuse::EntryContext;
use crate::render::{CustomerContext, FrameContext, GroupContext, RenderError, StaffContext};

/// Template names of a loss message's pieces, from its frame's name (`digest.md.hbs`).
struct Names {
    frame: String,
    group: String,
    entry: String,
    end: String,
}

impl Names {
    fn of(frame: &str) -> Self {
        let (kind, channel) = frame.split_once('.').unwrap_or((frame, "md.hbs"));
        Self {
            frame: frame.to_owned(),
            group: format!("{kind}.group.{channel}"),
            entry: format!("{kind}.entry.{channel}"),
            end: format!("{kind}.end.{channel}"),
        }
    }
}

/// A group's rendered pieces.
struct GroupPieces {
    /// The heading without, and (department digests) with, its department line.
    heading: [String; 2],
    /// The end of a part that stops inside the group, and the group's last end.
    end: [String; 2],
}

/// The pieces of one batch, each rendered once.
pub(super) struct Pieces<'p, 'a> {
    packer: &'p Packer<'a>,
    names: Names,
    staff: Vec<(StaffContext, &'a str)>,
    groups: Vec<GroupPieces>,
    /// Every entry, rendered once, one after the other in one buffer.
    arena: String,
    /// Where each entry is in `arena`.
    entries: Vec<Range<usize>>,
}

impl<'p, 'a> Pieces<'p, 'a> {
    pub(super) fn render(packer: &'p Packer<'a>) -> Result<Self, RenderError> {
        let names = Names::of(packer.batch.template);
        let staff: Vec<(StaffContext, &str)> = (0..packer.groups.len())
            .map(|g| {
                packer
                    .staff_of(g)
                    // A group always has a loss: the default is never rendered.
                    .unwrap_or_else(|| (StaffContext::default(), super::super::NO_DEPARTMENT))
            })
            .collect();
        let mut pieces = Self {
            packer,
            names,
            staff,
            groups: Vec::new(),
            arena: String::new(),
            entries: Vec::with_capacity(packer.entries.len()),
        };
        for g in 0..packer.groups.len() {
            let group = pieces.group_pieces(g, None)?;
            pieces.groups.push(group);
        }
        let mut arena = Vec::new();
        let mut context = EntryContext::new();
        for &(g, i) in &packer.entries {
            let start = arena.len();
            pieces.entry_into(g, i, None, &mut context, &mut arena)?;
            pieces.entries.push(start..arena.len());
        }
        pieces.arena = pieces.text(arena)?;
        Ok(pieces)
    }

    fn group_context(&self, g: usize, staff: &'p StaffContext) -> GroupContext<'p> {
        GroupContext {
            department_heading: None,
            staff,
            count: self.packer.groups[g].listed.len() + self.packer.groups[g].omitted.len(),
            omitted: 0,
            by_department: self.packer.batch.by_department,
        }
    }

    fn group_pieces(&self, g: usize, shorten: Option<usize>) -> Result<GroupPieces, RenderError> {
        let mut staff = Cow::Borrowed(&self.staff[g].0);
        if let Some(max) = shorten {
            staff.to_mut().shorten(max);
        }
        let renderer = self.packer.renderer;
        let context = self.group_context(g, &staff);
        let plain = renderer.render_piece(&self.names.group, &context)?;
        let headed = if self.packer.batch.by_department {
            let context = GroupContext {
                department_heading: Some(self.staff[g].1),
                ..self.group_context(g, &staff)
            };
            renderer.render_piece(&self.names.group, &context)?
        } else {
            String::new()
        };
        let middle = renderer.render_piece(&self.names.end, &context)?;
        // The group's last end differs from the others only by what storm protection left
        // out: with nothing left out, the context and so the text are the same.
        let omitted = self.packer.groups[g].omitted.len();
        let last = if omitted == 0 {
            middle.clone()
        } else {
            let last = GroupContext {
                omitted,
                ..self.group_context(g, &staff)
            };
            renderer.render_piece(&self.names.end, &last)?
        };
        Ok(GroupPieces {
            heading: [plain, headed],
            end: [middle, last],
        })
    }

    fn entry_into(
        &self,
        g: usize,
        i: usize,
        shorten: Option<usize>,
        reused: &mut EntryContext,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let Some(loss) = self.packer.groups[g].listed.get(i) else {
            return Ok(());
        };
        let mut customer = CustomerContext::from(*loss);
        if let Some(max) = shorten {
            customer.shorten(max);
        }
        self.packer
            .renderer
            .render_entry_into(&self.names.entry, reused.holding(&customer), out)
    }

    /// The entries' buffer as text (Handlebars writes UTF-8 only).
    fn text(&self, bytes: Vec<u8>) -> Result<String, RenderError> {
        String::from_utf8(bytes).map_err(|e| RenderError::Template {
            name: self.names.entry.clone(),
            reason: format!("rendered text that is not UTF-8: {e}"),
        })
    }

    fn frame(
        &self,
        part: usize,
        parts: usize,
        body: &str,
        shorten: Option<usize>,
    ) -> Result<String, RenderError> {
        let packer = self.packer;
        let mut staff = match packer.groups.as_slice() {
            [_] => Some(Cow::Borrowed(&self.staff[0].0)),
            _ => None,
        };
        if let (Some(staff), Some(max)) = (staff.as_mut(), shorten) {
            staff.to_mut().shorten(max);
        }
        let context = FrameContext {
            facts: packer.facts(part, parts, staff.as_deref()),
            body,
        };
        packer.renderer.render(&self.names.frame, &context)
    }

    /// The heading of group `g` after group `previous` (`None`: at the top of a part): with
    /// its department line when the digest goes by department and the department changes.
    fn heading(&self, g: usize, previous: Option<usize>) -> &str {
        let department = self.staff[g].1;
        let headed = self.packer.batch.by_department
            && previous.is_none_or(|p| self.staff[p].1 != department);
        &self.groups[g].heading[usize::from(headed)]
    }

    /// What entry `e` brings when it opens a part: its group's heading, itself.
    fn opening_pieces(&self, e: usize) -> [&str; 2] {
        let (g, _) = self.packer.entries[e];
        [self.heading(g, None), &self.arena[self.entries[e].clone()]]
    }

    /// What entry `e` brings after entry `e - 1` in one part: when it starts another group,
    /// the previous group's end and its own heading; then itself.
    fn following_pieces(&self, e: usize) -> [&str; 3] {
        let (g, _) = self.packer.entries[e];
        let (p, _) = self.packer.entries[e - 1];
        let entry = &self.arena[self.entries[e].clone()];
        if p == g {
            ["", "", entry]
        } else {
            [&self.groups[p].end[1], self.heading(g, Some(p)), entry]
        }
    }

    /// What closes a part after entry `e`: its group's end, the last one after the group's
    /// last entry.
    fn closing_piece(&self, e: usize) -> &str {
        let (g, i) = self.packer.entries[e];
        &self.groups[g].end[usize::from(self.packer.is_last_of_group(g, i))]
    }

    /// Walks the pieces of the entries in `range`, in message order: the same pieces
    /// [`fit::Measured`] adds up.
    fn walk(&self, range: Range<usize>, mut piece: impl FnMut(&str)) {
        if range.is_empty() {
            return;
        }
        self.opening_pieces(range.start)
            .into_iter()
            .for_each(&mut piece);
        for e in range.start + 1..range.end {
            self.following_pieces(e).into_iter().for_each(&mut piece);
        }
        piece(self.closing_piece(range.end - 1));
    }

    /// The longest run of entries from `start` that fits `limit` as they are, as part
    /// `part`; 0 if not one. The frame is measured at that part and the widest part count,
    /// which the real count never exceeds.
    pub(super) fn fit(
        &self,
        start: usize,
        part: usize,
        limit: usize,
    ) -> Result<usize, RenderError> {
        let frame = self.frame(part, PLACEHOLDER_PARTS, "", None)?.len();
        Ok(fit::longest_run(self, start, limit.saturating_sub(frame)))
    }

    /// The message of the entries in `range`, part `part` of `parts`; `shorten` re-renders
    /// its pieces with the customer texts cut to that many characters.
    pub(super) fn assemble(
        &self,
        range: Range<usize>,
        part: usize,
        parts: usize,
        shorten: Option<usize>,
    ) -> Result<String, RenderError> {
        let mut body = String::new();
        match shorten {
            None => self.walk(range, |p| body.push_str(p)),
            Some(max) => {
                let mut short = Pieces {
                    packer: self.packer,
                    names: Names::of(&self.names.frame),
                    staff: self.staff.clone(),
                    groups: Vec::new(),
                    arena: String::new(),
                    entries: vec![0..0; self.entries.len()],
                };
                let first_group = self.packer.entries[range.start].0;
                let last_group = self.packer.entries[range.end - 1].0;
                for g in 0..self.groups.len() {
                    short
                        .groups
                        .push(if (first_group..=last_group).contains(&g) {
                            self.group_pieces(g, Some(max))?
                        } else {
                            GroupPieces {
                                heading: Default::default(),
                                end: Default::default(),
                            }
                        });
                }
                let mut arena = Vec::new();
                let mut context = EntryContext::new();
                for e in range.clone() {
                    let (g, i) = self.packer.entries[e];
                    let start = arena.len();
                    self.entry_into(g, i, Some(max), &mut context, &mut arena)?;
                    short.entries[e] = start..arena.len();
                }
                short.arena = self.text(arena)?;
                short.walk(range, |p| body.push_str(p));
            }
        }
        self.frame(part, parts, &body, shorten)
    }

    /// The shortening step that lets the entry at `start` fit alone, and how many entries
    /// fit with it at that step.
    pub(super) fn fit_shortened(
        &self,
        start: usize,
        part: usize,
        limit: usize,
    ) -> Result<Option<(usize, usize)>, RenderError> {
        for max in SHORTEN_STEPS.into_iter().flatten() {
            let fits = |len: usize| -> Result<bool, RenderError> {
                Ok(self
                    .assemble(start..start + len, part, PLACEHOLDER_PARTS, Some(max))?
                    .len()
                    <= limit)
            };
            if !fits(1)? {
                continue;
            }
            let mut len = 1;
            while start + len < self.entries.len() && fits(len + 1)? {
                len += 1;
            }
            return Ok(Some((len, max)));
        }
        Ok(None)
    }
}

/// Sizes in bytes of the pieces [`Pieces::walk`] writes.
impl Measured for Pieces<'_, '_> {
    fn count(&self) -> usize {
        self.entries.len()
    }

    fn opening(&self, e: usize) -> usize {
        self.opening_pieces(e).iter().map(|p| p.len()).sum()
    }

    fn following(&self, e: usize) -> usize {
        self.following_pieces(e).iter().map(|p| p.len()).sum()
    }

    fn closing(&self, e: usize) -> usize {
        self.closing_piece(e).len()
    }
}
