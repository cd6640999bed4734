//! Field rules and decisions for each PharmacyService RPC: pure functions,
//! tested without a server.

use hub_core::{
    command::{org_and_person, staff_key, Decision, RuleContext},
    person::check_client_code,
    validate::{self, Violations},
};
use hub_proto::{
    events::{
        event::Payload, NaloxoneSupplied, NeedleExchangeRecorded, PharmacyReferralRecorded,
        PharmacyStaffTrainingRecorded,
    },
    pharmacy::*,
};

pub fn record_needle_exchange(
    r: &RecordNeedleExchangeRequest,
    _ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let code = v
        .check("pharmacy_code", validate::org_code(&r.pharmacy_code))
        .map(str::to_string);
    let person = check_client_code(v, "client_code", &r.client_code);
    let packs_given = v.check("packs_given", validate::count(r.packs_given));
    let returns = v.check("returns", validate::count(r.returns));
    Some(Decision::about(
        Some(person?),
        Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
            pharmacy_code: code?,
            packs_given: packs_given?,
            returns: returns?,
        }),
    ))
}

pub fn record_referral(
    r: &RecordReferralRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) =
        org_and_person("pharmacy_code", &r.pharmacy_code, r.person.as_ref(), ctx, v);
    let reason = v.check("reason", validate::required_text(&r.reason));
    Some(Decision {
        payload: Payload::PharmacyReferralRecorded(PharmacyReferralRecorded {
            pharmacy_code: code?,
        }),
        person: Some(person?),
        person_text: reason?.trim().to_string(),
    })
}

pub fn record_staff_training(
    r: &RecordStaffTrainingRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let code = v
        .check("pharmacy_code", validate::org_code(&r.pharmacy_code))
        .map(str::to_string);
    let staff = staff_key(&r.staff_id, ctx, v);
    let accreditation = v.check("accreditation", validate::required_text(&r.accreditation));
    Some(Decision::about(
        None,
        Payload::PharmacyStaffTrainingRecorded(PharmacyStaffTrainingRecorded {
            pharmacy_code: code?,
            staff_key: staff?,
            accreditation: accreditation?.trim().to_string(),
        }),
    ))
}

/// At least one kit: a supply of none is not a supply.
fn kits(n: u32) -> Result<u32, String> {
    validate::count(n)?;
    if n == 0 {
        return Err("must be between 1 and 10000".into());
    }
    Ok(n)
}

pub fn record_naloxone_supply(
    r: &RecordNaloxoneSupplyRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) =
        org_and_person("pharmacy_code", &r.pharmacy_code, r.person.as_ref(), ctx, v);
    let kits = v.check("kits", kits(r.kits));
    Some(Decision::about(
        Some(person?),
        Payload::NaloxoneSupplied(NaloxoneSupplied {
            pharmacy_code: code?,
            kits: kits?,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{auth::Role, command::testing::decide, person::IdentifierKind};
    use hub_proto::common::PersonRef;

    #[test]
    fn needle_exchange_names_the_client_by_attributor_only() {
        let req = RecordNeedleExchangeRequest {
            pharmacy_code: "FW844".into(),
            client_code: "js02031985m".into(),
            packs_given: 3,
            returns: 2,
            ..Default::default()
        };
        let d = decide(Role::Pharmacist, record_needle_exchange, &req).unwrap();
        let person = d.person.unwrap();
        assert_eq!(person.identifiers[0].kind, IdentifierKind::ClientCode);
        assert_eq!(person.identifiers[0].value(), "JS02031985M");
        assert_eq!(
            d.payload,
            Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
                pharmacy_code: "FW844".into(),
                packs_given: 3,
                returns: 2
            })
        );
    }

    #[test]
    fn needle_exchange_rules() {
        let req = RecordNeedleExchangeRequest {
            pharmacy_code: "FW844".into(),
            client_code: "JS30021985M".into(),
            packs_given: 10_001,
            returns: 0,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::Pharmacist, record_needle_exchange, &req).unwrap_err(),
            ["client_code", "packs_given"]
        );
        let req = RecordNeedleExchangeRequest {
            client_code: String::new(),
            packs_given: 1,
            ..req
        };
        assert_eq!(
            decide(Role::Pharmacist, record_needle_exchange, &req).unwrap_err(),
            ["client_code"]
        );
    }

    #[test]
    fn referral_reason_is_sealed_not_in_the_payload() {
        let req = RecordReferralRequest {
            pharmacy_code: "FW844".into(),
            person: Some(PersonRef {
                client_code: "JS02031985M".into(),
                ..Default::default()
            }),
            reason: "asked about a script".into(),
            ..Default::default()
        };
        let d = decide(Role::Pharmacist, record_referral, &req).unwrap();
        assert_eq!(d.person_text, "asked about a script");
        assert_eq!(
            d.payload,
            Payload::PharmacyReferralRecorded(PharmacyReferralRecorded {
                pharmacy_code: "FW844".into()
            })
        );
        let req = RecordReferralRequest {
            reason: String::new(),
            ..req
        };
        assert_eq!(
            decide(Role::Pharmacist, record_referral, &req).unwrap_err(),
            ["reason"]
        );
    }

    #[test]
    fn staff_training_and_naloxone_rules() {
        let req = RecordStaffTrainingRequest {
            pharmacy_code: "FW844".into(),
            staff_id: "".into(),
            accreditation: "".into(),
            ..Default::default()
        };
        assert_eq!(
            decide(Role::Pharmacist, record_staff_training, &req).unwrap_err(),
            ["staff_id", "accreditation"]
        );
        let req = RecordNaloxoneSupplyRequest {
            pharmacy_code: "FW844".into(),
            person: Some(PersonRef {
                nhs_number: "9434765919".into(),
                ..Default::default()
            }),
            kits: 0,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::Pharmacist, record_naloxone_supply, &req).unwrap_err(),
            ["kits"]
        );
        let req = RecordNaloxoneSupplyRequest { kits: 2, ..req };
        assert_eq!(
            decide(Role::Pharmacist, record_naloxone_supply, &req)
                .unwrap()
                .payload,
            Payload::NaloxoneSupplied(NaloxoneSupplied {
                pharmacy_code: "FW844".into(),
                kits: 2
            })
        );
    }
}
