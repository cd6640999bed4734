//! Field rules and decisions for each PrisonService RPC: pure functions from
//! a request to the event it records, tested without a server.
//!
//! Every rule is checked before any is used, so a request that breaks
//! several learns of them all at once.

use hub_core::{
    person::{check_person, Person},
    validate::{self, Violations},
};
use hub_proto::{
    events::{
        event::Payload, ConsentRecorded, ImminentReleaseFlagged, NaloxoneOnReleaseRecorded,
        PreReleaseTriageRecorded, ReleaseCancelled, ReleaseDateRecorded, ReleaseRecorded,
    },
    prison::*,
};
use hub_runtime::pipeline::{Decision, RuleContext};

/// The two fields most prison RPCs share.
fn prison_and_person(
    prison_code: &str,
    person: Option<&hub_proto::common::PersonRef>,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> (Option<String>, Option<Person>) {
    let code = v
        .check("prison_code", validate::org_code(prison_code))
        .map(str::to_string);
    let person = check_person(v, "person", person, ctx.today);
    (code, person)
}

/// The RPCs whose fact is only "this happened to this person at this
/// prison": one rule, a different payload.
fn prison_fact(
    prison_code: &str,
    person: Option<&hub_proto::common::PersonRef>,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
    payload: fn(String) -> Payload,
) -> Option<Decision> {
    let (prison_code, person) = prison_and_person(prison_code, person, ctx, v);
    Some(Decision::about(Some(person?), payload(prison_code?)))
}

pub fn record_release_date(
    r: &RecordReleaseDateRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (prison_code, person) = prison_and_person(&r.prison_code, r.person.as_ref(), ctx, v);
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
    prison_fact(&r.prison_code, r.person.as_ref(), ctx, v, |prison_code| {
        Payload::ReleaseCancelled(ReleaseCancelled { prison_code })
    })
}

pub fn flag_imminent_release(
    r: &FlagImminentReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (prison_code, person) = prison_and_person(&r.prison_code, r.person.as_ref(), ctx, v);
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
    let purpose = v.check(
        "purpose",
        validate::enum_value::<hub_proto::common::ConsentPurpose>(r.purpose),
    );
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
    prison_fact(&r.prison_code, r.person.as_ref(), ctx, v, |prison_code| {
        Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded { prison_code })
    })
}

pub fn record_naloxone_on_release(
    r: &RecordNaloxoneOnReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    prison_fact(&r.prison_code, r.person.as_ref(), ctx, v, |prison_code| {
        Payload::NaloxoneOnReleaseRecorded(NaloxoneOnReleaseRecorded { prison_code })
    })
}

pub fn record_release(
    r: &RecordReleaseRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    prison_fact(&r.prison_code, r.person.as_ref(), ctx, v, |prison_code| {
        Payload::ReleaseRecorded(ReleaseRecorded { prison_code })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{
        auth::{Caller, PartnershipScope, Role},
        pseudonym::Pseudonymiser,
        secret::HubSecret,
        Error,
    };
    use hub_proto::common::{ConsentPurpose, PersonRef};
    use jiff::civil::date;

    struct Given {
        caller: Caller,
        pseudonymiser: Pseudonymiser,
    }

    fn given() -> Given {
        Given {
            caller: Caller {
                user_id: "u-1".into(),
                role: Role::CaratWorker,
                org_code: "LEI".into(),
                partnerships: PartnershipScope::All,
            },
            pseudonymiser: Pseudonymiser::new(&HubSecret::from_bytes(&[3; 32]).unwrap()),
        }
    }

    fn when<R>(
        rule: fn(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
        req: &R,
    ) -> Result<Decision, Error> {
        let g = given();
        let ctx = RuleContext {
            caller: &g.caller,
            today: date(2026, 11, 23),
            pseudonymiser: &g.pseudonymiser,
        };
        let mut v = Violations::new();
        let decision = rule(req, &ctx, &mut v);
        v.finish(|| decision.expect("valid requests decide"))
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::Invalid(list) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

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
        let d = when(record_release_date, &req).unwrap();
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
            fields(when(record_release_date, &req).unwrap_err()),
            ["prison_code", "person", "release_date"]
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
        assert_eq!(fields(when(record_consent, &req).unwrap_err()), ["purpose"]);
        req.purpose = ConsentPurpose::GatePickup as i32;
        let d = when(record_consent, &req).unwrap();
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
        let d = when(flag_imminent_release, &req).unwrap();
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
            fields(when(flag_imminent_release, &bad).unwrap_err()),
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
            fields(when(record_release, &req).unwrap_err()),
            ["person.nhs_number"]
        );
        let req = CancelReleaseRequest {
            prison_code: "L".into(),
            person: person(),
            ..Default::default()
        };
        assert_eq!(
            fields(when(cancel_release, &req).unwrap_err()),
            ["prison_code"]
        );
    }
}
