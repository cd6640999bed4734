//! The CustodyService RPC table.

use hub_proto::custody::{custody_service_server::CustodyService, *};

use crate::rules;

hub_runtime::rpc_table!(CustodyApi: CustodyService as CustodyRpc, CustodyCommand => custody_command::Command {
    record_harm_reduction_advice(RecordHarmReductionAdviceRequest) => RecordHarmReductionAdvice, rules::record_harm_reduction_advice;
    record_officer_overdose_training(RecordOfficerOverdoseTrainingRequest) => RecordOfficerOverdoseTraining, rules::record_officer_overdose_training;
    record_custody_workforce(RecordCustodyWorkforceRequest) => RecordCustodyWorkforce, rules::record_custody_workforce;
});
