//! `ActivityService`: a partnership's harm-reduction activity for a
//! financial year, with small counts of people withheld for partnership
//! analysts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use hub_core::auth::Action;
use hub_projection::Projection;
use hub_proto::projections::{
    activity_service_server::ActivityService, Activity, GetActivityRequest,
};
use hub_store::KeyKind;

use crate::model::{self, YearRows};

pub struct ActivityApi(pub Arc<Projection>);

#[tonic::async_trait]
impl ActivityService for ActivityApi {
    async fn get_activity(
        &self,
        request: Request<GetActivityRequest>,
    ) -> Result<Response<Activity>, Status> {
        let p = &self.0;
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
}
