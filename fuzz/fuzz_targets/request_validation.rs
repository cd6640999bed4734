//! Every RPC's request through its service's authorisation and field
//! rules, exactly as the pipeline runs them before anything is published.
//! The first byte picks the agency (and the caller's role); the rest is
//! that agency's batch command (`<Agency>Command`, whose oneof holds every
//! one of its RPCs' requests), as protobuf. A command must be refused with
//! an error or decided, never panic; and deciding is deterministic.
#![no_main]

use std::sync::LazyLock;

use hub_core::{
    auth::{Agency, Caller, PartnershipScope, Role},
    command::Checker,
    partnerships::PartnershipRegister,
    pseudonym::Pseudonymiser,
    secret::HubSecret,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

static PARTNERSHIPS: LazyLock<PartnershipRegister> = LazyLock::new(|| {
    PartnershipRegister::parse(
        include_str!("../../seeds/partnerships.tsv"),
        "seeds/partnerships.tsv",
    )
    .expect("the seed register parses")
});
static PSEUDONYMISER: LazyLock<Pseudonymiser> =
    LazyLock::new(|| Pseudonymiser::new(&HubSecret::from_bytes(&[7; 32]).expect("32 bytes")));

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let role = Role::ALL[(selector as usize / 6) % Role::ALL.len()];
    let caller = Caller {
        user_id: "fuzz".into(),
        role,
        org_code: "LEI".into(),
        partnerships: if selector & 0x80 == 0 {
            PartnershipScope::All
        } else {
            PartnershipScope::Only(vec!["bradford".into()])
        },
    };
    // A fixed instant, so that a crash replays: 2026-11-24T12:00:00Z.
    let now = jiff::Timestamp::from_second(1_795_521_600).expect("a time");
    let check = |agency| Checker {
        agency,
        partnerships: &PARTNERSHIPS,
        pseudonymiser: &PSEUDONYMISER,
    };
    macro_rules! run {
        ($command:ty, $api:ty, $agency:expr) => {{
            let Ok(command) = <$command>::decode(body) else {
                return;
            };
            let first = <$api>::check_command(&check($agency), &caller, &command, now);
            let again = <$api>::check_command(&check($agency), &caller, &command, now);
            assert_eq!(
                format!("{first:?}"),
                format!("{again:?}"),
                "the same command decided differently"
            );
        }};
    }
    match selector % 6 {
        0 => run!(
            hub_proto::custody::CustodyCommand,
            custody_service::api::CustodyApi,
            Agency::Custody
        ),
        1 => run!(
            hub_proto::prison::PrisonCommand,
            prison_service::api::PrisonApi,
            Agency::Prison
        ),
        2 => run!(
            hub_proto::pharmacy::PharmacyCommand,
            pharmacy_service::api::PharmacyApi,
            Agency::Pharmacy
        ),
        3 => run!(
            hub_proto::treatment::TreatmentCommand,
            treatment_service::api::TreatmentApi,
            Agency::Treatment
        ),
        4 => run!(
            hub_proto::ambulance::AmbulanceCommand,
            ambulance_service::api::AmbulanceApi,
            Agency::Ambulance
        ),
        _ => run!(
            hub_proto::identity::IdentityCommand,
            identity_service::api::IdentityApi,
            Agency::Identity
        ),
    }
});
