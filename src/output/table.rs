//! Rows of JSON values rendered as table, TSV, JSON, JSON lines or raw.

use super::Format;
use comfy_table::{Attribute, Cell, Table, presets};
use serde_json::{Map, Value};

/// A cell as text: strings bare, everything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// TSV cannot hold tabs or newlines inside a field; escape them like rabbitmqctl does.
fn tsv_cell(v: &Value) -> String {
    cell(v)
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

pub(super) fn render(format: Format, columns: &[String], rows: &[Vec<Value>]) -> String {
    let objects = || {
        rows.iter().map(|r| {
            columns
                .iter()
                .cloned()
                .zip(r.iter().cloned())
                .collect::<Map<String, Value>>()
        })
    };
    let mut out = String::new();
    match format {
        Format::Table => {
            let mut table = Table::new();
            table.load_style(presets::UTF8_FULL_CONDENSED);
            // Bold through comfy-table itself, so the escape codes do not count towards
            // the column widths; and only when colour is on (terminal, no NO_COLOR).
            let bold = colored::control::SHOULD_COLORIZE.should_colorize();
            table.set_header(columns.iter().map(|c| {
                let cell = Cell::new(c);
                if bold {
                    cell.add_attribute(Attribute::Bold)
                } else {
                    cell
                }
            }));
            for r in rows {
                table.add_row(r.iter().map(cell));
            }
            out.push_str(&table.to_string());
            out.push('\n');
        }
        Format::Tsv | Format::Raw => {
            if format == Format::Tsv {
                out.push_str(&columns.join("\t"));
                out.push('\n');
            }
            for r in rows {
                out.push_str(&r.iter().map(tsv_cell).collect::<Vec<_>>().join("\t"));
                out.push('\n');
            }
        }
        Format::Json => {
            let all: Vec<Value> = objects().map(Value::Object).collect();
            out.push_str(&serde_json::to_string_pretty(&all).unwrap_or_default());
            out.push('\n');
        }
        Format::Jsonl => {
            for o in objects() {
                out.push_str(&Value::Object(o).to_string());
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let cols = vec!["name".to_string(), "messages".to_string()];
        let rows = vec![vec![json!("a\tb"), json!(3)]];
        assert_eq!(
            render(Format::Tsv, &cols, &rows),
            "name\tmessages\na\\tb\t3\n"
        );
        assert_eq!(
            render(Format::Jsonl, &cols, &rows),
            "{\"messages\":3,\"name\":\"a\\tb\"}\n"
        );
        assert!(render(Format::Table, &cols, &rows).contains("messages"));
    }
}
