//! Field rules and decisions for `LinkPeople` and `UnlinkPeople`: pure
//! functions from a request to the event it records.
//!
//! Both name two refs and a reason. The refs must not share an identifier
//! (refs sharing one are one person already, and cannot be two), and the
//! reason (10 to 500 characters) is sealed, never in clear.

use hub_core::{
    command::{Decision, RuleContext},
    person::{check_person, Person},
    validate::{self, Violations},
};
use hub_proto::{
    common::PersonRef,
    events::{event::Payload, PeopleLinked, PeopleUnlinked, PersonKeys},
    identity::*,
};

/// The two refs and the reason, checked.
fn two_people(
    a: Option<&PersonRef>,
    b: Option<&PersonRef>,
    reason: &str,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<(Person, PersonKeys, PersonKeys, String)> {
    let a = check_person(v, "person_a", a, ctx.today);
    let b = check_person(v, "person_b", b, ctx.today);
    let reason = v.check("reason", validate::reason(reason));
    let (a, b, reason) = (a?, b?, reason?);
    if a.identifiers.iter().any(|x| b.identifiers.contains(x)) {
        v.add(
            "person_b",
            "shares an identifier with person_a: refs that share one are the same person already",
        );
        return None;
    }
    let keys = |p: &Person| {
        let k = ctx.pseudonymiser.person_keys(p);
        PersonKeys {
            keys: k.all(),
            client_key: k.client_key.unwrap_or_default(),
        }
    };
    let (ka, kb) = (keys(&a), keys(&b));
    Some((a, ka, kb, reason.to_string()))
}

pub fn link_people(
    r: &LinkPeopleRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    decide(
        r.person_a.as_ref(),
        r.person_b.as_ref(),
        &r.reason,
        ctx,
        v,
        |person_a, person_b| Payload::PeopleLinked(PeopleLinked { person_a, person_b }),
    )
}

pub fn unlink_people(
    r: &UnlinkPeopleRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    decide(
        r.person_a.as_ref(),
        r.person_b.as_ref(),
        &r.reason,
        ctx,
        v,
        |person_a, person_b| Payload::PeopleUnlinked(PeopleUnlinked { person_a, person_b }),
    )
}

/// A steward's decision about two refs: the event names both by their
/// keys, and the reason is sealed under person_a's data key.
fn decide(
    a: Option<&PersonRef>,
    b: Option<&PersonRef>,
    reason: &str,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
    payload: impl FnOnce(Option<PersonKeys>, Option<PersonKeys>) -> Payload,
) -> Option<Decision> {
    let (a, person_a, person_b, reason) = two_people(a, b, reason, ctx, v)?;
    Some(Decision {
        payload: payload(Some(person_a), Some(person_b)),
        person: Some(a),
        person_text: reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{auth::Role, command::testing::decide};

    fn nhs(n: &str) -> Option<PersonRef> {
        Some(PersonRef {
            nhs_number: n.into(),
            ..Default::default()
        })
    }

    fn link(a: Option<PersonRef>, b: Option<PersonRef>, reason: &str) -> LinkPeopleRequest {
        LinkPeopleRequest {
            person_a: a,
            person_b: b,
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_link_names_both_people_by_keys_and_keeps_the_reason_for_sealing() {
        let req = link(
            nhs("9434765919"),
            Some(PersonRef {
                client_code: "JS02031985M".into(),
                ..Default::default()
            }),
            "same date of birth and address on the referral",
        );
        let d = decide(Role::DataSteward, link_people, &req).unwrap();
        let Payload::PeopleLinked(l) = &d.payload else {
            panic!("{:?}", d.payload)
        };
        let (a, b) = (l.person_a.as_ref().unwrap(), l.person_b.as_ref().unwrap());
        assert_eq!(a.keys.len(), 1);
        assert!(a.client_key.is_empty());
        assert_eq!(b.client_key, b.keys[0], "the client code is marked");
        assert_eq!(
            d.person_text,
            "same date of birth and address on the referral"
        );
        assert!(!format!("{:?}", d.payload).contains("9434765919"));
    }

    #[test]
    fn bad_refs_and_reasons_are_named() {
        assert_eq!(
            decide(
                Role::DataSteward,
                link_people,
                &link(None, nhs("9434765919"), "short")
            )
            .unwrap_err(),
            ["person_a", "reason"]
        );
        assert_eq!(
            decide(
                Role::DataSteward,
                link_people,
                &link(
                    nhs("9434765919"),
                    Some(PersonRef::default()),
                    &"x".repeat(501)
                )
            )
            .unwrap_err(),
            ["person_b", "reason"]
        );
        let same = UnlinkPeopleRequest {
            person_a: nhs("9434765919"),
            person_b: Some(PersonRef {
                nhs_number: "943 476 5919".into(),
                prison_number: "A1234BC".into(),
                ..Default::default()
            }),
            reason: "a mistyped NHS number on the prison record".into(),
            ..Default::default()
        };
        assert_eq!(
            decide(Role::DataSteward, unlink_people, &same).unwrap_err(),
            ["person_b"]
        );
    }
}
