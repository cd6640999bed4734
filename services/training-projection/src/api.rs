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
        let q = p
            .year_query(
                &request,
                Action::ReadTrainingCounts,
                &r.partnership_code,
                &r.financial_year,
                r.min_sequence,
            )
            .await?;
        let partnership = r.partnership_code.clone();
        let (year, all) = model::prefixes(&partnership, q.fy);
        let rows = p
            .read(move |store| {
                Ok::<_, hub_store::Error>(YearRows {
                    counters: store.scan(KeyKind::Counter, &year)?,
                    headcounts: store.scan(KeyKind::Headcount, &all)?,
                })
            })
            .await?;
        let mut counts = model::tally(&partnership, q.fy, &rows);
        counts.applied_sequence = q.applied_sequence;
        if !q.see_small_counts {
            model::suppress_small_counts(&mut counts);
        }
        Ok(Response::new(counts))
    }
}
