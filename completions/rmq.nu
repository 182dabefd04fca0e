module completions {

  def "nu-complete rmq output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # A command-line toolkit for AMQP 0-9-1 brokers, with an embedded RabbitMQ-compatible broker
  export extern rmq [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq send input" [] {
    [ "raw" "jsonl" ]
  }

  def "nu-complete rmq send output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Publish messages to a queue (declaring it if needed), with publisher confirms
  export extern "rmq send" [
    --lines(-l)               # Send each line of the input as its own message
    --file: path              # Read the message(s) from this file instead of stdin
    --input: string@"nu-complete rmq send input" # Input format: raw bytes, or rmq's lossless JSON lines (from `receive --output jsonl`)
    --replay-dir: path        # Send the messages that `receive --save-dir DIR` saved, in order, with their properties and typed headers (DIR/NNNNNN.json; the body from NNNNNN.body)
    --exchange: string        # Publish to this exchange instead of the default one (no queue is declared)
    --routing-key: string     # Routing key (default: QUEUE; with --input jsonl and --exchange, each line's own key)
    --type: string            # type property (application message type)
    --count(-n): string       # Send every message N times
    --no-confirm              # Do not wait for publisher confirms (faster, but a refused message goes unnoticed)
    --confirm-window: string  # Most publisher confirms outstanding at once
    --mandatory               # Fail (exit 1) if a message cannot be routed to any queue
    --durable                 # Create the queue durable (survives a broker restart) if it does not exist
    --arguments: string       # Queue arguments as a JSON object, e.g. '{"x-queue-type":"quorum","x-message-ttl":60000}'
    --passive                 # Only check that the queue exists (error if not); never create it
    --no-declare              # Do not declare or check the queue at all
    --header(-H): string      # A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable
    --persistent              # Mark messages persistent (delivery_mode 2): durable queues keep them across restarts
    --content-type: string    # content_type property (MIME type), e.g. application/json
    --content-encoding: string # content_encoding property, e.g. gzip
    --correlation-id: string  # correlation_id property (pairs RPC replies with requests)
    --reply-to: string        # reply_to property (queue for the reply)
    --expiration: string      # Per-message TTL in milliseconds
    --priority: string        # Priority 0–9 (for queues with x-max-priority)
    --message-id: string      # message_id property
    --app-id: string          # app_id property
    --user-id: string         # user_id property (RabbitMQ checks it equals the connection's user)
    --timestamp: string       # timestamp property, in seconds since the Unix epoch ("now" for the current time)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq send output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue: string             # Queue to send to (through the default exchange). With --exchange, the routing key
    ...message: string        # The message; several words are joined with spaces, as in the tutorials
  ]

  def "nu-complete rmq receive match_mode" [] {
    [ "all" "any" ]
  }

  def "nu-complete rmq receive output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Consume messages from a queue (or an exchange) and print them
  export extern "rmq receive" [
    --count(-n): string       # Stop after N messages
    --timeout: string         # Give up after this many seconds overall
    --idle-timeout: string    # Give up after this many seconds without a message
    --prefetch: string        # Unacknowledged messages in flight (capped at --count so no extra message is taken)
    --no-ack                  # Let the broker forget each message as soon as it is sent (no acks, no redelivery). With --count, --timeout or --idle-timeout each message is acked once printed instead: a no-ack consumer gets no prefetch limit, so what the broker pushed past the end would be lost; acked, it is requeued
    --requeue                 # Put each message back in the queue after printing it (nack with requeue)
    --reject                  # Reject each message after printing it: dropped, or dead-lettered if the queue says so
    --exchange: string        # Consume from this exchange through a queue bound to it (tutorials 3–5)
    --binding-key(-k): string # Binding key (repeatable; needs an exchange)
    --match-header: string    # Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)
    --match: string@"nu-complete rmq receive match_mode" # Headers-exchange binding: all headers must match, or any
    --type: string            # Exchange type if it must be created (default: fanout; topic with -k; headers with --match-header)
    --format(-f): string      # Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message
    --save-dir: path          # Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again
    --durable                 # Create the queue durable (survives a broker restart) if it does not exist
    --arguments: string       # Queue arguments as a JSON object, e.g. '{"x-queue-type":"quorum","x-message-ttl":60000}'
    --passive                 # Only check that the queue exists (error if not); never create it
    --no-declare              # Do not declare or check the queue at all
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq receive output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue?: string            # Queue to consume from (optional with --exchange: a server-named exclusive queue is used)
  ]

  def "nu-complete rmq worker on_failure" [] {
    [ "requeue" "reject" ]
  }

  def "nu-complete rmq worker output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Process a queue's messages one at a time (tutorial 2), optionally with a command per message
  export extern "rmq worker" [
    --exec: string            # Shell command run per message (sh -c), body on stdin; without it, the tutorial's simulated work
    --prefetch: string        # Unacknowledged messages this worker holds (1 = fair dispatch, as in the tutorial)
    --concurrency: string     # Messages processed at once (the prefetch is raised to match)
    --on-failure: string@"nu-complete rmq worker on_failure" # What a failed message becomes: requeued for another try, or rejected (dead-lettered if the queue has a DLX)
    --count(-n): string       # Stop after N messages
    --dot-time: string        # Simulated work per '.' in the body (without --exec)
    --durable                 # Create the queue durable (survives a broker restart) if it does not exist
    --arguments: string       # Queue arguments as a JSON object, e.g. '{"x-queue-type":"quorum","x-message-ttl":60000}'
    --passive                 # Only check that the queue exists (error if not); never create it
    --no-declare              # Do not declare or check the queue at all
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq worker output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue: string             # Queue to work from
  ]

  def "nu-complete rmq emit-log output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Publish to an exchange, declaring it like the tutorials' emit_log (tutorials 3–5)
  export extern "rmq emit-log" [
    --exchange(-x): string    # Exchange to publish to
    --type(-t): string        # Exchange type if it must be created (default: fanout; topic with a routing key; headers with -H)
    --routing-key(-k): string # Routing key (severity in tutorial 4, `<facility>.<severity>` in tutorial 5)
    --durable                 # Create the exchange durable if it does not exist
    --mandatory               # Fail (exit 1) if no queue is bound to receive it
    --header(-H): string      # A header, KEY=VALUE (a string) or KEY:=JSON (typed: 5, true, {"$type":"i32","value":5}); repeatable
    --persistent              # Mark messages persistent (delivery_mode 2): durable queues keep them across restarts
    --content-type: string    # content_type property (MIME type), e.g. application/json
    --content-encoding: string # content_encoding property, e.g. gzip
    --correlation-id: string  # correlation_id property (pairs RPC replies with requests)
    --reply-to: string        # reply_to property (queue for the reply)
    --expiration: string      # Per-message TTL in milliseconds
    --priority: string        # Priority 0–9 (for queues with x-max-priority)
    --message-id: string      # message_id property
    --app-id: string          # app_id property
    --user-id: string         # user_id property (RabbitMQ checks it equals the connection's user)
    --timestamp: string       # timestamp property, in seconds since the Unix epoch ("now" for the current time)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq emit-log output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...message: string        # The message (words joined with spaces)
  ]

  def "nu-complete rmq rpc-serve output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Answer RPC requests from a queue (tutorial 6's server)
  export extern "rmq rpc-serve" [
    --exec: string            # Shell command per request: request body on stdin, reply is its stdout
    --fib                     # The tutorial's demo: the request is n, the reply fib(n)
    --count(-n): string       # Stop after N requests
    --prefetch: string        # Requests held at once (1 spreads load evenly over several servers)
    --durable                 # Create the queue durable (survives a broker restart) if it does not exist
    --arguments: string       # Queue arguments as a JSON object, e.g. '{"x-queue-type":"quorum","x-message-ttl":60000}'
    --passive                 # Only check that the queue exists (error if not); never create it
    --no-declare              # Do not declare or check the queue at all
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq rpc-serve output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue: string             # Queue the requests arrive on
  ]

  def "nu-complete rmq rpc-call output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Send RPC requests and print the replies in request order (tutorial 6's client)
  export extern "rmq rpc-call" [
    --timeout: string         # Seconds to wait for all replies
    --content-type: string    # content_type of the requests
    --format(-f): string      # Print each reply through a template ({body}, {correlation_id}, {headers.NAME}, ...; see `rmq receive --help`)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq rpc-call output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue: string             # Queue the server listens on
    ...requests: string       # Request bodies; each is a separate call, all sent at once
  ]

  def "nu-complete rmq bind output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Bind a queue (or exchange) to an exchange
  export extern "rmq bind" [
    --to-exchange: string     # Bind this exchange instead of a queue (exchange-to-exchange binding)
    --key(-k): string         # Routing/binding key
    --arguments: string       # Binding arguments as a JSON object (headers exchanges match on them)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq bind output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    exchange: string          # The source exchange
    queue?: string            # The queue to bind
  ]

  def "nu-complete rmq unbind output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Remove a binding
  export extern "rmq unbind" [
    --to-exchange: string     # Bind this exchange instead of a queue (exchange-to-exchange binding)
    --key(-k): string         # Routing/binding key
    --arguments: string       # Binding arguments as a JSON object (headers exchanges match on them)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq unbind output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    exchange: string          # The source exchange
    queue?: string            # The queue to bind
  ]

  def "nu-complete rmq declare output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Declare a queue or an exchange
  export extern "rmq declare" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq declare output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq declare queue output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Declare a queue (prints its name, messages and consumers)
  export extern "rmq declare queue" [
    --durable                 # Survive a broker restart
    --auto-delete             # Delete it when its last consumer goes
    --arguments: string       # Arguments as a JSON object (x-message-ttl, x-max-length, x-queue-type, x-dead-letter-exchange, ...)
    --passive                 # Only check that it exists and report its counts
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq declare queue output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Queue name
  ]

  def "nu-complete rmq declare exchange output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Declare an exchange
  export extern "rmq declare exchange" [
    --type(-t): string        # direct, fanout, topic or headers
    --durable                 # Survive a broker restart
    --auto-delete             # Delete it when its last binding goes
    --internal                # Only reachable through exchange-to-exchange bindings
    --arguments: string       # Arguments as a JSON object (e.g. alternate-exchange)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq declare exchange output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Exchange name
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq declare help" [
  ]

  # Declare a queue (prints its name, messages and consumers)
  export extern "rmq declare help queue" [
  ]

  # Declare an exchange
  export extern "rmq declare help exchange" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq declare help help" [
  ]

  def "nu-complete rmq delete output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Delete a queue or an exchange
  export extern "rmq delete" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq delete output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq delete queue output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Delete a queue (and its messages)
  export extern "rmq delete queue" [
    --if-unused               # Only if no consumer is attached
    --if-empty                # Only if it holds no messages
    --if-exists               # Succeed if it does not exist (without it, a missing queue is an error)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq delete queue output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Queue name
  ]

  def "nu-complete rmq delete exchange output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Delete an exchange (and its bindings)
  export extern "rmq delete exchange" [
    --if-unused               # Only if nothing is bound to it
    --if-exists               # Succeed if it does not exist (without it, a missing exchange is an error)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq delete exchange output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Exchange name
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq delete help" [
  ]

  # Delete a queue (and its messages)
  export extern "rmq delete help queue" [
  ]

  # Delete an exchange (and its bindings)
  export extern "rmq delete help exchange" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq delete help help" [
  ]

  def "nu-complete rmq purge output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Remove every ready message from a queue
  export extern "rmq purge" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq purge output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    queue: string             # Queue name
  ]

  def "nu-complete rmq list-queues output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List queues through the management HTTP API (like `rabbitmqctl list_queues`)
  export extern "rmq list-queues" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-queues output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show
  ]

  def "nu-complete rmq list-exchanges output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)
  export extern "rmq list-exchanges" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-exchanges output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-bindings output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)
  export extern "rmq list-bindings" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-bindings output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-connections output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List client connections through the management HTTP API (like `rabbitmqctl list_connections`)
  export extern "rmq list-connections" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-connections output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-consumers output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)
  export extern "rmq list-consumers" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-consumers output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-vhosts output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)
  export extern "rmq list-vhosts" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-vhosts output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-channels output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List channels through the management HTTP API (like `rabbitmqctl list_channels`)
  export extern "rmq list-channels" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-channels output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-users output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List users through the management HTTP API (like `rabbitmqctl list_users`)
  export extern "rmq list-users" [
    --name: string            # Only users whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-users output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-permissions output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)
  export extern "rmq list-permissions" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-permissions output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq list-policies output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # List policies through the management HTTP API (like `rabbitmqctl list_policies`)
  export extern "rmq list-policies" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --name: string            # Only rows whose name matches: a glob (`*`, `?`) or, without wildcards, a substring
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq list-policies output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    ...columns: string        # Columns to show (rabbitmqctl's info items)
  ]

  def "nu-complete rmq overview output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # A one-screen summary of the broker: versions, totals, rates, listeners
  export extern "rmq overview" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq overview output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq topology format" [] {
    [ "tree" "dot" "mermaid" ]
  }

  def "nu-complete rmq topology output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Draw a vhost's exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid
  export extern "rmq topology" [
    --format: string@"nu-complete rmq topology format" # How to draw it
    --vhost(-p): string       # Virtual host (default: the URL's)
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq topology output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq move output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)
  export extern "rmq move" [
    --count(-n): string       # Move at most N messages
    --to-url: string          # The destination broker (default: the source's)
    --to-exchange: string     # Publish to this exchange instead of a queue
    --routing-key(-k): string # Routing key for --to-exchange (default: each message's own)
    --prefetch: string        # Messages in flight: the consumer's prefetch and the destination's confirm window
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq move output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    source: string            # Queue to take the messages from
    destination?: string      # Queue to put them in (through the default exchange)
  ]

  def "nu-complete rmq set-policy apply_to" [] {
    [ "queues" "exchanges" "all" ]
  }

  def "nu-complete rmq set-policy output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Set a policy (like `rabbitmqctl set_policy`)
  export extern "rmq set-policy" [
    --apply-to: string@"nu-complete rmq set-policy apply_to" # What the policy applies to
    --priority: string        # Where several policies match one queue or exchange, the highest priority wins
    --vhost(-p): string       # Virtual host (default: the URL's)
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq set-policy output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Policy name
    pattern: string           # Regular expression matched against the names of queues and/or exchanges
    definition: string        # The settings, as a JSON object, e.g. '{"max-length":1000}'
  ]

  def "nu-complete rmq clear-policy output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Remove a policy (like `rabbitmqctl clear_policy`)
  export extern "rmq clear-policy" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq clear-policy output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Policy name
  ]

  def "nu-complete rmq add-user output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Create a user (like `rabbitmqctl add_user`)
  export extern "rmq add-user" [
    --password-stdin          # Read the password from stdin (its first line, without the line break)
    --tags: string            # Tags, comma-separated (administrator, monitoring, policymaker, management, ...)
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq add-user output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # User name
    password?: string         # Password (prefer --password-stdin)
  ]

  def "nu-complete rmq delete-user output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Delete a user (like `rabbitmqctl delete_user`)
  export extern "rmq delete-user" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq delete-user output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # User name
  ]

  def "nu-complete rmq set-permissions output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Set a user's permissions in a vhost (like `rabbitmqctl set_permissions`)
  export extern "rmq set-permissions" [
    --vhost(-p): string       # Virtual host (default: the URL's)
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq set-permissions output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    user: string              # User name
    conf: string              # Configure permission (regular expression)
    write: string             # Write permission (regular expression)
    read: string              # Read permission (regular expression)
  ]

  def "nu-complete rmq add-vhost output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Create a virtual host (like `rabbitmqctl add_vhost`)
  export extern "rmq add-vhost" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq add-vhost output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Virtual host name
  ]

  def "nu-complete rmq delete-vhost output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)
  export extern "rmq delete-vhost" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq delete-vhost output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Virtual host name
  ]

  def "nu-complete rmq definitions output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Export or import the broker's definitions (RabbitMQ's JSON)
  export extern "rmq definitions" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq definitions output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq definitions export output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Write the broker's definitions (RabbitMQ's JSON) to FILE, or stdout
  export extern "rmq definitions export" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq definitions export output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    file?: path               # Write here (replacing the file) instead of stdout
  ]

  def "nu-complete rmq definitions import output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Create what a definitions file (RabbitMQ's JSON) describes, keeping what exists
  export extern "rmq definitions import" [
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq definitions import output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    file: path                # The definitions file; `-` reads stdin
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq definitions help" [
  ]

  # Write the broker's definitions (RabbitMQ's JSON) to FILE, or stdout
  export extern "rmq definitions help export" [
  ]

  # Create what a definitions file (RabbitMQ's JSON) describes, keeping what exists
  export extern "rmq definitions help import" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq definitions help help" [
  ]

  def "nu-complete rmq close-connection output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Close a client connection, telling it why (like `rabbitmqctl close_connection`)
  export extern "rmq close-connection" [
    --reason: string          # The reason the client is told (default: the broker's, "Closed via management plugin")
    --api-url: string         # Management API base URL (default: the broker URL's host, port ?api_port= of the URL or 15672, same credentials, checked to serve that broker)
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq close-connection output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    name: string              # Connection name (the broker's, or the client-provided one)
  ]

  def "nu-complete rmq await-startup output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Wait until the broker accepts connections (like `rabbitmqctl await_startup`)
  export extern "rmq await-startup" [
    --timeout: string         # Give up after this many seconds (exit 69)
    --api-url: string         # Also wait for the management API at this base URL
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq await-startup output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq perf output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Measure throughput and latency against a broker (PerfTest's flags)
  export extern "rmq perf" [
    --producers(-x): string   # Producers, each on its own connection
    --consumers(-y): string   # Consumers, each on its own connection
    --size(-s): string        # Message size in bytes (at least 14)
    --rate(-r): string        # Messages per second per producer (default: as fast as possible)
    --confirm(-c): string     # Publisher confirms with this many outstanding (default: no confirms)
    --autoack(-a)             # Consumers use automatic acknowledgement (no-ack)
    --multi-ack-every(-A): string # Acknowledge with `multiple` every N messages (default: each message)
    --qos: string             # Consumer prefetch (basic.qos), 0 for unlimited
    --time(-z): string        # Run for this many seconds (default: until Ctrl-C or the counts are reached)
    --pmessages(-C): string   # Messages each producer sends
    --cmessages(-D): string   # Messages each consumer receives
    --flag(-f): string        # Message flags: `persistent` (durable queues, delivery_mode 2)
    --queue(-u): string       # Queue name (default: generated, deleted at the end)
    --exchange(-e): string    # Publish to this exchange (declared with --type) instead of the default exchange
    --type(-t): string        # Exchange type for --exchange
    --queues: string          # Spread producers and consumers over this many queues
    --queue-args: string      # Arguments for the declared queues, as a JSON object (e.g. '{"x-expires": 60000}')
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq perf output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq serve log_format" [] {
    [ "text" "json" ]
  }

  def "nu-complete rmq serve output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Run the embedded AMQP 0-9-1 broker in the foreground
  export extern "rmq serve" [
    --bind: string            # Address to listen on (loopback by default: exposing a broker is a choice)
    --port: string            # AMQP port; 0 picks a free one and prints it
    --mgmt-port: string       # Management HTTP API port (RabbitMQ-compatible /api and Prometheus /metrics); 0 picks a free one
    --data-dir: path          # Directory for durable queues, exchanges, bindings and persistent messages [default: $XDG_DATA_HOME/rmq, else ~/.local/share/rmq]
    --in-memory               # Keep everything in memory: nothing survives a restart
    --user: string            # An administrator as NAME:PASSWORD with full permissions on `/` and every --vhost (repeatable). When no user exists at all, `guest:guest` is created (loopback only)
    --definitions: path       # Load users, vhosts, permissions, exchanges, queues and bindings from a RabbitMQ definitions export (JSON) at start
    --vhost: string           # A virtual host to create at start (repeatable); `/` always exists
    --heartbeat: string       # Heartbeat interval proposed to clients, in seconds (0 disables)
    --max-message-size: string # Largest accepted message body, in bytes (RabbitMQ 3.10: 128 MiB)
    --consumer-timeout: string # Close a channel (406) whose delivery stays unacknowledged this long, requeueing it (RabbitMQ's consumer_timeout); 0 disables
    --tls-cert: path          # Serve amqps (and the management API over https) with this PEM certificate chain, leaf first (RabbitMQ's ssl_options.certfile). Plain AMQP keeps being served
    --tls-key: path           # The PEM private key of --tls-cert (ssl_options.keyfile)
    --tls-port: string        # amqps port (RabbitMQ: 5671); 0 picks a free one and prints it
    --tls-ca-cert: path       # PEM CA certificates that client certificates must be signed by (ssl_options.cacertfile)
    --tls-verify-peer         # Require amqps clients to present a certificate signed by --tls-ca-cert, refusing the handshake otherwise (verify_peer, fail_if_no_peer_cert = true). The https API does not ask for client certificates
    --tls-peer-cert-optional  # With --tls-verify-peer: accept clients that present no certificate, still refusing invalid ones (fail_if_no_peer_cert = false)
    --max-connections: string # Refuse new connections (530 NOT_ALLOWED at connection.open) while this many are open (RabbitMQ's connection_max) [default: unlimited]
    --memory-high-watermark: string # Block publishing connections while the broker's memory (RSS) is above this: a fraction of RAM (0.4; the cgroup limit counts when lower) or a size (512MiB, 2GB, bytes) (RabbitMQ's vm_memory_high_watermark)
    --disk-free-limit: string # Block publishing connections while the data directory's filesystem has less free space than this (50MB, 1GiB, bytes) (RabbitMQ's disk_free_limit); not checked with --in-memory
    --log-segment-size: string # Size of the segment files of a durable queue's message log (16MiB, 64KiB, bytes): disk space is reclaimed a segment at a time
    --quiet(-q)               # Only log errors
    --verbose(-v)             # Log more (repeat for more detail)
    --log-format: string@"nu-complete rmq serve log_format" # Log lines as text (timestamp, level, module, message) or as one JSON object per line for log shippers (default: RMQ_LOG_FORMAT, else text). RUST_LOG filters
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq serve output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq tail match_mode" [] {
    [ "all" "any" ]
  }

  def "nu-complete rmq tail output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Watch the messages flowing through an exchange, without taking them from anyone
  export extern "rmq tail" [
    --binding-key(-k): string # Binding key (repeatable; needs an exchange)
    --match-header: string    # Headers-exchange binding: a header to match, KEY=VALUE (repeatable; needs an exchange)
    --match: string@"nu-complete rmq tail match_mode" # Headers-exchange binding: all headers must match, or any
    --count(-n): string       # Stop after N messages
    --timeout: string         # Give up after this many seconds overall
    --idle-timeout: string    # Give up after this many seconds without a message
    --format(-f): string      # Print each message through a template instead of --output: {body}, {routing_key}, {exchange}, {redelivered}, {delivery_tag}, {headers.NAME}, {properties.NAME} (or the bare property name: {correlation_id}, {type}, ...), {body_base64}; \n and \t escapes, {{ and }} for braces. A newline follows each message
    --save-dir: path          # Save each message as DIR/NNNNNN.body (its bytes) and DIR/NNNNNN.json (the lossless JSON-lines object) instead of printing it; `send --replay-dir DIR` sends them again
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq tail output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    exchange: string          # Exchange to watch
  ]

  def "nu-complete rmq config output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Show the connection settings in use (profiles, config file), passwords masked
  export extern "rmq config" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq config output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq config show output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # The resolved settings and their sources (passwords shown as ***)
  export extern "rmq config show" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq config show output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq config path output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # The config file rmq reads (whether or not it exists)
  export extern "rmq config path" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq config path output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq config help" [
  ]

  # The resolved settings and their sources (passwords shown as ***)
  export extern "rmq config help show" [
  ]

  # The config file rmq reads (whether or not it exists)
  export extern "rmq config help path" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq config help help" [
  ]

  def "nu-complete rmq tutorial output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`
  export extern "rmq tutorial" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq tutorial output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    number?: string           # Tutorial number, 1–6 (default: all)
  ]

  def "nu-complete rmq generate output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Generate shell completions or man pages
  export extern "rmq generate" [
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq generate output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  def "nu-complete rmq generate completions shell" [] {
    [ "bash" "zsh" "fish" "elvish" "powershell" "nushell" ]
  }

  def "nu-complete rmq generate completions output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Shell completions: one shell's script on stdout, or every shell's file with --dir
  export extern "rmq generate completions" [
    --dir: path               # Write the file(s) into this directory instead of stdout
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq generate completions output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
    shell?: string@"nu-complete rmq generate completions shell" # The shell (required unless --dir is given: then every shell by default)
  ]

  def "nu-complete rmq generate man output" [] {
    [ "table" "json" "jsonl" "tsv" "raw" ]
  }

  # Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir
  export extern "rmq generate man" [
    --dir: path               # Write rmq.1 and a page per subcommand (rmq-send.1, ...) into this directory, replacing any rmq*.1 there, instead of printing rmq.1
    --url: string             # Broker URL (AMQP URI spec: amqp://user:pass@host:port/vhost?heartbeat=S&connection_timeout=MS&frame_max=N&channel_max=N); defaults to RMQ_URL, then AMQP_URL, then the profile's, then amqp://guest:guest@localhost:5672/%2F. Repeat it (or separate URLs by spaces in RMQ_URL, AMQP_URL or a profile) for several brokers of a cluster, tried in order
    --profile: string         # Use this profile of the config file (default: RMQ_PROFILE, then the file's default_profile)
    --config: path            # Config file (default: RMQ_CONFIG, then $XDG_CONFIG_HOME/rmq/config.toml or ~/.config/rmq/config.toml)
    --output(-o): string@"nu-complete rmq generate man output" # Output format (default: table on a terminal, tsv otherwise; raw for messages)
    --tls-ca-cert-file: path  # CA certificates (PEM) to verify the broker's TLS certificate with, for amqps:// and an https:// management API, instead of the system's trust store
    --tls-cert-file: path     # Client certificate (PEM) for brokers that verify peers; needs --tls-key-file
    --tls-key-file: path      # Private key (PEM) of --tls-cert-file
    --insecure                # Do not verify the broker's TLS certificate (still encrypted, but anyone can pose as the broker): for test set-ups with self-signed certificates. Long form only: `-k` is the routing/binding key of send-side commands
    --quiet(-q)               # No notes, ready lines or progress bars on stderr (results and errors still print)
    --no-reconnect            # Long-running commands (worker, receive without an end, tail, rpc-serve, send from a stream) exit 69 when the connection is lost, instead of reconnecting
    --reconnect-timeout: string # Give up reconnecting (exit 69) after this many seconds without a connection (default: keep trying, with backoff capped at about 5 s)
    --blocked-timeout: string # Give up (exit 75) when the broker keeps the connection blocked (connection.blocked: a memory or disk alarm) for this many seconds (default: wait, saying so on stderr)
    --help(-h)                # Print help (see more with '--help')
    --version(-V)             # Print version
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq generate help" [
  ]

  # Shell completions: one shell's script on stdout, or every shell's file with --dir
  export extern "rmq generate help completions" [
  ]

  # Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir
  export extern "rmq generate help man" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq generate help help" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq help" [
  ]

  # Publish messages to a queue (declaring it if needed), with publisher confirms
  export extern "rmq help send" [
  ]

  # Consume messages from a queue (or an exchange) and print them
  export extern "rmq help receive" [
  ]

  # Process a queue's messages one at a time (tutorial 2), optionally with a command per message
  export extern "rmq help worker" [
  ]

  # Publish to an exchange, declaring it like the tutorials' emit_log (tutorials 3–5)
  export extern "rmq help emit-log" [
  ]

  # Answer RPC requests from a queue (tutorial 6's server)
  export extern "rmq help rpc-serve" [
  ]

  # Send RPC requests and print the replies in request order (tutorial 6's client)
  export extern "rmq help rpc-call" [
  ]

  # Bind a queue (or exchange) to an exchange
  export extern "rmq help bind" [
  ]

  # Remove a binding
  export extern "rmq help unbind" [
  ]

  # Declare a queue or an exchange
  export extern "rmq help declare" [
  ]

  # Declare a queue (prints its name, messages and consumers)
  export extern "rmq help declare queue" [
  ]

  # Declare an exchange
  export extern "rmq help declare exchange" [
  ]

  # Delete a queue or an exchange
  export extern "rmq help delete" [
  ]

  # Delete a queue (and its messages)
  export extern "rmq help delete queue" [
  ]

  # Delete an exchange (and its bindings)
  export extern "rmq help delete exchange" [
  ]

  # Remove every ready message from a queue
  export extern "rmq help purge" [
  ]

  # List queues through the management HTTP API (like `rabbitmqctl list_queues`)
  export extern "rmq help list-queues" [
  ]

  # List exchanges through the management HTTP API (like `rabbitmqctl list_exchanges`)
  export extern "rmq help list-exchanges" [
  ]

  # List bindings through the management HTTP API (like `rabbitmqctl list_bindings`)
  export extern "rmq help list-bindings" [
  ]

  # List client connections through the management HTTP API (like `rabbitmqctl list_connections`)
  export extern "rmq help list-connections" [
  ]

  # List consumers through the management HTTP API (like `rabbitmqctl list_consumers`)
  export extern "rmq help list-consumers" [
  ]

  # List virtual hosts through the management HTTP API (like `rabbitmqctl list_vhosts`)
  export extern "rmq help list-vhosts" [
  ]

  # List channels through the management HTTP API (like `rabbitmqctl list_channels`)
  export extern "rmq help list-channels" [
  ]

  # List users through the management HTTP API (like `rabbitmqctl list_users`)
  export extern "rmq help list-users" [
  ]

  # List the permissions in a vhost through the management HTTP API (like `rabbitmqctl list_permissions`)
  export extern "rmq help list-permissions" [
  ]

  # List policies through the management HTTP API (like `rabbitmqctl list_policies`)
  export extern "rmq help list-policies" [
  ]

  # A one-screen summary of the broker: versions, totals, rates, listeners
  export extern "rmq help overview" [
  ]

  # Draw a vhost's exchanges, bindings and queues: a tree, Graphviz DOT or Mermaid
  export extern "rmq help topology" [
  ]

  # Move messages to another queue, exchange or broker, confirmed before acked (at-least-once)
  export extern "rmq help move" [
  ]

  # Set a policy (like `rabbitmqctl set_policy`)
  export extern "rmq help set-policy" [
  ]

  # Remove a policy (like `rabbitmqctl clear_policy`)
  export extern "rmq help clear-policy" [
  ]

  # Create a user (like `rabbitmqctl add_user`)
  export extern "rmq help add-user" [
  ]

  # Delete a user (like `rabbitmqctl delete_user`)
  export extern "rmq help delete-user" [
  ]

  # Set a user's permissions in a vhost (like `rabbitmqctl set_permissions`)
  export extern "rmq help set-permissions" [
  ]

  # Create a virtual host (like `rabbitmqctl add_vhost`)
  export extern "rmq help add-vhost" [
  ]

  # Delete a virtual host and everything in it (like `rabbitmqctl delete_vhost`)
  export extern "rmq help delete-vhost" [
  ]

  # Export or import the broker's definitions (RabbitMQ's JSON)
  export extern "rmq help definitions" [
  ]

  # Write the broker's definitions (RabbitMQ's JSON) to FILE, or stdout
  export extern "rmq help definitions export" [
  ]

  # Create what a definitions file (RabbitMQ's JSON) describes, keeping what exists
  export extern "rmq help definitions import" [
  ]

  # Close a client connection, telling it why (like `rabbitmqctl close_connection`)
  export extern "rmq help close-connection" [
  ]

  # Wait until the broker accepts connections (like `rabbitmqctl await_startup`)
  export extern "rmq help await-startup" [
  ]

  # Measure throughput and latency against a broker (PerfTest's flags)
  export extern "rmq help perf" [
  ]

  # Run the embedded AMQP 0-9-1 broker in the foreground
  export extern "rmq help serve" [
  ]

  # Watch the messages flowing through an exchange, without taking them from anyone
  export extern "rmq help tail" [
  ]

  # Show the connection settings in use (profiles, config file), passwords masked
  export extern "rmq help config" [
  ]

  # The resolved settings and their sources (passwords shown as ***)
  export extern "rmq help config show" [
  ]

  # The config file rmq reads (whether or not it exists)
  export extern "rmq help config path" [
  ]

  # Print the RabbitMQ tutorials as rmq commands, runnable against `rmq serve`
  export extern "rmq help tutorial" [
  ]

  # Generate shell completions or man pages
  export extern "rmq help generate" [
  ]

  # Shell completions: one shell's script on stdout, or every shell's file with --dir
  export extern "rmq help generate completions" [
  ]

  # Man pages: rmq.1 on stdout, or rmq.1 and one page per subcommand with --dir
  export extern "rmq help generate man" [
  ]

  # Print this message or the help of the given subcommand(s)
  export extern "rmq help help" [
  ]

}

export use completions *
