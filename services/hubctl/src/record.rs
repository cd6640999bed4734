//! One subcommand per command RPC: `hubctl <agency> <rpc> --<field> ...`.
//!
//! The flags are the request's fields, spelled as in the contract with `-`
//! for `_` (`--prison-code`, `--release-date`, `--nhs-number`...), so a
//! worker can go from the contract's table to the command line without a
//! translation. Every command shares `--partnership-code` (alias
//! `--partnership`), `--request-id` (default: a new one, printed with the
//! result so that a retry can reuse it) and `--occurred-at` (default: now).
//!
//! The tables below are the only place the RPCs are listed; the `agency!`
//! macro turns each into clap arguments, the request message and the call,
//! so a new RPC is one entry here.

use anyhow::Result;
use clap::{Args, Subcommand};
use hub_proto::common::{AdviceTopic, ConsentPurpose, EventAck, PersonRef, TrainingAudience};
use tonic::transport::Channel;

use crate::{new_request_id, timestamp_now, Caller};

/// The fields every command shares (contract section 3).
#[derive(Args, Debug)]
pub struct Envelope {
    /// Partnership code from the register (seeds/partnerships.tsv), e.g. bradford.
    #[arg(long, visible_alias = "partnership")]
    pub partnership_code: String,
    /// Your idempotency key, 1-128 of [A-Za-z0-9._:-] (default: a new one,
    /// printed with the result). Retrying with the same key records nothing twice.
    #[arg(long)]
    pub request_id: Option<String>,
    /// When it happened: RFC 3339 (2026-11-24T09:30:00Z), or YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM in Europe/London (default: now).
    #[arg(long, value_parser = instant)]
    pub occurred_at: Option<prost_types::Timestamp>,
}

/// The person a command is about: at least one identifier.
#[derive(Args, Debug)]
pub struct Person {
    /// NHS number, 10 digits (spaces allowed).
    #[arg(long)]
    nhs_number: Option<String>,
    /// Prison (NOMIS) number, e.g. A1234BC.
    #[arg(long)]
    prison_number: Option<String>,
    /// Police National Computer id.
    #[arg(long)]
    pnc_id: Option<String>,
    /// NDTMS-style attributor, e.g. JS02031985M.
    #[arg(long)]
    client_code: Option<String>,
    #[arg(long)]
    given_name: Option<String>,
    #[arg(long)]
    family_name: Option<String>,
    /// YYYY-MM-DD.
    #[arg(long)]
    date_of_birth: Option<String>,
}

/// Converts a parsed argument into the request field it fills.
pub trait IntoField<T> {
    fn into_field(self) -> T;
}

impl<T> IntoField<T> for T {
    fn into_field(self) -> T {
        self
    }
}

/// No flag at all means no person (the one optional person, an overdose
/// attendance, relies on it); the service names `person` if one is needed.
impl IntoField<Option<PersonRef>> for Person {
    fn into_field(self) -> Option<PersonRef> {
        let p = PersonRef {
            nhs_number: self.nhs_number.unwrap_or_default(),
            prison_number: self.prison_number.unwrap_or_default(),
            pnc_id: self.pnc_id.unwrap_or_default(),
            client_code: self.client_code.unwrap_or_default(),
            given_name: self.given_name.unwrap_or_default(),
            family_name: self.family_name.unwrap_or_default(),
            date_of_birth: self.date_of_birth.unwrap_or_default(),
        };
        (p != PersonRef::default()).then_some(p)
    }
}

impl IntoField<Option<prost_types::Timestamp>> for prost_types::Timestamp {
    fn into_field(self) -> Option<prost_types::Timestamp> {
        Some(self)
    }
}

/// RFC 3339, or a London day or local date-time.
pub fn instant(s: &str) -> Result<prost_types::Timestamp, String> {
    let t = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else {
        let local: jiff::civil::DateTime = s
            .parse()
            .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
            .map_err(|_| {
                format!("{s:?} is not a time: use RFC 3339 (2026-11-24T09:30:00Z) or YYYY-MM-DD[THH:MM] (Europe/London)")
            })?;
        local
            .to_zoned(crate::london())
            .map_err(|e| e.to_string())?
            .timestamp()
    };
    Ok(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    })
}

