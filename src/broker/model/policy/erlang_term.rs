//! Erlang terms as RabbitMQ's texts print them with `~p` (io_lib_pretty, 80 columns).
//!
//! Some of RabbitMQ's error texts are Erlang formatting of what the client sent: the
//! policy validation of the management API says `[{<<"ha-mode">>,<<"all">>}] are not
//! recognised policy settings` and `<<"x">> is not a valid message TTL`. Clients and
//! scripts match on those texts, so rmq prints the same terms the same way: JSON decoded
//! as RabbitMQ decodes it (strings are binaries, `null`/`true`/`false` atoms, objects
//! maps), then written like `io_lib:format("~p", [Term])` at column 0, wrapping a term
//! that does not fit in 80 columns one element a line as io_lib_pretty does.

use serde_json::Value;

/// An Erlang term, as far as RabbitMQ's texts need them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    /// A binary (a JSON string).
    Bin(String),
    /// A character list (an Erlang string, such as a PCRE error text).
    Str(String),
    Int(i128),
    Float(f64),
    Atom(String),
    List(Vec<Term>),
    Tuple(Vec<Term>),
    /// Key order as Erlang's term order for binary keys: bytewise.
    Map(Vec<(Term, Term)>),
}

/// The line length io_lib_pretty wraps at.
const LINE: usize = 80;

impl Term {
    /// A JSON value as RabbitMQ's JSON decoder gives it.
    pub(crate) fn from_json(v: &Value) -> Term {
        match v {
            Value::Null => Term::Atom("null".into()),
            Value::Bool(b) => Term::Atom(b.to_string()),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Term::Int(i128::from(i)),
                (_, Some(u), _) => Term::Int(i128::from(u)),
                (_, _, f) => Term::Float(f.unwrap_or(0.0)),
            },
            Value::String(s) => Term::Bin(s.clone()),
            Value::Array(items) => Term::List(items.iter().map(Term::from_json).collect()),
            Value::Object(m) => {
                let mut entries: Vec<_> = m
                    .iter()
                    .map(|(k, v)| (Term::Bin(k.clone()), Term::from_json(v)))
                    .collect();
                entries.sort_by(|a, b| match (&a.0, &b.0) {
                    (Term::Bin(x), Term::Bin(y)) => x.as_bytes().cmp(y.as_bytes()),
                    _ => std::cmp::Ordering::Equal,
                });
                Term::Map(entries)
            }
        }
    }

    /// `io_lib:format("~p", [Term])` at column 0.
    pub(crate) fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(0, 1, &mut out);
        out
    }

    /// `~w`-like: the term on one line (what `~p` prints when it fits).
    pub(crate) fn flat(&self) -> String {
        let mut out = String::new();
        self.write_flat(&mut out);
        out
    }

    fn write_flat(&self, out: &mut String) {
        match self {
            Term::Bin(s) => write_binary(s, out),
            Term::Str(s) => write_string(s.bytes(), out),
            Term::Int(i) => out.push_str(&i.to_string()),
            Term::Float(f) => out.push_str(&float(*f)),
            Term::Atom(a) => out.push_str(a),
            Term::List(items) => match printable_chars(items) {
                Some(bytes) => write_string(bytes.into_iter(), out),
                None => write_seq("[", "]", items, out),
            },
            Term::Tuple(items) => write_seq("{", "}", items, out),
            Term::Map(entries) => {
                out.push_str("#{");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    k.write_flat(out);
                    out.push_str(" => ");
                    v.write_flat(out);
                }
                out.push('}');
            }
        }
    }

    /// Write at column `col` with `trail` characters that must follow on the same line
    /// (closing brackets, a separating comma, and one for the end of the top term): the
    /// term stays on one line when `col + width + trail` is under 80, else a list or
    /// tuple goes one element a line, indented under its first element.
    fn write(&self, col: usize, trail: usize, out: &mut String) {
        let flat = self.flat();
        // Erlang measures latin-1 characters: one per byte of the UTF-8 text.
        if col + flat.len() + trail < LINE {
            out.push_str(&flat);
            return;
        }
        let (open, close, items) = match self {
            Term::List(items) if printable_chars(items).is_none() && !items.is_empty() => {
                ("[", "]", items)
            }
            Term::Tuple(items) if !items.is_empty() => ("{", "}", items),
            _ => {
                out.push_str(&flat);
                return;
            }
        };
        out.push_str(open);
        let inner = col + open.len();
        for (i, item) in items.iter().enumerate() {
            let last = i + 1 == items.len();
            item.write(inner, if last { trail + close.len() } else { 1 }, out);
            if !last {
                out.push_str(",\n");
                out.push_str(&" ".repeat(inner));
            }
        }
        out.push_str(close);
    }
}

