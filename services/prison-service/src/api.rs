//! The PrisonService RPC table: each RPC is one pipeline call with its rule.

use tonic::{Request, Response, Status};

use hub_proto::{
    common::EventAck,
    prison::{prison_service_server::PrisonService, *},
};
use hub_runtime::pipeline::CommandPipeline;

use crate::rules;

pub struct PrisonApi {
    pipeline: CommandPipeline,
}

impl PrisonApi {
    pub fn new(pipeline: CommandPipeline) -> Self {
        Self { pipeline }
    }
}

#[tonic::async_trait]
impl PrisonService for PrisonApi {
    async fn record_release_date(
        &self,
        r: Request<RecordReleaseDateRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute("RecordReleaseDate", r, rules::record_release_date)
            .await
    }

    async fn cancel_release(
        &self,
        r: Request<CancelReleaseRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute("CancelRelease", r, rules::cancel_release)
            .await
    }

    async fn flag_imminent_release(
        &self,
        r: Request<FlagImminentReleaseRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute("FlagImminentRelease", r, rules::flag_imminent_release)
            .await
    }

    async fn record_consent(
        &self,
        r: Request<RecordConsentRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute("RecordConsent", r, rules::record_consent)
            .await
    }

    async fn record_pre_release_triage(
        &self,
        r: Request<RecordPreReleaseTriageRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute(
                "RecordPreReleaseTriage",
                r,
                rules::record_pre_release_triage,
            )
            .await
    }

    async fn record_naloxone_on_release(
        &self,
        r: Request<RecordNaloxoneOnReleaseRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute(
                "RecordNaloxoneOnRelease",
                r,
                rules::record_naloxone_on_release,
            )
            .await
    }

    async fn record_release(
        &self,
        r: Request<RecordReleaseRequest>,
    ) -> Result<Response<EventAck>, Status> {
        self.pipeline
            .execute("RecordRelease", r, rules::record_release)
            .await
    }
}
