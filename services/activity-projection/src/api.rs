//! `ActivityService`: a partnership's harm-reduction activity for a
//! financial year, with small counts of people withheld for partnership
//! analysts; and the national comparison, which gathers every
//! partnership's from this store and from the training and pick-up
//! projections (asked with the caller's own token, so each applies its own
//! rules) and puts them together ([`crate::national`]).

use std::{sync::Arc, time::Duration};

use tonic::{transport::Channel, Request, Response, Status};

use hub_core::auth::Action;
use hub_projection::Projection;
use hub_proto::projections::{
    activity_service_server::ActivityService, pickup_list_service_client::PickupListServiceClient,
    training_counts_service_client::TrainingCountsServiceClient, Activity, GetActivityRequest,
    GetNationalComparisonRequest, GetNationalContinuityRequest, GetNationalTrainingCountsRequest,
    NationalComparison,
};
use hub_store::KeyKind;

use crate::{
    model::{self, YearRows},
    national,
};

/// How long the national comparison waits on the other projections (each
/// waits up to 5 s for `min_sequence` itself).
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ActivityApi {
    pub projection: Arc<Projection>,
    /// `pickup-projection`, for continuity of care.
    pub pickup: Channel,
    /// `training-projection`, for training counts.
    pub training: Channel,
}

/// `message` as a request of the caller who sent `from`.
fn forwarded<T, M>(from: &Request<T>, message: M) -> Request<M> {
    let mut request = Request::new(message);
    if let Some(auth) = from.metadata().get("authorization") {
        request.metadata_mut().insert("authorization", auth.clone());
    }
    request.set_timeout(GATHER_TIMEOUT);
    request
}

/// A failed call to another projection, said as such (its code kept).
fn from_projection(name: &'static str) -> impl Fn(Status) -> Status {
    move |s| Status::new(s.code(), format!("{name}: {}", s.message()))
}

#[tonic::async_trait]
impl ActivityService for ActivityApi {
    async fn get_activity(
        &self,
        request: Request<GetActivityRequest>,
    ) -> Result<Response<Activity>, Status> {
        let p = &self.projection;
        let r = request.get_ref();
        let (q, counters, protocols) = p
            .year_rows(
                &request,
                Action::ReadActivity,
                (&r.partnership_code, &r.financial_year, r.min_sequence),
                KeyKind::AttendanceProtocol,
            )
            .await?;
        let mut activity = model::tally(
            &r.partnership_code,
            q.fy,
            &YearRows {
                counters,
                protocols,
            },
        );
        activity.applied_sequence = q.applied_sequence;
        if !q.see_small_counts {
            model::suppress_small_counts(&mut activity);
        }
        Ok(Response::new(activity))
    }

    async fn get_national_comparison(
        &self,
        request: Request<GetNationalComparisonRequest>,
    ) -> Result<Response<NationalComparison>, Status> {
        let p = &self.projection;
        let r = request.get_ref();
        let (q, rows) = p
            .national_rows(
                &request,
                (&r.financial_year, r.min_sequence),
                KeyKind::AttendanceProtocol,
            )
            .await?;
        let fy = q.fy.to_string();
        let (mut training, mut pickup) = (
            TrainingCountsServiceClient::new(self.training.clone()),
            PickupListServiceClient::new(self.pickup.clone()),
        );
        let training = training.get_national_training_counts(forwarded(
            &request,
            GetNationalTrainingCountsRequest {
                financial_year: fy.clone(),
                min_sequence: r.min_sequence,
            },
        ));
        let continuity = pickup.get_national_continuity(forwarded(
            &request,
            GetNationalContinuityRequest {
                financial_year: fy.clone(),
                min_sequence: r.min_sequence,
            },
        ));
        let (training, continuity) = tokio::join!(training, continuity);
        let training = training
            .map_err(from_projection("training-projection"))?
            .into_inner();
        let continuity = continuity
            .map_err(from_projection("pickup-projection"))?
            .into_inner();
        let mut all = YearRows {
            counters: Vec::new(),
            protocols: Vec::new(),
        };
        let activity = rows
            .into_iter()
            .map(|(code, counters, protocols)| {
                let rows = YearRows {
                    counters,
                    protocols,
                };
                let a = model::tally(&code, q.fy, &rows);
                all.counters.extend(rows.counters);
                all.protocols.extend(rows.protocols);
                let name = p
                    .partnerships()
                    .get(&code)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                (code, name, a)
            })
            .collect();
        let mut comparison = national::compare(
            national::Gathered {
                financial_year: fy,
                activity,
                england: model::tally("england", q.fy, &all),
                training,
                continuity,
            },
            q.see_small_counts,
        );
        comparison.applied_sequence = q.applied_sequence;
        Ok(Response::new(comparison))
    }
}
