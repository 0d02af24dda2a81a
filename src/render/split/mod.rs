//! Packing a batch of losses into as few messages as fit the channel's byte limit.
//!
//! Entries are never split and never dropped: each message holds whole customer entries, and
//! every part repeats the heading with its number ("(2/3)"). With the built-in templates each
//! entry is rendered once and parts are packed by adding up exact sizes ([`pieces`]); an
//! operator's whole-message template of 0.1 is packed by renders of it ([`whole`]). Either
//! way the limit is exact in UTF-8 bytes. How many pieces fit a part is one function
//! ([`fit`]), which also cuts a report's summary at its line ends ([`lines`]). The part count
//! is unknown while packing, so parts are measured with a wide placeholder count and rendered
//! with the real one, which can only be shorter.
//!
//! When not even one entry fits (a 3000-character staff name in the heading, a huge remark),
//! the customer-controlled texts of that part are shortened, with a visible `…`, in steps
//! until one entry fits: the heading and the fields shrink, the entry stays. Nothing is ever
//! cut off the end of a message, so every loss a message reports is in it.

pub(crate) mod fit;
#[cfg(test)]
mod golden;
pub(crate) mod lines;
mod pieces;
mod sizes;
mod whole;

use super::{
    grouped, Directions, MessageFacts, RenderError, Renderer, StaffContext, WindowContext,
};
use std::collections::{HashMap, HashSet};

use crate::loss::{Loss, LossKey};

/// Longest customer-controlled texts (in characters) tried, in turn, for a part whose first
/// entry does not fit as it is.
const SHORTEN_STEPS: [Option<usize>; 6] = [None, Some(400), Some(120), Some(40), Some(12), Some(4)];
/// Stands in for the part count while packing; wider than any real count.
const PLACEHOLDER_PARTS: usize = 999_999;

/// One message ready to send, and the losses it reports.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub content: String,
    pub losses: Vec<LossKey>,
}

/// What to pack.
pub(crate) struct Batch<'a> {
    pub template: &'a str,
    pub losses: &'a [Loss],
    pub window: Option<WindowContext>,
    pub storm: Option<Storm>,
    /// When each loss entered the outbox (its poll), for storm counting; `None` = one poll.
    pub enqueued: Option<&'a HashMap<LossKey, i64>>,
    /// Whether templates should @-mention the staff member.
    pub mention: bool,
    /// Group by department, then staff (`group_by = "department"`).
    pub by_department: bool,
    /// Byte limit of one message.
    pub limit: usize,
}

#[cfg(test)]
impl<'a> Batch<'a> {
    /// `losses` for `template` within `limit`, with nothing else set: tests vary from here.
    pub(super) fn plain(template: &'a str, losses: &'a [Loss], limit: usize) -> Self {
        Batch {
            template,
            losses,
            window: None,
            storm: None,
            enqueued: None,
            mention: false,
            by_department: false,
            limit,
        }
    }
}

/// Storm protection: a staff member with more than `threshold` losses from one poll lists only
/// `list` of them. Counted per poll, so that a backlog (a robot down for days, a quiet night)
/// is still listed in full.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Storm {
    pub threshold: usize,
    pub list: usize,
}

/// One staff member's listed losses and how many more were left out.
struct Group<'a> {
    listed: Vec<&'a Loss>,
    omitted: Vec<&'a Loss>,
}

pub(crate) fn pack(renderer: &Renderer, batch: &Batch<'_>) -> Result<Vec<Message>, RenderError> {
    let packer = Packer::new(renderer, batch);
    if !renderer.is_whole(batch.template) {
        return pack_pieces(&packer);
    }
    whole::pack(&packer)
}

