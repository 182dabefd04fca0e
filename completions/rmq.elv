
use builtin;
use str;

set edit:completion:arg-completer[rmq] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'rmq'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'rmq'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand send 'Publish messages to a queue (declaring it if needed), with publisher confirms'
            cand receive 'Consume messages from a queue (or an exchange) and print them'
            cand worker 'Process a queue''s messages one at a time (tutorial 2), optionally with a command per message'
            cand emit-log 'Publish to an exchange, declaring it like the tutorials'' emit_log (tutorials 3–5)'
            cand rpc-serve 'Answer RPC requests from a queue (tutorial 6''s server)'
            cand rpc-call 'Send RPC requests and print the replies in request order (tutorial 6''s client)'
            cand bind 'Bind a queue (or exchange) to an exchange'
            cand unbind 'Remove a binding'
            cand declare 'Declare a queue or an exchange'
            cand delete 'Delete a queue or an exchange'
            cand purge 'Remove every ready message from a queue'
            cand list-queues 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)'
            cand list-exchanges 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)'
            cand list-bindings 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)'
            cand list-connections 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)'
            cand list-consumers 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)'
            cand list-vhosts 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)'
            cand overview 'A one-screen summary of the broker: versions, totals, rates, listeners'
            cand perf 'Measure throughput and latency against a broker (PerfTest''s flags)'
            cand serve 'Run the embedded AMQP 0-9-1 broker in the foreground'
            cand tail 'Watch the messages flowing through an exchange, without taking them from anyone'
            cand tap 'Watch the messages flowing through an exchange, without taking them from anyone'
            cand config 'Show the connection settings in use (profiles, config file), passwords masked'
            cand tutorial 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`'
            cand generate 'Generate shell completions or man pages'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;send'= {
            cand --file 'Read the message(s) from this file instead of stdin'
            cand --input 'Input format: raw bytes, or rmq''s lossless JSON lines (from `receive --output jsonl`)'
            cand --replay-dir 'Send the messages that `receive --save-dir DIR` saved, in order, with their properties and typed headers (DIR/NNNNNN.json; the body from NNNNNN.body)'
            cand --exchange 'Publish to this exchange instead of the default one (no queue is declared)'
            cand --routing-key 'Routing key (default: QUEUE; with --input jsonl and --exchange, each line''s own key)'
            cand --type 'type property (application message type)'
            cand -n 'Send every message N times'
            cand --count 'Send every message N times'
            cand --confirm-window 'Most publisher confirms outstanding at once'
            cand --arguments 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}'''
            cand -H 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable'
            cand --header 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable'
            cand --content-type 'content_type property (MIME type), e.g. application/json'
            cand --content-encoding 'content_encoding property, e.g. gzip'
            cand --correlation-id 'correlation_id property (pairs RPC replies with requests)'
            cand --reply-to 'reply_to property (queue for the reply)'
            cand --expiration 'Per-message TTL in milliseconds'
            cand --priority 'Priority 0–9 (for queues with x-max-priority)'
            cand --message-id 'message_id property'
            cand --app-id 'app_id property'
            cand --user-id 'user_id property (RabbitMQ checks it equals the connection''s user)'
            cand --timestamp 'timestamp property, in seconds since the Unix epoch ("now" for the current time)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -l 'Send each line of the input as its own message'
            cand --lines 'Send each line of the input as its own message'
            cand --no-confirm 'Do not wait for publisher confirms (faster, but a refused message goes unnoticed)'
            cand --mandatory 'Fail (exit 1) if a message cannot be routed to any queue'
            cand --durable 'Create the queue durable (survives a broker restart) if it does not exist'
            cand --passive 'Only check that the queue exists (error if not); never create it'
            cand --no-declare 'Do not declare or check the queue at all'
            cand --persistent 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;receive'= {
            cand -n 'Stop after N messages'
            cand --count 'Stop after N messages'
            cand --timeout 'Give up after this many seconds overall'
            cand --idle-timeout 'Give up after this many seconds without a message'
            cand --prefetch 'Unacknowledged messages in flight (capped at --count so no extra message is taken)'
            cand --exchange 'Consume from this exchange through a queue bound to it (tutorials 3–5)'
            cand -k 'Binding key (repeatable; needs an exchange)'
            cand --binding-key 'Binding key (repeatable; needs an exchange)'
            cand --match-header 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)'
            cand --match 'Headers-exchange binding: all headers must match, or any'
            cand --type 'Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header)'
            cand -f 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --format 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --save-dir 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again'
            cand --arguments 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}'''
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --no-ack 'Let the broker forget each message as soon as it is sent (no acks, no redelivery)'
            cand --requeue 'Put each message back in the queue after printing it (nack with requeue)'
            cand --reject 'Reject each message after printing it: dropped, or dead-lettered if the queue says so'
            cand --durable 'Create the queue durable (survives a broker restart) if it does not exist'
            cand --passive 'Only check that the queue exists (error if not); never create it'
            cand --no-declare 'Do not declare or check the queue at all'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;worker'= {
            cand --exec 'Shell command run per message (sh -c), body on stdin; without it, the tutorial''s simulated work'
            cand --prefetch 'Unacknowledged messages this worker holds (1 = fair dispatch, as in the tutorial)'
            cand --concurrency 'Messages processed at once (the prefetch is raised to match)'
            cand --on-failure 'What a failed message becomes: requeued for another try, or rejected (dead-lettered if the queue has a DLX)'
            cand -n 'Stop after N messages'
            cand --count 'Stop after N messages'
            cand --dot-time 'Simulated work per ''.'' in the body (without --exec)'
            cand --arguments 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}'''
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --durable 'Create the queue durable (survives a broker restart) if it does not exist'
            cand --passive 'Only check that the queue exists (error if not); never create it'
            cand --no-declare 'Do not declare or check the queue at all'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;emit-log'= {
            cand -x 'Exchange to publish to'
            cand --exchange 'Exchange to publish to'
            cand -t 'Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)'
            cand --type 'Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)'
            cand -k 'Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)'
            cand --routing-key 'Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)'
            cand -H 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable'
            cand --header 'A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable'
            cand --content-type 'content_type property (MIME type), e.g. application/json'
            cand --content-encoding 'content_encoding property, e.g. gzip'
            cand --correlation-id 'correlation_id property (pairs RPC replies with requests)'
            cand --reply-to 'reply_to property (queue for the reply)'
            cand --expiration 'Per-message TTL in milliseconds'
            cand --priority 'Priority 0–9 (for queues with x-max-priority)'
            cand --message-id 'message_id property'
            cand --app-id 'app_id property'
            cand --user-id 'user_id property (RabbitMQ checks it equals the connection''s user)'
            cand --timestamp 'timestamp property, in seconds since the Unix epoch ("now" for the current time)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --durable 'Create the exchange durable if it does not exist'
            cand --mandatory 'Fail (exit 1) if no queue is bound to receive it'
            cand --persistent 'Mark messages persistent (delivery_mode 2): durable queues keep them across restarts'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;rpc-serve'= {
            cand --exec 'Shell command per request: request body on stdin, reply is its stdout'
            cand -n 'Stop after N requests'
            cand --count 'Stop after N requests'
            cand --prefetch 'Requests held at once (1 spreads load evenly over several servers)'
            cand --arguments 'Queue arguments as a JSON object, e.g. ''{"x-queue-type":"quorum","x-message-ttl":60000}'''
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --fib 'The tutorial''s demo: the request is n, the reply fib(n)'
            cand --durable 'Create the queue durable (survives a broker restart) if it does not exist'
            cand --passive 'Only check that the queue exists (error if not); never create it'
            cand --no-declare 'Do not declare or check the queue at all'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;rpc-call'= {
            cand --timeout 'Seconds to wait for all replies'
            cand --content-type 'content_type of the requests'
            cand -f 'Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)'
            cand --format 'Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;bind'= {
            cand --to-exchange 'Bind this exchange instead of a queue (exchange-to-exchange binding)'
            cand -k 'Routing/binding key'
            cand --key 'Routing/binding key'
            cand --arguments 'Binding arguments as a JSON object (headers exchanges match on them)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;unbind'= {
            cand --to-exchange 'Bind this exchange instead of a queue (exchange-to-exchange binding)'
            cand -k 'Routing/binding key'
            cand --key 'Routing/binding key'
            cand --arguments 'Binding arguments as a JSON object (headers exchanges match on them)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;declare'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand queue 'Declare a queue (prints its name, messages and consumers)'
            cand exchange 'Declare an exchange'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;declare;queue'= {
            cand --arguments 'Arguments as a JSON object (x-message-ttl, x-max-length, x-queue-type, x-dead-letter-exchange, ...)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --durable 'Survive a broker restart'
            cand --auto-delete 'Delete it when its last consumer goes'
            cand --passive 'Only check that it exists and report its counts'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;declare;exchange'= {
            cand -t 'direct, fanout, topic or headers'
            cand --type 'direct, fanout, topic or headers'
            cand --arguments 'Arguments as a JSON object (e.g. alternate-exchange)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --durable 'Survive a broker restart'
            cand --auto-delete 'Delete it when its last binding goes'
            cand --internal 'Only reachable through exchange-to-exchange bindings'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;declare;help'= {
            cand queue 'Declare a queue (prints its name, messages and consumers)'
            cand exchange 'Declare an exchange'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;declare;help;queue'= {
        }
        &'rmq;declare;help;exchange'= {
        }
        &'rmq;declare;help;help'= {
        }
        &'rmq;delete'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand queue 'Delete a queue (and its messages)'
            cand exchange 'Delete an exchange (and its bindings)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;delete;queue'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --if-unused 'Only if no consumer is attached'
            cand --if-empty 'Only if it holds no messages'
            cand --if-exists 'Succeed if it does not exist (without it, a missing queue is an error)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;delete;exchange'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --if-unused 'Only if nothing is bound to it'
            cand --if-exists 'Succeed if it does not exist (without it, a missing exchange is an error)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;delete;help'= {
            cand queue 'Delete a queue (and its messages)'
            cand exchange 'Delete an exchange (and its bindings)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;delete;help;queue'= {
        }
        &'rmq;delete;help;exchange'= {
        }
        &'rmq;delete;help;help'= {
        }
        &'rmq;purge'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-queues'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-exchanges'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-bindings'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-connections'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-consumers'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;list-vhosts'= {
            cand -p 'Virtual host (default: the URL''s)'
            cand --vhost 'Virtual host (default: the URL''s)'
            cand --name 'Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring'
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;overview'= {
            cand --api-url 'Management API base URL (default: the broker URL''s host, port 15672, same credentials)'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;perf'= {
            cand -x 'Producers, each on its own connection'
            cand --producers 'Producers, each on its own connection'
            cand -y 'Consumers, each on its own connection'
            cand --consumers 'Consumers, each on its own connection'
            cand -s 'Message size in bytes (at least 14)'
            cand --size 'Message size in bytes (at least 14)'
            cand -r 'Messages per second per producer (default: as fast as possible)'
            cand --rate 'Messages per second per producer (default: as fast as possible)'
            cand -c 'Publisher confirms with this many outstanding (default: no confirms)'
            cand --confirm 'Publisher confirms with this many outstanding (default: no confirms)'
            cand -A 'Acknowledge with `multiple` every N messages (default: each message)'
            cand --multi-ack-every 'Acknowledge with `multiple` every N messages (default: each message)'
            cand --qos 'Consumer prefetch (basic.qos), 0 for unlimited'
            cand -z 'Run for this many seconds (default: until Ctrl-C or the counts are reached)'
            cand --time 'Run for this many seconds (default: until Ctrl-C or the counts are reached)'
            cand -C 'Messages each producer sends'
            cand --pmessages 'Messages each producer sends'
            cand -D 'Messages each consumer receives'
            cand --cmessages 'Messages each consumer receives'
            cand -f 'Message flags: `persistent` (durable queues, delivery_mode 2)'
            cand --flag 'Message flags: `persistent` (durable queues, delivery_mode 2)'
            cand -u 'Queue name (default: generated, deleted at the end)'
            cand --queue 'Queue name (default: generated, deleted at the end)'
            cand -e 'Publish to this exchange (declared with --type) instead of the default exchange'
            cand --exchange 'Publish to this exchange (declared with --type) instead of the default exchange'
            cand -t 'Exchange type for --exchange'
            cand --type 'Exchange type for --exchange'
            cand --queues 'Spread producers and consumers over this many queues'
            cand --queue-args 'Arguments for the declared queues, as a JSON object (e.g. ''{"x-expires": 60000}'')'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -a 'Consumers use automatic acknowledgement (no-ack)'
            cand --autoack 'Consumers use automatic acknowledgement (no-ack)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;serve'= {
            cand --bind 'Address to listen on (loopback by default: exposing a broker is a choice)'
            cand --port 'AMQP port; 0 picks a free one and prints it'
            cand --mgmt-port 'Management HTTP API port (RabbitMQ-compatible /api and Prometheus /metrics); 0 picks a free one'
            cand --data-dir 'Directory for durable queues, exchanges, bindings and persistent messages [default: $XDG_DATA_HOME/rmq, else ~/.local/share/rmq]'
            cand --user 'A user as NAME:PASSWORD (repeatable). Without any, `guest:guest` exists (loopback only)'
            cand --vhost 'A virtual host to create at start (repeatable); `/` always exists'
            cand --heartbeat 'Heartbeat interval proposed to clients, in seconds (0 disables)'
            cand --max-message-size 'Largest accepted message body, in bytes (RabbitMQ 3.10: 128 MiB)'
            cand --consumer-timeout 'Close a channel (406) whose delivery stays unacknowledged this long, requeueing it (RabbitMQ''s consumer_timeout); 0 disables'
            cand --max-connections 'Refuse new connections (530 NOT_ALLOWED at connection.open) while this many are open (RabbitMQ''s connection_max) [default: unlimited]'
            cand --memory-high-watermark 'Block publishing connections while the broker''s memory (RSS) is above this: a fraction of RAM (0.4; the cgroup limit counts when lower) or a size (512MiB, 2GB, bytes) (RabbitMQ''s vm_memory_high_watermark)'
            cand --disk-free-limit 'Block publishing connections while the data directory''s filesystem has less free space than this (50MB, 1GiB, bytes) (RabbitMQ''s disk_free_limit); not checked with --in-memory'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --in-memory 'Keep everything in memory: nothing survives a restart'
            cand -q 'Only log errors'
            cand --quiet 'Only log errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;tail'= {
            cand -k 'Binding key (repeatable; needs an exchange)'
            cand --binding-key 'Binding key (repeatable; needs an exchange)'
            cand --match-header 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)'
            cand --match 'Headers-exchange binding: all headers must match, or any'
            cand -n 'Stop after N messages'
            cand --count 'Stop after N messages'
            cand --timeout 'Give up after this many seconds overall'
            cand --idle-timeout 'Give up after this many seconds without a message'
            cand -f 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --format 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --save-dir 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;tap'= {
            cand -k 'Binding key (repeatable; needs an exchange)'
            cand --binding-key 'Binding key (repeatable; needs an exchange)'
            cand --match-header 'Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)'
            cand --match 'Headers-exchange binding: all headers must match, or any'
            cand -n 'Stop after N messages'
            cand --count 'Stop after N messages'
            cand --timeout 'Give up after this many seconds overall'
            cand --idle-timeout 'Give up after this many seconds without a message'
            cand -f 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --format 'Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message'
            cand --save-dir 'Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;config'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'The resolved settings and their sources (passwords shown as ***)'
            cand path 'The config file rmq reads (whether or not it exists)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;config;show'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;config;path'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;config;help'= {
            cand show 'The resolved settings and their sources (passwords shown as ***)'
            cand path 'The config file rmq reads (whether or not it exists)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;config;help;show'= {
        }
        &'rmq;config;help;path'= {
        }
        &'rmq;config;help;help'= {
        }
        &'rmq;tutorial'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;generate'= {
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand completions 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir'
            cand man 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;generate;completions'= {
            cand --dir 'Write the file(s) into this directory instead of stdout'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;generate;man'= {
            cand --dir 'Write rmq.1 and a page per subcommand (rmq-send.1, ...) into this directory, replacing any rmq*.1 there, instead of printing rmq.1'
            cand --url 'Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile''s, then amqp://guest:guest@localhost:5672/%2F'
            cand --profile 'Use this profile of the config file (default: RMQ_PROFILE, then the file''s default_profile)'
            cand --config 'Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)'
            cand -o 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand --output 'Output format (default: table on a terminal, tsv otherwise; raw for messages)'
            cand -q 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand --quiet 'No notes, ready lines or progress bars on stderr (results and errors still print)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'rmq;generate;help'= {
            cand completions 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir'
            cand man 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;generate;help;completions'= {
        }
        &'rmq;generate;help;man'= {
        }
        &'rmq;generate;help;help'= {
        }
        &'rmq;help'= {
            cand send 'Publish messages to a queue (declaring it if needed), with publisher confirms'
            cand receive 'Consume messages from a queue (or an exchange) and print them'
            cand worker 'Process a queue''s messages one at a time (tutorial 2), optionally with a command per message'
            cand emit-log 'Publish to an exchange, declaring it like the tutorials'' emit_log (tutorials 3–5)'
            cand rpc-serve 'Answer RPC requests from a queue (tutorial 6''s server)'
            cand rpc-call 'Send RPC requests and print the replies in request order (tutorial 6''s client)'
            cand bind 'Bind a queue (or exchange) to an exchange'
            cand unbind 'Remove a binding'
            cand declare 'Declare a queue or an exchange'
            cand delete 'Delete a queue or an exchange'
            cand purge 'Remove every ready message from a queue'
            cand list-queues 'List queues through the management HTTP API (like `rabbitmqctl list_queues`)'
            cand list-exchanges 'List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)'
            cand list-bindings 'List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)'
            cand list-connections 'List client connections through the management HTTP API (like `rabbitmqctl list_connections`)'
            cand list-consumers 'List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)'
            cand list-vhosts 'List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)'
            cand overview 'A one-screen summary of the broker: versions, totals, rates, listeners'
            cand perf 'Measure throughput and latency against a broker (PerfTest''s flags)'
            cand serve 'Run the embedded AMQP 0-9-1 broker in the foreground'
            cand tail 'Watch the messages flowing through an exchange, without taking them from anyone'
            cand config 'Show the connection settings in use (profiles, config file), passwords masked'
            cand tutorial 'Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`'
            cand generate 'Generate shell completions or man pages'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'rmq;help;send'= {
        }
        &'rmq;help;receive'= {
        }
        &'rmq;help;worker'= {
        }
        &'rmq;help;emit-log'= {
        }
        &'rmq;help;rpc-serve'= {
        }
        &'rmq;help;rpc-call'= {
        }
        &'rmq;help;bind'= {
        }
        &'rmq;help;unbind'= {
        }
        &'rmq;help;declare'= {
            cand queue 'Declare a queue (prints its name, messages and consumers)'
            cand exchange 'Declare an exchange'
        }
        &'rmq;help;declare;queue'= {
        }
        &'rmq;help;declare;exchange'= {
        }
        &'rmq;help;delete'= {
            cand queue 'Delete a queue (and its messages)'
            cand exchange 'Delete an exchange (and its bindings)'
        }
        &'rmq;help;delete;queue'= {
        }
        &'rmq;help;delete;exchange'= {
        }
        &'rmq;help;purge'= {
        }
        &'rmq;help;list-queues'= {
        }
        &'rmq;help;list-exchanges'= {
        }
        &'rmq;help;list-bindings'= {
        }
        &'rmq;help;list-connections'= {
        }
        &'rmq;help;list-consumers'= {
        }
        &'rmq;help;list-vhosts'= {
        }
        &'rmq;help;overview'= {
        }
        &'rmq;help;perf'= {
        }
        &'rmq;help;serve'= {
        }
        &'rmq;help;tail'= {
        }
        &'rmq;help;config'= {
            cand show 'The resolved settings and their sources (passwords shown as ***)'
            cand path 'The config file rmq reads (whether or not it exists)'
        }
        &'rmq;help;config;show'= {
        }
        &'rmq;help;config;path'= {
        }
        &'rmq;help;tutorial'= {
        }
        &'rmq;help;generate'= {
            cand completions 'Shell completions: one shell''s script on stdout, or every shell''s file with --dir'
            cand man 'Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir'
        }
        &'rmq;help;generate;completions'= {
        }
        &'rmq;help;generate;man'= {
        }
        &'rmq;help;help'= {
        }
    ]
    $completions[$command]
}
