//! `TrainingCountsService`: a partnership's overdose-training counts for a
//! financial year, with small counts withheld for partnership analysts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use hub_core::auth::Action;
use hub_projection::Projection;
use hub_proto::projections::{
    training_counts_service_server::TrainingCountsService, GetTrainingCountsRequest, TrainingCounts,
};
use hub_store::KeyKind;

use crate::model::{self, YearRows};

pub struct TrainingApi(pub Arc<Projection>);

#[tonic::async_trait]
impl TrainingCountsService for TrainingApi {
    async fn get_training_counts(
        &self,
        request: Request<GetTrainingCountsRequest>,
    ) -> Result<Response<TrainingCounts>, Status> {
        let p = &self.0;
        let r = request.get_ref();
        let (q, counters, headcounts) = p
            .year_rows(
                &request,
                Action::ReadTrainingCounts,
                (&r.partnership_code, &r.financial_year, r.min_sequence),
                KeyKind::Headcount,
            )
            .await?;
        let mut counts = model::tally(
            &r.partnership_code,
            q.fy,
            &YearRows {
                counters,
                headcounts,
            },
        );
        counts.applied_sequence = q.applied_sequence;
        if !q.see_small_counts {
            model::suppress_small_counts(&mut counts);
        }
        Ok(Response::new(counts))
    }
}
