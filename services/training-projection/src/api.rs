//! `TrainingCountsService`: a partnership's overdose-training counts for a
//! financial year, with small counts withheld for partnership analysts;
//! and every partnership's, with England's sums, for the national
//! comparison.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use hub_core::auth::Action;
use hub_projection::Projection;
use hub_proto::projections::{
    training_counts_service_server::TrainingCountsService, GetNationalTrainingCountsRequest,
    GetTrainingCountsRequest, NationalTrainingCounts, TrainingCounts,
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

    async fn get_national_training_counts(
        &self,
        request: Request<GetNationalTrainingCountsRequest>,
    ) -> Result<Response<NationalTrainingCounts>, Status> {
        let r = request.get_ref();
        let (q, rows) = self
            .0
            .national_rows(
                &request,
                (&r.financial_year, r.min_sequence),
                KeyKind::Headcount,
            )
            .await?;
        let mut partnerships: Vec<TrainingCounts> = rows
            .into_iter()
            .map(|(code, counters, headcounts)| {
                let mut counts = model::tally(
                    &code,
                    q.fy,
                    &YearRows {
                        counters,
                        headcounts,
                    },
                );
                counts.quarters.clear();
                counts
            })
            .collect();
        let mut england = model::england(&partnerships);
        england.financial_year = q.fy.to_string();
        if !q.see_small_counts {
            model::suppress_national(&mut partnerships);
        }
        Ok(Response::new(NationalTrainingCounts {
            financial_year: q.fy.to_string(),
            partnerships,
            england: Some(england),
            applied_sequence: q.applied_sequence,
        }))
    }
}