fn write_seq(open: &str, close: &str, items: &[Term], out: &mut String) {
    out.push_str(open);
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        t.write_flat(out);
    }
    out.push_str(close);
}

/// A list of integers that Erlang's `~p` prints as a string (printable latin-1).
fn printable_chars(items: &[Term]) -> Option<Vec<u8>> {
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|t| match t {
            Term::Int(i) => u8::try_from(*i).ok().filter(|b| printable(*b)),
            _ => None,
        })
        .collect()
}

/// io_lib:printable_latin1_list's characters.
fn printable(b: u8) -> bool {
    matches!(b, 32..=126 | 160..=255 | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b)
}

/// `<<"text">>` when every byte is printable latin-1 (UTF-8 text whose bytes all are
/// prints as itself, as RabbitMQ's answer then carries those bytes), else the bytes.
fn write_binary(s: &str, out: &mut String) {
    if s.is_empty() {
        out.push_str("<<>>");
    } else if s.bytes().all(printable) {
        out.push_str("<<");
        write_string(s.bytes(), out);
        out.push_str(">>");
    } else {
        out.push_str("<<");
        let bytes: Vec<String> = s.bytes().map(|b| b.to_string()).collect();
        out.push_str(&bytes.join(","));
        out.push_str(">>");
    }
}

/// A quoted Erlang string with io_lib's escapes; bytes of 160 and above are kept (they
/// are whole UTF-8 characters here, as every byte of such a character is).
fn write_string(bytes: impl Iterator<Item = u8>, out: &mut String) {
    let mut raw = Vec::new();
    raw.push(b'"');
    for b in bytes {
        match b {
            b'"' => raw.extend_from_slice(b"\\\""),
            b'\\' => raw.extend_from_slice(b"\\\\"),
            b'\n' => raw.extend_from_slice(b"\\n"),
            b'\r' => raw.extend_from_slice(b"\\r"),
            b'\t' => raw.extend_from_slice(b"\\t"),
            0x0b => raw.extend_from_slice(b"\\v"),
            0x08 => raw.extend_from_slice(b"\\b"),
            0x0c => raw.extend_from_slice(b"\\f"),
            0x1b => raw.extend_from_slice(b"\\e"),
            other => raw.push(other),
        }
    }
    raw.push(b'"');
    out.push_str(&String::from_utf8_lossy(&raw));
}

