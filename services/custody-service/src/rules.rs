//! Field rules and decisions for each CustodyService RPC: pure functions,
//! tested without a server.

use hub_core::{
    command::{headcount_fact, org_and_person, staff_fact, Decision, RuleContext},
    validate::{self, Violations},
};
use hub_proto::{
    common::AdviceTopic,
    custody::*,
    events::{
        event::Payload, CustodyWorkforceRecorded, HarmReductionAdviceRecorded,
        OfficerOverdoseTrainingRecorded,
    },
};

/// At least one topic, each a known one; repeats are folded.
fn advice_topics(raw: &[i32]) -> Result<Vec<i32>, String> {
    if raw.is_empty() {
        return Err("at least one topic is required".into());
    }
    let mut topics = Vec::with_capacity(raw.len());
    for t in raw {
        let topic: AdviceTopic = validate::enum_value(*t)?;
        topics.push(topic as i32);
    }
    topics.sort_unstable();
    topics.dedup();
    Ok(topics)
}

pub fn record_harm_reduction_advice(
    r: &RecordHarmReductionAdviceRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    let (code, person) = org_and_person(
        "custody_suite_code",
        &r.custody_suite_code,
        r.person.as_ref(),
        ctx,
        v,
    );
    let topics = v.check("topics", advice_topics(&r.topics));
    Some(Decision::about(
        Some(person?),
        Payload::HarmReductionAdviceRecorded(HarmReductionAdviceRecorded {
            custody_suite_code: code?,
            topics: topics?,
            referred_to_treatment: r.referred_to_treatment,
        }),
    ))
}

pub fn record_officer_overdose_training(
    r: &RecordOfficerOverdoseTrainingRequest,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    staff_fact(
        "custody_suite_code",
        &r.custody_suite_code,
        &r.staff_id,
        ctx,
        v,
        |custody_suite_code, staff_key| {
            Payload::OfficerOverdoseTrainingRecorded(OfficerOverdoseTrainingRecorded {
                custody_suite_code,
                staff_key,
            })
        },
    )
}

pub fn record_custody_workforce(
    r: &RecordCustodyWorkforceRequest,
    _ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> Option<Decision> {
    headcount_fact(
        "custody_suite_code",
        &r.custody_suite_code,
        "custody_officer_headcount",
        r.custody_officer_headcount,
        v,
        |custody_suite_code, custody_officer_headcount| {
            Payload::CustodyWorkforceRecorded(CustodyWorkforceRecorded {
                custody_suite_code,
                custody_officer_headcount,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{
        auth::Role,
        command::testing::{decide, staff_key_of},
    };
    use hub_proto::common::PersonRef;

    fn advice(topics: Vec<i32>) -> RecordHarmReductionAdviceRequest {
        RecordHarmReductionAdviceRequest {
            custody_suite_code: "WYP01".into(),
            person: Some(PersonRef {
                pnc_id: "2001/0123456X".into(),
                ..Default::default()
            }),
            topics,
            referred_to_treatment: true,
            ..Default::default()
        }
    }

    #[test]
    fn advice_records_its_topics_once_each() {
        let t = |x: AdviceTopic| x as i32;
        let d = decide(
            Role::CustodyOfficer,
            record_harm_reduction_advice,
            &advice(vec![
                t(AdviceTopic::Naloxone),
                t(AdviceTopic::OverdoseRisk),
                t(AdviceTopic::Naloxone),
            ]),
        )
        .unwrap();
        assert_eq!(
            d.payload,
            Payload::HarmReductionAdviceRecorded(HarmReductionAdviceRecorded {
                custody_suite_code: "WYP01".into(),
                topics: vec![t(AdviceTopic::OverdoseRisk), t(AdviceTopic::Naloxone)],
                referred_to_treatment: true,
            })
        );
    }

    #[test]
    fn advice_needs_a_known_topic() {
        assert_eq!(
            decide(
                Role::CustodyOfficer,
                record_harm_reduction_advice,
                &advice(vec![])
            )
            .unwrap_err(),
            ["topics"]
        );
        assert_eq!(
            decide(
                Role::CustodyOfficer,
                record_harm_reduction_advice,
                &advice(vec![0])
            )
            .unwrap_err(),
            ["topics"]
        );
        assert_eq!(
            decide(
                Role::CustodyOfficer,
                record_harm_reduction_advice,
                &advice(vec![42])
            )
            .unwrap_err(),
            ["topics"]
        );
    }

    #[test]
    fn officer_training_keeps_only_a_keyed_staff_id() {
        let req = RecordOfficerOverdoseTrainingRequest {
            custody_suite_code: "WYP01".into(),
            staff_id: "PC 4471".into(),
            ..Default::default()
        };
        let d = decide(Role::CustodyOfficer, record_officer_overdose_training, &req).unwrap();
        assert_eq!(
            d.payload,
            Payload::OfficerOverdoseTrainingRecorded(OfficerOverdoseTrainingRecorded {
                custody_suite_code: "WYP01".into(),
                staff_key: staff_key_of("PC 4471"),
            })
        );
        assert!(d.person.is_none());
        let req = RecordOfficerOverdoseTrainingRequest {
            staff_id: " ".into(),
            ..req
        };
        assert_eq!(
            decide(Role::CustodyOfficer, record_officer_overdose_training, &req).unwrap_err(),
            ["staff_id"]
        );
    }

    #[test]
    fn workforce_counts_are_bounded() {
        let req = RecordCustodyWorkforceRequest {
            custody_suite_code: "WYP01".into(),
            custody_officer_headcount: 10_001,
            ..Default::default()
        };
        assert_eq!(
            decide(Role::CustodyOfficer, record_custody_workforce, &req).unwrap_err(),
            ["custody_officer_headcount"]
        );
        let req = RecordCustodyWorkforceRequest {
            custody_officer_headcount: 40,
            ..req
        };
        assert!(decide(Role::CustodyOfficer, record_custody_workforce, &req).is_ok());
    }
}
