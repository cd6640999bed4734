//! `ProjectionStatusService`, the same for every projection: where it
//! stands (applied sequence, lag, parked messages) and rebuilds. Admin only.

use std::{pin::Pin, sync::Arc};

use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use hub_proto::projections::{
    projection_status_service_server::ProjectionStatusService, GetProjectionStatusRequest,
    ProjectionStatus, RebuildProgress, RebuildProjectionRequest,
};
use hub_runtime::ApiError;

use crate::runtime::Projection;

pub struct StatusApi {
    pub projection: Arc<Projection>,
    /// `pickup` or `training`.
    pub label: &'static str,
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<RebuildProgress, Status>> + Send>>;

#[tonic::async_trait]
impl ProjectionStatusService for StatusApi {
    async fn get_projection_status(
        &self,
        request: Request<GetProjectionStatusRequest>,
    ) -> Result<Response<ProjectionStatus>, Status> {
        self.projection.operator(&request)?;
        let p = self.projection.progress();
        let lag = self.projection.lag().await.map_err(ApiError)?;
        Ok(Response::new(ProjectionStatus {
            projection: self.label.into(),
            applied_sequence: lag.applied,
            stream_last_sequence: lag.last,
            lag: lag.events,
            events_applied: p.events_applied,
            parked: p.parked,
            lag_seconds: lag.seconds,
            store_fault: self.projection.fault().unwrap_or_default(),
        }))
    }

    type RebuildProjectionStream = ProgressStream;

    async fn rebuild_projection(
        &self,
        request: Request<RebuildProjectionRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        self.projection.operator(&request)?;
        let (tx, rx) = mpsc::channel(64);
        let projection = self.projection.clone();
        tokio::spawn(async move {
            let progress = tx.clone();
            let report = move |p: hub_store::Progress, target: u64, switched: bool| {
                let _ = progress.try_send(Ok(RebuildProgress {
                    applied_sequence: p.applied_sequence,
                    target_sequence: target,
                    switched,
                    events_applied: p.events_applied,
                    parked: p.parked,
                }));
            };
            // If the process stops first, the engine abandons the rebuild
            // (its folder is removed) and says so.
            let result = projection.engine().rebuild(report).await;
            if let Err(e) = result {
                let _ = tx.send(Err(ApiError(e).into())).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
