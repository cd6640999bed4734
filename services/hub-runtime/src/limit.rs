//! The 64 KiB limit on request bodies, answered with `RESOURCE_EXHAUSTED`.
//!
//! tonic's own limit answers `OUT_OF_RANGE`, and reserves memory for the
//! length a message *declares* before checking it against a larger limit.
//! This layer reads each gRPC message's 5-byte length prefix as the bytes
//! pass and fails the body the moment a message declares more than the
//! limit, so nothing is buffered or recorded, and the caller gets the
//! contract's status.

use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use tonic::{body::Body as TonicBody, codegen::http, Status};

/// Wraps every request body of a server in a [`Limited`] body.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitLayer {
    pub max_message_bytes: usize,
}

impl<S> tower_layer::Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestLimit {
            inner,
            max: self.max_message_bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLimit<S> {
    inner: S,
    max: usize,
}

impl<S> tonic::codegen::Service<http::Request<TonicBody>> for RequestLimit<S>
where
    S: tonic::codegen::Service<http::Request<TonicBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<TonicBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let body = TonicBody::new(Limited::new(body, self.max));
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

/// A request body that fails once a gRPC message declares more than `max`
/// bytes.
pub struct Limited {
    inner: TonicBody,
    max: usize,
    prefix: [u8; 5],
    prefix_len: usize,
    message_left: usize,
}

impl Limited {
    pub fn new(inner: TonicBody, max: usize) -> Self {
        Self {
            inner,
            max,
            prefix: [0; 5],
            prefix_len: 0,
            message_left: 0,
        }
    }

    /// Follows the gRPC framing through `data`.
    fn check(&mut self, data: &[u8]) -> Result<(), Status> {
        let mut i = 0;
        while i < data.len() {
            if self.message_left > 0 {
                let n = self.message_left.min(data.len() - i);
                self.message_left -= n;
                i += n;
                continue;
            }
            self.prefix[self.prefix_len] = data[i];
            self.prefix_len += 1;
            i += 1;
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len =
                    u32::from_be_bytes(self.prefix[1..5].try_into().expect("4 bytes")) as usize;
                if len > self.max {
                    return Err(Status::resource_exhausted(format!(
                        "request body is {len} bytes; the limit is {} KiB",
                        self.max / 1024
                    )));
                }
                self.message_left = len;
            }
        }
        Ok(())
    }
}

impl Body for Limited {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = this.check(data) {
                        return Poll::Ready(Some(Err(status)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, len as usize));
        v
    }

    #[test]
    fn passes_messages_up_to_the_limit_across_chunks() {
        let mut l = Limited::new(TonicBody::empty(), 100);
        let data = [framed(100), framed(3)].concat();
        for chunk in data.chunks(7) {
            l.check(chunk).unwrap();
        }
    }

    #[test]
    fn refuses_a_message_declaring_more_than_the_limit() {
        let mut l = Limited::new(TonicBody::empty(), 100);
        let data = framed(101);
        let err = l
            .check(&data[..3])
            .and_then(|_| l.check(&data[3..]))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        // A second message over the limit after a good one is refused too.
        let mut l = Limited::new(TonicBody::empty(), 100);
        let data = [framed(10), framed(5000)].concat();
        assert!(l.check(&data).is_err());
    }
}
