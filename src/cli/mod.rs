//! The command line: clap definitions, one file per subcommand (`XArgs` + `run`), and
//! `main`'s single place for turning an outcome into a message and an exit code.

mod add_user;
mod add_vhost;
mod admin;
mod args;
mod await_startup;
mod bind;
mod blocked;
mod clear_policy;
mod close_connection;
mod config;
mod declare;
mod definitions;
mod delete;
mod delete_user;
mod delete_vhost;
mod emit_log;
mod exec;
mod generate;
mod list_bindings;
mod list_channels;
mod list_connections;
mod list_consumers;
mod list_exchanges;
mod list_permissions;
mod list_policies;
mod list_queues;
mod list_users;
mod list_vhosts;
mod listing;
mod move_messages;
mod overview;
mod perf;
mod purge;
mod receive;
mod resume;
mod rpc_call;
mod rpc_serve;
mod send;
mod send_out;
mod serve;
mod set_permissions;
mod set_policy;
pub(crate) mod signals;
mod stream;
mod tail;
mod topology;
mod tutorial;
mod worker;

use crate::client::ConnectOptions;
use crate::config::{Overrides, Settings, process_env};
use crate::output::{Format, Output};
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::sync::Arc;

/// rmq — a command-line toolkit for AMQP 0-9-1 brokers (RabbitMQ and its embedded twin, `rmq serve`).
#[derive(Debug, Parser)]
#[command(
    name = "rmq",
    version,
    about,
    propagate_version = true,
    after_help = format!("Examples (the RabbitMQ tutorials, one line each):\n  rmq serve --port 0                                # an embedded broker\n  rmq send hello 'Hello World!'                     # 1 hello world\n  rmq receive hello --count 1\n  rmq send task_queue --durable --persistent 'A task...'   # 2 work queues\n  rmq worker task_queue\n  rmq emit-log --exchange logs 'info: hi'           # 3 publish/subscribe\n  rmq receive --exchange logs\n  rmq emit-log --exchange direct_logs --type direct --routing-key error 'boom'   # 4 routing\n  rmq receive --exchange topic_logs --binding-key '*.critical'                 # 5 topics\n  rmq rpc-serve rpc_queue --fib & rmq rpc-call rpc_queue 30                    # 6 RPC\n  rmq tutorial                                      # all six, step by step\n\nConnection: --url, else RMQ_URL, else AMQP_URL, else the profile's url (--profile, RMQ_PROFILE, or\nthe config file's default_profile), else amqp://guest:guest@localhost:5672/%2F. See `rmq config show`.\n{}", crate::exit::summary())
)]
pub struct Cli {
    /// Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options",
        action = clap::ArgAction::Append
    )]
    url: Vec<String>,
    /// Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    profile: Option<String>,
    /// Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    config: Option<std::path::PathBuf>,
    /// Output format (default: table on a terminal, tsv otherwise; raw for messages).
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Global options"
    )]
    output: Option<OutputArg>,
    /// CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an
    /// https:// management API, instead of the system's trust store.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    tls_ca_cert_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for brokers that verify peers; needs --tls-key-file.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    tls_cert_file: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    tls_key_file: Option<std::path::PathBuf>,
    /// Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as
    /// the broker): for test set-ups with self-signed certificates. Long form only: `-k` is
    /// the routing/binding key of send-side commands.
    #[arg(long, global = true, help_heading = "Global options")]
    insecure: bool,
    /// No notes, ready lines or progress bars on stderr (results and errors still print).
    #[arg(long, short = 'q', global = true, help_heading = "Global options")]
    quiet: bool,
    /// Long-running commands (worker, receive without an end, tail, rpc-serve, send from a
    /// stream) exit 69 when the connection is lost, instead of reconnecting.
    #[arg(long, global = true, help_heading = "Global options")]
    no_reconnect: bool,
    /// Give up reconnecting (exit 69) after this many seconds without a connection
    /// (default: keep trying, with backoff capped at about 5 s).
    #[arg(long, global = true, value_parser = args::parse_secs, value_name = "SECS", help_heading = "Global options")]
    reconnect_timeout: Option<std::time::Duration>,
    /// Give up (exit 75) when the broker keeps the connection blocked (connection.blocked:
    /// a memory or disk alarm) for this many seconds (default: wait, saying so on stderr).
    #[arg(long, global = true, value_parser = args::parse_secs, value_name = "SECS", help_heading = "Global options")]
    blocked_timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Command,
}

