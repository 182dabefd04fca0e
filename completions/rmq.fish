# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rmq_global_optspecs
    string join \n url= profile= config= o/output= tls-ca-cert-file= tls-cert-file= tls-key-file= insecure q/quiet no-reconnect reconnect-timeout= blocked-timeout= h/help V/version
end

function __fish_rmq_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rmq_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rmq_using_subcommand
    set -l cmd (__fish_rmq_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rmq -n "__fish_rmq_needs_command" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_needs_command" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_needs_command" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_needs_command" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_needs_command" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_needs_command" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_needs_command" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_needs_command" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_needs_command" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_needs_command" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_needs_command" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_needs_command" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_needs_command" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "send" -d 'Publish messages to a queue (declaring it if needed), with publisher confirms'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "receive" -d 'Consume messages from a queue (or an exchange) and print them'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "worker" -d 'Process a queue\'s messages one at a time (tutorial 2), optionally with a command per message'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "emit-log" -d 'Publish to an exchange, declaring it like the tutorials\' emit_log (tutorials 3–5)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "rpc-serve" -d 'Answer RPC requests from a queue (tutorial 6\'s server)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "rpc-call" -d 'Send RPC requests and print the replies in request order (tutorial 6\'s client)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "bind" -d 'Bind a queue (or exchange) to an exchange'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "unbind" -d 'Remove a binding'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "declare" -d 'Declare a queue or an exchange'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "delete" -d 'Delete a queue or an exchange'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "purge" -d 'Remove every ready message from a queue'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-queues" -d 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-exchanges" -d 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-bindings" -d 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-connections" -d 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-consumers" -d 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-vhosts" -d 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-channels" -d 'List channels through the management HTTP API (like `rabbitmqctl list_channels`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-users" -d 'List users through the management HTTP API (like `rabbitmqctl list_users`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-permissions" -d 'List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "list-policies" -d 'List policies through the management HTTP API (like `rabbitmqctl list_policies`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "overview" -d 'A one-screen summary of the broker: versions, totals, rates, listeners'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "topology" -d 'Draw a vhost\'s exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "move" -d 'Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "set-policy" -d 'Set a policy (like `rabbitmqctl set_policy`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "clear-policy" -d 'Remove a policy (like `rabbitmqctl clear_policy`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "add-user" -d 'Create a user (like `rabbitmqctl add_user`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "delete-user" -d 'Delete a user (like `rabbitmqctl delete_user`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "set-permissions" -d 'Set a user\'s permissions in a vhost (like `rabbitmqctl set_permissions`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "add-vhost" -d 'Create a virtual host (like `rabbitmqctl add_vhost`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "delete-vhost" -d 'Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "definitions" -d 'Export or import the broker\'s definitions (RabbitMQ\'s JSON)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "close-connection" -d 'Close a client connection, telling it why (like `rabbitmqctl close_connection`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "await-startup" -d 'Wait until the broker accepts connections (like `rabbitmqctl await_startup`)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "perf" -d 'Measure throughput and latency against a broker (PerfTest\'s flags)'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "serve" -d 'Run the embedded AMQP 0-9-1 broker in the foreground'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "tail" -d 'Watch the messages flowing through an exchange, without taking them from anyone'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "tap" -d 'Watch the messages flowing through an exchange, without taking them from anyone'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "config" -d 'Show the connection settings in use (profiles, config file), passwords masked'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "tutorial" -d 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "generate" -d 'Generate shell completions or man pages'
complete -c rmq -n "__fish_rmq_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l file -d 'Read the message(s) from this file instead of stdin' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -l input -d 'Input format: raw bytes, or rmq\'s lossless JSON lines (from `receive --output jsonl`)' -r -f -a "raw\t'Bytes: the whole input, or one message per line with --lines'
jsonl\t'rmq\'s lossless JSON lines, as `receive --output jsonl` writes them'"
complete -c rmq -n "__fish_rmq_using_subcommand send" -l replay-dir -d 'Send the messages that `receive --save-dir DIR` saved, in order, with their properties and typed headers (DIR/NNNNNN.json; the body from NNNNNN.body)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -l exchange -d 'Publish to this exchange instead of the default one (no queue is declared)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l routing-key -d 'Routing key (default: QUEUE; with --input jsonl and --exchange, each line\'s own key)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l type -d 'type property (application message type)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -s n -l count -d 'Send every message N times' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l confirm-window -d 'Most publisher confirms outstanding at once' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l arguments -d 'Queue arguments as a JSON object, e.g. \'{"x-queue-type":"quorum","x-message-ttl":60000}\'' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -s H -l header -d 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l content-type -d 'content_type property (MIME type), e.g. application/json' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l content-encoding -d 'content_encoding property, e.g. gzip' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l correlation-id -d 'correlation_id property (pairs RPC replies with requests)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l reply-to -d 'reply_to property (queue for the reply)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l expiration -d 'Per-message TTL in milliseconds' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l priority -d 'Priority 0–9 (for queues with x-max-priority)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l message-id -d 'message_id property' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l app-id -d 'app_id property' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l user-id -d 'user_id property (RabbitMQ checks it equals the connection\'s user)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l timestamp -d 'timestamp property, in seconds since the Unix epoch ("now" for the current time)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand send" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand send" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand send" -s l -l lines -d 'Send each line of the input as its own message'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l no-confirm -d 'Do not wait for publisher confirms (faster, but a refused message goes unnoticed)'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l mandatory -d 'Fail (exit 1) if a message cannot be routed to any queue'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l durable -d 'Create the queue durable (survives a broker restart) if it does not exist'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l passive -d 'Only check that the queue exists (error if not); never create it'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l no-declare -d 'Do not declare or check the queue at all'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l persistent -d 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand send" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand send" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand send" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s n -l count -d 'Stop after N messages' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l timeout -d 'Give up after this many seconds overall' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l idle-timeout -d 'Give up after this many seconds without a message' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l prefetch -d 'Unacknowledged messages in flight (capped at --count so no extra message is taken)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l exchange -d 'Consume from this exchange through a queue bound to it (tutorials 3–5)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s k -l binding-key -d 'Binding key (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l match-header -d 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l match -d 'Headers-exchange binding: all headers must match, or any' -r -f -a "all\t'Every --match-header must match'
any\t'One --match-header is enough'"
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l type -d 'Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s f -l format -d 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \\n and \\t escapes, {{ and }} for braces. A newline follows each message' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l save-dir -d 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l arguments -d 'Queue arguments as a JSON object, e.g. \'{"x-queue-type":"quorum","x-message-ttl":60000}\'' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l no-ack -d 'Let the broker forget each message as soon as it is sent (no acks, no redelivery). With --count, --timeout or --idle-timeout each message is acked once printed instead: a no-ack consumer gets no prefetch limit, so what the broker pushed past the end would be lost; acked, it is requeued'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l requeue -d 'Put each message back in the queue after printing it (nack with requeue)'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l reject -d 'Reject each message after printing it: dropped, or dead-lettered if the queue says so'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l durable -d 'Create the queue durable (survives a broker restart) if it does not exist'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l passive -d 'Only check that the queue exists (error if not); never create it'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l no-declare -d 'Do not declare or check the queue at all'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand receive" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l exec -d 'Shell command run per message (sh -c), body on stdin; without it, the tutorial\'s simulated work' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l prefetch -d 'Unacknowledged messages this worker holds (1 = fair dispatch, as in the tutorial)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l concurrency -d 'Messages processed at once (the prefetch is raised to match)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l on-failure -d 'What a failed message becomes: requeued for another try, or rejected (dead-lettered if the queue has a DLX)' -r -f -a "requeue\t'Put it back for another try (it comes back marked redelivered)'
reject\t'Drop it, or dead-letter it when the queue has x-dead-letter-exchange'"
complete -c rmq -n "__fish_rmq_using_subcommand worker" -s n -l count -d 'Stop after N messages' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l dot-time -d 'Simulated work per \'.\' in the body (without --exec)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l arguments -d 'Queue arguments as a JSON object, e.g. \'{"x-queue-type":"quorum","x-message-ttl":60000}\'' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand worker" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l durable -d 'Create the queue durable (survives a broker restart) if it does not exist'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l passive -d 'Only check that the queue exists (error if not); never create it'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l no-declare -d 'Do not declare or check the queue at all'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand worker" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s x -l exchange -d 'Exchange to publish to' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s t -l type -d 'Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s k -l routing-key -d 'Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s H -l header -d 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l content-type -d 'content_type property (MIME type), e.g. application/json' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l content-encoding -d 'content_encoding property, e.g. gzip' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l correlation-id -d 'correlation_id property (pairs RPC replies with requests)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l reply-to -d 'reply_to property (queue for the reply)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l expiration -d 'Per-message TTL in milliseconds' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l priority -d 'Priority 0–9 (for queues with x-max-priority)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l message-id -d 'message_id property' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l app-id -d 'app_id property' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l user-id -d 'user_id property (RabbitMQ checks it equals the connection\'s user)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l timestamp -d 'timestamp property, in seconds since the Unix epoch ("now" for the current time)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l durable -d 'Create the exchange durable if it does not exist'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l mandatory -d 'Fail (exit 1) if no queue is bound to receive it'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l persistent -d 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand emit-log" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l exec -d 'Shell command per request: request body on stdin, reply is its stdout' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -s n -l count -d 'Stop after N requests' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l prefetch -d 'Requests held at once (1 spreads load evenly over several servers)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l arguments -d 'Queue arguments as a JSON object, e.g. \'{"x-queue-type":"quorum","x-message-ttl":60000}\'' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l fib -d 'The tutorial\'s demo: the request is n, the reply fib(n)'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l durable -d 'Create the queue durable (survives a broker restart) if it does not exist'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l passive -d 'Only check that the queue exists (error if not); never create it'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l no-declare -d 'Do not declare or check the queue at all'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-serve" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l timeout -d 'Seconds to wait for all replies' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l content-type -d 'content_type of the requests' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -s f -l format -d 'Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand rpc-call" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l to-exchange -d 'Bind this exchange instead of a queue (exchange-to-exchange binding)' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -s k -l key -d 'Routing/binding key' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l arguments -d 'Binding arguments as a JSON object (headers exchanges match on them)' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand bind" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand bind" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand bind" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand bind" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand bind" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l to-exchange -d 'Bind this exchange instead of a queue (exchange-to-exchange binding)' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -s k -l key -d 'Routing/binding key' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l arguments -d 'Binding arguments as a JSON object (headers exchanges match on them)' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand unbind" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -f -a "queue" -d 'Declare a queue (prints its name, messages and consumers)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -f -a "exchange" -d 'Declare an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and not __fish_seen_subcommand_from queue exchange help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l arguments -d 'Arguments as a JSON object (x-message-ttl, x-max-length, x-queue-type, x-dead-letter-exchange, ...)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l durable -d 'Survive a broker restart'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l auto-delete -d 'Delete it when its last consumer goes'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l passive -d 'Only check that it exists and report its counts'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from queue" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -s t -l type -d 'direct, fanout, topic or headers' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l arguments -d 'Arguments as a JSON object (e.g. alternate-exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l durable -d 'Survive a broker restart'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l auto-delete -d 'Delete it when its last binding goes'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l internal -d 'Only reachable through exchange-to-exchange bindings'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from exchange" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from help" -f -a "queue" -d 'Declare a queue (prints its name, messages and consumers)'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from help" -f -a "exchange" -d 'Declare an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand declare; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -f -a "queue" -d 'Delete a queue (and its messages)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -f -a "exchange" -d 'Delete an exchange (and its bindings)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and not __fish_seen_subcommand_from queue exchange help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l if-unused -d 'Only if no consumer is attached'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l if-empty -d 'Only if it holds no messages'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l if-exists -d 'Succeed if it does not exist (without it, a missing queue is an error)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from queue" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l if-unused -d 'Only if nothing is bound to it'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l if-exists -d 'Succeed if it does not exist (without it, a missing exchange is an error)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from exchange" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from help" -f -a "queue" -d 'Delete a queue (and its messages)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from help" -f -a "exchange" -d 'Delete an exchange (and its bindings)'
complete -c rmq -n "__fish_rmq_using_subcommand delete; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand purge" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand purge" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand purge" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand purge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand purge" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-queues" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-exchanges" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-bindings" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-connections" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-consumers" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-vhosts" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-channels" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l name -d 'Only users whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-users" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-permissions" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l name -d 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand list-policies" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand overview" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand overview" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand overview" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand overview" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand overview" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l format -d 'How to draw it' -r -f -a "tree\t'Indented text for the terminal'
dot\t'Graphviz DOT (render with `dot -Tsvg`)'
mermaid\t'A Mermaid flowchart (GitHub and GitLab render it in Markdown)'"
complete -c rmq -n "__fish_rmq_using_subcommand topology" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand topology" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand topology" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand topology" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand topology" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand topology" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand move" -s n -l count -d 'Move at most N messages' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l to-url -d 'The destination broker (default: the source\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l to-exchange -d 'Publish to this exchange instead of a queue' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -s k -l routing-key -d 'Routing key for --to-exchange (default: each message\'s own)' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l prefetch -d 'Messages in flight: the consumer\'s prefetch and the destination\'s confirm window' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand move" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand move" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand move" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand move" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand move" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand move" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand move" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand move" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand move" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand move" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l apply-to -d 'What the policy applies to' -r -f -a "queues\t'Queues only'
exchanges\t'Exchanges only'
all\t'Both'"
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l priority -d 'Where several policies match one queue or exchange, the highest priority wins' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand set-policy" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand clear-policy" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l tags -d 'Tags, comma-separated (administrator, monitoring, policymaker, management, ...)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l password-stdin -d 'Read the password from stdin (its first line, without the line break)'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand add-user" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand delete-user" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -s p -l vhost -d 'Virtual host (default: the URL\'s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand set-permissions" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand add-vhost" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand delete-vhost" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -f -a "export" -d 'Write the broker\'s definitions (RabbitMQ\'s JSON) to FILE, or stdout'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -f -a "import" -d 'Create what a definitions file (RabbitMQ\'s JSON) describes, keeping what exists'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and not __fish_seen_subcommand_from export import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from export" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from import" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write the broker\'s definitions (RabbitMQ\'s JSON) to FILE, or stdout'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from help" -f -a "import" -d 'Create what a definitions file (RabbitMQ\'s JSON) describes, keeping what exists'
complete -c rmq -n "__fish_rmq_using_subcommand definitions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l reason -d 'The reason the client is told (default: the broker\'s, "Closed via management plugin")' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l api-url -d 'Management API base URL (default: the broker URL\'s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand close-connection" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l timeout -d 'Give up after this many seconds (exit 69)' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l api-url -d 'Also wait for the management API at this base URL' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand await-startup" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s x -l producers -d 'Producers, each on its own connection' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s y -l consumers -d 'Consumers, each on its own connection' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s s -l size -d 'Message size in bytes (at least 14)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s r -l rate -d 'Messages per second per producer (default: as fast as possible)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s c -l confirm -d 'Publisher confirms with this many outstanding (default: no confirms)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s A -l multi-ack-every -d 'Acknowledge with `multiple` every N messages (default: each message)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l qos -d 'Consumer prefetch (basic.qos), 0 for unlimited' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s z -l time -d 'Run for this many seconds (default: until Ctrl-C or the counts are reached)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s C -l pmessages -d 'Messages each producer sends' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s D -l cmessages -d 'Messages each consumer receives' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s f -l flag -d 'Message flags: `persistent` (durable queues, delivery_mode 2)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s u -l queue -d 'Queue name (default: generated, deleted at the end)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s e -l exchange -d 'Publish to this exchange (declared with --type) instead of the default exchange' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s t -l type -d 'Exchange type for --exchange' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l queues -d 'Spread producers and consumers over this many queues' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l queue-args -d 'Arguments for the declared queues, as a JSON object (e.g. \'{"x-expires": 60000}\')' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s a -l autoack -d 'Consumers use automatic acknowledgement (no-ack)'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand perf" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l bind -d 'Address to listen on (loopback by default: exposing a broker is a choice)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l port -d 'AMQP port; 0 picks a free one and prints it' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l mgmt-port -d 'Management HTTP API port (RabbitMQ-compatible /api and Prometheus /metrics); 0 picks a free one' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l data-dir -d 'Directory for durable queues, exchanges, bindings and persistent messages [default: $XDG_DATA_HOME/rmq, else ~/.local/share/rmq]' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l user -d 'An administrator as NAME:PASSWORD with full permissions on `/` and every --vhost (repeatable). When no user exists at all, `guest:guest` is created (loopback only)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l definitions -d 'Load users, vhosts, permissions, exchanges, queues and bindings from a RabbitMQ definitions export (JSON) at start' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l vhost -d 'A virtual host to create at start (repeatable); `/` always exists' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l heartbeat -d 'Heartbeat interval proposed to clients, in seconds (0 disables)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l max-message-size -d 'Largest accepted message body, in bytes (RabbitMQ 3.10: 128 MiB)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l consumer-timeout -d 'Close a channel (406) whose delivery stays unacknowledged this long, requeueing it (RabbitMQ\'s consumer_timeout); 0 disables' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-cert -d 'Serve amqps (and the management API over https) with this PEM certificate chain, leaf first (RabbitMQ\'s ssl_options.certfile). Plain AMQP keeps being served' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-key -d 'The PEM private key of --tls-cert (ssl_options.keyfile)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-port -d 'amqps port (RabbitMQ: 5671); 0 picks a free one and prints it' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-ca-cert -d 'PEM CA certificates that client certificates must be signed by (ssl_options.cacertfile)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l max-connections -d 'Refuse new connections (530 NOT_ALLOWED at connection.open) while this many are open (RabbitMQ\'s connection_max) [default: unlimited]' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l memory-high-watermark -d 'Block publishing connections while the broker\'s memory (RSS) is above this: a fraction of RAM (0.4; the cgroup limit counts when lower) or a size (512MiB, 2GB, bytes) (RabbitMQ\'s vm_memory_high_watermark)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l disk-free-limit -d 'Block publishing connections while the data directory\'s filesystem has less free space than this (50MB, 1GiB, bytes) (RabbitMQ\'s disk_free_limit); not checked with --in-memory' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l log-segment-size -d 'Size of the segment files of a durable queue\'s message log (16MiB, 64KiB, bytes): disk space is reclaimed a segment at a time' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l log-format -d 'Log lines as text (timestamp, level, module, message) or as one JSON object per line for log shippers (default: RMQ_LOG_FORMAT, else text). RUST_LOG filters' -r -f -a "text\t''
json\t''"
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l in-memory -d 'Keep everything in memory: nothing survives a restart'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-verify-peer -d 'Require amqps clients to present a certificate signed by --tls-ca-cert, refusing the handshake otherwise (verify_peer, fail_if_no_peer_cert = true). The https API does not ask for client certificates'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l tls-peer-cert-optional -d 'With --tls-verify-peer: accept clients that present no certificate, still refusing invalid ones (fail_if_no_peer_cert = false)'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -s q -l quiet -d 'Only log errors'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand serve" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s k -l binding-key -d 'Binding key (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l match-header -d 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l match -d 'Headers-exchange binding: all headers must match, or any' -r -f -a "all\t'Every --match-header must match'
any\t'One --match-header is enough'"
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s n -l count -d 'Stop after N messages' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l timeout -d 'Give up after this many seconds overall' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l idle-timeout -d 'Give up after this many seconds without a message' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s f -l format -d 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \\n and \\t escapes, {{ and }} for braces. A newline follows each message' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l save-dir -d 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand tail" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand tail" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s k -l binding-key -d 'Binding key (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l match-header -d 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l match -d 'Headers-exchange binding: all headers must match, or any' -r -f -a "all\t'Every --match-header must match'
any\t'One --match-header is enough'"
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s n -l count -d 'Stop after N messages' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l timeout -d 'Give up after this many seconds overall' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l idle-timeout -d 'Give up after this many seconds without a message' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s f -l format -d 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \\n and \\t escapes, {{ and }} for braces. A newline follows each message' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l save-dir -d 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand tap" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand tap" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "show" -d 'The resolved settings and their sources (passwords shown as ***)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "path" -d 'The config file rmq reads (whether or not it exists)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from path" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'The resolved settings and their sources (passwords shown as ***)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "path" -d 'The config file rmq reads (whether or not it exists)'
complete -c rmq -n "__fish_rmq_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand tutorial" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -f -a "completions" -d 'Shell completions: one shell\'s script on stdout, or every shell\'s file with --dir'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -f -a "man" -d 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and not __fish_seen_subcommand_from completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l dir -d 'Write the file(s) into this directory instead of stdout' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from completions" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l dir -d 'Write rmq.1 and a page per subcommand (rmq-send.1, ...) into this directory, replacing any rmq*.1 there, instead of printing rmq.1' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l url -d 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile\'s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l profile -d 'Use this profile of the config file (default: RMQ_PROFILE, then the file\'s default_profile)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l config -d 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -s o -l output -d 'Output format (default: table on a terminal, tsv otherwise; raw for messages)' -r -f -a "table\t'Aligned table (default for results on a terminal)'
json\t'One JSON document'
jsonl\t'One JSON object per line (lossless for messages)'
tsv\t'Tab-separated values with a header line (default for results off a terminal)'
raw\t'Bare values: message bodies (default for messages), or TSV without the header'"
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l tls-ca-cert-file -d 'CA certificates (PEM) to verify the broker\'s TLS certificate with, for amqps:// and an https:// management API, instead of the system\'s trust store' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l tls-cert-file -d 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l tls-key-file -d 'Private key (PEM) of --tls-cert-file' -r -F
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l reconnect-timeout -d 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l blocked-timeout -d 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)' -r
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l insecure -d 'Do not verify the broker\'s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -s q -l quiet -d 'No notes, ready lines or progress bars on stderr (results and errors still print)'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -l no-reconnect -d 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from man" -s V -l version -d 'Print version'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Shell completions: one shell\'s script on stdout, or every shell\'s file with --dir'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
complete -c rmq -n "__fish_rmq_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "send" -d 'Publish messages to a queue (declaring it if needed), with publisher confirms'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "receive" -d 'Consume messages from a queue (or an exchange) and print them'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "worker" -d 'Process a queue\'s messages one at a time (tutorial 2), optionally with a command per message'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "emit-log" -d 'Publish to an exchange, declaring it like the tutorials\' emit_log (tutorials 3–5)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "rpc-serve" -d 'Answer RPC requests from a queue (tutorial 6\'s server)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "rpc-call" -d 'Send RPC requests and print the replies in request order (tutorial 6\'s client)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "bind" -d 'Bind a queue (or exchange) to an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "unbind" -d 'Remove a binding'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "declare" -d 'Declare a queue or an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "delete" -d 'Delete a queue or an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "purge" -d 'Remove every ready message from a queue'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-queues" -d 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-exchanges" -d 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-bindings" -d 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-connections" -d 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-consumers" -d 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-vhosts" -d 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-channels" -d 'List channels through the management HTTP API (like `rabbitmqctl list_channels`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-users" -d 'List users through the management HTTP API (like `rabbitmqctl list_users`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-permissions" -d 'List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "list-policies" -d 'List policies through the management HTTP API (like `rabbitmqctl list_policies`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "overview" -d 'A one-screen summary of the broker: versions, totals, rates, listeners'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "topology" -d 'Draw a vhost\'s exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "move" -d 'Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "set-policy" -d 'Set a policy (like `rabbitmqctl set_policy`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "clear-policy" -d 'Remove a policy (like `rabbitmqctl clear_policy`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "add-user" -d 'Create a user (like `rabbitmqctl add_user`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "delete-user" -d 'Delete a user (like `rabbitmqctl delete_user`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "set-permissions" -d 'Set a user\'s permissions in a vhost (like `rabbitmqctl set_permissions`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "add-vhost" -d 'Create a virtual host (like `rabbitmqctl add_vhost`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "delete-vhost" -d 'Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "definitions" -d 'Export or import the broker\'s definitions (RabbitMQ\'s JSON)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "close-connection" -d 'Close a client connection, telling it why (like `rabbitmqctl close_connection`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "await-startup" -d 'Wait until the broker accepts connections (like `rabbitmqctl await_startup`)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "perf" -d 'Measure throughput and latency against a broker (PerfTest\'s flags)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "serve" -d 'Run the embedded AMQP 0-9-1 broker in the foreground'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "tail" -d 'Watch the messages flowing through an exchange, without taking them from anyone'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "config" -d 'Show the connection settings in use (profiles, config file), passwords masked'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "tutorial" -d 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "generate" -d 'Generate shell completions or man pages'
complete -c rmq -n "__fish_rmq_using_subcommand help; and not __fish_seen_subcommand_from send receive worker emit-log rpc-serve rpc-call bind unbind declare delete purge list-queues list-exchanges list-bindings list-connections list-consumers list-vhosts list-channels list-users list-permissions list-policies overview topology move set-policy clear-policy add-user delete-user set-permissions add-vhost delete-vhost definitions close-connection await-startup perf serve tail config tutorial generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from declare" -f -a "queue" -d 'Declare a queue (prints its name, messages and consumers)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from declare" -f -a "exchange" -d 'Declare an exchange'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from delete" -f -a "queue" -d 'Delete a queue (and its messages)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from delete" -f -a "exchange" -d 'Delete an exchange (and its bindings)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from definitions" -f -a "export" -d 'Write the broker\'s definitions (RabbitMQ\'s JSON) to FILE, or stdout'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from definitions" -f -a "import" -d 'Create what a definitions file (RabbitMQ\'s JSON) describes, keeping what exists'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'The resolved settings and their sources (passwords shown as ***)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "path" -d 'The config file rmq reads (whether or not it exists)'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'Shell completions: one shell\'s script on stdout, or every shell\'s file with --dir'
complete -c rmq -n "__fish_rmq_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
