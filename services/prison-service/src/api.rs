//! The PrisonService RPC table.

use hub_proto::prison::{prison_service_server::PrisonService, *};

use crate::rules;

hub_runtime::rpc_table!(PrisonApi: PrisonService as PrisonRpc, PrisonCommand => prison_command::Command {
    record_release_date(RecordReleaseDateRequest) => RecordReleaseDate, rules::record_release_date;
    cancel_release(CancelReleaseRequest) => CancelRelease, rules::cancel_release;
    flag_imminent_release(FlagImminentReleaseRequest) => FlagImminentRelease, rules::flag_imminent_release;
    record_consent(RecordConsentRequest) => RecordConsent, rules::record_consent;
    record_pre_release_triage(RecordPreReleaseTriageRequest) => RecordPreReleaseTriage, rules::record_pre_release_triage;
    record_naloxone_on_release(RecordNaloxoneOnReleaseRequest) => RecordNaloxoneOnRelease, rules::record_naloxone_on_release;
    record_release(RecordReleaseRequest) => RecordRelease, rules::record_release;
    record_handover(RecordHandoverRequest) => RecordHandover, rules::record_handover;
});