/// Erlang's shortest float text (io_lib_format:fwrite_g): the shortest digits that
/// read back, placed as a decimal (`100.0`, `0.0015`) unless the exponent form costs
/// fewer characters (`1.0e3`, `1.5e-4`), and always with an exponent from 2^53 up.
fn float(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // The decimal point goes after `place` digits.
    let place = exp.parse::<i64>().unwrap_or(0) + 1;
    let len = digits.len() as i64;
    let exponent = || {
        let rest = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{rest}e{}", &digits[..1], place - 1)
    };
    if f.abs() >= 9_007_199_254_740_992.0 {
        return exponent();
    }
    if place > 0 && place < len {
        let (a, b) = digits.split_at(place as usize);
        return format!("{sign}{a}.{b}");
    }
    if place == 0 {
        return format!("{sign}0.{digits}");
    }
    let cost = (place - 1).to_string().len() as i64 + 1 + if len == 1 { 2 } else { 1 };
    if place < 0 {
        if 2 - place <= cost {
            return format!("{sign}0.{}{digits}", "0".repeat((-place) as usize));
        }
    } else if place - len + 2 <= cost {
        return format!("{sign}{digits}{}.0", "0".repeat((place - len) as usize));
    }
    exponent()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Term {
        let Value::Object(m) = v else { unreachable!() };
        let mut pairs: Vec<_> = m.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Term::List(
            pairs
                .iter()
                .map(|(k, v)| Term::Tuple(vec![Term::Bin(k.clone()), Term::from_json(v)]))
                .collect(),
        )
    }

    // Expected texts were printed by Erlang/OTP 25 (RabbitMQ 3.10.8's runtime).
    #[test]
    fn prints_like_erlang() {
        assert_eq!(
            settings(json!({"foo": "x", "bar": 1})).pretty(),
            r#"[{<<"bar">>,1},{<<"foo">>,<<"x">>}]"#
        );
        for (f, text) in [
            (1.0e15, "1.0e15"),
            (100.0, "100.0"),
            (123456789.0, "123456789.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1.0e-5"),
            (-2.5, "-2.5"),
            (12345678901234567.0, "1.2345678901234568e16"),
            (5.0, "5.0"),
            (1000.0, "1.0e3"),
            (120.0, "120.0"),
            (1200.0, "1.2e3"),
            (1234567890123456.0, "1234567890123456.0"),
            (9007199254740992.0, "9.007199254740992e15"),
            (0.001, "0.001"),
            (0.0015, "0.0015"),
            (0.00015, "1.5e-4"),
            (0.5, "0.5"),
            (1.23e7, "1.23e7"),
        ] {
            assert_eq!(float(f), text, "{f}");
        }
        assert_eq!(
            Term::from_json(&json!("a\"b\\c\nd")).pretty(),
            r#"<<"a\"b\\c\nd">>"#
        );
        assert_eq!(Term::from_json(&json!("é")).pretty(), "<<\"é\">>");
        assert_eq!(
            Term::from_json(&json!("é€")).pretty(),
            "<<195,169,226,130,172>>"
        );
        assert_eq!(
            Term::from_json(&json!({"b": 1, "a": [1, 2]})).pretty(),
            r#"#{<<"a">> => [1,2],<<"b">> => 1}"#
        );
        assert_eq!(Term::from_json(&json!([104, 105])).pretty(), "\"hi\"");
        assert_eq!(
            Term::Tuple(vec![Term::Str("missing )".into()), Term::Int(1)]).pretty(),
            r#"{"missing )",1}"#
        );
    }

    #[test]
    fn wraps_at_80_columns_like_io_lib_pretty() {
        let x = |n: usize| "x".repeat(n);
        // [{<<"a">>,<<"x..">>},{<<"b">>,1}] is n + 30 wide: one line up to 78.
        let two = |n| settings(json!({"a": x(n), "b": 1})).pretty();
        assert!(!two(48).contains('\n'));
        assert_eq!(
            two(49),
            format!("[{{<<\"a\">>,<<\"{}\">>}},\n {{<<\"b\">>,1}}]", x(49))
        );
        // A middle element breaks past 77 columns, the last one past 76.
        let lines = |v: Value| settings(v).pretty().lines().count();
        assert_eq!(lines(json!({"a": 1, "b": x(61), "c": 1})), 3);
        assert_eq!(lines(json!({"a": 1, "b": x(62), "c": 1})), 4);
        assert_eq!(lines(json!({"a": 1, "b": x(60)})), 2);
        assert_eq!(lines(json!({"a": 1, "b": x(61)})), 3);
        assert_eq!(
            settings(json!({"a": 1, "b": x(80)})).pretty(),
            format!("[{{<<\"a\">>,1}},\n {{<<\"b\">>,\n  <<\"{}\">>}}]", x(80))
        );
    }
}