/// `--output` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputArg {
    /// Aligned table (default for results on a terminal).
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (lossless for messages).
    Jsonl,
    /// Tab-separated values with a header line (default for results off a terminal).
    Tsv,
    /// Bare values: message bodies (default for messages), or TSV without the header.
    Raw,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish messages to a queue (declaring it if needed), with publisher confirms.
    Send(send::SendArgs),
    /// Consume messages from a queue (or an exchange) and print them.
    Receive(receive::ReceiveArgs),
    /// Process a queue's messages one at a time (tutorial 2), optionally with a command per message.
    Worker(worker::WorkerArgs),
    /// Publish to an exchange, declaring it like the tutorials' emit_log (tutorials 3–5).
    EmitLog(emit_log::EmitLogArgs),
    /// Answer RPC requests from a queue (tutorial 6's server).
    RpcServe(rpc_serve::RpcServeArgs),
    /// Send RPC requests and print the replies in request order (tutorial 6's client).
    RpcCall(rpc_call::RpcCallArgs),
    /// Bind a queue (or exchange) to an exchange.
    Bind(bind::BindArgs),
    /// Remove a binding.
    Unbind(bind::BindArgs),
    /// Declare a queue or an exchange.
    #[command(
        subcommand,
        after_help = "Examples:\n  rmq declare queue task_queue --durable            # tutorial 2\n  rmq declare exchange logs --type fanout            # tutorial 3\n  rmq declare queue hello --passive                  # does it exist? how many messages?"
    )]
    Declare(declare::DeclareCommand),
    /// Delete a queue or an exchange.
    #[command(
        subcommand,
        after_help = "Examples:\n  rmq delete queue hello\n  rmq delete queue tmp --if-exists --if-empty\n  rmq delete exchange logs --if-unused"
    )]
    Delete(delete::DeleteCommand),
    /// Remove every ready message from a queue.
    Purge(purge::PurgeArgs),
    /// List queues through the management HTTP API (like `rabbitmqctl list_queues`).
    ListQueues(list_queues::ListQueuesArgs),
    /// List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`).
    ListExchanges(list_exchanges::ListExchangesArgs),
    /// List bindings through the management HTTP API (like `rabbitmqctl list_bindings`).
    ListBindings(list_bindings::ListBindingsArgs),
    /// List client connections through the management HTTP API (like `rabbitmqctl list_connections`).
    ListConnections(list_connections::ListConnectionsArgs),
    /// List consumers through the management HTTP API (like `rabbitmqctl list_consumers`).
    ListConsumers(list_consumers::ListConsumersArgs),
    /// List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`).
    ListVhosts(list_vhosts::ListVhostsArgs),
    /// List channels through the management HTTP API (like `rabbitmqctl list_channels`).
    ListChannels(list_channels::ListChannelsArgs),
    /// List users through the management HTTP API (like `rabbitmqctl list_users`).
    ListUsers(list_users::ListUsersArgs),
    /// List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`).
    ListPermissions(list_permissions::ListPermissionsArgs),
    /// List policies through the management HTTP API (like `rabbitmqctl list_policies`).
    ListPolicies(list_policies::ListPoliciesArgs),
    /// A one-screen summary of the broker: versions, totals, rates, listeners.
    Overview(overview::OverviewArgs),
    /// Draw a vhost's exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid.
    Topology(topology::TopologyArgs),
    /// Move messages to another queue, exchange or broker, confirmed before acked (at-least-once).
    Move(move_messages::MoveArgs),
    /// Set a policy (like `rabbitmqctl set_policy`).
    SetPolicy(set_policy::SetPolicyArgs),
    /// Remove a policy (like `rabbitmqctl clear_policy`).
    ClearPolicy(clear_policy::ClearPolicyArgs),
    /// Create a user (like `rabbitmqctl add_user`).
    AddUser(add_user::AddUserArgs),
    /// Delete a user (like `rabbitmqctl delete_user`).
    DeleteUser(delete_user::DeleteUserArgs),
    /// Set a user's permissions in a vhost (like `rabbitmqctl set_permissions`).
    SetPermissions(set_permissions::SetPermissionsArgs),
    /// Create a virtual host (like `rabbitmqctl add_vhost`).
    AddVhost(add_vhost::AddVhostArgs),
    /// Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`).
    DeleteVhost(delete_vhost::DeleteVhostArgs),
    /// Export or import the broker's definitions (RabbitMQ's JSON).
    #[command(
        subcommand,
        after_help = "Examples:\n  rmq definitions export backup.json\n  rmq definitions import backup.json\n  rmq definitions export | rmq --url amqp://guest:guest@other:5672 definitions import -"
    )]
    Definitions(definitions::DefinitionsCommand),
    /// Close a client connection, telling it why (like `rabbitmqctl close_connection`).
    CloseConnection(close_connection::CloseConnectionArgs),
    /// Wait until the broker accepts connections (like `rabbitmqctl await_startup`).
    AwaitStartup(await_startup::AwaitStartupArgs),
    /// Measure throughput and latency against a broker (PerfTest's flags).
    Perf(perf::PerfArgs),
    /// Run the embedded AMQP 0-9-1 broker in the foreground.
    Serve(serve::ServeArgs),
    /// Watch the messages flowing through an exchange, without taking them from anyone.
    #[command(visible_alias = "tap")]
    Tail(tail::TailArgs),
    /// Show the connection settings in use (profiles, config file), passwords masked.
    #[command(
        subcommand,
        after_help = "Examples:\n  rmq config show                          # every setting and where it came from\n  rmq --profile prod config show\n  rmq config path                          # the TOML file with the profiles"
    )]
    Config(config::ConfigCommand),
    /// Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`.
    Tutorial(tutorial::TutorialArgs),
    /// Generate shell completions or man pages.
    #[command(
        subcommand,
        after_help = "Examples:\n  rmq generate completions bash > ~/.local/share/bash-completion/completions/rmq\n  rmq generate man --dir ~/.local/share/man/man1"
    )]
    Generate(generate::GenerateCommand),
}

