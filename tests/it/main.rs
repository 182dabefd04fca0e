//! The one integration-test binary: a module per area.
//!
//! Every test uses real sockets: the broker runs in-process on 127.0.0.1:0, the
//! `rmq` binary runs as a child process, and third-party clients run as scripts.

mod broker_access;
mod broker_disk_wait;
mod broker_durability;
mod broker_errors;
mod broker_flow;
mod broker_fuzz;
mod broker_hostile;
mod broker_lapin;
mod broker_layers;
mod broker_limits;
mod broker_log;
mod broker_log_format;
mod broker_policies;
mod broker_policy_api;
mod broker_semantics;
mod broker_storage;
mod broker_tls;
mod broker_vhosts;
mod broker_wire;
mod cli_admin;
mod cli_cluster;
mod cli_config;
mod cli_definitions;
mod cli_edges;
mod cli_errors;
mod cli_formats;
mod cli_generated;
mod cli_move;
mod cli_ops;
mod cli_replay;
mod cli_resilience;
mod cli_support;
mod cli_tail;
mod cli_templates;
mod cli_terminal;
mod cli_topology;
mod cli_tutorials;
mod cli_worker;
mod mgmt_api;
mod mgmt_cli;
mod mgmt_conns;
mod mgmt_definitions;
mod mgmt_fields;
mod mgmt_permissions;
mod serve_proc;
mod support;
mod third_party;
mod tls_support;
