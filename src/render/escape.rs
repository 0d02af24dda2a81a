//! Escaping of customer-controlled text for each channel.
//!
//! WeCom markdown has no escape character, so markup characters are replaced by their
//! full-width look-alikes: a customer named `<@all>` shows as `＜@all＞` and pings nobody, and
//! `[x](http://evil)` shows as text, not as a link. Line breaks become spaces so that a
//! nickname cannot start a heading or a list item of its own.

/// Escapes text for WeCom markdown.
pub(crate) fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push('＜'),
            '>' => out.push('＞'),
            '[' => out.push('［'),
            ']' => out.push('］'),
            '(' => out.push('（'),
            ')' => out.push('）'),
            '*' => out.push('＊'),
            '_' => out.push('＿'),
            '`' => out.push('｀'),
            '#' => out.push('＃'),
            '~' => out.push('～'),
            '|' => out.push('｜'),
            '\\' => out.push('＼'),
            '"' => out.push('＂'),
            // Entities such as `&lt;@all&gt;` must not turn back into markup.
            '&' => out.push('＆'),
            // A bare scheme (`http://`) may be auto-linked: break it.
            ':' if chars.peek() == Some(&'/') => out.push('：'),
            '\r' | '\n' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_links_and_headings_are_neutralised() {
        let escaped = markdown(
            "<@all>[x](http://evil)\n# hi **b** <font color=\"red\"> &lt;@all&gt;\u{2028}# h",
        );
        for needle in [
            "<@", "](", "http://", "\n#", "**", "<font", "&lt;", "\u{2028}",
        ] {
            assert!(!escaped.contains(needle), "{needle} in {escaped}");
        }
        assert_eq!(markdown("子川 13:37"), "子川 13:37");
    }
}