/// What every client command gets: where to connect and how to print.
pub(crate) struct Ctx {
    /// Connection settings resolved from the flag and the environment.
    pub(crate) connect: ConnectOptions,
    /// Every setting with its source (flags, environment, profile, defaults).
    pub(crate) settings: Settings,
    /// The one printer.
    pub(crate) out: Arc<Output>,
    /// What to do when the connection is lost.
    pub(crate) reconnect: resume::Policy,
}

/// Parse, run, and turn the outcome into an exit code (printed once, here).
pub fn main() -> ExitCode {
    main_with(|| {})
}

/// `main`, with the allocator's way to return freed memory to the OS (the broker asks
/// for it while its memory alarm is on; see `broker::reclaim`).
pub fn main_with(collect: fn()) -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(move || crate::broker::reclaim::on_park(collect))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmq: cannot start the async runtime: {e}");
            return ExitCode::from(crate::exit::FAILURE);
        }
    };
    let format = cli.output.map(|o| match o {
        OutputArg::Table => Format::Table,
        OutputArg::Json => Format::Json,
        OutputArg::Jsonl => Format::Jsonl,
        OutputArg::Tsv => Format::Tsv,
        OutputArg::Raw => Format::Raw,
    });
    let out = Arc::new(Output::new(format, cli.quiet));
    let overrides = Overrides {
        config: cli.config.clone(),
        profile: cli.profile.clone(),
        url: (!cli.url.is_empty()).then(|| cli.url.join(" ")),
        tls_ca_cert: cli.tls_ca_cert_file.clone(),
        tls_cert: cli.tls_cert_file.clone(),
        tls_key: cli.tls_key_file.clone(),
    };
    if cli.insecure {
        out.warn("TLS certificate verification is off (--insecure): the broker's identity is not checked");
    }
    // Resolved only by the commands that connect: a broken config file must not stop
    // `rmq serve`, `rmq generate` or `rmq tutorial`.
    let ctx = || -> anyhow::Result<Ctx> {
        let settings = crate::config::resolve(&overrides, &process_env)?;
        let mut urls = crate::config::split_urls(&settings.url.value).map(str::to_string);
        let url = urls
            .next()
            .unwrap_or_else(|| crate::client::DEFAULT_URL.to_string());
        let fallbacks: Vec<String> = urls.collect();
        Ok(Ctx {
            connect: ConnectOptions {
                url,
                fallbacks,
                events: Some(blocked::hook(out.clone(), cli.blocked_timeout)),
                connection_name: format!("rmq {}", std::env::args().nth(1).unwrap_or_default()),
                tls: settings.tls(cli.insecure),
            },
            settings,
            out: out.clone(),
            reconnect: resume::Policy {
                disabled: cli.no_reconnect,
                timeout: cli.reconnect_timeout,
            },
        })
    };
    let is_serve = matches!(cli.command, Command::Serve(_));
    let result = runtime.block_on(async {
        // Before anything can block: every state of every command answers Ctrl-C/SIGTERM.
        signals::install((!is_serve).then_some(std::time::Duration::from_millis(1500)));
        let command = async {
            match cli.command {
                Command::Send(a) => send::run(a, &ctx()?).await,
                Command::Receive(a) => receive::run(a, &ctx()?).await,
                Command::Worker(a) => worker::run(a, &ctx()?).await,
                Command::EmitLog(a) => emit_log::run(a, &ctx()?).await,
                Command::RpcServe(a) => rpc_serve::run(a, &ctx()?).await,
                Command::RpcCall(a) => rpc_call::run(a, &ctx()?).await,
                Command::Bind(a) => bind::run(a, &ctx()?, false).await,
                Command::Unbind(a) => bind::run(a, &ctx()?, true).await,
                Command::Declare(a) => declare::run(a, &ctx()?).await,
                Command::Delete(a) => delete::run(a, &ctx()?).await,
                Command::Purge(a) => purge::run(a, &ctx()?).await,
                Command::ListQueues(a) => list_queues::run(a, &ctx()?).await,
                Command::ListExchanges(a) => list_exchanges::run(a, &ctx()?).await,
                Command::ListBindings(a) => list_bindings::run(a, &ctx()?).await,
                Command::ListConnections(a) => list_connections::run(a, &ctx()?).await,
                Command::ListConsumers(a) => list_consumers::run(a, &ctx()?).await,
                Command::ListVhosts(a) => list_vhosts::run(a, &ctx()?).await,
                Command::ListChannels(a) => list_channels::run(a, &ctx()?).await,
                Command::ListUsers(a) => list_users::run(a, &ctx()?).await,
                Command::ListPermissions(a) => list_permissions::run(a, &ctx()?).await,
                Command::ListPolicies(a) => list_policies::run(a, &ctx()?).await,
                Command::Overview(a) => overview::run(a, &ctx()?).await,
                Command::Topology(a) => topology::run(a, &ctx()?).await,
                Command::Move(a) => move_messages::run(a, &ctx()?).await,
                Command::SetPolicy(a) => set_policy::run(a, &ctx()?).await,
                Command::ClearPolicy(a) => clear_policy::run(a, &ctx()?).await,
                Command::AddUser(a) => add_user::run(a, &ctx()?).await,
                Command::DeleteUser(a) => delete_user::run(a, &ctx()?).await,
                Command::SetPermissions(a) => set_permissions::run(a, &ctx()?).await,
                Command::AddVhost(a) => add_vhost::run(a, &ctx()?).await,
                Command::DeleteVhost(a) => delete_vhost::run(a, &ctx()?).await,
                Command::Definitions(a) => definitions::run(a, &ctx()?).await,
                Command::CloseConnection(a) => close_connection::run(a, &ctx()?).await,
                Command::AwaitStartup(a) => await_startup::run(a, &ctx()?).await,
                Command::Serve(a) => serve::run(a).await,
                Command::Perf(a) => {
                    let ctx = ctx()?;
                    perf::run(a, &ctx.connect, &ctx.out).await
                }
                Command::Tail(a) => tail::run(a, &ctx()?).await,
                Command::Config(a) => config::run(a, &ctx()?.settings, &out),
                Command::Tutorial(a) => tutorial::run(a, &out),
                Command::Generate(a) => generate::run(a, &out),
            }
        };
        tokio::select! {
            r = command => r,
            e = signals::aborted() => Err(e),
        }
    });
    // Whatever happened, a message stream owes its closing bracket or header line.
    let finished = out.finish().map_err(anyhow::Error::from);
    let result = result.and(finished);
    // Consumers' background tasks must not keep the process alive once we are done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if is_silent(&err) => crate::exit::code_of(&err),
        Err(err) => {
            let prefix = colored::Colorize::red("rmq:");
            eprintln!("{prefix} {err:#}");
            crate::exit::code_of(&err)
        }
    }
}

/// The reader of our stdout went away (`rmq receive q | head -1`): a normal ending.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Errors whose code says it all and whose message was already printed (Ctrl-C, a
/// command that reported its own shortfall).
fn is_silent(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<crate::exit::CodedError>()
            .is_some_and(|c| c.message.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Help that teaches: every command and subcommand shows examples.
    #[test]
    fn every_subcommand_has_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let examples = sub
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Examples:\n  rmq "));
                if !examples {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "rmq", &mut missing);
        assert!(missing.is_empty(), "no examples in --help of: {missing:?}");
    }
}
