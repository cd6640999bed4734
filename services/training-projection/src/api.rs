//! `TrainingCountsService`: a partnership's overdose-training counts for a
//! financial year, with small counts withheld for partnership analysts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use hub_core::{
    auth::Action,
    time::{london_today, FinancialYear},
    validate::Violations,
};
use hub_projection::Projection;
use hub_proto::projections::{
    training_counts_service_server::TrainingCountsService, GetTrainingCountsRequest, TrainingCounts,
};
use hub_runtime::ApiError;
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
        let caller = p.caller(&request)?;
        let r = request.into_inner();
        p.authorise(&caller, Action::ReadTrainingCounts, &r.partnership_code)?;
        let mut v = Violations::new();
        let fy = if r.financial_year.is_empty() {
            Some(FinancialYear::of(london_today()))
        } else {
            v.check("financial_year", FinancialYear::parse(&r.financial_year))
        };
        v.finish(|| ()).map_err(ApiError)?;
        let fy = fy.expect("checked");
        let applied_sequence = p.wait_for(r.min_sequence).await?;
        let (year, all) = model::prefixes(&r.partnership_code, fy);
        let rows = p
            .read(move |store| {
                Ok::<_, hub_store::Error>(YearRows {
                    counters: store.scan(KeyKind::Counter, &year)?,
                    headcounts: store.scan(KeyKind::Headcount, &all)?,
                })
            })
            .await?;
        let mut counts = model::tally(&r.partnership_code, fy, &rows);
        counts.applied_sequence = applied_sequence;
        if !caller.role.may(Action::SeeSmallCounts) {
            model::suppress_small_counts(&mut counts);
        }
        Ok(Response::new(counts))
    }
}
