//! `rmq tutorial [N]`: the six RabbitMQ tutorials as rmq one-liners, runnable against
//! `rmq serve` (or any RabbitMQ on localhost). The steps are argument vectors, not text,
//! so a test parses every one of them with the real `Cli` definition.

use crate::exit::{self, coded};
use crate::output::Output;
use clap::Args;

/// Show the RabbitMQ tutorials as rmq commands.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq tutorial                 # all six\n  rmq tutorial 5               # topics\n  rmq serve --in-memory &      # a broker for them (or any RabbitMQ on localhost:5672)"
)]
pub(crate) struct TutorialArgs {
    /// Tutorial number, 1–6 (default: all).
    #[arg(value_parser = clap::value_parser!(u8).range(1..=6), value_name = "N")]
    number: Option<u8>,
}

/// One command of a tutorial.
pub(crate) struct Step {
    /// Which terminal it runs in (consumers first, in their own terminals).
    pub(crate) terminal: u8,
    /// The arguments after `rmq`.
    pub(crate) args: &'static [&'static str],
    /// What it shows.
    pub(crate) note: &'static str,
}

/// One tutorial.
pub(crate) struct Tutorial {
    /// Title, as on rabbitmq.com.
    pub(crate) title: &'static str,
    /// What it teaches, in a line or two.
    pub(crate) intro: &'static str,
    /// The commands.
    pub(crate) steps: &'static [Step],
}

const fn step(terminal: u8, args: &'static [&'static str], note: &'static str) -> Step {
    Step {
        terminal,
        args,
        note,
    }
}

/// The six tutorials.
pub(crate) const TUTORIALS: &[Tutorial] = &[
    Tutorial {
        title: "\"Hello World!\"",
        intro: "A producer sends a message to the queue 'hello'; a consumer prints it.",
        steps: &[
            step(2, &["receive", "hello"], "prints messages until Ctrl-C"),
            step(
                1,
                &["send", "hello", "Hello World!"],
                "declares 'hello' if needed",
            ),
        ],
    },
    Tutorial {
        title: "Work queues",
        intro: "Tasks shared between workers: prefetch 1 (fair dispatch), acks after the work, durable queue and persistent messages.",
        steps: &[
            step(
                2,
                &["worker", "task_queue", "--durable"],
                "one second per '.'",
            ),
            step(
                3,
                &["worker", "task_queue", "--durable"],
                "a second worker: tasks alternate",
            ),
            step(
                1,
                &[
                    "send",
                    "task_queue",
                    "--durable",
                    "--persistent",
                    "First message.",
                ],
                "",
            ),
            step(
                1,
                &[
                    "send",
                    "task_queue",
                    "--durable",
                    "--persistent",
                    "Second message..",
                ],
                "",
            ),
            step(
                1,
                &[
                    "send",
                    "task_queue",
                    "--durable",
                    "--persistent",
                    "Third message...",
                ],
                "",
            ),
            step(
                1,
                &["worker", "task_queue", "--exec", "wc -c", "--count", "1"],
                "real work: a command per message",
            ),
        ],
    },
    Tutorial {
        title: "Publish/Subscribe",
        intro: "A fanout exchange 'logs' copies every message to each bound queue; each receiver binds its own private queue.",
        steps: &[
            step(
                2,
                &["receive", "--exchange", "logs"],
                "a server-named exclusive queue bound to 'logs'",
            ),
            step(
                3,
                &["receive", "--exchange", "logs"],
                "a second subscriber gets every message too",
            ),
            step(
                1,
                &["emit-log", "info: Hello World!"],
                "declares the fanout 'logs' if needed",
            ),
        ],
    },
    Tutorial {
        title: "Routing",
        intro: "A direct exchange routes by exact key: each receiver binds the severities it wants.",
        steps: &[
            step(
                2,
                &[
                    "receive",
                    "--exchange",
                    "direct_logs",
                    "--type",
                    "direct",
                    "-k",
                    "warning",
                    "-k",
                    "error",
                ],
                "",
            ),
            step(
                3,
                &[
                    "receive",
                    "--exchange",
                    "direct_logs",
                    "--type",
                    "direct",
                    "-k",
                    "info",
                    "-k",
                    "warning",
                    "-k",
                    "error",
                ],
                "",
            ),
            step(
                1,
                &[
                    "emit-log",
                    "--exchange",
                    "direct_logs",
                    "--type",
                    "direct",
                    "-k",
                    "error",
                    "Run. Run. Or it will explode.",
                ],
                "both receivers",
            ),
            step(
                1,
                &[
                    "emit-log",
                    "--exchange",
                    "direct_logs",
                    "--type",
                    "direct",
                    "-k",
                    "info",
                    "Just saying.",
                ],
                "terminal 3 only",
            ),
        ],
    },
    Tutorial {
        title: "Topics",
        intro: "A topic exchange routes by pattern: '*' is one word, '#' zero or more.",
        steps: &[
            step(
                2,
                &[
                    "receive",
                    "--exchange",
                    "topic_logs",
                    "--type",
                    "topic",
                    "-k",
                    "#",
                ],
                "everything",
            ),
            step(
                3,
                &[
                    "receive",
                    "--exchange",
                    "topic_logs",
                    "--type",
                    "topic",
                    "-k",
                    "kern.*",
                    "-k",
                    "*.critical",
                ],
                "",
            ),
            step(
                4,
                &[
                    "tail",
                    "topic_logs",
                    "-k",
                    "*.critical",
                    "--format",
                    "{routing_key}: {body}",
                ],
                "watch without consuming",
            ),
            step(
                1,
                &[
                    "emit-log",
                    "--exchange",
                    "topic_logs",
                    "--type",
                    "topic",
                    "-k",
                    "kern.critical",
                    "A critical kernel error",
                ],
                "",
            ),
        ],
    },
    Tutorial {
        title: "RPC",
        intro: "Requests with reply_to and correlation_id; the server answers fib(n).",
        steps: &[
            step(
                2,
                &["rpc-serve", "rpc_queue", "--fib"],
                "prefetch 1, replies before acking",
            ),
            step(1, &["rpc-call", "rpc_queue", "30"], "prints 832040"),
            step(
                1,
                &["rpc-call", "rpc_queue", "10", "20", "30"],
                "three calls at once, answers in order",
            ),
        ],
    },
];

