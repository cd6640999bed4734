//! The AmbulanceService RPC table.

use hub_proto::ambulance::{ambulance_service_server::AmbulanceService, *};

use crate::rules;

hub_runtime::rpc_table!(AmbulanceApi: AmbulanceService as AmbulanceRpc, AmbulanceCommand => ambulance_command::Command {
    record_paramedic_naloxone_training(RecordParamedicNaloxoneTrainingRequest) => RecordParamedicNaloxoneTraining, rules::record_paramedic_naloxone_training;
    record_ambulance_workforce(RecordAmbulanceWorkforceRequest) => RecordAmbulanceWorkforce, rules::record_ambulance_workforce;
    record_overdose_attendance(RecordOverdoseAttendanceRequest) => RecordOverdoseAttendance, rules::record_overdose_attendance;
    record_attendance_protocol(RecordAttendanceProtocolRequest) => RecordAttendanceProtocol, rules::record_attendance_protocol;
});
