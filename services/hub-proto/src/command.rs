//! The fields every command request shares (contract section 3), behind one
//! trait so that one pipeline serves every RPC of every agency.

pub trait CommandFields: prost::Message + Default + Send + Sync + 'static {
    fn request_id(&self) -> &str;
    fn partnership_code(&self) -> &str;
    fn occurred_at(&self) -> Option<&prost_types::Timestamp>;
}

macro_rules! command_fields {
    ($($t:ty),* $(,)?) => {$(
        impl CommandFields for $t {
            fn request_id(&self) -> &str { &self.request_id }
            fn partnership_code(&self) -> &str { &self.partnership_code }
            fn occurred_at(&self) -> Option<&prost_types::Timestamp> { self.occurred_at.as_ref() }
        }
    )*};
}

command_fields!(
    crate::custody::RecordHarmReductionAdviceRequest,
    crate::custody::RecordOfficerOverdoseTrainingRequest,
    crate::custody::RecordCustodyWorkforceRequest,
    crate::prison::RecordReleaseDateRequest,
    crate::prison::CancelReleaseRequest,
    crate::prison::FlagImminentReleaseRequest,
    crate::prison::RecordConsentRequest,
    crate::prison::RecordPreReleaseTriageRequest,
    crate::prison::RecordNaloxoneOnReleaseRequest,
    crate::prison::RecordReleaseRequest,
    crate::prison::RecordHandoverRequest,
    crate::pharmacy::RecordNeedleExchangeRequest,
    crate::pharmacy::RecordReferralRequest,
    crate::pharmacy::RecordStaffTrainingRequest,
    crate::pharmacy::RecordNaloxoneSupplyRequest,
    crate::treatment::RecordReferralRequest,
    crate::treatment::BookCommunityAppointmentRequest,
    crate::treatment::ArrangeGatePickupRequest,
    crate::treatment::RecordGatePickupRequest,
    crate::treatment::RecordTreatmentEngagementRequest,
    crate::treatment::RecordOverdoseTrainingRequest,
    crate::ambulance::RecordParamedicNaloxoneTrainingRequest,
    crate::ambulance::RecordAmbulanceWorkforceRequest,
    crate::ambulance::RecordOverdoseAttendanceRequest,
    crate::ambulance::RecordAttendanceProtocolRequest,
    crate::identity::LinkPeopleRequest,
    crate::identity::UnlinkPeopleRequest,
);