/// Quote an argument for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// One tutorial as text.
pub(crate) fn render(n: usize, t: &Tutorial) -> String {
    let mut out = format!("# {n} {}\n# {}\n", t.title, t.intro);
    let lines: Vec<String> = t
        .steps
        .iter()
        .map(|s| {
            let args: Vec<String> = s.args.iter().map(|a| shell_quote(a)).collect();
            format!("rmq {}", args.join(" "))
        })
        .collect();
    let width = lines.iter().map(String::len).max().unwrap_or(0).min(72);
    for (line, s) in lines.iter().zip(t.steps) {
        let note = if s.note.is_empty() {
            format!("terminal {}", s.terminal)
        } else {
            format!("terminal {}: {}", s.terminal, s.note)
        };
        out.push_str(&format!("{line:width$}   # {note}\n"));
    }
    out
}

pub(crate) fn run(args: TutorialArgs, out: &Output) -> anyhow::Result<()> {
    let mut text = String::from(
        "# Start a broker first, in its own terminal (or use any RabbitMQ on localhost:5672):\n\
         #   rmq serve --in-memory\n\
         # rmq connects to amqp://guest:guest@localhost:5672/%2F unless --url, RMQ_URL or a profile says otherwise.\n\n",
    );
    match args.number {
        Some(n) => {
            let t = TUTORIALS
                .get(usize::from(n) - 1)
                .ok_or_else(|| coded(exit::USAGE, format!("no tutorial {n} (1–6)")))?;
            text.push_str(&render(usize::from(n), t));
        }
        None => {
            for (i, t) in TUTORIALS.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(&render(i + 1, t));
            }
        }
    }
    out.line(text.trim_end())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_step_is_a_valid_command_line() {
        assert_eq!(TUTORIALS.len(), 6);
        for (i, t) in TUTORIALS.iter().enumerate() {
            for s in t.steps {
                let argv = std::iter::once("rmq").chain(s.args.iter().copied());
                if let Err(e) = super::super::Cli::try_parse_from(argv) {
                    panic!("tutorial {} step {:?} does not parse: {e}", i + 1, s.args);
                }
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("kern.*"), "'kern.*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("task_queue"), "task_queue");
    }
}
