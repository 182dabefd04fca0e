//! lapin errors → one clear line with the right exit code.

use crate::exit::{self, coded};
use lapin::ErrorKind;

/// AMQP reply codes (spec §1.9 "constants") that rmq reports specially.
const ACCESS_REFUSED: u16 = 403;
const NOT_FOUND: u16 = 404;
const RESOURCE_LOCKED: u16 = 405;
const PRECONDITION_FAILED: u16 = 406;
const NOT_ALLOWED: u16 = 530;
const CONNECTION_FORCED: u16 = 320;
const INTERNAL_ERROR: u16 = 541;

/// The broker's reply code and text when the error is an AMQP channel/connection close.
pub(super) fn amqp_reply(err: &lapin::Error) -> Option<(u16, String)> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some((e.get_id(), e.get_message().as_str().to_string())),
        _ => None,
    }
}

/// Turn a lapin error met while doing `what` into a coded error whose text says why
/// and, where we can tell, what to do.
pub(super) fn describe(what: &str, err: lapin::Error) -> anyhow::Error {
    if let Some((code, text)) = amqp_reply(&err) {
        if code == CONNECTION_FORCED || code == INTERNAL_ERROR {
            // The broker is shutting down, an operator closed us, or the node failed: it
            // is unavailable, not refusing what we asked.
            return coded(
                exit::UNAVAILABLE,
                format!("{what}: {text} (the broker closed the connection; is it shutting down?)"),
            );
        }
        let hint = match code {
            NOT_FOUND => " (declare it first, or check the name and vhost)",
            ACCESS_REFUSED => " (check the user's permissions on this vhost)",
            RESOURCE_LOCKED => " (another connection owns this exclusive queue)",
            PRECONDITION_FAILED if text.contains("inequivalent arg") => {
                " (it exists with other settings: use the same flags, or delete it first)"
            }
            PRECONDITION_FAILED if text.contains("message size") => {
                " (the broker refuses messages this large: split the payload)"
            }
            _ => "",
        };
        return coded(exit::FAILURE, format!("{what}: {text}{hint}"));
    }
    match err.kind() {
        ErrorKind::IOError(io) => coded(
            exit::UNAVAILABLE,
            format!("{what}: connection lost: {io} (is the broker still running?)"),
        ),
        ErrorKind::MissingHeartbeatError => coded(
            exit::UNAVAILABLE,
            format!("{what}: the broker stopped answering heartbeats (network or broker down)"),
        ),
        // What lapin says about a channel or connection that the loss of the socket put
        // in its error state: the same loss, seen from the next operation.
        ErrorKind::InvalidChannelState(..)
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::InvalidChannel(_)
        | ErrorKind::RuntimeShutdownError(_) => coded(
            exit::UNAVAILABLE,
            format!("{what}: connection lost ({err}) (is the broker still running?)"),
        ),
        _ => coded(exit::FAILURE, format!("{what}: {err}")),
    }
}

/// Errors during the handshake: login and vhost problems read differently there.
pub(super) fn describe_connect(
    target: &str,
    user: &str,
    vhost: &str,
    err: lapin::Error,
) -> anyhow::Error {
    if let Some((code, text)) = amqp_reply(&err) {
        return match code {
            ACCESS_REFUSED => coded(
                exit::NOPERM,
                format!(
                    "cannot log in to {target} as '{user}': {text} (check the user name and password in the URL; 'guest' may only connect from localhost)"
                ),
            ),
            NOT_ALLOWED => coded(
                exit::NOPERM,
                format!(
                    "cannot open vhost '{vhost}' on {target}: {text} (does the vhost exist, and may '{user}' use it?)"
                ),
            ),
            _ => coded(exit::FAILURE, format!("cannot connect to {target}: {text}")),
        };
    }
    if let ErrorKind::IOError(io) = err.kind()
        && let Some(tls) = super::tls::tls_failure(io)
    {
        return describe_tls(target, tls);
    }
    match err.kind() {
        ErrorKind::IOError(io) => coded(
            exit::UNAVAILABLE,
            format!(
                "cannot connect to {target}: {io} (is the broker running? start one with `rmq serve`)"
            ),
        ),
        // RabbitMQ closes the socket without a reply to a client that does not announce
        // `authentication_failure_close`, and some brokers do so for any refused login.
        ErrorKind::InvalidConnectionState(_) => coded(
            exit::NOPERM,
            format!(
                "cannot connect to {target}: the broker closed the connection during the handshake (wrong user or password, or unknown vhost '{vhost}'?)"
            ),
        ),
        // Most often a TLS alert read as AMQP: an amqp:// URL pointed at an amqps port.
        ErrorKind::ParsingError(_) => coded(
            exit::UNAVAILABLE,
            format!(
                "cannot connect to {target}: the answer is not AMQP ({err}); is that port serving amqps? then use an amqps:// URL"
            ),
        ),
        _ => coded(
            exit::UNAVAILABLE,
            format!("cannot connect to {target}: {err}"),
        ),
    }
}

/// A TLS handshake that failed: which side refused, and the flag that fixes it. Refusals
/// exit like a refused login (77): retrying will not help, the certificates must change.
fn describe_tls(target: &str, err: &rustls::Error) -> anyhow::Error {
    match err {
        rustls::Error::InvalidCertificate(why) => coded(
            exit::NOPERM,
            format!(
                "cannot connect to {target}: the broker's TLS certificate is not trusted ({why}); pass --tls-ca-cert-file with the CA that signed it, or --insecure to skip the check"
            ),
        ),
        rustls::Error::AlertReceived(alert) => coded(
            exit::NOPERM,
            format!(
                "cannot connect to {target}: the broker refused the TLS handshake ({alert:?}); if it verifies client certificates, pass --tls-cert-file and --tls-key-file signed by a CA it trusts"
            ),
        ),
        other => coded(
            exit::UNAVAILABLE,
            format!(
                "cannot connect to {target}: TLS handshake failed: {other} (is that port serving amqps? RabbitMQ uses 5671 for amqps, 5672 for plain amqp)"
            ),
        ),
    }
}
