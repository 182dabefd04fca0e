
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'rmq' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'rmq'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'rmq' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Publish messages to a queue (declaring it if needed), with publisher confirms')
            [CompletionResult]::new('receive', 'receive', [CompletionResultType]::ParameterValue, 'Consume messages from a queue (or an exchange) and print them')
            [CompletionResult]::new('worker', 'worker', [CompletionResultType]::ParameterValue, 'Process a queue''s messages one at a time (tutorial 2), optionally with a command per message')
            [CompletionResult]::new('emit-log', 'emit-log', [CompletionResultType]::ParameterValue, 'Publish to an exchange, declaring it like the tutorials'' emit_log (tutorials 3–5)')
            [CompletionResult]::new('rpc-serve', 'rpc-serve', [CompletionResultType]::ParameterValue, 'Answer RPC requests from a queue (tutorial 6''s server)')
            [CompletionResult]::new('rpc-call', 'rpc-call', [CompletionResultType]::ParameterValue, 'Send RPC requests and print the replies in request order (tutorial 6''s client)')
            [CompletionResult]::new('bind', 'bind', [CompletionResultType]::ParameterValue, 'Bind a queue (or exchange) to an exchange')
            [CompletionResult]::new('unbind', 'unbind', [CompletionResultType]::ParameterValue, 'Remove a binding')
            [CompletionResult]::new('declare', 'declare', [CompletionResultType]::ParameterValue, 'Declare a queue or an exchange')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue or an exchange')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove every ready message from a queue')
            [CompletionResult]::new('list-queues', 'list-queues', [CompletionResultType]::ParameterValue, 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)')
            [CompletionResult]::new('list-exchanges', 'list-exchanges', [CompletionResultType]::ParameterValue, 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)')
            [CompletionResult]::new('list-bindings', 'list-bindings', [CompletionResultType]::ParameterValue, 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)')
            [CompletionResult]::new('list-connections', 'list-connections', [CompletionResultType]::ParameterValue, 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)')
            [CompletionResult]::new('list-consumers', 'list-consumers', [CompletionResultType]::ParameterValue, 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)')
            [CompletionResult]::new('list-vhosts', 'list-vhosts', [CompletionResultType]::ParameterValue, 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)')
            [CompletionResult]::new('list-channels', 'list-channels', [CompletionResultType]::ParameterValue, 'List channels through the management HTTP API (like `rabbitmqctl list_channels`)')
            [CompletionResult]::new('list-users', 'list-users', [CompletionResultType]::ParameterValue, 'List users through the management HTTP API (like `rabbitmqctl list_users`)')
            [CompletionResult]::new('list-permissions', 'list-permissions', [CompletionResultType]::ParameterValue, 'List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)')
            [CompletionResult]::new('list-policies', 'list-policies', [CompletionResultType]::ParameterValue, 'List policies through the management HTTP API (like `rabbitmqctl list_policies`)')
            [CompletionResult]::new('overview', 'overview', [CompletionResultType]::ParameterValue, 'A one-screen summary of the broker: versions, totals, rates, listeners')
            [CompletionResult]::new('topology', 'topology', [CompletionResultType]::ParameterValue, 'Draw a vhost''s exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid')
            [CompletionResult]::new('move', 'move', [CompletionResultType]::ParameterValue, 'Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)')
            [CompletionResult]::new('set-policy', 'set-policy', [CompletionResultType]::ParameterValue, 'Set a policy (like `rabbitmqctl set_policy`)')
            [CompletionResult]::new('clear-policy', 'clear-policy', [CompletionResultType]::ParameterValue, 'Remove a policy (like `rabbitmqctl clear_policy`)')
            [CompletionResult]::new('add-user', 'add-user', [CompletionResultType]::ParameterValue, 'Create a user (like `rabbitmqctl add_user`)')
            [CompletionResult]::new('delete-user', 'delete-user', [CompletionResultType]::ParameterValue, 'Delete a user (like `rabbitmqctl delete_user`)')
            [CompletionResult]::new('set-permissions', 'set-permissions', [CompletionResultType]::ParameterValue, 'Set a user''s permissions in a vhost (like `rabbitmqctl set_permissions`)')
            [CompletionResult]::new('add-vhost', 'add-vhost', [CompletionResultType]::ParameterValue, 'Create a virtual host (like `rabbitmqctl add_vhost`)')
            [CompletionResult]::new('delete-vhost', 'delete-vhost', [CompletionResultType]::ParameterValue, 'Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)')
            [CompletionResult]::new('definitions', 'definitions', [CompletionResultType]::ParameterValue, 'Export or import the broker''s definitions (RabbitMQ''s JSON)')
            [CompletionResult]::new('close-connection', 'close-connection', [CompletionResultType]::ParameterValue, 'Close a client connection, telling it why (like `rabbitmqctl close_connection`)')
            [CompletionResult]::new('await-startup', 'await-startup', [CompletionResultType]::ParameterValue, 'Wait until the broker accepts connections (like `rabbitmqctl await_startup`)')
            [CompletionResult]::new('perf', 'perf', [CompletionResultType]::ParameterValue, 'Measure throughput and latency against a broker (PerfTest''s flags)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the embedded AMQP 0-9-1 broker in the foreground')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Watch the messages flowing through an exchange, without taking them from anyone')
            [CompletionResult]::new('tap', 'tap', [CompletionResultType]::ParameterValue, 'Watch the messages flowing through an exchange, without taking them from anyone')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the connection settings in use (profiles, config file), passwords masked')
            [CompletionResult]::new('tutorial', 'tutorial', [CompletionResultType]::ParameterValue, 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Generate shell completions or man pages')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;send' {
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Read the message(s) from this file instead of stdin')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Input format: raw bytes, or rmq''s lossless JSON lines (from `receive --output jsonl`)')
            [CompletionResult]::new('--replay-dir', '--replay-dir', [CompletionResultType]::ParameterName, 'Send the messages that `receive --save-dir DIR` saved, in order, with their properties and typed headers (DIR/NNNNNN.json; the body from NNNNNN.body)')
            [CompletionResult]::new('--exchange', '--exchange', [CompletionResultType]::ParameterName, 'Publish to this exchange instead of the default one (no queue is declared)')
            [CompletionResult]::new('--routing-key', '--routing-key', [CompletionResultType]::ParameterName, 'Routing key (default: QUEUE; with --input jsonl and --exchange, each line''s own key)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'type property (application message type)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Send every message N times')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Send every message N times')
            [CompletionResult]::new('--confirm-window', '--confirm-window', [CompletionResultType]::ParameterName, 'Most publisher confirms outstanding at once')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}''')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable')
            [CompletionResult]::new('--content-type', '--content-type', [CompletionResultType]::ParameterName, 'content_type property (MIME type), e.g. application/json')
            [CompletionResult]::new('--content-encoding', '--content-encoding', [CompletionResultType]::ParameterName, 'content_encoding property, e.g. gzip')
            [CompletionResult]::new('--correlation-id', '--correlation-id', [CompletionResultType]::ParameterName, 'correlation_id property (pairs RPC replies with requests)')
            [CompletionResult]::new('--reply-to', '--reply-to', [CompletionResultType]::ParameterName, 'reply_to property (queue for the reply)')
            [CompletionResult]::new('--expiration', '--expiration', [CompletionResultType]::ParameterName, 'Per-message TTL in milliseconds')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Priority 0–9 (for queues with x-max-priority)')
            [CompletionResult]::new('--message-id', '--message-id', [CompletionResultType]::ParameterName, 'message_id property')
            [CompletionResult]::new('--app-id', '--app-id', [CompletionResultType]::ParameterName, 'app_id property')
            [CompletionResult]::new('--user-id', '--user-id', [CompletionResultType]::ParameterName, 'user_id property (RabbitMQ checks it equals the connection''s user)')
            [CompletionResult]::new('--timestamp', '--timestamp', [CompletionResultType]::ParameterName, 'timestamp property, in seconds since the Unix epoch ("now" for the current time)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Send each line of the input as its own message')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'Send each line of the input as its own message')
            [CompletionResult]::new('--no-confirm', '--no-confirm', [CompletionResultType]::ParameterName, 'Do not wait for publisher confirms (faster, but a refused message goes unnoticed)')
            [CompletionResult]::new('--mandatory', '--mandatory', [CompletionResultType]::ParameterName, 'Fail (exit 1) if a message cannot be routed to any queue')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Create the queue durable (survives a broker restart) if it does not exist')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Only check that the queue exists (error if not); never create it')
            [CompletionResult]::new('--no-declare', '--no-declare', [CompletionResultType]::ParameterName, 'Do not declare or check the queue at all')
            [CompletionResult]::new('--persistent', '--persistent', [CompletionResultType]::ParameterName, 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;receive' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds overall')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds without a message')
            [CompletionResult]::new('--prefetch', '--prefetch', [CompletionResultType]::ParameterName, 'Unacknowledged messages in flight (capped at --count so no extra message is taken)')
            [CompletionResult]::new('--exchange', '--exchange', [CompletionResultType]::ParameterName, 'Consume from this exchange through a queue bound to it (tutorials 3–5)')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--binding-key', '--binding-key', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--match-header', '--match-header', [CompletionResultType]::ParameterName, 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Headers-exchange binding: all headers must match, or any')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--save-dir', '--save-dir', [CompletionResultType]::ParameterName, 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}''')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--no-ack', '--no-ack', [CompletionResultType]::ParameterName, 'Let the broker forget each message as soon as it is sent (no acks, no redelivery). With --count, --timeout or --idle-timeout each message is acked once printed instead: a no-ack consumer gets no prefetch limit, so what the broker pushed past the end would be lost; acked, it is requeued')
            [CompletionResult]::new('--requeue', '--requeue', [CompletionResultType]::ParameterName, 'Put each message back in the queue after printing it (nack with requeue)')
            [CompletionResult]::new('--reject', '--reject', [CompletionResultType]::ParameterName, 'Reject each message after printing it: dropped, or dead-lettered if the queue says so')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Create the queue durable (survives a broker restart) if it does not exist')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Only check that the queue exists (error if not); never create it')
            [CompletionResult]::new('--no-declare', '--no-declare', [CompletionResultType]::ParameterName, 'Do not declare or check the queue at all')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;worker' {
            [CompletionResult]::new('--exec', '--exec', [CompletionResultType]::ParameterName, 'Shell command run per message (sh -c), body on stdin; without it, the tutorial''s simulated work')
            [CompletionResult]::new('--prefetch', '--prefetch', [CompletionResultType]::ParameterName, 'Unacknowledged messages this worker holds (1 = fair dispatch, as in the tutorial)')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Messages processed at once (the prefetch is raised to match)')
            [CompletionResult]::new('--on-failure', '--on-failure', [CompletionResultType]::ParameterName, 'What a failed message becomes: requeued for another try, or rejected (dead-lettered if the queue has a DLX)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--dot-time', '--dot-time', [CompletionResultType]::ParameterName, 'Simulated work per ''.'' in the body (without --exec)')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}''')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Create the queue durable (survives a broker restart) if it does not exist')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Only check that the queue exists (error if not); never create it')
            [CompletionResult]::new('--no-declare', '--no-declare', [CompletionResultType]::ParameterName, 'Do not declare or check the queue at all')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;emit-log' {
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Exchange to publish to')
            [CompletionResult]::new('--exchange', '--exchange', [CompletionResultType]::ParameterName, 'Exchange to publish to')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)')
            [CompletionResult]::new('--routing-key', '--routing-key', [CompletionResultType]::ParameterName, 'Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable')
            [CompletionResult]::new('--content-type', '--content-type', [CompletionResultType]::ParameterName, 'content_type property (MIME type), e.g. application/json')
            [CompletionResult]::new('--content-encoding', '--content-encoding', [CompletionResultType]::ParameterName, 'content_encoding property, e.g. gzip')
            [CompletionResult]::new('--correlation-id', '--correlation-id', [CompletionResultType]::ParameterName, 'correlation_id property (pairs RPC replies with requests)')
            [CompletionResult]::new('--reply-to', '--reply-to', [CompletionResultType]::ParameterName, 'reply_to property (queue for the reply)')
            [CompletionResult]::new('--expiration', '--expiration', [CompletionResultType]::ParameterName, 'Per-message TTL in milliseconds')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Priority 0–9 (for queues with x-max-priority)')
            [CompletionResult]::new('--message-id', '--message-id', [CompletionResultType]::ParameterName, 'message_id property')
            [CompletionResult]::new('--app-id', '--app-id', [CompletionResultType]::ParameterName, 'app_id property')
            [CompletionResult]::new('--user-id', '--user-id', [CompletionResultType]::ParameterName, 'user_id property (RabbitMQ checks it equals the connection''s user)')
            [CompletionResult]::new('--timestamp', '--timestamp', [CompletionResultType]::ParameterName, 'timestamp property, in seconds since the Unix epoch ("now" for the current time)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Create the exchange durable if it does not exist')
            [CompletionResult]::new('--mandatory', '--mandatory', [CompletionResultType]::ParameterName, 'Fail (exit 1) if no queue is bound to receive it')
            [CompletionResult]::new('--persistent', '--persistent', [CompletionResultType]::ParameterName, 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;rpc-serve' {
            [CompletionResult]::new('--exec', '--exec', [CompletionResultType]::ParameterName, 'Shell command per request: request body on stdin, reply is its stdout')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Stop after N requests')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after N requests')
            [CompletionResult]::new('--prefetch', '--prefetch', [CompletionResultType]::ParameterName, 'Requests held at once (1 spreads load evenly over several servers)')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}''')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--fib', '--fib', [CompletionResultType]::ParameterName, 'The tutorial''s demo: the request is n, the reply fib(n)')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Create the queue durable (survives a broker restart) if it does not exist')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Only check that the queue exists (error if not); never create it')
            [CompletionResult]::new('--no-declare', '--no-declare', [CompletionResultType]::ParameterName, 'Do not declare or check the queue at all')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;rpc-call' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for all replies')
            [CompletionResult]::new('--content-type', '--content-type', [CompletionResultType]::ParameterName, 'content_type of the requests')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;bind' {
            [CompletionResult]::new('--to-exchange', '--to-exchange', [CompletionResultType]::ParameterName, 'Bind this exchange instead of a queue (exchange-to-exchange binding)')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Routing/binding key')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Routing/binding key')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Binding arguments as a JSON object (headers exchanges match on them)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;unbind' {
            [CompletionResult]::new('--to-exchange', '--to-exchange', [CompletionResultType]::ParameterName, 'Bind this exchange instead of a queue (exchange-to-exchange binding)')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Routing/binding key')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Routing/binding key')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Binding arguments as a JSON object (headers exchanges match on them)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;declare' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Declare a queue (prints its name, messages and consumers)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Declare an exchange')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;declare;queue' {
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Arguments as a JSON object (x-message-ttl, x-max-length, x-queue-type, x-dead-letter-exchange, ...)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Survive a broker restart')
            [CompletionResult]::new('--auto-delete', '--auto-delete', [CompletionResultType]::ParameterName, 'Delete it when its last consumer goes')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Only check that it exists and report its counts')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;declare;exchange' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'direct, fanout, topic or headers')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'direct, fanout, topic or headers')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Arguments as a JSON object (e.g. alternate-exchange)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--durable', '--durable', [CompletionResultType]::ParameterName, 'Survive a broker restart')
            [CompletionResult]::new('--auto-delete', '--auto-delete', [CompletionResultType]::ParameterName, 'Delete it when its last binding goes')
            [CompletionResult]::new('--internal', '--internal', [CompletionResultType]::ParameterName, 'Only reachable through exchange-to-exchange bindings')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;declare;help' {
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Declare a queue (prints its name, messages and consumers)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Declare an exchange')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;declare;help;queue' {
            break
        }
        'rmq;declare;help;exchange' {
            break
        }
        'rmq;declare;help;help' {
            break
        }
        'rmq;delete' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Delete a queue (and its messages)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Delete an exchange (and its bindings)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;delete;queue' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--if-unused', '--if-unused', [CompletionResultType]::ParameterName, 'Only if no consumer is attached')
            [CompletionResult]::new('--if-empty', '--if-empty', [CompletionResultType]::ParameterName, 'Only if it holds no messages')
            [CompletionResult]::new('--if-exists', '--if-exists', [CompletionResultType]::ParameterName, 'Succeed if it does not exist (without it, a missing queue is an error)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;delete;exchange' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--if-unused', '--if-unused', [CompletionResultType]::ParameterName, 'Only if nothing is bound to it')
            [CompletionResult]::new('--if-exists', '--if-exists', [CompletionResultType]::ParameterName, 'Succeed if it does not exist (without it, a missing exchange is an error)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;delete;help' {
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Delete a queue (and its messages)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Delete an exchange (and its bindings)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;delete;help;queue' {
            break
        }
        'rmq;delete;help;exchange' {
            break
        }
        'rmq;delete;help;help' {
            break
        }
        'rmq;purge' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-queues' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-exchanges' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-bindings' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-connections' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-consumers' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-vhosts' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-channels' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-users' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only users whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-permissions' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;list-policies' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;overview' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;topology' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How to draw it')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;move' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Move at most N messages')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Move at most N messages')
            [CompletionResult]::new('--to-url', '--to-url', [CompletionResultType]::ParameterName, 'The destination broker (default: the source''s)')
            [CompletionResult]::new('--to-exchange', '--to-exchange', [CompletionResultType]::ParameterName, 'Publish to this exchange instead of a queue')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Routing key for --to-exchange (default: each message''s own)')
            [CompletionResult]::new('--routing-key', '--routing-key', [CompletionResultType]::ParameterName, 'Routing key for --to-exchange (default: each message''s own)')
            [CompletionResult]::new('--prefetch', '--prefetch', [CompletionResultType]::ParameterName, 'Messages in flight: the consumer''s prefetch and the destination''s confirm window')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;set-policy' {
            [CompletionResult]::new('--apply-to', '--apply-to', [CompletionResultType]::ParameterName, 'What the policy applies to')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Where several policies match one queue or exchange, the highest priority wins')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;clear-policy' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;add-user' {
            [CompletionResult]::new('--tags', '--tags', [CompletionResultType]::ParameterName, 'Tags, comma-separated (administrator, monitoring, policymaker, management, ...)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from stdin (its first line, without the line break)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;delete-user' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;set-permissions' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'Virtual host (default: the URL''s)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;add-vhost' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;delete-vhost' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;definitions' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the broker''s definitions (RabbitMQ''s JSON) to FILE, or stdout')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Create what a definitions file (RabbitMQ''s JSON) describes, keeping what exists')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;definitions;export' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;definitions;import' {
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;definitions;help' {
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the broker''s definitions (RabbitMQ''s JSON) to FILE, or stdout')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Create what a definitions file (RabbitMQ''s JSON) describes, keeping what exists')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;definitions;help;export' {
            break
        }
        'rmq;definitions;help;import' {
            break
        }
        'rmq;definitions;help;help' {
            break
        }
        'rmq;close-connection' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'The reason the client is told (default: the broker''s, "Closed via management plugin")')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Management API base URL (default: the broker URL''s host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;await-startup' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds (exit 69)')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Also wait for the management API at this base URL')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;perf' {
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Producers, each on its own connection')
            [CompletionResult]::new('--producers', '--producers', [CompletionResultType]::ParameterName, 'Producers, each on its own connection')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Consumers, each on its own connection')
            [CompletionResult]::new('--consumers', '--consumers', [CompletionResultType]::ParameterName, 'Consumers, each on its own connection')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Message size in bytes (at least 14)')
            [CompletionResult]::new('--size', '--size', [CompletionResultType]::ParameterName, 'Message size in bytes (at least 14)')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Messages per second per producer (default: as fast as possible)')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Messages per second per producer (default: as fast as possible)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Publisher confirms with this many outstanding (default: no confirms)')
            [CompletionResult]::new('--confirm', '--confirm', [CompletionResultType]::ParameterName, 'Publisher confirms with this many outstanding (default: no confirms)')
            [CompletionResult]::new('-A', '-A ', [CompletionResultType]::ParameterName, 'Acknowledge with `multiple` every N messages (default: each message)')
            [CompletionResult]::new('--multi-ack-every', '--multi-ack-every', [CompletionResultType]::ParameterName, 'Acknowledge with `multiple` every N messages (default: each message)')
            [CompletionResult]::new('--qos', '--qos', [CompletionResultType]::ParameterName, 'Consumer prefetch (basic.qos), 0 for unlimited')
            [CompletionResult]::new('-z', '-z', [CompletionResultType]::ParameterName, 'Run for this many seconds (default: until Ctrl-C or the counts are reached)')
            [CompletionResult]::new('--time', '--time', [CompletionResultType]::ParameterName, 'Run for this many seconds (default: until Ctrl-C or the counts are reached)')
            [CompletionResult]::new('-C', '-C ', [CompletionResultType]::ParameterName, 'Messages each producer sends')
            [CompletionResult]::new('--pmessages', '--pmessages', [CompletionResultType]::ParameterName, 'Messages each producer sends')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Messages each consumer receives')
            [CompletionResult]::new('--cmessages', '--cmessages', [CompletionResultType]::ParameterName, 'Messages each consumer receives')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Message flags: `persistent` (durable queues, delivery_mode 2)')
            [CompletionResult]::new('--flag', '--flag', [CompletionResultType]::ParameterName, 'Message flags: `persistent` (durable queues, delivery_mode 2)')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'Queue name (default: generated, deleted at the end)')
            [CompletionResult]::new('--queue', '--queue', [CompletionResultType]::ParameterName, 'Queue name (default: generated, deleted at the end)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Publish to this exchange (declared with --type) instead of the default exchange')
            [CompletionResult]::new('--exchange', '--exchange', [CompletionResultType]::ParameterName, 'Publish to this exchange (declared with --type) instead of the default exchange')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Exchange type for --exchange')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Exchange type for --exchange')
            [CompletionResult]::new('--queues', '--queues', [CompletionResultType]::ParameterName, 'Spread producers and consumers over this many queues')
            [CompletionResult]::new('--queue-args', '--queue-args', [CompletionResultType]::ParameterName, 'Arguments for the declared queues, as a JSON object (e.g. ''{"x-expires": 60000}'')')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Consumers use automatic acknowledgement (no-ack)')
            [CompletionResult]::new('--autoack', '--autoack', [CompletionResultType]::ParameterName, 'Consumers use automatic acknowledgement (no-ack)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;serve' {
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Address to listen on (loopback by default: exposing a broker is a choice)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'AMQP port; 0 picks a free one and prints it')
            [CompletionResult]::new('--mgmt-port', '--mgmt-port', [CompletionResultType]::ParameterName, 'Management HTTP API port (RabbitMQ-compatible /api and Prometheus /metrics); 0 picks a free one')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for durable queues, exchanges, bindings and persistent messages [default: $XDG_DATA_HOME/rmq, else ~/.local/share/rmq]')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'An administrator as NAME:PASSWORD with full permissions on `/` and every --vhost (repeatable). When no user exists at all, `guest:guest` is created (loopback only)')
            [CompletionResult]::new('--definitions', '--definitions', [CompletionResultType]::ParameterName, 'Load users, vhosts, permissions, exchanges, queues and bindings from a RabbitMQ definitions export (JSON) at start')
            [CompletionResult]::new('--vhost', '--vhost', [CompletionResultType]::ParameterName, 'A virtual host to create at start (repeatable); `/` always exists')
            [CompletionResult]::new('--heartbeat', '--heartbeat', [CompletionResultType]::ParameterName, 'Heartbeat interval proposed to clients, in seconds (0 disables)')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest accepted message body, in bytes (RabbitMQ 3.10: 128 MiB)')
            [CompletionResult]::new('--consumer-timeout', '--consumer-timeout', [CompletionResultType]::ParameterName, 'Close a channel (406) whose delivery stays unacknowledged this long, requeueing it (RabbitMQ''s consumer_timeout); 0 disables')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve amqps (and the management API over https) with this PEM certificate chain, leaf first (RabbitMQ''s ssl_options.certfile). Plain AMQP keeps being served')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The PEM private key of --tls-cert (ssl_options.keyfile)')
            [CompletionResult]::new('--tls-port', '--tls-port', [CompletionResultType]::ParameterName, 'amqps port (RabbitMQ: 5671); 0 picks a free one and prints it')
            [CompletionResult]::new('--tls-ca-cert', '--tls-ca-cert', [CompletionResultType]::ParameterName, 'PEM CA certificates that client certificates must be signed by (ssl_options.cacertfile)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Refuse new connections (530 NOT_ALLOWED at connection.open) while this many are open (RabbitMQ''s connection_max) [default: unlimited]')
            [CompletionResult]::new('--memory-high-watermark', '--memory-high-watermark', [CompletionResultType]::ParameterName, 'Block publishing connections while the broker''s memory (RSS) is above this: a fraction of RAM (0.4; the cgroup limit counts when lower) or a size (512MiB, 2GB, bytes) (RabbitMQ''s vm_memory_high_watermark)')
            [CompletionResult]::new('--disk-free-limit', '--disk-free-limit', [CompletionResultType]::ParameterName, 'Block publishing connections while the data directory''s filesystem has less free space than this (50MB, 1GiB, bytes) (RabbitMQ''s disk_free_limit); not checked with --in-memory')
            [CompletionResult]::new('--log-segment-size', '--log-segment-size', [CompletionResultType]::ParameterName, 'Size of the segment files of a durable queue''s message log (16MiB, 64KiB, bytes): disk space is reclaimed a segment at a time')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (timestamp, level, module, message) or as one JSON object per line for log shippers (default: RMQ_LOG_FORMAT, else text). RUST_LOG filters')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--in-memory', '--in-memory', [CompletionResultType]::ParameterName, 'Keep everything in memory: nothing survives a restart')
            [CompletionResult]::new('--tls-verify-peer', '--tls-verify-peer', [CompletionResultType]::ParameterName, 'Require amqps clients to present a certificate signed by --tls-ca-cert, refusing the handshake otherwise (verify_peer, fail_if_no_peer_cert = true). The https API does not ask for client certificates')
            [CompletionResult]::new('--tls-peer-cert-optional', '--tls-peer-cert-optional', [CompletionResultType]::ParameterName, 'With --tls-verify-peer: accept clients that present no certificate, still refusing invalid ones (fail_if_no_peer_cert = false)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only log errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only log errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;tail' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--binding-key', '--binding-key', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--match-header', '--match-header', [CompletionResultType]::ParameterName, 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Headers-exchange binding: all headers must match, or any')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds overall')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds without a message')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--save-dir', '--save-dir', [CompletionResultType]::ParameterName, 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;tap' {
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--binding-key', '--binding-key', [CompletionResultType]::ParameterName, 'Binding key (repeatable; needs an exchange)')
            [CompletionResult]::new('--match-header', '--match-header', [CompletionResultType]::ParameterName, 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Headers-exchange binding: all headers must match, or any')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after N messages')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds overall')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Give up after this many seconds without a message')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message')
            [CompletionResult]::new('--save-dir', '--save-dir', [CompletionResultType]::ParameterName, 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;config' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'The resolved settings and their sources (passwords shown as ***)')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'The config file rmq reads (whether or not it exists)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;config;show' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;config;path' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'The resolved settings and their sources (passwords shown as ***)')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'The config file rmq reads (whether or not it exists)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;config;help;show' {
            break
        }
        'rmq;config;help;path' {
            break
        }
        'rmq;config;help;help' {
            break
        }
        'rmq;tutorial' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;generate' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;generate;completions' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Write the file(s) into this directory instead of stdout')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;generate;man' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Write rmq.1 and a page per subcommand (rmq-send.1, ...) into this directory, replacing any rmq*.1 there, instead of printing rmq.1')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format (default: table on a terminal, tsv otherwise; raw for messages)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'CA certificates (PEM) to verify the broker''s TLS certificate with, for amqps:// and an https:// management API, instead of the system''s trust store')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'Client certificate (PEM) for brokers that verify peers; needs --tls-key-file')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'Private key (PEM) of --tls-cert-file')
            [CompletionResult]::new('--reconnect-timeout', '--reconnect-timeout', [CompletionResultType]::ParameterName, 'Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)')
            [CompletionResult]::new('--blocked-timeout', '--blocked-timeout', [CompletionResultType]::ParameterName, 'Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify the broker''s TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No notes, ready lines or progress bars on stderr (results and errors still print)')
            [CompletionResult]::new('--no-reconnect', '--no-reconnect', [CompletionResultType]::ParameterName, 'Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'rmq;generate;help' {
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;generate;help;completions' {
            break
        }
        'rmq;generate;help;man' {
            break
        }
        'rmq;generate;help;help' {
            break
        }
        'rmq;help' {
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Publish messages to a queue (declaring it if needed), with publisher confirms')
            [CompletionResult]::new('receive', 'receive', [CompletionResultType]::ParameterValue, 'Consume messages from a queue (or an exchange) and print them')
            [CompletionResult]::new('worker', 'worker', [CompletionResultType]::ParameterValue, 'Process a queue''s messages one at a time (tutorial 2), optionally with a command per message')
            [CompletionResult]::new('emit-log', 'emit-log', [CompletionResultType]::ParameterValue, 'Publish to an exchange, declaring it like the tutorials'' emit_log (tutorials 3–5)')
            [CompletionResult]::new('rpc-serve', 'rpc-serve', [CompletionResultType]::ParameterValue, 'Answer RPC requests from a queue (tutorial 6''s server)')
            [CompletionResult]::new('rpc-call', 'rpc-call', [CompletionResultType]::ParameterValue, 'Send RPC requests and print the replies in request order (tutorial 6''s client)')
            [CompletionResult]::new('bind', 'bind', [CompletionResultType]::ParameterValue, 'Bind a queue (or exchange) to an exchange')
            [CompletionResult]::new('unbind', 'unbind', [CompletionResultType]::ParameterValue, 'Remove a binding')
            [CompletionResult]::new('declare', 'declare', [CompletionResultType]::ParameterValue, 'Declare a queue or an exchange')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a queue or an exchange')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove every ready message from a queue')
            [CompletionResult]::new('list-queues', 'list-queues', [CompletionResultType]::ParameterValue, 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)')
            [CompletionResult]::new('list-exchanges', 'list-exchanges', [CompletionResultType]::ParameterValue, 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)')
            [CompletionResult]::new('list-bindings', 'list-bindings', [CompletionResultType]::ParameterValue, 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)')
            [CompletionResult]::new('list-connections', 'list-connections', [CompletionResultType]::ParameterValue, 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)')
            [CompletionResult]::new('list-consumers', 'list-consumers', [CompletionResultType]::ParameterValue, 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)')
            [CompletionResult]::new('list-vhosts', 'list-vhosts', [CompletionResultType]::ParameterValue, 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)')
            [CompletionResult]::new('list-channels', 'list-channels', [CompletionResultType]::ParameterValue, 'List channels through the management HTTP API (like `rabbitmqctl list_channels`)')
            [CompletionResult]::new('list-users', 'list-users', [CompletionResultType]::ParameterValue, 'List users through the management HTTP API (like `rabbitmqctl list_users`)')
            [CompletionResult]::new('list-permissions', 'list-permissions', [CompletionResultType]::ParameterValue, 'List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)')
            [CompletionResult]::new('list-policies', 'list-policies', [CompletionResultType]::ParameterValue, 'List policies through the management HTTP API (like `rabbitmqctl list_policies`)')
            [CompletionResult]::new('overview', 'overview', [CompletionResultType]::ParameterValue, 'A one-screen summary of the broker: versions, totals, rates, listeners')
            [CompletionResult]::new('topology', 'topology', [CompletionResultType]::ParameterValue, 'Draw a vhost''s exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid')
            [CompletionResult]::new('move', 'move', [CompletionResultType]::ParameterValue, 'Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)')
            [CompletionResult]::new('set-policy', 'set-policy', [CompletionResultType]::ParameterValue, 'Set a policy (like `rabbitmqctl set_policy`)')
            [CompletionResult]::new('clear-policy', 'clear-policy', [CompletionResultType]::ParameterValue, 'Remove a policy (like `rabbitmqctl clear_policy`)')
            [CompletionResult]::new('add-user', 'add-user', [CompletionResultType]::ParameterValue, 'Create a user (like `rabbitmqctl add_user`)')
            [CompletionResult]::new('delete-user', 'delete-user', [CompletionResultType]::ParameterValue, 'Delete a user (like `rabbitmqctl delete_user`)')
            [CompletionResult]::new('set-permissions', 'set-permissions', [CompletionResultType]::ParameterValue, 'Set a user''s permissions in a vhost (like `rabbitmqctl set_permissions`)')
            [CompletionResult]::new('add-vhost', 'add-vhost', [CompletionResultType]::ParameterValue, 'Create a virtual host (like `rabbitmqctl add_vhost`)')
            [CompletionResult]::new('delete-vhost', 'delete-vhost', [CompletionResultType]::ParameterValue, 'Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)')
            [CompletionResult]::new('definitions', 'definitions', [CompletionResultType]::ParameterValue, 'Export or import the broker''s definitions (RabbitMQ''s JSON)')
            [CompletionResult]::new('close-connection', 'close-connection', [CompletionResultType]::ParameterValue, 'Close a client connection, telling it why (like `rabbitmqctl close_connection`)')
            [CompletionResult]::new('await-startup', 'await-startup', [CompletionResultType]::ParameterValue, 'Wait until the broker accepts connections (like `rabbitmqctl await_startup`)')
            [CompletionResult]::new('perf', 'perf', [CompletionResultType]::ParameterValue, 'Measure throughput and latency against a broker (PerfTest''s flags)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the embedded AMQP 0-9-1 broker in the foreground')
            [CompletionResult]::new('tail', 'tail', [CompletionResultType]::ParameterValue, 'Watch the messages flowing through an exchange, without taking them from anyone')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the connection settings in use (profiles, config file), passwords masked')
            [CompletionResult]::new('tutorial', 'tutorial', [CompletionResultType]::ParameterValue, 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Generate shell completions or man pages')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'rmq;help;send' {
            break
        }
        'rmq;help;receive' {
            break
        }
        'rmq;help;worker' {
            break
        }
        'rmq;help;emit-log' {
            break
        }
        'rmq;help;rpc-serve' {
            break
        }
        'rmq;help;rpc-call' {
            break
        }
        'rmq;help;bind' {
            break
        }
        'rmq;help;unbind' {
            break
        }
        'rmq;help;declare' {
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Declare a queue (prints its name, messages and consumers)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Declare an exchange')
            break
        }
        'rmq;help;declare;queue' {
            break
        }
        'rmq;help;declare;exchange' {
            break
        }
        'rmq;help;delete' {
            [CompletionResult]::new('queue', 'queue', [CompletionResultType]::ParameterValue, 'Delete a queue (and its messages)')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Delete an exchange (and its bindings)')
            break
        }
        'rmq;help;delete;queue' {
            break
        }
        'rmq;help;delete;exchange' {
            break
        }
        'rmq;help;purge' {
            break
        }
        'rmq;help;list-queues' {
            break
        }
        'rmq;help;list-exchanges' {
            break
        }
        'rmq;help;list-bindings' {
            break
        }
        'rmq;help;list-connections' {
            break
        }
        'rmq;help;list-consumers' {
            break
        }
        'rmq;help;list-vhosts' {
            break
        }
        'rmq;help;list-channels' {
            break
        }
        'rmq;help;list-users' {
            break
        }
        'rmq;help;list-permissions' {
            break
        }
        'rmq;help;list-policies' {
            break
        }
        'rmq;help;overview' {
            break
        }
        'rmq;help;topology' {
            break
        }
        'rmq;help;move' {
            break
        }
        'rmq;help;set-policy' {
            break
        }
        'rmq;help;clear-policy' {
            break
        }
        'rmq;help;add-user' {
            break
        }
        'rmq;help;delete-user' {
            break
        }
        'rmq;help;set-permissions' {
            break
        }
        'rmq;help;add-vhost' {
            break
        }
        'rmq;help;delete-vhost' {
            break
        }
        'rmq;help;definitions' {
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write the broker''s definitions (RabbitMQ''s JSON) to FILE, or stdout')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Create what a definitions file (RabbitMQ''s JSON) describes, keeping what exists')
            break
        }
        'rmq;help;definitions;export' {
            break
        }
        'rmq;help;definitions;import' {
            break
        }
        'rmq;help;close-connection' {
            break
        }
        'rmq;help;await-startup' {
            break
        }
        'rmq;help;perf' {
            break
        }
        'rmq;help;serve' {
            break
        }
        'rmq;help;tail' {
            break
        }
        'rmq;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'The resolved settings and their sources (passwords shown as ***)')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'The config file rmq reads (whether or not it exists)')
            break
        }
        'rmq;help;config;show' {
            break
        }
        'rmq;help;config;path' {
            break
        }
        'rmq;help;tutorial' {
            break
        }
        'rmq;help;generate' {
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir')
            break
        }
        'rmq;help;generate;completions' {
            break
        }
        'rmq;help;generate;man' {
            break
        }
        'rmq;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
