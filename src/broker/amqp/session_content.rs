//! Content assembly (AMQP 0-9-1 §4.2.6): after basic.publish, one content header, then
//! body frames up to the announced size; the complete message goes to `publish`.

use crate::broker::amqp::channel::Content;
use crate::broker::amqp::session::{End, Session};
use crate::broker::error::{AmqpError, code};
use crate::codec::header::decode_header;
use crate::codec::{FRAME_BODY, FRAME_HEADER};
use bytes::{Bytes, BytesMut};

impl Session {
    pub(crate) fn content_frame(&mut self, ch: u16, kind: u8, payload: Bytes) -> Result<(), End> {
        let max = self.broker.config.max_message_size;
        let Some(chan) = self.channels.get_mut(&ch) else {
            return Err(End::Close(AmqpError::new(
                code::CHANNEL_ERROR,
                "expected 'channel.open'",
            )));
        };
        if chan.closing {
            return Ok(());
        }
        let unexpected = || {
            End::Close(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead",
            ))
        };
        match std::mem::take(&mut chan.content) {
            Content::Idle => Err(unexpected()),
            Content::Header(publish) => {
                if kind != FRAME_HEADER {
                    return Err(End::Close(AmqpError::new(
                        code::UNEXPECTED_FRAME,
                        "expected content header for class 60, got non content header frame instead",
                    )));
                }
                let (class_id, size, properties) = match decode_header(&payload) {
                    Ok(decoded) => decoded,
                    Err(why) => {
                        return Err(End::Close(AmqpError::new(
                            code::FRAME_ERROR,
                            match why {
                                Some(e) => format!("cannot decode content header: {e}"),
                                None => "cannot decode content header".to_string(),
                            },
                        )));
                    }
                };
                if class_id != 60 {
                    return Err(End::Close(AmqpError::new(
                        code::UNEXPECTED_FRAME,
                        format_args!(
                            "expected content header for class 60, got one for class {class_id} instead"
                        ),
                    )));
                }
                if size > max {
                    self.close_channel(
                        ch,
                        AmqpError::precondition(format_args!(
                            "message size {size} is larger than configured max size {max}"
                        ))
                        .on_method(60, 40),
                    );
                    return Ok(());
                }
                // Cap the up-front allocation: the size is only a claim until the bytes arrive.
                let body = BytesMut::with_capacity(size.min(1 << 20) as usize);
                chan.content = Content::Body {
                    publish,
                    // Copied: a slice would pin the whole read buffer (up to 64 KiB) for
                    // as long as the message stays queued.
                    header: Bytes::copy_from_slice(&payload),
                    properties: Box::new(properties),
                    size,
                    body,
                };
                if size == 0 {
                    return self.finish_content(ch);
                }
                Ok(())
            }
            Content::Body {
                publish,
                header,
                properties,
                size,
                mut body,
            } => {
                if kind != FRAME_BODY {
                    return Err(End::Close(AmqpError::new(
                        code::UNEXPECTED_FRAME,
                        "expected content body, got non content body frame instead",
                    )));
                }
                body.extend_from_slice(&payload);
                if body.len() as u64 > size {
                    return Err(End::Close(AmqpError::new(
                        code::FRAME_ERROR,
                        format_args!(
                            "content body is {} bytes, header announced {size}",
                            body.len()
                        ),
                    )));
                }
                let done = body.len() as u64 == size;
                chan.content = Content::Body {
                    publish,
                    header,
                    properties,
                    size,
                    body,
                };
                if done {
                    self.finish_content(ch)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn finish_content(&mut self, ch: u16) -> Result<(), End> {
        let Some(chan) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let Content::Body {
            publish,
            header,
            properties,
            body,
            ..
        } = std::mem::take(&mut chan.content)
        else {
            return Ok(());
        };
        self.published = true;
        match self.publish(ch, publish, header, *properties, body.freeze()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = e.on_method(60, 40);
                if e.is_hard() {
                    Err(End::Close(e))
                } else {
                    self.close_channel(ch, e);
                    Ok(())
                }
            }
        }
    }
}
