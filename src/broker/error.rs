//! Typed AMQP errors: a reply code and RabbitMQ's text, scoped to a channel or the connection.
//!
//! AMQP 0-9-1 §1.2 splits reply codes into soft errors (the channel closes) and hard
//! errors (the connection closes); RabbitMQ prefixes texts with the code's name, e.g.
//! `NOT_FOUND - no queue 'q' in vhost '/'`.

use amq_protocol::protocol::{AMQPClass, channel, connection};
use amq_protocol::types::ShortString;

/// An error raised while handling a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmqpError {
    /// Reply code (AMQP constants: 311..541).
    pub(crate) code: u16,
    /// The full reply text, `NAME - detail`.
    pub(crate) text: String,
    /// Class of the method that failed (0 when not caused by a method).
    pub(crate) class_id: u16,
    /// Method id of the method that failed.
    pub(crate) method_id: u16,
}

/// The reply codes rmq raises, with RabbitMQ's names.
pub(crate) mod code {
    pub(crate) const CONTENT_TOO_LARGE: u16 = 311;
    pub(crate) const NO_ROUTE: u16 = 312;
    pub(crate) const CONNECTION_FORCED: u16 = 320;
    pub(crate) const ACCESS_REFUSED: u16 = 403;
    pub(crate) const NOT_FOUND: u16 = 404;
    pub(crate) const RESOURCE_LOCKED: u16 = 405;
    pub(crate) const PRECONDITION_FAILED: u16 = 406;
    pub(crate) const FRAME_ERROR: u16 = 501;
    pub(crate) const SYNTAX_ERROR: u16 = 502;
    pub(crate) const COMMAND_INVALID: u16 = 503;
    pub(crate) const CHANNEL_ERROR: u16 = 504;
    pub(crate) const UNEXPECTED_FRAME: u16 = 505;
    pub(crate) const NOT_ALLOWED: u16 = 530;
    pub(crate) const NOT_IMPLEMENTED: u16 = 540;
    pub(crate) const INTERNAL_ERROR: u16 = 541;
}

fn code_name(code: u16) -> &'static str {
    match code {
        code::CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        code::NO_ROUTE => "NO_ROUTE",
        code::CONNECTION_FORCED => "CONNECTION_FORCED",
        code::ACCESS_REFUSED => "ACCESS_REFUSED",
        code::NOT_FOUND => "NOT_FOUND",
        code::RESOURCE_LOCKED => "RESOURCE_LOCKED",
        code::PRECONDITION_FAILED => "PRECONDITION_FAILED",
        code::FRAME_ERROR => "FRAME_ERROR",
        code::SYNTAX_ERROR => "SYNTAX_ERROR",
        code::COMMAND_INVALID => "COMMAND_INVALID",
        code::CHANNEL_ERROR => "CHANNEL_ERROR",
        code::UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        code::NOT_ALLOWED => "NOT_ALLOWED",
        code::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        code::INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "INTERNAL_ERROR",
    }
}

impl AmqpError {
    /// An error with RabbitMQ's `NAME - detail` text; the method ids are filled in by the dispatcher.
    pub(crate) fn new(code: u16, detail: impl std::fmt::Display) -> AmqpError {
        AmqpError {
            code,
            text: format!("{} - {detail}", code_name(code)),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Soft errors (3xx/4xx) close the channel; everything else closes the connection.
    pub(crate) fn is_hard(&self) -> bool {
        self.code >= 500 || self.code == code::CONNECTION_FORCED
    }

    /// Record which method failed, unless already set.
    pub(crate) fn on_method(mut self, class_id: u16, method_id: u16) -> AmqpError {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub(crate) fn not_found(kind: &str, name: &str, vhost: &str) -> AmqpError {
        AmqpError::new(
            code::NOT_FOUND,
            format_args!("no {kind} '{name}' in vhost '{vhost}'"),
        )
    }

    pub(crate) fn precondition(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(code::PRECONDITION_FAILED, detail)
    }

    pub(crate) fn access_refused(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(code::ACCESS_REFUSED, detail)
    }

    pub(crate) fn locked(name: &str, vhost: &str) -> AmqpError {
        AmqpError::new(
            code::RESOURCE_LOCKED,
            format_args!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. \
                 It could be originally declared on another connection or the exclusive property \
                 value does not match that of the original declaration."
            ),
        )
    }

    pub(crate) fn not_implemented(detail: impl std::fmt::Display) -> AmqpError {
        AmqpError::new(code::NOT_IMPLEMENTED, detail)
    }

    /// The reply text as it goes on the wire: a short string, so a longer text is cut as
    /// RabbitMQ cuts it, to 252 bytes (at a character boundary) and `...` (the full text
    /// stays in `text` for logs).
    pub(crate) fn reply_text(&self) -> ShortString {
        if self.text.len() <= 255 {
            return crate::codec::bounds::short(&self.text);
        }
        crate::codec::bounds::short(&format!(
            "{}...",
            crate::codec::bounds::cut(&self.text, 252)
        ))
    }

    /// connection.close carrying this error.
    pub(crate) fn connection_close(&self) -> AMQPClass {
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: self.code,
            reply_text: self.reply_text(),
            class_id: self.class_id,
            method_id: self.method_id,
        }))
    }

    /// channel.close carrying this error.
    pub(crate) fn channel_close(&self) -> AMQPClass {
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: self.code,
            reply_text: self.reply_text(),
            class_id: self.class_id,
            method_id: self.method_id,
        }))
    }
}

/// Result of handling one frame.
pub(crate) type AmqpResult<T = ()> = Result<T, AmqpError>;

/// What a lookup found, `None` for 404 NOT_FOUND; other errors stay errors.
pub(crate) fn found<T>(r: AmqpResult<T>) -> AmqpResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == code::NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_the_code_name_and_scope_follows_the_code() {
        let e = AmqpError::not_found("queue", "q", "/");
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.is_hard());
        assert!(AmqpError::new(code::CHANNEL_ERROR, "x").is_hard());
        assert!(AmqpError::new(code::CONNECTION_FORCED, "x").is_hard());
    }

    #[test]
    fn reply_texts_are_cut_to_a_short_string() {
        let e = AmqpError::not_found("queue", &"q".repeat(300), "/");
        assert!(e.text.len() > 255);
        assert_eq!(e.reply_text().as_str(), format!("{}...", &e.text[..252]));
        let AMQPClass::Channel(channel::AMQPMethod::Close(c)) = e.channel_close() else {
            panic!("a channel.close");
        };
        assert_eq!(c.reply_text.as_str().len(), 255);
    }
}
