//! Field rules and decisions for each PrisonService RPC: pure functions from
//! a request to the event it records, tested without a server.
//!
//! Every rule is checked before any is used, so a request that breaks
//! several learns of them all at once.

use hub_core::{
    command::{org_and_person, org_fact, Decision, RuleContext},
    person::check_person,
    validate::{self, Violations},
};
use hub_proto::{
    common::ConsentPurpose,
    events::{
        event::Payload, ConsentRecorded, HandoverRecorded, ImminentReleaseFlagged,
        NaloxoneOnReleaseRecorded, PreReleaseTriageRecorded, ReleaseCancelled, ReleaseDateRecorded,
        ReleaseRecorded,
    },
    prison::*,
};

pub fn record_release_date(
    r: &RecordReleaseDateRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (prison_code, person) =
        org_and_person("prison_code", &r.prison_code, r.person.as_ref(), ctx, v);
    let release_date = v.check("release_date", validate::date(&r.release_date));
    Some(Decision::about(
        Some(person?),
        Payload::ReleaseDateRecorded(ReleaseDateRecorded {
            prison_code: prison_code?,
            release_date: release_date?.to_string(),
        }),
    ))
}

pub fn cancel_release(
    r: &CancelReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    org_fact(
        "prison_code",
        &r.prison_code,
        r.person.as_ref(),
        ctx,
        v,
        |prison_code| Payload::ReleaseCancelled(ReleaseCancelled { prison_code }),
    )
}

pub fn flag_imminent_release(
    r: &FlagImminentReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (prison_code, person) =
        org_and_person("prison_code", &r.prison_code, r.person.as_ref(), ctx, v);
    let note = v.check("note", validate::text(&r.note));
    Some(Decision {
        payload: Payload::ImminentReleaseFlagged(ImminentReleaseFlagged {
            prison_code: prison_code?,
        }),
        person: Some(person?),
        person_text: note?.trim().to_string(),
    })
}

pub fn record_consent(
    r: &RecordConsentRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let person = check_person(v, "person", r.person.as_ref(), ctx.today);
    let purpose = v.check("purpose", validate::enum_value::<ConsentPurpose>(r.purpose));
    Some(Decision::about(
        Some(person?),
        Payload::ConsentRecorded(ConsentRecorded {
            purpose: purpose? as i32,
            given: r.given,
        }),
    ))
}

pub fn record_pre_release_triage(
    r: &RecordPreReleaseTriageRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    org_fact(
        "prison_code",
        &r.prison_code,
        r.person.as_ref(),
        ctx,
        v,
        |prison_code| Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded { prison_code }),
    )
}

pub fn record_naloxone_on_release(
    r: &RecordNaloxoneOnReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    org_fact(
        "prison_code",
        &r.prison_code,
        r.person.as_ref(),
        ctx,
        v,
        |prison_code| Payload::NaloxoneOnReleaseRecorded(NaloxoneOnReleaseRecorded { prison_code }),
    )
}

pub fn record_release(
    r: &RecordReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    org_fact(
        "prison_code",
        &r.prison_code,
        r.person.as_ref(),
        ctx,
        v,
        |prison_code| Payload::ReleaseRecorded(ReleaseRecorded { prison_code }),
    )
}

