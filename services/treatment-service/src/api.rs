//! The TreatmentService RPC table.

use hub_proto::treatment::{treatment_service_server::TreatmentService, *};

use crate::rules;

hub_runtime::rpc_table!(TreatmentApi: TreatmentService as TreatmentRpc, TreatmentCommand => treatment_command::Command {
    record_referral(RecordReferralRequest) => RecordReferral, rules::record_referral;
    book_community_appointment(BookCommunityAppointmentRequest) => BookCommunityAppointment, rules::book_community_appointment;
    arrange_gate_pickup(ArrangeGatePickupRequest) => ArrangeGatePickup, rules::arrange_gate_pickup;
    record_gate_pickup(RecordGatePickupRequest) => RecordGatePickup, rules::record_gate_pickup;
    record_treatment_engagement(RecordTreatmentEngagementRequest) => RecordTreatmentEngagement, rules::record_treatment_engagement;
    record_overdose_training(RecordOverdoseTrainingRequest) => RecordOverdoseTraining, rules::record_overdose_training;
});
