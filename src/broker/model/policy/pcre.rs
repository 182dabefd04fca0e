//! RabbitMQ's regular expressions (PCRE, through Erlang's `re`) read with the `regex`
//! crate: policy patterns and topic permissions are written for PCRE, and refused with
//! PCRE's error texts.
//!
//! Two differences matter in practice. PCRE reads a `{` that does not start a `{n}`,
//! `{n,}` or `{n,m}` quantifier as a literal (topic permissions are written as
//! `^{username}\.`), where the regex crate refuses it: such braces are escaped before
//! compiling. And PCRE's error texts (`{"missing )",1}` in RabbitMQ's answers) are
//! given for the common mistakes. What the regex crate cannot do at all (look-around,
//! backreferences) is refused with its own text.

use regex::Regex;
use regex_syntax::ast::ErrorKind;

/// A pattern that does not compile: PCRE's message and the offset it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    pub(crate) message: String,
    pub(crate) offset: usize,
}

/// `pattern` as the regex crate must be given it to mean what PCRE reads, with the
/// original offset of every byte of the result.
fn translate(pattern: &str) -> (String, Vec<usize>) {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len());
    let mut at = Vec::with_capacity(pattern.len());
    // A copied piece maps byte for byte; an added escape maps to the byte it escapes.
    let push = |out: &mut String, at: &mut Vec<usize>, s: &str, from: usize| {
        out.push_str(s);
        if s.starts_with('\\') && s.len() == 2 && !pattern[from..].starts_with('\\') {
            at.extend([from, from]);
        } else {
            at.extend(from..from + s.len());
        }
    };
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        let c = pattern[i..].chars().next().unwrap_or('\0');
        let len = c.len_utf8();
        match c {
            '\\' => {
                let next = pattern[i + 1..].chars().next().map_or(0, char::len_utf8);
                push(&mut out, &mut at, &pattern[i..i + 1 + next], i);
                i += 1 + next;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                push(&mut out, &mut at, "[", i);
                i += 1;
                // A `]` first in a class (after an optional `^`) is a literal.
                if bytes.get(i) == Some(&b'^') {
                    push(&mut out, &mut at, "^", i);
                    i += 1;
                }
                if bytes.get(i) == Some(&b']') {
                    push(&mut out, &mut at, "\\]", i);
                    i += 1;
                }
                continue;
            }
            ']' if in_class => in_class = false,
            '{' if !in_class => {
                let q = quantifier_len(&bytes[i..]);
                if q > 0 {
                    push(&mut out, &mut at, &pattern[i..i + q], i);
                    i += q;
                } else {
                    push(&mut out, &mut at, "\\{", i);
                    i += 1;
                }
                continue;
            }
            '}' if !in_class => {
                push(&mut out, &mut at, "\\}", i);
                i += 1;
                continue;
            }
            _ => {}
        }
        push(&mut out, &mut at, &pattern[i..i + len], i);
        i += len;
    }
    (out, at)
}

/// The length of a `{n}`, `{n,}` or `{n,m}` quantifier at the start of `b`, else 0.
fn quantifier_len(b: &[u8]) -> usize {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let first = digits(1);
    if first == 0 {
        return 0;
    }
    let mut i = 1 + first;
    if b.get(i) == Some(&b',') {
        i += 1;
        i += digits(i);
    }
    if b.get(i) == Some(&b'}') { i + 1 } else { 0 }
}

/// Compile a RabbitMQ (PCRE) pattern, unanchored as `re:run` matches.
pub(crate) fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let (translated, at) = translate(pattern);
    let original = |offset: usize| at.get(offset).copied().unwrap_or(pattern.len());
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&translated) {
        let span = e.span();
        let (message, offset) = match e.kind() {
            ErrorKind::GroupUnclosed => ("missing )".to_string(), pattern.len()),
            ErrorKind::GroupUnopened => (
                "unmatched parentheses".to_string(),
                original(span.start.offset),
            ),
            ErrorKind::ClassUnclosed => (
                "missing terminating ] for character class".to_string(),
                pattern.len(),
            ),
            ErrorKind::RepetitionMissing => {
                ("nothing to repeat".to_string(), original(span.start.offset))
            }
            ErrorKind::RepetitionCountInvalid => (
                "numbers out of order in {} quantifier".to_string(),
                original(span.end.offset.saturating_sub(1)),
            ),
            ErrorKind::ClassRangeInvalid => (
                "range out of order in character class".to_string(),
                original(span.end.offset.saturating_sub(1)),
            ),
            ErrorKind::EscapeUnexpectedEof => ("\\ at end of pattern".to_string(), pattern.len()),
            other => (other.to_string(), original(span.start.offset)),
        };
        return Err(PatternError { message, offset });
    }
    Regex::new(&translated).map_err(|e| PatternError {
        message: match e {
            regex::Error::CompiledTooBig(_) => "regular expression is too large".to_string(),
            other => other
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string(),
        },
        offset: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The errors RabbitMQ 3.10.8 (Erlang/OTP 25's PCRE) gives for these patterns.
    #[test]
    fn refuses_with_pcres_texts() {
        for (pattern, message, offset) in [
            ("(", "missing )", 1),
            ("a(b", "missing )", 3),
            (")", "unmatched parentheses", 0),
            ("a)", "unmatched parentheses", 1),
            ("[", "missing terminating ] for character class", 1),
            ("[a", "missing terminating ] for character class", 2),
            ("*", "nothing to repeat", 0),
            ("+a", "nothing to repeat", 0),
            ("a{2,1}", "numbers out of order in {} quantifier", 5),
            ("\\", "\\ at end of pattern", 1),
            ("[z-a]", "range out of order in character class", 3),
        ] {
            let e = compile(pattern).unwrap_err();
            assert_eq!(
                (e.message.as_str(), e.offset),
                (message, offset),
                "{pattern}"
            );
        }
    }

    #[test]
    fn reads_braces_and_classes_as_pcre_does() {
        let re = compile("^{username}\\.").unwrap();
        assert!(re.is_match("{username}.x"));
        assert!(compile("a{").unwrap().is_match("a{"));
        assert!(compile("a{x}").unwrap().is_match("a{x}"));
        assert!(compile("a{,2}").unwrap().is_match("a{,2}"));
        assert!(compile("}").unwrap().is_match("}"));
        assert!(compile("[{]").unwrap().is_match("{"));
        assert!(compile("[]a]").unwrap().is_match("]"));
        assert!(compile("[^]a]").unwrap().is_match("b"));
        let q = compile("^a{2,3}$").unwrap();
        assert!(q.is_match("aa") && q.is_match("aaa") && !q.is_match("a"));
        assert!(compile("^a{2,}$").unwrap().is_match("aaaa"));
        assert!(compile("^amq\\.").unwrap().is_match("amq.gen"));
        // Unanchored, as re:run.
        assert!(compile("q").unwrap().is_match("my-queue"));
        // What the regex crate cannot do is refused, not misread.
        assert!(compile("(?=a)").is_err());
    }
}
