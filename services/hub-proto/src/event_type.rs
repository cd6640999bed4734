//! Event type names: the snake_case last token of an event's subject and the
//! envelope's `event_type`. Hand-written beside the generated code so that a
//! new payload variant fails to compile until it is named here.

use crate::events::event::Payload;

/// Schema version written by this build into every envelope.
pub const SCHEMA_VERSION: u32 = 1;

pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::HarmReductionAdviceRecorded(_) => "harm_reduction_advice_recorded",
        Payload::OfficerOverdoseTrainingRecorded(_) => "officer_overdose_training_recorded",
        Payload::CustodyWorkforceRecorded(_) => "custody_workforce_recorded",
        Payload::ReleaseDateRecorded(_) => "release_date_recorded",
        Payload::ReleaseCancelled(_) => "release_cancelled",
        Payload::ImminentReleaseFlagged(_) => "imminent_release_flagged",
        Payload::ConsentRecorded(_) => "consent_recorded",
        Payload::PreReleaseTriageRecorded(_) => "pre_release_triage_recorded",
        Payload::NaloxoneOnReleaseRecorded(_) => "naloxone_on_release_recorded",
        Payload::ReleaseRecorded(_) => "release_recorded",
        Payload::HandoverRecorded(_) => "handover_recorded",
        Payload::NeedleExchangeRecorded(_) => "needle_exchange_recorded",
        Payload::PharmacyReferralRecorded(_) => "pharmacy_referral_recorded",
        Payload::PharmacyStaffTrainingRecorded(_) => "pharmacy_staff_training_recorded",
        Payload::NaloxoneSupplied(_) => "naloxone_supplied",
        Payload::TreatmentReferralRecorded(_) => "treatment_referral_recorded",
        Payload::CommunityAppointmentBooked(_) => "community_appointment_booked",
        Payload::GatePickupArranged(_) => "gate_pickup_arranged",
        Payload::GatePickupRecorded(_) => "gate_pickup_recorded",
        Payload::TreatmentEngagementRecorded(_) => "treatment_engagement_recorded",
        Payload::OverdoseTrainingRecorded(_) => "overdose_training_recorded",
        Payload::ParamedicNaloxoneTrainingRecorded(_) => "paramedic_naloxone_training_recorded",
        Payload::AmbulanceWorkforceRecorded(_) => "ambulance_workforce_recorded",
        Payload::OverdoseAttendanceRecorded(_) => "overdose_attendance_recorded",
        Payload::AttendanceProtocolRecorded(_) => "attendance_protocol_recorded",
        Payload::PeopleLinked(_) => "people_linked",
        Payload::PeopleUnlinked(_) => "people_unlinked",
        Payload::PersonErased(_) => "person_erased",
        Payload::PersonLevelRead(_) => "person_level_read",
    }
}
