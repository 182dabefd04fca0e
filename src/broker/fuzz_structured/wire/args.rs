//! Method payloads: class and method ids, then the arguments in order.

use super::{put_long, put_short, put_u16, put_u32, put_u64};

/// Method arguments in order, consecutive bits packed into octets (§4.2.5.2).
pub(crate) struct Args {
    buf: Vec<u8>,
    bits: u8,
    nbits: u8,
}

impl Args {
    /// A method payload: class and method ids, then the arguments.
    pub(crate) fn new(class: u16, method: u16) -> Args {
        let mut buf = Vec::with_capacity(64);
        put_u16(&mut buf, class);
        put_u16(&mut buf, method);
        Args {
            buf,
            bits: 0,
            nbits: 0,
        }
    }
    fn flush_bits(&mut self) {
        if self.nbits > 0 {
            self.buf.push(self.bits);
            self.bits = 0;
            self.nbits = 0;
        }
    }
    pub(crate) fn octet(mut self, v: u8) -> Args {
        self.flush_bits();
        self.buf.push(v);
        self
    }
    pub(crate) fn short(mut self, v: u16) -> Args {
        self.flush_bits();
        put_u16(&mut self.buf, v);
        self
    }
    pub(crate) fn long(mut self, v: u32) -> Args {
        self.flush_bits();
        put_u32(&mut self.buf, v);
        self
    }
    pub(crate) fn longlong(mut self, v: u64) -> Args {
        self.flush_bits();
        put_u64(&mut self.buf, v);
        self
    }
    pub(crate) fn bit(mut self, v: bool) -> Args {
        if self.nbits == 8 {
            self.flush_bits();
        }
        self.bits |= u8::from(v) << self.nbits;
        self.nbits += 1;
        self
    }
    pub(crate) fn shortstr(mut self, s: &[u8]) -> Args {
        self.flush_bits();
        put_short(&mut self.buf, s);
        self
    }
    pub(crate) fn longstr(mut self, s: &[u8]) -> Args {
        self.flush_bits();
        put_long(&mut self.buf, s);
        self
    }
    /// An encoded table (its length included).
    pub(crate) fn table(mut self, t: &[u8]) -> Args {
        self.flush_bits();
        self.buf.extend_from_slice(t);
        self
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.flush_bits();
        self.buf
    }
}
