//! Text that did not come from the user, made fit for a terminal, a dialog or a log line: one function for the audit log, the routes, the askpass prompt and the CLI.

use std::fmt::Write as _;

/// The most characters [`printable`] keeps; longer text ends in `…`.
pub const MAX_CHARS: usize = 300;

/// `s` for one line of display: Unicode format characters (category Cf: bidi overrides and
/// isolates, zero-width joiners, the BOM, tag characters) are dropped, because they reorder
/// or hide what is shown; control characters, line and paragraph separators and `\` are
/// escaped (`\x1b`, `\u{2028}`, `\\`), so what is shown cannot pose as something else; the
/// result is cut at 300 characters (`MAX_CHARS`; [`printable_max`] takes another limit).
pub fn printable(s: &str) -> String {
    printable_max(s, MAX_CHARS)
}

/// [`printable`], cut at `max` characters of input.
pub fn printable_max(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 2));
    for (i, c) in s.chars().filter(|c| !is_format(*c)).enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A JSON text with every format character inside its strings written as a `\uXXXX`
/// escape: the same value for a parser, nothing that reorders a terminal line. JSON's
/// syntax outside strings is ASCII, so every such character is inside a string.
pub fn json_without_format_chars(json: String) -> String {
    // Every format character is outside ASCII, and most records are ASCII only: a
    // connection's first release writes one, so this skips a copy char by char.
    if json.is_ascii() {
        return json;
    }
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_format(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` is in Unicode's general category Cf (format), as of Unicode 15.1.
pub fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_dropped_and_controls_escaped() {
        let s = "/tmp/\u{202E}gpj.exe\u{2066}x\u{200B}y\u{FEFF}\n\x1b[31m\\z\u{2028}";
        let p = printable(s);
        assert_eq!(p, "/tmp/gpj.exexy\\x0a\\x1b[31m\\\\z\\u{2028}");
        assert!(!p.chars().any(|c| is_format(c) || c.is_control()));
        assert_eq!(printable("php8.2 — ünïcode"), "php8.2 — ünïcode");
    }

    #[test]
    fn long_text_is_cut_with_a_mark() {
        let p = printable(&"a".repeat(1000));
        assert_eq!(p.chars().count(), MAX_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(printable_max("abc", 3), "abc");
    }

    #[test]
    fn json_keeps_its_value() {
        let v = serde_json::json!({"exe": "/x/\u{202E}y\u{E0041}"});
        let text = json_without_format_chars(v.to_string());
        assert!(text.is_ascii(), "{text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
        let plain = serde_json::json!({"exe": "/usr/bin/php", "origin": "été.example"});
        let text = json_without_format_chars(plain.to_string());
        assert_eq!(text, plain.to_string(), "nothing to escape: unchanged");
    }
}
