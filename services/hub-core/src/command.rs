//! What a command's rules decide, and the helpers the agencies' rules share.
//!
//! Each RPC has a rule function `fn(&Request, &RuleContext, &mut Violations)
//! -> Option<Decision>`: it checks the RPC's own fields (every one, adding
//! each broken rule to the violations) and decides the event payload. Rules
//! are pure; the pipeline in `hub-runtime` runs them.

use jiff::civil::Date;

use hub_proto::{common::PersonRef, events::event::Payload};

use crate::{
    auth::Caller,
    person::{check_person, Person},
    pseudonym::Pseudonymiser,
    validate::{self, Violations},
};

/// What a rule function decided.
#[derive(Debug)]
pub struct Decision {
    pub payload: Payload,
    /// The person the event is about, if any.
    pub person: Option<Person>,
    /// Free text about the person (a note, a reason): sealed, never in clear.
    pub person_text: String,
}

impl Decision {
    pub fn about(person: Option<Person>, payload: Payload) -> Self {
        Self {
            payload,
            person,
            person_text: String::new(),
        }
    }
}

/// What a rule function may consult.
pub struct RuleContext<'a> {
    pub caller: &'a Caller,
    /// Today in Europe/London.
    pub today: Date,
    pub pseudonymiser: &'a Pseudonymiser,
}

/// An organisation code field and a required person.
pub fn org_and_person(
    code_field: &str,
    code: &str,
    person: Option<&PersonRef>,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
) -> (Option<String>, Option<Person>) {
    let code = v
        .check(code_field, validate::org_code(code))
        .map(str::to_string);
    let person = check_person(v, "person", person, ctx.today);
    (code, person)
}

/// The facts that are only "this happened to this person at this
/// organisation": one rule, a different payload.
pub fn org_fact(
    code_field: &str,
    code: &str,
    person: Option<&PersonRef>,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
    payload: impl FnOnce(String) -> Payload,
) -> Option<Decision> {
    let (code, person) = org_and_person(code_field, code, person, ctx, v);
    Some(Decision::about(Some(person?), payload(code?)))
}

/// A required `staff_id`, as the keyed hash that stands for it (scoped to
/// the caller's organisation).
pub fn staff_key(staff_id: &str, ctx: &RuleContext<'_>, v: &mut Violations) -> Option<String> {
    let id = v.check("staff_id", validate::required_text(staff_id))?;
    Some(ctx.pseudonymiser.staff_key(&ctx.caller.org_code, id))
}

/// A staff member trained at an organisation: the same rule for custody
/// officers, pharmacy staff and paramedics.
pub fn staff_fact(
    code_field: &str,
    code: &str,
    staff_id: &str,
    ctx: &RuleContext<'_>,
    v: &mut Violations,
    payload: impl FnOnce(String, String) -> Payload,
) -> Option<Decision> {
    let code = v
        .check(code_field, validate::org_code(code))
        .map(str::to_string);
    let staff = staff_key(staff_id, ctx, v);
    Some(Decision::about(None, payload(code?, staff?)))
}

/// A headcount at an organisation (custody officers, paramedics).
pub fn headcount_fact(
    code_field: &str,
    code: &str,
    count_field: &str,
    count: u32,
    v: &mut Violations,
    payload: impl FnOnce(String, u32) -> Payload,
) -> Option<Decision> {
    let code = v
        .check(code_field, validate::org_code(code))
        .map(str::to_string);
    let count = v.check(count_field, validate::count(count));
    Some(Decision::about(None, payload(code?, count?)))
}

/// Test support: run one rule as a given caller on a given day.
pub mod testing {
    use super::*;
    use crate::{
        auth::{PartnershipScope, Role},
        secret::HubSecret,
        Error,
    };

    /// Runs `rule` on `req` as a `role` of organisation `LEI` on
    /// 2026-11-23; `Err` lists the fields named.
    pub fn decide<R>(
        role: Role,
        rule: fn(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
        req: &R,
    ) -> Result<Decision, Vec<String>> {
        let caller = Caller {
            user_id: "u-1".into(),
            role,
            org_code: "LEI".into(),
            partnerships: PartnershipScope::All,
        };
        let pseudonymiser = Pseudonymiser::new(&HubSecret::from_bytes(&[3; 32]).expect("32 bytes"));
        let ctx = RuleContext {
            caller: &caller,
            today: Date::new(2026, 11, 23).expect("a date"),
            pseudonymiser: &pseudonymiser,
        };
        let mut v = Violations::new();
        let decision = rule(req, &ctx, &mut v);
        v.finish(|| decision.expect("valid requests decide"))
            .map_err(|e| match e {
                Error::Invalid(list) => list.into_iter().map(|f| f.field).collect(),
                other => vec![format!("not invalid: {other}")],
            })
    }

    /// The staff key `decide` computes for `staff_id`.
    pub fn staff_key_of(staff_id: &str) -> String {
        Pseudonymiser::new(&HubSecret::from_bytes(&[3; 32]).expect("32 bytes"))
            .staff_key("LEI", staff_id)
    }
}