/// An enum value by its contract name, in any case, `-` or `_`.
fn enum_value<E>(s: &str) -> Result<i32, String>
where
    E: EnumNames,
{
    let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
    let names = E::names();
    names
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<_> = names.iter().map(|(n, _)| *n).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
}

/// The values a user may name (the zero `_UNSPECIFIED` is never valid).
pub trait EnumNames {
    fn names() -> Vec<(&'static str, i32)>;
}

macro_rules! enum_names {
    ($($e:ident: $($v:ident),+;)*) => {$(
        impl EnumNames for $e {
            fn names() -> Vec<(&'static str, i32)> {
                vec![$(($e::$v.as_str_name(), $e::$v as i32)),+]
            }
        }
    )*};
}

enum_names! {
    AdviceTopic: BloodBorneViruses, SaferInjecting, OverdoseRisk, Naloxone, LocalServices;
    ConsentPurpose: GatePickup, ShareWithTreatment;
    TrainingAudience: ServiceUser, Carer, PrisonLeaver;
}

pub fn topic(s: &str) -> Result<i32, String> {
    enum_value::<AdviceTopic>(s)
}
pub fn purpose(s: &str) -> Result<i32, String> {
    enum_value::<ConsentPurpose>(s)
}
pub fn audience(s: &str) -> Result<i32, String> {
    enum_value::<TrainingAudience>(s)
}

/// What a command returns: the request id it was sent with (so a failed
/// call can be retried with it) and the service's answer.
pub struct Sent {
    pub request_id: String,
    /// The `occurred_at` sent (a retry must send the same, or it is
    /// another request under the same id).
    pub occurred_at: prost_types::Timestamp,
    pub reply: Result<EventAck, tonic::Status>,
}

/// What a command line sent: one command, or a file's batch.
pub enum Outcome {
    One(Sent),
    Batch {
        lines: Vec<(usize, String)>,
        replies: Vec<hub_proto::common::BatchAck>,
    },
}

macro_rules! agency {
    (
        $(#[doc = $agency_doc:literal])*
        mod $module:ident: $Agency:ident ($client:path, batch $Batch:path = $batch_name:literal) {$(
            $(#[$vattr:meta])*
            $Rpc:ident => $method:ident($Req:path) {
                $( $(#[$fattr:meta])* $field:ident : $fty:ty ),* $(,)?
            }
        )*}
    ) => {
        pub mod $module {
            use super::*;

            $(#[doc = $agency_doc])*
            #[derive(Subcommand, Debug)]
            #[allow(clippy::enum_variant_names)] // the RPCs' own names
            pub enum $Agency {
                $(
                    $(#[$vattr])*
                    $Rpc($Rpc),
                )*
                /// Bulk upload: a file of this service's commands, one JSON
                /// object a line, each recorded or refused as if sent alone.
                RecordBatch(crate::batch::BatchFile),
            }

            $(
                #[derive(Args, Debug)]
                pub struct $Rpc {
                    #[command(flatten)]
                    envelope: Envelope,
                    $( $(#[$fattr])* $field: $fty, )*
                }
            )*

            impl $Agency {
                /// Sends the command (or the file's commands) to the agency's service.
                pub async fn send(self, channel: Channel, caller: &Caller) -> Result<Outcome> {
                    let mut client = <$client>::new(channel);
                    match self {
                    $Agency::RecordBatch(file) => {
                        let read = file.read::<$Batch>($batch_name)?;
                        let mut replies = Vec::new();
                        let mut done = 0;
                        for chunk in read.commands.chunks(crate::batch::MAX_BATCH) {
                            let reply = client
                                .record_batch(caller.request(futures::stream::iter(chunk.to_vec()))?)
                                .await
                                .map_err(|status| {
                                    crate::explain(status).context(format!(
                                        "the upload stopped after {done} of {} commands; upload the file again: what was recorded is acknowledged again, not recorded twice",
                                        read.commands.len()
                                    ))
                                })?;
                            done += chunk.len();
                            replies.push(reply.into_inner());
                        }
                        Ok(Outcome::Batch { lines: read.lines, replies })
                    }
                    $(
                        $Agency::$Rpc(a) => {
                            let request_id = a.envelope.request_id.unwrap_or_else(new_request_id);
                            type Request = $Req;
                            let occurred_at = a.envelope.occurred_at.unwrap_or_else(timestamp_now);
                            let request = Request {
                                request_id: request_id.clone(),
                                partnership_code: a.envelope.partnership_code,
                                occurred_at: Some(occurred_at),
                                $( $field: IntoField::into_field(a.$field), )*
                            };
                            let reply = client
                                .$method(caller.request(request)?)
                                .await
                                .map(tonic::Response::into_inner);
                            Ok(Outcome::One(Sent { request_id, occurred_at, reply }))
                        }
                    )*}
                }
            }
        }
    };
}

agency! {
    /// Police custody suites (custody-service; role custody_officer).
    mod custody: Custody(hub_proto::custody::custody_service_client::CustodyServiceClient<Channel>, batch hub_proto::custody::CustodyCommand = "hub.custody.v1.CustodyCommand") {
        /// Harm-reduction advice given to a detainee.
        RecordHarmReductionAdvice => record_harm_reduction_advice(hub_proto::custody::RecordHarmReductionAdviceRequest) {
            /// Custody suite code, 2-12 of [A-Z0-9].
            #[arg(long)] custody_suite_code: String,
            #[command(flatten)] person: Person,
            /// Topics covered, comma-separated: BLOOD_BORNE_VIRUSES, SAFER_INJECTING,
            /// OVERDOSE_RISK, NALOXONE, LOCAL_SERVICES.
            #[arg(long, required = true, value_delimiter = ',', value_parser = topic)] topics: Vec<i32>,
            /// Whether the detainee was referred to treatment.
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            referred_to_treatment: bool,
        }
        /// A custody officer completed overdose-awareness training.
        RecordOfficerOverdoseTraining => record_officer_overdose_training(hub_proto::custody::RecordOfficerOverdoseTrainingRequest) {
            #[arg(long)] custody_suite_code: String,
            /// The officer's staff id (stored only as a keyed hash).
            #[arg(long)] staff_id: String,
        }
        /// The suite's current number of custody officers (replaces the last figure).
        RecordCustodyWorkforce => record_custody_workforce(hub_proto::custody::RecordCustodyWorkforceRequest) {
            #[arg(long)] custody_suite_code: String,
            #[arg(long)] custody_officer_headcount: u32,
        }
    }
}

agency! {
    /// Prisons and their CARAT teams (prison-service; roles prison_officer,
    /// carat_worker; dip_worker for flag-imminent-release).
    mod prison: Prison(hub_proto::prison::prison_service_client::PrisonServiceClient<Channel>, batch hub_proto::prison::PrisonCommand = "hub.prison.v1.PrisonCommand") {
        /// Record (or replace) the release date of the person's current episode.
        RecordReleaseDate => record_release_date(hub_proto::prison::RecordReleaseDateRequest) {
            /// NOMIS agency id of the prison, e.g. LEI.
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
            /// YYYY-MM-DD.
            #[arg(long)] release_date: String,
        }
        /// The release will not happen (the episode leaves the pick-up list).
        CancelRelease => cancel_release(hub_proto::prison::CancelReleaseRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
        }
        /// Flag a release as imminent (CARAT and DIP workers).
        FlagImminentRelease => flag_imminent_release(hub_proto::prison::FlagImminentReleaseRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
            /// Free text for the gate team (stored encrypted).
            #[arg(long, default_value = "")] note: String,
        }
        /// Consent given or withdrawn (--given false withdraws).
        RecordConsent => record_consent(hub_proto::prison::RecordConsentRequest) {
            #[command(flatten)] person: Person,
            /// GATE_PICKUP or SHARE_WITH_TREATMENT.
            #[arg(long, value_parser = purpose)] purpose: i32,
            /// true gives consent, false withdraws it (required: never assumed).
            #[arg(long, required = true, action = clap::ArgAction::Set)] given: bool,
        }
        /// The pre-release triage is done.
        RecordPreReleaseTriage => record_pre_release_triage(hub_proto::prison::RecordPreReleaseTriageRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
        }
        /// A naloxone kit was handed over on release.
        RecordNaloxoneOnRelease => record_naloxone_on_release(hub_proto::prison::RecordNaloxoneOnReleaseRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
        }
        /// The person has left the prison.
        RecordRelease => record_release(hub_proto::prison::RecordReleaseRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
        }
        /// Hand the person over to the partnership where they will live: they
        /// leave this partnership's pick-up list and join the receiver's, with
        /// what was recorded here (the name only with GATE_PICKUP consent,
        /// prison-held details only with SHARE_WITH_TREATMENT).
        RecordHandover => record_handover(hub_proto::prison::RecordHandoverRequest) {
            #[arg(long)] prison_code: String,
            #[command(flatten)] person: Person,
            /// The receiving partnership's code (another one of the register).
            #[arg(long)] to_partnership_code: String,
        }
    }
}

/// A ref of a data steward's decision, by its identifiers only, with
/// flags `--<prefix>-nhs-number` and so on.
macro_rules! steward_ref {
    ($name:ident, $heading:literal, $nhs:literal, $prison:literal, $pnc:literal, $client:literal) => {
        #[derive(Args, Debug)]
        #[command(next_help_heading = $heading)]
        pub struct $name {
            /// NHS number, 10 digits (spaces allowed).
            #[arg(long = $nhs, id = $nhs)]
            nhs_number: Option<String>,
            /// Prison (NOMIS) number, e.g. A1234BC.
            #[arg(long = $prison, id = $prison)]
            prison_number: Option<String>,
            /// Police National Computer id.
            #[arg(long = $pnc, id = $pnc)]
            pnc_id: Option<String>,
            /// NDTMS-style attributor, e.g. JS02031985M.
            #[arg(long = $client, id = $client)]
            client_code: Option<String>,
        }

        impl IntoField<Option<PersonRef>> for $name {
            fn into_field(self) -> Option<PersonRef> {
                Person {
                    nhs_number: self.nhs_number,
                    prison_number: self.prison_number,
                    pnc_id: self.pnc_id,
                    client_code: self.client_code,
                    given_name: None,
                    family_name: None,
                    date_of_birth: None,
                }
                .into_field()
            }
        }
    };
}

steward_ref!(
    PersonA,
    "person_a",
    "person-a-nhs-number",
    "person-a-prison-number",
    "person-a-pnc-id",
    "person-a-client-code"
);
steward_ref!(
    PersonB,
    "person_b",
    "person-b-nhs-number",
    "person-b-prison-number",
    "person-b-pnc-id",
    "person-b-client-code"
);

agency! {
    /// Data stewards' decisions about who is whom in their partnership
    /// (identity-service; role data_steward).
    mod identity: Identity(hub_proto::identity::identity_service_client::IdentityServiceClient<Channel>, batch hub_proto::identity::IdentityCommand = "hub.identity.v1.IdentityCommand") {
        /// The two refs are one person in this partnership (LinkPeople).
        #[command(visible_alias = "link")]
        LinkPeople => link_people(hub_proto::identity::LinkPeopleRequest) {
            #[command(flatten)] person_a: PersonA,
            #[command(flatten)] person_b: PersonB,
            /// Why, 10-500 characters (stored encrypted).
            #[arg(long)] reason: String,
        }
        /// The two refs are different people in this partnership, whatever
        /// linked them (UnlinkPeople). What a record naming both said stays
        /// with person_a.
        #[command(visible_alias = "unlink")]
        UnlinkPeople => unlink_people(hub_proto::identity::UnlinkPeopleRequest) {
            #[command(flatten)] person_a: PersonA,
            #[command(flatten)] person_b: PersonB,
            /// Why, 10-500 characters (stored encrypted).
            #[arg(long)] reason: String,
        }
    }
}

agency! {
    /// Community pharmacies (pharmacy-service; role pharmacist).
    mod pharmacy: Pharmacy(hub_proto::pharmacy::pharmacy_service_client::PharmacyServiceClient<Channel>, batch hub_proto::pharmacy::PharmacyCommand = "hub.pharmacy.v1.PharmacyCommand") {
        /// A needle-exchange visit.
        RecordNeedleExchange => record_needle_exchange(hub_proto::pharmacy::RecordNeedleExchangeRequest) {
            /// ODS code of the pharmacy, e.g. FW844.
            #[arg(long)] pharmacy_code: String,
            /// NDTMS-style attributor, e.g. JS02031985M.
            #[arg(long)] client_code: String,
            /// Packs given, 0-10000.
            #[arg(long)] packs_given: u32,
            /// Used packs returned, 0-10000.
            #[arg(long, default_value_t = 0)] returns: u32,
        }
        /// A referral from the pharmacy to a drug service.
        RecordReferral => record_referral(hub_proto::pharmacy::RecordReferralRequest) {
            #[arg(long)] pharmacy_code: String,
            #[command(flatten)] person: Person,
            /// Why (required; stored encrypted).
            #[arg(long)] reason: String,
        }
        /// A member of pharmacy staff completed overdose/naloxone training.
        RecordStaffTraining => record_staff_training(hub_proto::pharmacy::RecordStaffTrainingRequest) {
            #[arg(long)] pharmacy_code: String,
            /// Staff id (stored only as a keyed hash).
            #[arg(long)] staff_id: String,
            /// The course or accreditation, e.g. CPPE-naloxone.
            #[arg(long)] accreditation: String,
        }
        /// Naloxone kits supplied to a person.
        RecordNaloxoneSupply => record_naloxone_supply(hub_proto::pharmacy::RecordNaloxoneSupplyRequest) {
            #[arg(long)] pharmacy_code: String,
            #[command(flatten)] person: Person,
            /// Kits supplied, 1-10000.
            #[arg(long)] kits: u32,
        }
    }
}

agency! {
    /// Drug treatment agencies and DIP teams (treatment-service; roles
    /// treatment_worker, dip_worker for referrals and gate pick-ups).
    mod treatment: Treatment(hub_proto::treatment::treatment_service_client::TreatmentServiceClient<Channel>, batch hub_proto::treatment::TreatmentCommand = "hub.treatment.v1.TreatmentCommand") {
        /// A referral into treatment.
        RecordReferral => record_referral(hub_proto::treatment::RecordReferralRequest) {
            /// The treatment service's code, 2-12 of [A-Z0-9].
            #[arg(long)] service_code: String,
            #[command(flatten)] person: Person,
            /// Who referred: custody, prison, pharmacy, treatment, ambulance or self.
            #[arg(long)] source_agency: String,
            /// Why (required; stored encrypted).
            #[arg(long)] reason: String,
        }
        /// A first community appointment booked.
        BookCommunityAppointment => book_community_appointment(hub_proto::treatment::BookCommunityAppointmentRequest) {
            #[arg(long)] service_code: String,
            #[command(flatten)] person: Person,
            /// RFC 3339, or YYYY-MM-DDTHH:MM in Europe/London.
            #[arg(long, value_parser = instant)] appointment_at: prost_types::Timestamp,
        }
        /// A worker will meet the person at the gate.
        ArrangeGatePickup => arrange_gate_pickup(hub_proto::treatment::ArrangeGatePickupRequest) {
            #[command(flatten)] person: Person,
            /// The gate worker's id.
            #[arg(long)] worker_id: String,
        }
        /// What happened at the gate (--met false records a missed pick-up).
        RecordGatePickup => record_gate_pickup(hub_proto::treatment::RecordGatePickupRequest) {
            #[command(flatten)] person: Person,
            /// true if the worker met the person at the gate.
            #[arg(long, required = true, action = clap::ArgAction::Set)] met: bool,
            /// Whether the worker took them straight to a drug service.
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            accompanied_to_service: bool,
        }
        /// The person attended their first appointment.
        RecordTreatmentEngagement => record_treatment_engagement(hub_proto::treatment::RecordTreatmentEngagementRequest) {
            #[arg(long)] service_code: String,
            #[command(flatten)] person: Person,
        }
        /// Overdose training for a service user, carer or prison leaver.
        RecordOverdoseTraining => record_overdose_training(hub_proto::treatment::RecordOverdoseTrainingRequest) {
            #[arg(long)] service_code: String,
            #[command(flatten)] person: Person,
            /// SERVICE_USER, CARER or PRISON_LEAVER.
            #[arg(long, value_parser = audience)] audience: i32,
            /// Whether a naloxone kit was handed over with the training.
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            naloxone_kit_supplied: bool,
        }
    }
}

agency! {
    /// Ambulance trusts (ambulance-service; role paramedic).
    mod ambulance: Ambulance(hub_proto::ambulance::ambulance_service_client::AmbulanceServiceClient<Channel>, batch hub_proto::ambulance::AmbulanceCommand = "hub.ambulance.v1.AmbulanceCommand") {
        /// A paramedic completed naloxone training.
        RecordParamedicNaloxoneTraining => record_paramedic_naloxone_training(hub_proto::ambulance::RecordParamedicNaloxoneTrainingRequest) {
            /// The trust's ODS code, e.g. RX8.
            #[arg(long)] trust_code: String,
            /// Staff id (stored only as a keyed hash).
            #[arg(long)] staff_id: String,
        }
        /// The trust's current number of paramedics (replaces the last figure).
        RecordAmbulanceWorkforce => record_ambulance_workforce(hub_proto::ambulance::RecordAmbulanceWorkforceRequest) {
            #[arg(long)] trust_code: String,
            #[arg(long)] paramedic_headcount: u32,
        }
        /// An overdose attendance (the person is optional).
        RecordOverdoseAttendance => record_overdose_attendance(hub_proto::ambulance::RecordOverdoseAttendanceRequest) {
            #[arg(long)] trust_code: String,
            #[command(flatten)] person: Person,
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            naloxone_administered: bool,
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            police_attended: bool,
            #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
            conveyed_to_hospital: bool,
        }
        /// Whether the protocol that police do not routinely attend 999
        /// overdose calls is in force with a police force.
        RecordAttendanceProtocol => record_attendance_protocol(hub_proto::ambulance::RecordAttendanceProtocolRequest) {
            #[arg(long)] trust_code: String,
            /// The police force's code, 2-12 of [A-Z0-9].
            #[arg(long)] police_force_code: String,
            /// true if the protocol is in force, false if it lapsed.
            #[arg(long, required = true, action = clap::ArgAction::Set)] in_force: bool,
        }
    }
}

pub use ambulance::Ambulance;
pub use custody::Custody;
pub use identity::Identity;
pub use pharmacy::Pharmacy;
pub use prison::Prison;
pub use treatment::Treatment;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        prison: Prison,
    }

    #[test]
    fn enum_names_accept_the_contract_spelling_in_any_case() {
        assert_eq!(topic("OVERDOSE_RISK"), Ok(AdviceTopic::OverdoseRisk as i32));
        assert_eq!(topic("overdose-risk"), Ok(AdviceTopic::OverdoseRisk as i32));
        assert_eq!(
            purpose("gate_pickup"),
            Ok(ConsentPurpose::GatePickup as i32)
        );
        let e = audience("ADVICE_TOPIC_UNSPECIFIED").unwrap_err();
        assert!(e.contains("SERVICE_USER, CARER, PRISON_LEAVER"), "{e}");
        assert!(topic("ADVICE_TOPIC_UNSPECIFIED").is_err());
    }

    #[test]
    fn times_are_rfc3339_or_london_local() {
        // 2026-04-01 00:30 in London is 23:30 UTC the day before (BST).
        let t = instant("2026-04-01T00:30").unwrap();
        assert_eq!(
            t.seconds,
            "2026-03-31T23:30:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        );
        let t = instant("2026-12-01").unwrap();
        assert_eq!(
            t.seconds,
            "2026-12-01T00:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        );
        assert!(instant("tomorrow").is_err());
    }

    #[test]
    fn consent_must_say_given_or_withdrawn() {
        let missing = T::try_parse_from([
            "t",
            "record-consent",
            "--partnership",
            "bradford",
            "--prison-number",
            "A1234BC",
            "--purpose",
            "GATE_PICKUP",
        ]);
        assert!(
            missing.is_err(),
            "consent without --given must not default to a withdrawal"
        );
        let ok = T::try_parse_from([
            "t",
            "record-consent",
            "--partnership-code",
            "bradford",
            "--prison-number",
            "A1234BC",
            "--purpose",
            "GATE_PICKUP",
            "--given",
            "false",
        ]);
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn no_person_flag_means_no_person() {
        let p = Person {
            nhs_number: None,
            prison_number: None,
            pnc_id: None,
            client_code: None,
            given_name: None,
            family_name: None,
            date_of_birth: None,
        };
        assert_eq!(IntoField::<Option<PersonRef>>::into_field(p), None);
    }
}
