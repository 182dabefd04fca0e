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
    // Something other than an AMQP 0-9-1 broker answers there (an HTTP port, a TLS port
    // under amqp://): lapin reports a parser error, a cut connection or a failed TLS
    // handshake; asking the port ourselves tells which, in words.
    let (foreign, over_tls) = match err.kind() {
        ErrorKind::ParsingError(_) | ErrorKind::InvalidProtocolVersion(_) => (true, false),
        ErrorKind::IOError(io) => match super::tls::tls_failure(io) {
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::AlertReceived(_)) => {
                (false, true)
            }
            Some(_) => (true, true),
            None => (
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ),
                false,
            ),
        },
        _ => (false, false),
    };
    if foreign
        && let Some((what, todo)) = probe(target)
        // A TLS handshake that failed on a TLS port: the TLS error says more.
        && !(over_tls && what == "TLS")
    {
        return coded(
            exit::UNAVAILABLE,
            format!(
                "cannot connect to {target}: that port answered, but not with AMQP 0-9-1 ({what}); {todo}"
            ),
        );
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

/// What answers on `target` ("host:port"), when it is not AMQP 0-9-1: the start of the
/// answer to an AMQP protocol header followed by an empty line (which makes an HTTP
/// server answer at once instead of waiting for the rest of a request), read with a
/// short bound. `None` when the port says nothing telling (or is an AMQP 0-9-1 broker).
fn probe(target: &str) -> Option<(String, &'static str)> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let (host, port) = target.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, port.parse::<u16>().ok()?)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let limit = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    s.write_all(b"AMQP\x00\x00\x09\x01\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 8 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    classify(&buf[..n])
}

/// Name the protocol of an answer's first bytes (see [`probe`]), and what to do.
fn classify(answer: &[u8]) -> Option<(String, &'static str)> {
    const AMQP_PORT: &str =
        "point the URL at the broker's AMQP port (RabbitMQ: 5672; `rmq serve` prints its own)";
    match answer {
        [] => None,
        [b'H', b'T', b'T', b'P', b'/', ..] => Some(("HTTP?".into(), AMQP_PORT)),
        // A TLS record: an alert (21) or a handshake (22), version 3.x.
        [21 | 22, 3, ..] => Some((
            "TLS".into(),
            "is that port serving amqps? then use an amqps:// URL (RabbitMQ: 5671)",
        )),
        [b'A', b'M', b'Q', b'P', 0, 0, 9, 1] => None,
        [b'A', b'M', b'Q', b'P', id, major, minor, rev] => Some((
            format!("it offers AMQP {major}-{minor}-{rev}, protocol id {id}"),
            "rmq speaks AMQP 0-9-1, as RabbitMQ does on 5672",
        )),
        // A Connection.Start frame: an AMQP 0-9-1 broker after all.
        [1, 0, 0, ..] => None,
        other => {
            let text: String = other
                .iter()
                .take(16)
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            Some((format!("it said '{text}'"), AMQP_PORT))
        }
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

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn answers_are_told_apart() {
        let name = |b: &[u8]| classify(b).map(|(what, _)| what);
        assert_eq!(name(b"HTTP/1.1 400 Bad Request"), Some("HTTP?".into()));
        assert_eq!(name(&[21, 3, 3, 0, 2, 2, 50]), Some("TLS".into()));
        assert_eq!(name(b"AMQP\x00\x00\x09\x01"), None);
        assert!(
            name(b"AMQP\x00\x01\x00\x00")
                .unwrap()
                .contains("AMQP 1-0-0")
        );
        assert!(name(b"SSH-2.0-OpenSSH").unwrap().contains("SSH-2.0"));
        assert_eq!(name(b""), None);
    }
}