/// Packs from pieces rendered once ([`pieces`]): the 4096-byte limit by byte arithmetic.
fn pack_pieces(packer: &Packer<'_>) -> Result<Vec<Message>, RenderError> {
    let batch = packer.batch;
    let pieces = pieces::Pieces::render(packer)?;
    let parts = plan_parts(&pieces, packer)?;
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, (range, shorten))| {
            let content = pieces.assemble(range.clone(), i + 1, count, shorten)?;
            if content.len() > batch.limit {
                return Err(RenderError::Template {
                    name: batch.template.to_owned(),
                    reason: format!(
                        "a part came out at {} bytes, over the limit of {}: the frame grows with the number of parts more than a wide part number allows; keep `parts` to a number in the frame",
                        content.len(),
                        batch.limit
                    ),
                });
            }
            Ok(Message {
                content,
                losses: packer.keys(range),
            })
        })
        .collect()
}

/// Each part's entries, and how far its customer texts are shortened (`None`: not at all).
type Parts = Vec<(std::ops::Range<usize>, Option<usize>)>;

/// Cuts the entries into parts, each the longest run from where the last one ended that fits.
fn plan_parts(pieces: &pieces::Pieces<'_, '_>, packer: &Packer<'_>) -> Result<Parts, RenderError> {
    let batch = packer.batch;
    let entries = packer.entries.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < entries {
        let part = parts.len() + 1;
        let (mut len, shorten) = match pieces.fit(start, part, batch.limit)? {
            0 => match pieces.fit_shortened(start, part, batch.limit)? {
                Some((len, max)) => (len, Some(max)),
                None => return Err(too_long(batch)),
            },
            len => (len, None),
        };
        // The sizes add up exactly for the built-in frames; an operator's frame may add
        // whitespace around the body or words on some parts: one real render says.
        while len > 1
            && pieces
                .assemble(start..start + len, part, PLACEHOLDER_PARTS, shorten)?
                .len()
                > batch.limit
        {
            len -= 1;
        }
        parts.push((start..start + len, shorten));
        start += len;
    }
    Ok(parts)
}

/// Not even one entry fits, with every customer text shortened.
fn too_long(batch: &Batch<'_>) -> RenderError {
    RenderError::Template {
        name: batch.template.to_owned(),
        reason: format!(
            "one customer entry does not fit in {} bytes even with every customer text shortened; shorten the template",
            batch.limit
        ),
    }
}

/// Renders the whole batch as one message, whatever its size (email has no byte limit).
pub(crate) fn render_whole(renderer: &Renderer, batch: &Batch<'_>) -> Result<Message, RenderError> {
    let packer = Packer::new(renderer, batch);
    let all = 0..packer.entries.len();
    let content = if renderer.is_whole(batch.template) {
        packer.render(all.clone(), 1, 1, None)?
    } else {
        pieces::Pieces::render(&packer)?.assemble(all.clone(), 1, 1, None)?
    };
    Ok(Message {
        content,
        losses: packer.keys(all),
    })
}

/// Whether storm protection leaves any loss of `batch` out of its messages.
pub(crate) fn omits_any(batch: &Batch<'_>) -> bool {
    batch.storm.is_some() && groups(batch).iter().any(|g| !g.omitted.is_empty())
}

/// Entries in display order: (group, index in group).
fn entries(groups: &[Group<'_>]) -> Vec<(usize, usize)> {
    groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| (0..group.listed.len()).map(move |i| (g, i)))
        .collect()
}

fn groups<'a>(batch: &Batch<'a>) -> Vec<Group<'a>> {
    grouped(batch.losses, batch.by_department)
        .into_iter()
        .map(|(_, items)| {
            let Some(storm) = batch.storm else {
                return Group {
                    listed: items,
                    omitted: Vec::new(),
                };
            };
            let poll_of = |loss: &Loss| {
                batch
                    .enqueued
                    .and_then(|e| e.get(&loss.key()).copied())
                    .unwrap_or(0)
            };
            let mut per_poll: HashMap<i64, usize> = HashMap::new();
            for loss in &items {
                *per_poll.entry(poll_of(loss)).or_default() += 1;
            }
            let (mut listed, mut omitted) = (Vec::new(), Vec::new());
            let mut storm_listed = 0;
            for loss in items {
                if per_poll[&poll_of(loss)] <= storm.threshold {
                    listed.push(loss);
                } else if storm_listed < storm.list.max(1) {
                    storm_listed += 1;
                    listed.push(loss);
                } else {
                    omitted.push(loss);
                }
            }
            Group { listed, omitted }
        })
        .collect()
}

