//! Value formats and their validation on publish (pure).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a value is meant to be read. Validated on publish so that a bad file never reaches the
/// applications that load it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Any UTF-8 text.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// A TOML document.
    Toml,
    /// A Java `.properties` file.
    Properties,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Text, Format::Json, Format::Toml, Format::Properties];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Properties => "properties",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown format {s:?} (expected text, json, toml or properties)"))
    }
}

/// Checks that `value` is a valid document of `format`; the error is a one-line reason.
pub fn validate(format: Format, value: &str) -> Result<(), String> {
    match format {
        Format::Text => Ok(()),
        Format::Json => serde_json::from_str::<serde_json::Value>(value).map(|_| ()).map_err(|e| e.to_string()),
        Format::Toml => check_toml(value),
        Format::Properties => check_properties(value),
    }
}

/// TOML check: the document parses as a table.
fn check_toml(value: &str) -> Result<(), String> {
    toml::from_str::<toml::Table>(value).map(|_| ()).map_err(|e| match e.span() {
        Some(span) => {
            let line = value.get(..span.start).unwrap_or(value).matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_string(),
    })
}

/// Java `.properties` check: every logical line (backslash-continued) that is not blank or a
/// comment must have a non-empty key, and `\uXXXX` escapes must be complete hex (what
/// `java.util.Properties.load` rejects).
fn check_properties(value: &str) -> Result<(), String> {
    let mut logical = String::new();
    let mut start_line = 0;
    for (i, line) in value.lines().enumerate() {
        let trimmed = line.trim_start_matches([' ', '\t', '\x0c']);
        if logical.is_empty() {
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            start_line = i + 1;
        }
        let trailing = trimmed.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&trimmed[..trimmed.len() - 1]);
            continue;
        }
        logical.push_str(trimmed);
        check_property_line(&logical).map_err(|e| format!("line {start_line}: {e}"))?;
        logical.clear();
    }
    if !logical.is_empty() {
        check_property_line(&logical).map_err(|e| format!("line {start_line}: {e}"))?;
    }
    Ok(())
}

fn check_property_line(line: &str) -> Result<(), String> {
    let mut chars = line.chars().peekable();
    let mut key_len = 0;
    let mut in_key = true;
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(format!("malformed \\uXXXX escape \"\\u{hex}\""));
                    }
                }
                Some(_) => {}
                None => {}
            }
            if in_key {
                key_len += 1;
            }
            continue;
        }
        if in_key && matches!(c, '=' | ':' | ' ' | '\t' | '\x0c') {
            in_key = false;
            continue;
        }
        if in_key {
            key_len += 1;
        }
    }
    if key_len == 0 {
        return Err("a value without a key".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_format() {
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert_eq!("properties".parse::<Format>(), Ok(Format::Properties));
        assert!("yaml".parse::<Format>().is_err());
        assert_eq!(serde_json::to_string(&Format::Toml).unwrap(), "\"toml\"");
    }

    #[test]
    fn validate_table() {
        // (format, value, valid)
        let table: &[(Format, &str, bool)] = &[
            (Format::Text, "", true),
            (Format::Text, "anything { at all", true),
            (Format::Json, r#"{"a": [1, 2, {"b": null}]}"#, true),
            (Format::Json, "42", true),
            (Format::Json, r#"{"a": 1,}"#, false),
            (Format::Json, "", false),
            (Format::Json, "{} {}", false),
            (Format::Toml, "", true),
            (Format::Toml, "# only a comment\n", true),
            (Format::Toml, "a = 1\nb = \"two\"\nc = 'three'\nd = true\ne = 1.5e3\nf = 0x1F\ng = -inf", true),
            (Format::Toml, "[server]\nhost = \"h\" # comment\nport = 8080\n[server.tls]\nenabled = false", true),
            (Format::Toml, "a.b.c = 1\n\"quoted key\" = 2\n'lit' = 3", true),
            (Format::Toml, "list = [1, 2,\n  3, # three\n]\nnested = [[1], [\"a\"]]", true),
            (Format::Toml, "t = { x = 1, y = \"2\", z = [1] }", true),
            (Format::Toml, "s = \"\"\"\nmulti\nline\"\"\"\nl = '''\nraw \\ text'''", true),
            (Format::Toml, "[[item]]\nname = \"a\"\n[[item]]\nname = \"b\"", true),
            (
                Format::Toml,
                "d1 = 1979-05-27\nd2 = 1979-05-27T07:32:00Z\nd3 = 1979-05-27 07:32:00-07:00\nt = 07:32:00.5",
                true,
            ),
            (Format::Toml, "n = 1_000_000\nm = +17\nz = 0", true),
            (Format::Toml, "a = hello", false),
            (Format::Toml, "a = \"unterminated", false),
            (Format::Toml, "a = 1\na = 2", false),
            (Format::Toml, "[t]\n[t]", false),
            (Format::Toml, "a =", false),
            (Format::Toml, "just words", false),
            (Format::Toml, "[unclosed", false),
            (Format::Toml, "a = [1, 2", false),
            (Format::Toml, "a = 1 2", false),
            (Format::Toml, "a = 01", false),
            (Format::Toml, "a = 1__0", false),
            (Format::Toml, "t = { x = 1, x = 2 }", false),
            (Format::Toml, "s = \"\"\"never closed", false),
            (Format::Toml, "s = \"bad \\q escape\"", false),
            (Format::Toml, "s = \"ok \\t \\u00e9 \\\"\"", true),
            (Format::Properties, "", true),
            (Format::Properties, "# comment\n! also\na=1\nb : 2\nc 3\nd\n", true),
            (Format::Properties, "long = first \\\n  second\nname = \\u00e9t\\u00E9", true),
            (Format::Properties, "bad = \\u12G4", false),
            (Format::Properties, "bad = \\u12", false),
            (Format::Properties, "=value", false),
            (Format::Properties, "ok=1\n : orphan", false),
        ];
        for (format, value, valid) in table {
            let result = validate(*format, value);
            assert_eq!(result.is_ok(), *valid, "{format} {value:?}: {result:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let err = validate(Format::Toml, "a = 1\nb = nope").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = validate(Format::Properties, "a=1\n\nb=\\uZZZZ").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }
}
