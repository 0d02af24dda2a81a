//! Escaping of customer-controlled text for each channel.
//!
//! WeCom markdown has no escape character, so markup characters are replaced by their
//! full-width look-alikes: a customer named `<@all>` shows as `＜@all＞` and pings nobody, and
//! `[x](http://evil)` shows as text, not as a link. Line breaks become spaces so that a
//! nickname cannot start a heading, a list item or a forged entry of its own.
//!
//! Both escapes first drop characters that show as nothing (zero-width spaces, bidi overrides
//! and isolates), so that `http:\u{200b}//` or a right-to-left override cannot hide a link or
//! turn text around, then break what a client would turn into a link: `://`, `www.` and
//! `mailto:` get a full-width colon or dot.

/// Escapes text for WeCom markdown.
pub(crate) fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in visible(text) {
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
            c => out.push(c),
        }
    }
    break_links(out)
}

/// Escapes text for plain-text messages (WeCom `text`, the text part of email): one line,
/// no mention syntax, no links. Other characters stay as they are.
pub(crate) fn text(text: &str) -> String {
    let cleaned: String = visible(text).collect();
    let mut out = String::with_capacity(cleaned.len());
    let mut rest = cleaned.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("<@") {
            out.push('＜');
        } else if starts_with_ignoring_case(rest, "@all") {
            out.push('＠');
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    break_links(out)
}

/// Escapes text for HTML email, after the same clean-up as the other channels.
pub(crate) fn html(text: &str) -> String {
    let cleaned: String = visible(text).collect();
    handlebars::html_escape(&break_links(cleaned))
}

/// Whether `id` can only be a WeCom userid (letters, digits, `_ . @ -`, starting with a letter
/// or digit): safe in `<@id>` and in `mentioned_list`, and never `@all`.
pub(crate) fn is_userid(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
}

/// The characters of `text` a reader sees, on one line: invisible and bidi characters
/// dropped, line breaks and tabs as spaces, other control characters dropped.
fn visible(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter_map(|c| match c {
        '\r' | '\n' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}' => Some(' '),
        c if c.is_control() || is_invisible(c) || is_bidi_control(c) => None,
        c => Some(c),
    })
}

/// Whether `text` starts with the ASCII `prefix`, in any case (no allocation: this runs for
/// every character of every customer text in every render).
fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Breaks `://`, `www.` and `mailto:` (any case) so that no client turns them into links.
/// Takes the escaped text and hands it back as it is when there is nothing to break.
fn break_links(text: String) -> String {
    // All three need a `:` or a `.`; most names have neither.
    if !text.bytes().any(|b| b == b':' || b == b'.') {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("://") {
            out.push('：');
            rest = &rest[1..];
        } else if starts_with_ignoring_case(rest, "www.") {
            out.push_str(&rest[..3]);
            out.push('．');
            rest = &rest[4..];
        } else if starts_with_ignoring_case(rest, "mailto:") {
            out.push_str(&rest[..6]);
            out.push('：');
            rest = &rest[7..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Makes text safe to print on an operator's terminal: control characters (escape sequences
/// among them) and bidi overrides are shown as `\u{..}` instead of being obeyed.
pub(crate) fn terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || is_bidi_control(c);
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Like [`terminal`], for a whole message shown as it will be read (previews): line feeds and
/// tabs stay, so that the message keeps its own lines; every other control character
/// (carriage returns that would overwrite a line among them) is shown as an escape. Names and
/// reasons printed on one line go through [`terminal`], which escapes line feeds too.
pub(crate) fn terminal_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\n', '\t']) {
        return terminal(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, cell) in line.split('\t').enumerate() {
            if j > 0 {
                out.push('\t');
            }
            out.push_str(&terminal(cell));
        }
    }
    out.into()
}

/// Characters that reorder or hide text: bidi embeddings, overrides and isolates, and marks.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that show as nothing but can split a word a linkifier or a reader would see.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}' | '\u{034F}')
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

    #[test]
    fn hidden_links_and_bidi_overrides_are_neutralised() {
        for escape in [markdown, text] {
            let escaped = escape(
                "www.evil.com WWW.EVIL.COM mailto:a@b.c http:\u{200b}//x.y ht\u{2060}tp://z \u{202E}gnp.exe\u{2066}x\u{2069}",
            );
            for needle in [
                "www.", "WWW.", "mailto:", "://", "\u{202E}", "\u{2066}", "\u{200b}",
            ] {
                assert!(!escaped.contains(needle), "{needle} in {escaped}");
            }
            assert!(escaped.contains("http：//x.y"), "{escaped}");
        }
    }

    #[test]
    fn text_messages_get_one_line_and_no_mentions() {
        let escaped = text("好客户\n- 伪造条目 <@all> @all\r\n[x](y)");
        assert!(
            !escaped.contains('\n') && !escaped.contains('\r'),
            "{escaped}"
        );
        assert!(
            !escaped.contains("<@") && !escaped.contains("@all"),
            "{escaped}"
        );
        assert!(
            escaped.contains("[x](y)"),
            "plain text keeps its brackets: {escaped}"
        );
    }

    #[test]
    fn terminal_output_shows_escapes_instead_of_obeying_them() {
        let shown = terminal("客户\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202E}abc");
        assert!(
            !shown.chars().any(|c| c.is_control() || is_bidi_control(c)),
            "{shown}"
        );
        assert!(shown.contains("\\u{1b}"), "{shown}");
        assert_eq!(terminal("子川"), "子川");
        assert_eq!(
            terminal("a\nb"),
            "a\\u{a}b",
            "one-line fields cannot forge lines"
        );
    }

    #[test]
    fn previews_keep_their_lines_and_escape_the_rest() {
        assert_eq!(terminal_lines("第一行\n\t第二行"), "第一行\n\t第二行");
        assert_eq!(terminal_lines("a\r\nb\u{1b}[2J"), "a\\u{d}\nb\\u{1b}[2J");
        assert_eq!(terminal_lines("子川"), "子川");
    }
}