/// The person is handed over to another partnership of the register.
pub fn record_handover(
    r: &RecordHandoverRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (prison_code, person) =
        org_and_person("prison_code", &r.prison_code, r.person.as_ref(), ctx, v);
    let to = v.check(
        "to_partnership_code",
        validate::other_partnership(
            ctx.partnerships,
            &r.to_partnership_code,
            ctx.partnership_code,
        ),
    );
    Some(Decision::about(
        Some(person?),
        Payload::HandoverRecorded(HandoverRecorded {
            prison_code: prison_code?,
            to_partnership_code: to?.to_string(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{auth::Role, command::testing::decide};
    use hub_proto::common::PersonRef;

    fn person() -> Option<PersonRef> {
        Some(PersonRef {
            prison_number: "A1234BC".into(),
            given_name: "Jo".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_valid_release_date_records_the_date_and_the_person() {
        let req = RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: person(),
            release_date: "2026-12-01".into(),
            ..Default::default()
        };
        let d = decide(Role::CaratWorker, record_release_date, &req).unwrap();
        assert_eq!(
            d.payload,
            Payload::ReleaseDateRecorded(ReleaseDateRecorded {
                prison_code: "LEI".into(),
                release_date: "2026-12-01".into()
            })
        );
        assert_eq!(d.person.unwrap().given_name, "Jo");
    }

    #[test]
    fn every_broken_rule_of_a_release_date_is_named() {
        let req = RecordReleaseDateRequest {
            prison_code: "leeds prison".into(),
            person: None,
            release_date: "2026-02-30".into(),
            ..Default::default()
        };
        assert_eq!(
            decide(Role::CaratWorker, record_release_date, &req).unwrap_err(),
            ["prison_code", "person", "release_date"]
        );
    }

    #[test]
    fn a_handover_goes_to_another_known_partnership() {
        let mut req = RecordHandoverRequest {
            prison_code: "LEI".into(),
            person: person(),
            to_partnership_code: "leeds".into(),
            ..Default::default()
        };
        let d = decide(Role::CaratWorker, record_handover, &req).unwrap();
        assert_eq!(
            d.payload,
            Payload::HandoverRecorded(HandoverRecorded {
                prison_code: "LEI".into(),
                to_partnership_code: "leeds".into()
            })
        );
        for bad in ["", "atlantis", "bradford"] {
            req.to_partnership_code = bad.into();
            assert_eq!(
                decide(Role::CaratWorker, record_handover, &req).unwrap_err(),
                ["to_partnership_code"],
                "{bad:?}"
            );
        }
        req.person = Some(PersonRef::default());
        req.to_partnership_code = "leeds".into();
        assert_eq!(
            decide(Role::CaratWorker, record_handover, &req).unwrap_err(),
            ["person"]
        );
    }

    #[test]
    fn consent_needs_a_purpose() {
        let mut req = RecordConsentRequest {
            person: person(),
            purpose: 0,
            given: true,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::CaratWorker, record_consent, &req).unwrap_err(),
            ["purpose"]
        );
        req.purpose = ConsentPurpose::GatePickup as i32;
        let d = decide(Role::CaratWorker, record_consent, &req).unwrap();
        assert_eq!(
            d.payload,
            Payload::ConsentRecorded(ConsentRecorded {
                purpose: 1,
                given: true
            })
        );
    }

    #[test]
    fn an_imminent_release_note_is_kept_for_sealing_not_in_the_payload() {
        let req = FlagImminentReleaseRequest {
            prison_code: "LEI".into(),
            person: person(),
            note: "released early, lives with mum".into(),
            ..Default::default()
        };
        let d = decide(Role::DipWorker, flag_imminent_release, &req).unwrap();
        assert_eq!(d.person_text, "released early, lives with mum");
        assert_eq!(
            d.payload,
            Payload::ImminentReleaseFlagged(ImminentReleaseFlagged {
                prison_code: "LEI".into()
            })
        );
        let bad = FlagImminentReleaseRequest {
            note: "a\u{7}b".into(),
            ..req
        };
        assert_eq!(
            decide(Role::DipWorker, flag_imminent_release, &bad).unwrap_err(),
            ["note"]
        );
    }

    #[test]
    fn person_rules_apply_to_every_prison_rpc() {
        let bad_person = Some(PersonRef {
            nhs_number: "9434765918".into(),
            ..Default::default()
        });
        let req = RecordReleaseRequest {
            prison_code: "LEI".into(),
            person: bad_person,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::CaratWorker, record_release, &req).unwrap_err(),
            ["person.nhs_number"]
        );
        let req = CancelReleaseRequest {
            prison_code: "L".into(),
            person: person(),
            ..Default::default()
        };
        assert_eq!(
            decide(Role::CaratWorker, cancel_release, &req).unwrap_err(),
            ["prison_code"]
        );
    }
}
