//! Splitting a rendered text at its line ends (a report's summary), by the same byte
//! arithmetic as loss messages ([`super::fit`]).
//!
//! Each line is a piece, joined to the one before by a line end. Parts after the first open
//! with `title（续 i/n）`: measured with the widest part count while cutting, written with the
//! real one, which can only be shorter. A line longer than the narrowest part is shortened with
//! a visible `…`; no line is dropped.

use std::borrow::Cow;
use std::ops::Range;

use super::fit::{self, Measured};
use super::PLACEHOLDER_PARTS;

/// Least room for a line, whatever the limit and the title.
const MIN_LINE: usize = 64;

/// Splits `text` at line ends into parts of at most `limit` bytes; parts after the first
/// start with `title（续 i/n）`. A text within the limit stays as it is. A line always gets
/// [`MIN_LINE`] bytes, so a limit under that plus the heading (about 110 bytes for a report's
/// title; the channels' limits are 2048 and 4096) can give parts over it.
pub(crate) fn split_lines(text: &str, limit: usize, title: &str) -> Vec<String> {
    if text.len() <= limit {
        return vec![text.to_owned()];
    }
    let heading = |part: usize, parts: usize| {
        if part == 1 {
            String::new()
        } else {
            format!("{title}（续 {part}/{parts}）\n")
        }
    };
    let narrowest = limit
        .saturating_sub(heading(PLACEHOLDER_PARTS, PLACEHOLDER_PARTS).len())
        .max(MIN_LINE);
    let lines = Lines(
        text.lines()
            .map(|line| shorten_bytes(line, narrowest))
            .collect(),
    );
    let mut parts: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    while start < lines.count() {
        let room = limit.saturating_sub(heading(parts.len() + 1, PLACEHOLDER_PARTS).len());
        // At least one line a part: a line is never longer than the narrowest part's room.
        let len = fit::longest_run(&lines, start, room).max(1);
        parts.push(start..start + len);
        start += len;
    }
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, range)| heading(i + 1, count) + &lines.0[range].join("\n"))
        .collect()
}

/// A text's lines, as pieces of a part.
struct Lines<'t>(Vec<Cow<'t, str>>);

impl Measured for Lines<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn opening(&self, i: usize) -> usize {
        self.0[i].len()
    }

    fn following(&self, i: usize) -> usize {
        '\n'.len_utf8() + self.0[i].len()
    }

    fn closing(&self, _: usize) -> usize {
        0
    }
}

/// `line` in at most `max` bytes, its end replaced by `…` when it is longer.
fn shorten_bytes(line: &str, max: usize) -> Cow<'_, str> {
    if line.len() <= max {
        return Cow::Borrowed(line);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &line[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_summaries_split_at_line_ends_within_the_limit() {
        let text: String = (0..400).map(|i| format!("- 员工{i}：3 位\n")).collect();
        let parts = split_lines(&text, 4096, "客户流失周报");
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.len() <= 4096));
        assert!(parts[1].starts_with("客户流失周报（续 2/"));
        let lines: usize = parts.iter().map(|p| p.lines().count()).sum();
        assert_eq!(lines, 400 + parts.len() - 1, "no line lost");
    }

    #[test]
    fn each_part_is_as_full_as_the_limit_allows() {
        let text: String = (0..400).map(|i| format!("- 员工{i}：3 位\n")).collect();
        let parts = split_lines(&text, 4096, "客户流失周报");
        let lines: Vec<&str> = text.lines().collect();
        let mut next = 0;
        for (i, part) in parts.iter().enumerate() {
            let body = part.lines().skip(usize::from(i > 0)).count();
            next += body;
            if let Some(line) = lines.get(next) {
                assert!(
                    part.len() + 1 + line.len() > 4096,
                    "part {} had room for the next line: {} bytes",
                    i + 1,
                    part.len()
                );
            }
        }
        assert_eq!(next, 400);
    }

    #[test]
    fn a_line_longer_than_a_part_is_shortened_not_dropped() {
        let text = format!("头\n{}\n尾", "长".repeat(3000));
        let parts = split_lines(&text, 4096, "客户流失周报");
        assert!(
            parts.iter().all(|p| p.len() <= 4096),
            "{:?}",
            parts.iter().map(String::len).collect::<Vec<_>>()
        );
        let all = parts.join("\n");
        assert!(all.contains("头") && all.contains("…") && all.contains("尾"));
    }
}
