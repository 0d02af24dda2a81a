//! Packing with a whole-message template of 0.1 (`{{#each groups}}` in one file): the
//! template renders any run of entries, so the largest run that fits is found by renders of
//! it, steered by size estimates ([`super::sizes`]); a part is rendered again with the real
//! part count. Kept so that operators' 0.1 templates render as they did; the built-in
//! templates go through [`super::pieces`] instead.

use super::sizes::Sizes;
use super::{too_long, Message, Packer, PLACEHOLDER_PARTS, SHORTEN_STEPS};
use crate::render::{CustomerContext, MessageContext, RenderError, StaffContext, StaffGroup};

/// Packs with a whole-message template: each part found by renders of the real template.
pub(super) fn pack(packer: &Packer<'_>) -> Result<Vec<Message>, RenderError> {
    let batch = packer.batch;
    let sizes = Sizes::measure(packer)?;
    let entries = packer.entries.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < entries {
        let part = parts.len() + 1;
        let (len, shorten) = match sizes.greedy(start, batch.limit) {
            Some(len) => (fit_predicted(packer, &sizes, start, len, part)?, None),
            None => search_part(packer, start, part)?,
        };
        parts.push((start..start + len, shorten));
        start += len;
    }

    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, (range, shorten))| {
            // The real part count is never wider than the placeholder: this fits too.
            let content = packer.render(range.clone(), i + 1, count, shorten)?;
            Ok(Message {
                content,
                losses: packer.keys(range),
            })
        })
        .collect()
}

/// Shrinks a predicted part until a real render fits, dropping as many entries from its end
/// as the estimates say the overflow is worth (so this rarely renders more than twice); falls
/// back to a search when the prediction was far off.
fn fit_predicted(
    packer: &Packer<'_>,
    sizes: &Sizes,
    start: usize,
    predicted: usize,
    part: usize,
) -> Result<usize, RenderError> {
    let limit = packer.batch.limit;
    let mut len = predicted;
    for _ in 0..4 {
        let size = packer
            .render(start..start + len, part, PLACEHOLDER_PARTS, None)?
            .len();
        if size <= limit {
            return Ok(len);
        }
        let mut over = size - limit;
        while over > 0 && len > 1 {
            len -= 1;
            over = over.saturating_sub(sizes.entry[start + len].max(1));
        }
        if over > 0 {
            break;
        }
    }
    Ok(search_part(packer, start, part)?.0)
}

/// The longest prefix of the entries from `start` that fits, by exponential then binary
/// search over real renders, shortening customer texts when not even one entry fits.
fn search_part(
    packer: &Packer<'_>,
    start: usize,
    part: usize,
) -> Result<(usize, Option<usize>), RenderError> {
    let batch = packer.batch;
    let fits = |len: usize, shorten: Option<usize>| -> Result<bool, RenderError> {
        Ok(packer
            .render(start..start + len, part, PLACEHOLDER_PARTS, shorten)?
            .len()
            <= batch.limit)
    };
    let mut shorten = None;
    for step in SHORTEN_STEPS {
        if fits(1, step)? {
            shorten = Some(step);
            break;
        }
    }
    let Some(shorten) = shorten else {
        return Err(too_long(batch));
    };
    let remaining = packer.entries.len() - start;
    let mut good = 1;
    let mut probe = 2;
    while probe <= remaining && fits(probe, shorten)? {
        good = probe;
        probe *= 2;
    }
    let mut bad = probe.min(remaining + 1);
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if fits(mid, shorten)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok((good, shorten))
}

impl Packer<'_> {
    pub(super) fn render(
        &self,
        range: std::ops::Range<usize>,
        part: usize,
        parts: usize,
        shorten: Option<usize>,
    ) -> Result<String, RenderError> {
        self.render_picked(&self.entries[range], part, parts, shorten)
    }

    /// Renders the given entries (in display order) as one message.
    pub(super) fn render_picked(
        &self,
        picked: &[(usize, usize)],
        part: usize,
        parts: usize,
        shorten: Option<usize>,
    ) -> Result<String, RenderError> {
        let mut groups: Vec<StaffGroup<'_>> = Vec::new();
        let mut current: Option<usize> = None;
        let mut last_department: Option<&str> = None;
        for &(g, i) in picked {
            let group = &self.groups[g];
            if current != Some(g) {
                current = Some(g);
                let Some((staff, department)) = self.staff_of(g) else {
                    continue;
                };
                let department_heading = (self.batch.by_department
                    && last_department != Some(department))
                .then(|| department.to_owned());
                last_department = Some(department);
                groups.push(StaffGroup {
                    department_heading,
                    staff,
                    count: group.listed.len() + group.omitted.len(),
                    customers: Vec::new(),
                    omitted: 0,
                });
            }
            if let Some(g_ctx) = groups.last_mut() {
                if let Some(loss) = group.listed.get(i) {
                    g_ctx.customers.push(CustomerContext::from(*loss));
                }
                if self.is_last_of_group(g, i) {
                    g_ctx.omitted = group.omitted.len();
                }
            }
        }
        let mut staff = match self.groups.as_slice() {
            [only] => only.listed.first().map(|l| StaffContext::from(*l)),
            _ => None,
        };
        if let Some(max) = shorten {
            staff.iter_mut().for_each(|s| s.shorten(max));
            for group in &mut groups {
                group.staff.shorten(max);
                group.customers.iter_mut().for_each(|c| c.shorten(max));
            }
        }
        let context = MessageContext {
            facts: self.facts(part, parts, staff.as_ref()),
            groups,
        };
        self.renderer.render(self.batch.template, &context)
    }
}
