//! The PharmacyService RPC table.

use hub_proto::pharmacy::{pharmacy_service_server::PharmacyService, *};

use crate::rules;

hub_runtime::rpc_table!(PharmacyApi: PharmacyService as PharmacyRpc, PharmacyCommand => pharmacy_command::Command {
    record_needle_exchange(RecordNeedleExchangeRequest) => RecordNeedleExchange, rules::record_needle_exchange;
    record_referral(RecordReferralRequest) => RecordReferral, rules::record_referral;
    record_staff_training(RecordStaffTrainingRequest) => RecordStaffTraining, rules::record_staff_training;
    record_naloxone_supply(RecordNaloxoneSupplyRequest) => RecordNaloxoneSupply, rules::record_naloxone_supply;
});