/// Renders any contiguous range of a batch's entries as one message.
struct Packer<'a> {
    renderer: &'a Renderer,
    batch: &'a Batch<'a>,
    groups: Vec<Group<'a>>,
    /// Entries in display order: (group, index in group).
    entries: Vec<(usize, usize)>,
    /// Staff names that more than one staff member of the batch has.
    shared_names: HashSet<&'a str>,
    directions: Directions,
}

impl<'a> Packer<'a> {
    fn new(renderer: &'a Renderer, batch: &'a Batch<'a>) -> Self {
        let groups = groups(batch);
        let entries = entries(&groups);
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let mut shared_names = HashSet::new();
        for loss in batch.losses {
            let id = seen.entry(&loss.staff_name).or_insert(&loss.staff_id);
            if *id != loss.staff_id {
                shared_names.insert(loss.staff_name.as_str());
            }
        }
        Self {
            renderer,
            batch,
            groups,
            entries,
            shared_names,
            directions: Directions::of(batch.losses),
        }
    }
    /// The facts of part `part` of `parts` that every loss template sees.
    fn facts<'s>(
        &self,
        part: usize,
        parts: usize,
        staff: Option<&'s StaffContext>,
    ) -> MessageFacts<'s> {
        MessageFacts {
            part,
            parts,
            total: self.batch.losses.len(),
            staff_count: self.groups.len(),
            window: self.batch.window,
            mention: self.batch.mention,
            directions: self.directions,
            by_department: self.batch.by_department,
            staff,
        }
    }

    /// Group `g`'s staff member (told apart from namesakes) and department.
    fn staff_of(&self, g: usize) -> Option<(StaffContext, &'a str)> {
        let group = &self.groups[g];
        let first = group.listed.first().or(group.omitted.first())?;
        let mut staff = StaffContext::from(*first);
        if self.shared_names.contains(first.staff_name.as_str()) {
            staff.disambiguate();
        }
        let department = first
            .departments
            .first()
            .map(String::as_str)
            .unwrap_or(super::NO_DEPARTMENT);
        Some((staff, department))
    }

    fn is_last_of_group(&self, g: usize, i: usize) -> bool {
        i + 1 >= self.groups[g].listed.len()
    }

    /// The losses a range reports: its listed entries, plus the omitted ones of groups it ends.
    fn keys(&self, range: std::ops::Range<usize>) -> Vec<LossKey> {
        let mut keys = Vec::new();
        for &(g, i) in &self.entries[range] {
            let group = &self.groups[g];
            if let Some(loss) = group.listed.get(i) {
                keys.push(loss.key());
            }
            if self.is_last_of_group(g, i) {
                keys.extend(group.omitted.iter().map(|l| l.key()));
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::DeleteBy;

    /// WeCom's markdown limit, as the robot sink gives it.
    const MARKDOWN_LIMIT: usize = 4096;

    fn losses(n: usize, staff: usize) -> Vec<Loss> {
        (0..n)
            .map(|i| Loss {
                customer_id: format!("c{i:05}"),
                customer_name: format!("客户{i:05}号"),
                remark: Some(format!("备注{i}")),
                corp_name: None,
                staff_id: format!("s{}", i % staff),
                staff_name: format!("员工{}", i % staff),
                staff_email: None,
                outflow_at: 1_736_314_633 - i as i64,
                delete_by: DeleteBy::Customer,
                tags: vec!["标签A".into(), "标签B".into()],
                added_at: Some(1_734_951_802),
                channel: None,
                add_way: None,
                departments: Vec::new(),
                staff_left: false,
                still_followed_by: Vec::new(),
            })
            .collect()
    }

    fn renderer() -> Renderer {
        Renderer::new(crate::zone::Zone::shanghai(), None).unwrap()
    }

    #[test]
    fn every_part_fits_and_every_customer_appears_once() {
        let all = losses(300, 7);
        let batch = Batch::plain("digest.md.hbs", &all, MARKDOWN_LIMIT);
        let messages = pack(&renderer(), &batch).unwrap();
        assert!(messages.len() > 1);
        let parts = messages.len();
        for (i, m) in messages.iter().enumerate() {
            assert!(
                m.content.len() <= MARKDOWN_LIMIT,
                "part {i}: {}",
                m.content.len()
            );
            assert!(m.content.contains(&format!("({}/{parts})", i + 1)));
        }
        let text: String = messages.iter().map(|m| m.content.as_str()).collect();
        for loss in &all {
            assert_eq!(
                text.matches(&loss.customer_name).count(),
                1,
                "{}",
                loss.customer_name
            );
        }
        let keys: usize = messages.iter().map(|m| m.losses.len()).sum();
        assert_eq!(keys, 300);
        // Packing is tight: no part but the last could have taken the next entry.
        let total: usize = messages.iter().map(|m| m.content.len()).sum();
        assert!(
            parts <= total.div_ceil(MARKDOWN_LIMIT) + 1,
            "{parts} parts for {total} bytes"
        );
    }

    #[test]
    fn an_oversized_entry_or_heading_is_shortened_never_cut_off() {
        let mut all = losses(2, 1);
        all[0].customer_name = "长".repeat(3000);
        all[1].staff_name = "名".repeat(3000);
        all[1].staff_id = "s9".into();
        let batch = Batch::plain("digest.md.hbs", &all, MARKDOWN_LIMIT);
        let messages = pack(&renderer(), &batch).unwrap();
        let reported: usize = messages.iter().map(|m| m.losses.len()).sum();
        assert_eq!(reported, 2);
        for m in &messages {
            assert!(m.content.len() <= MARKDOWN_LIMIT, "{}", m.content.len());
            assert!(m.content.contains('…'), "{}", m.content);
            for key in &m.losses {
                let loss = all.iter().find(|l| &l.key() == key).unwrap();
                // The entry itself is in the message: its remark and its time.
                assert!(
                    m.content.contains(loss.remark.as_deref().unwrap()),
                    "{}",
                    m.content
                );
            }
        }
    }

    #[test]
    fn storms_list_the_first_and_count_the_rest_but_report_all() {
        let all = losses(150, 1);
        let batch = Batch {
            storm: Some(Storm {
                threshold: 100,
                list: 10,
            }),
            ..Batch::plain("digest.md.hbs", &all, MARKDOWN_LIMIT)
        };
        let messages = pack(&renderer(), &batch).unwrap();
        assert_eq!(messages.len(), 1);
        assert!(messages[0]
            .content
            .contains("另有 <font color=\"warning\">140</font> 位"));
        assert_eq!(messages[0].losses.len(), 150);

        // The same 150 from three polls of 50 are no storm: all are listed.
        let enqueued: HashMap<LossKey, i64> = all
            .iter()
            .enumerate()
            .map(|(i, l)| (l.key(), (i / 50) as i64))
            .collect();
        let batch = Batch {
            enqueued: Some(&enqueued),
            ..batch
        };
        let messages = pack(&renderer(), &batch).unwrap();
        let text: String = messages.iter().map(|m| m.content.as_str()).collect();
        assert!(!text.contains("另有"), "a backlog is not a storm");
        assert!(all.iter().all(|l| text.contains(&l.customer_name)));
    }

    #[test]
    fn mentions_keep_underscores_and_refuse_markup() {
        let mut all = losses(1, 1);
        all[0].staff_id = "zhang_san".into();
        let batch = Batch {
            mention: true,
            ..Batch::plain("staff.md.hbs", &all, MARKDOWN_LIMIT)
        };
        let messages = pack(&renderer(), &batch).unwrap();
        assert!(
            messages[0].content.contains("<@zhang_san>"),
            "{}",
            messages[0].content
        );
        let mut hostile = all.clone();
        hostile[0].staff_id = "x><@all".into();
        let batch = Batch {
            losses: &hostile,
            ..batch
        };
        let messages = pack(&renderer(), &batch).unwrap();
        assert!(
            !messages[0].content.contains("<@"),
            "{}",
            messages[0].content
        );
    }
}
