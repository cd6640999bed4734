//! A server-side deadline on every call: a handler that has not answered
//! within its deadline is abandoned with `DEADLINE_EXCEEDED`, whatever the
//! client asked for, so a slow store, a stuck dependency or a client that
//! never finishes its upload cannot hold a worker and its memory forever.
//!
//! The deadline covers the handler up to its reply's headers: a unary call
//! entirely, a client-streaming upload (`RecordBatch`) while it is read,
//! and a server stream (`WatchPickups`, rebuild progress) only until it
//! starts; those end when their client goes or the service stops.
//! tonic's own `timeout` answers `CANCELLED`, which tells a client nothing
//! useful.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tonic::{body::Body as TonicBody, codegen::http, Status};

/// The deadline of a unary call.
pub const UNARY_DEADLINE: Duration = Duration::from_secs(30);
/// The deadline of a bulk upload (`RecordBatch`): 10,000 commands from a
/// slow link.
pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(120);

/// The deadline for the RPC at `path` (`/package.Service/Method`).
pub fn deadline_for(path: &str) -> Duration {
    if path.ends_with("/RecordBatch") {
        UPLOAD_DEADLINE
    } else {
        UNARY_DEADLINE
    }
}

/// Puts [`deadline_for`] on every call of a server.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S> tonic::codegen::Service<http::Request<TonicBody>> for Deadline<S>
where
    S: tonic::codegen::Service<http::Request<TonicBody>, Response = http::Response<TonicBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<TonicBody>) -> Self::Future {
        let path = request.uri().path().to_string();
        let deadline = deadline_for(&path);
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(deadline, call).await {
                Ok(result) => result,
                Err(_) => {
                    metrics::counter!("hub_deadline_exceeded_total", "rpc" => path.clone())
                        .increment(1);
                    tracing::warn!(rpc = %path, seconds = deadline.as_secs(), "deadline exceeded");
                    Ok(Status::deadline_exceeded(format!(
                        "{path} did not finish within the server's {}s deadline; nothing more \
                         is done for this call (a command not acknowledged may be retried with \
                         the same request_id)",
                        deadline.as_secs()
                    ))
                    .into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_get_longer_than_unary_calls() {
        assert_eq!(
            deadline_for("/hub.prison.v1.PrisonService/RecordBatch"),
            UPLOAD_DEADLINE
        );
        assert_eq!(
            deadline_for("/hub.prison.v1.PrisonService/RecordReleaseDate"),
            UNARY_DEADLINE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_gets_deadline_exceeded() {
        use tonic::codegen::Service;
        #[derive(Clone)]
        struct Stuck;
        impl Service<http::Request<TonicBody>> for Stuck {
            type Response = http::Response<TonicBody>;
            type Error = std::convert::Infallible;
            type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Request<TonicBody>) -> Self::Future {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(http::Response::new(TonicBody::empty()))
                })
            }
        }
        let mut slow = tower_layer::Layer::layer(&DeadlineLayer, Stuck);
        let request = http::Request::builder()
            .uri("/hub.projections.v1.PickupListService/ListPickups")
            .body(TonicBody::empty())
            .unwrap();
        let response = slow.call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("ListPickups"));
    }
}
