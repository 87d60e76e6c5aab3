//! Response bodies that zeroize their bytes when hyper is done with them, and the wire encoding of a released credential (made here, at the edge, once per cached credential).

use crate::agent::Released;
use crate::protocol::CredentialReply;
use hyper::body::{Body, Buf, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use zeroize::Zeroizing;

enum Bytes {
    Owned(Zeroizing<Vec<u8>>),
    /// A cached reply, wiped when its last holder (cache or response) lets go. Its own
    /// type rather than a trait object: hyper asks for the bytes several times per write.
    Shared(Arc<Released>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(a) => a.encoded(encode),
        }
    }
}

/// A released credential as the wire carries it, made once per cached credential: in the
/// locked arena (out of swap and core dumps), else on locked, undumpable heap pages.
fn encode(reply: &CredentialReply) -> Zeroizing<Vec<u8>> {
    let json = crate::secret::in_locked_arena(|| crate::secret::to_json_zeroizing(reply));
    crate::harden::protect(&json);
    json
}

/// A buffer that wipes itself on drop. With `writev` on, hyper queues it rather than
/// copying it into its own write buffer, so the secret exists only here.
pub struct WipeBuf {
    bytes: Bytes,
    pos: usize,
}

impl Buf for WipeBuf {
    fn remaining(&self) -> usize {
        self.bytes.as_slice().len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes.as_slice()[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        self.pos = (self.pos + cnt).min(self.bytes.as_slice().len());
    }
}

/// A whole response body in one [`WipeBuf`].
pub struct WipeBody(Option<WipeBuf>);

impl WipeBody {
    /// A body holding `bytes`.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> WipeBody {
        WipeBody(Some(WipeBuf {
            bytes: Bytes::Owned(bytes),
            pos: 0,
        }))
    }

    /// A body sharing bytes that something else (the agent's cache) also holds.
    pub fn shared(bytes: Arc<Released>) -> WipeBody {
        WipeBody(Some(WipeBuf {
            bytes: Bytes::Shared(bytes),
            pos: 0,
        }))
    }
}

impl Body for WipeBody {
    type Data = WipeBuf;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<WipeBuf>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.remaining() as u64))
    }
}
