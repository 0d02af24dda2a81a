//! Estimated part sizes for packing: measured by rendering, checked by rendering.

use super::{Packer, PLACEHOLDER_PARTS};
use crate::loss::Loss;
use crate::render::{helpers, RenderError};

/// What each entry adds to a message, from three renders per group rather than one per
/// entry: the message with no entries (`base`, once), each group's heading with its first
/// entry (`group`, exact), and the whole group, which calibrates an estimate for every other
/// entry: a per-group constant (the template's own text around an entry) plus the bytes of
/// the entry's own texts. Every predicted part is checked by a real render
/// ([`fit_predicted`]), so estimates only steer; the byte limit stays exact.
pub(super) struct Sizes {
    base: usize,
    /// Per group: its heading and first entry.
    group: Vec<usize>,
    /// Per entry: what it adds; 0 for a group's first entry (counted in `group`).
    pub(super) entry: Vec<usize>,
    /// Per entry: its group.
    group_of: Vec<usize>,
}

impl Sizes {
    pub(super) fn measure(packer: &Packer<'_>) -> Result<Self, RenderError> {
        let size = |picked: &[(usize, usize)]| -> Result<usize, RenderError> {
            Ok(packer
                .render_picked(picked, 1, PLACEHOLDER_PARTS, None)?
                .len())
        };
        let base = size(&[])?;
        let mut group = vec![0; packer.groups.len()];
        let mut entry = vec![0; packer.entries.len()];
        let group_of: Vec<usize> = packer.entries.iter().map(|&(g, _)| g).collect();
        let mut start = 0;
        while start < packer.entries.len() {
            let g = group_of[start];
            let end = (start..packer.entries.len())
                .find(|&j| group_of[j] != g)
                .unwrap_or(packer.entries.len());
            let members = &packer.entries[start..end];
            let alone = size(&members[..1])?;
            group[g] = alone.saturating_sub(base);
            if members.len() > 1 {
                // What the other entries add together, shared out by their own texts' bytes.
                let rest = size(members)?.saturating_sub(alone) as i64;
                let texts: Vec<i64> = members[1..]
                    .iter()
                    .map(|&(g, i)| packer.groups[g].listed.get(i).map_or(0, |l| text_bytes(l)))
                    .collect();
                let around = (rest - texts.iter().sum::<i64>()) / texts.len() as i64;
                for (slot, text) in entry[start + 1..end].iter_mut().zip(texts) {
                    *slot = (around + text).max(1) as usize;
                }
            }
            start = end;
        }
        Ok(Self {
            base,
            group,
            entry,
            group_of,
        })
    }

    /// How many entries from `start` the sizes say fit in `limit`; `None` when not even one.
    pub(super) fn greedy(&self, start: usize, limit: usize) -> Option<usize> {
        let mut total = self.base;
        let mut len = 0;
        let mut current = None;
        for i in start..self.entry.len() {
            let g = self.group_of[i];
            let mut add = self.entry[i];
            if current != Some(g) {
                current = Some(g);
                add += self.group[g];
            }
            if total + add > limit {
                break;
            }
            total += add;
            len += 1;
        }
        (len > 0).then_some(len)
    }
}

/// The bytes of an entry's own texts: what makes one entry longer than another.
fn text_bytes(loss: &Loss) -> i64 {
    let texts = [
        loss.customer_name.len(),
        loss.display_remark().map_or(0, str::len),
        loss.corp_name.as_deref().map_or(0, str::len),
        loss.channel.as_deref().map_or(0, str::len),
        loss.add_way
            .and_then(helpers::add_way_text)
            .map_or(0, str::len),
        loss.tags.iter().map(|t| t.len() + 3).sum(),
        loss.still_followed_by.iter().map(|t| t.len() + 3).sum(),
    ];
    texts.iter().sum::<usize>() as i64
}
