//! A reader for Windows setup information files (INF), as far as the structure test of
//! `rnic.inf` needs: sections, `key = value` lines, string tokens.
//!
//! Rules implemented (from the INF file format): section names are case-insensitive; a `;`
//! outside double quotes starts a comment; a line is either `[section]`, `key = value` or a
//! bare value list; `%token%` is replaced from `[Strings]` at install time (`%%` is a literal
//! percent sign).

use std::collections::BTreeMap;

/// One line of a section: an optional key and the comma-separated values after `=` (or the
/// whole line when there is no `=`), trimmed, quotes kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfLine {
    /// The text before `=`, if the line has one.
    pub key: Option<String>,
    /// The comma-separated values.
    pub values: Vec<String>,
    /// 1-based line number in the file, for messages.
    pub line: usize,
}

/// Why an INF cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfError {
    /// A line outside any section, or a malformed section header.
    #[error("line {line}: {why}; every line must follow a [section] header")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// A parsed INF: sections by lower-cased name, lines in file order.
#[derive(Debug, Clone, Default)]
pub struct Inf {
    sections: BTreeMap<String, Vec<InfLine>>,
}

/// `text` without its comment (a `;` outside double quotes).
fn strip_comment(text: &str) -> &str {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &text[..i],
            _ => {}
        }
    }
    text
}

impl Inf {
    /// Parses INF text.
    pub fn parse(text: &str) -> Result<Self, InfError> {
        let mut inf = Inf::default();
        let mut current: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let body = strip_comment(raw).trim();
            if body.is_empty() {
                continue;
            }
            if let Some(rest) = body.strip_prefix('[') {
                let name = rest.strip_suffix(']').ok_or(InfError::Syntax {
                    line,
                    why: "section header without ']'",
                })?;
                let name = name.trim().to_ascii_lowercase();
                inf.sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            let section = current.as_ref().ok_or(InfError::Syntax {
                line,
                why: "text before the first section",
            })?;
            let (key, rest) = match body.split_once('=') {
                Some((k, v)) => (Some(k.trim().to_string()), v),
                None => (None, body),
            };
            let values = rest.split(',').map(|v| v.trim().to_string()).collect();
            inf.sections
                .get_mut(section)
                .expect("section inserted at its header")
                .push(InfLine { key, values, line });
        }
        Ok(inf)
    }

    /// The lines of section `name` (case-insensitive), if the section exists.
    pub fn section(&self, name: &str) -> Option<&[InfLine]> {
        self.sections
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// The values of the first line of `section` whose key is `key` (both case-insensitive).
    pub fn value(&self, section: &str, key: &str) -> Option<&[String]> {
        self.section(section)?
            .iter()
            .find(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .map(|l| l.values.as_slice())
    }

    /// Names of all sections (lower-cased).
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Every `%token%` used anywhere (keys and values), without the percent signs; `%%` and
    /// the numeric directory ids (`%13%`) are not tokens.
    pub fn string_tokens(&self) -> Vec<String> {
        let mut tokens = Vec::new();
        for line in self.sections.values().flatten() {
            for text in line.key.iter().chain(&line.values) {
                let mut parts = text.split('%');
                parts.next();
                let inner: Vec<&str> = parts.collect();
                // Between the first and last '%' the pieces alternate token / text.
                for (i, piece) in inner.iter().enumerate() {
                    let is_token_slot = i % 2 == 0 && i + 1 < inner.len();
                    if is_token_slot
                        && !piece.is_empty()
                        && !piece.chars().all(|c| c.is_ascii_digit())
                    {
                        tokens.push(piece.to_string());
                    }
                }
            }
        }
        tokens.sort();
        tokens.dedup();
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_values_and_comments() {
        let inf = Inf::parse(
            "; header comment\n[Version]\nSignature = \"$WINDOWS NT$\" ; trailing\n\n[models.NTamd64]\n%Desc% = Install, PCI\\VEN_1&DEV_2\nbare, list\n",
        )
        .unwrap();
        assert_eq!(
            inf.value("version", "SIGNATURE").unwrap(),
            ["\"$WINDOWS NT$\""]
        );
        assert_eq!(
            inf.value("Models.ntamd64", "%desc%").unwrap(),
            ["Install", "PCI\\VEN_1&DEV_2"]
        );
        let lines = inf.section("MODELS.NTAMD64").unwrap();
        assert_eq!(lines[1].key, None);
        assert_eq!(lines[1].values, ["bare", "list"]);
        assert_eq!(lines[1].line, 7);
        assert!(inf.section("strings").is_none());
    }

    #[test]
    fn semicolon_inside_quotes_is_text() {
        let inf = Inf::parse("[s]\nk = \"a;b\" ; c\n").unwrap();
        assert_eq!(inf.value("s", "k").unwrap(), ["\"a;b\""]);
    }

    #[test]
    fn tokens_skip_dirids_and_escaped_percent() {
        let inf = Inf::parse(
            "[s]\n%A% = x\nk = %13%\\rnic.sys\nm = \"%%SystemRoot%%\\x\"\nn = %B%, %C%\n",
        )
        .unwrap();
        assert_eq!(inf.string_tokens(), ["A", "B", "C"]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(
            Inf::parse("k = v\n").unwrap_err(),
            InfError::Syntax {
                line: 1,
                why: "text before the first section"
            }
        );
        assert!(matches!(
            Inf::parse("[a\n").unwrap_err(),
            InfError::Syntax { line: 1, .. }
        ));
    }
}
