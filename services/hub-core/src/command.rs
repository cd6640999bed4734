//! What a command's rules decide, and the helpers the agencies' rules share.
//!
//! Each RPC has a rule function `fn(&Request, &RuleContext, &mut Violations)
//! -> Option<Decision>`: it checks the RPC's own fields (every one, adding
//! each broken rule to the violations) and decides the event payload. Rules
//! are pure; the pipeline in `hub-runtime` runs them.

use jiff::civil::Date;

use hub_proto::{common::PersonRef, events::event::Payload};

use hub_proto::CommandFields;
use jiff::Timestamp;

use crate::{
    auth::{Action, Agency, Caller, Rpc},
    partnerships::PartnershipRegister,
    person::{check_person, Person},
    pseudonym::Pseudonymiser,
    time::london_date,
    validate::{self, Violations},
    Error,
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
    /// The partnership register (for fields naming another partnership).
    pub partnerships: &'a PartnershipRegister,
    /// The command's own partnership.
    pub partnership_code: &'a str,
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

/// The pure half of recording a command, shared by the pipeline in
/// `hub-runtime` and the fuzz targets: everything up to the decision,
/// nothing that leaves the process.
pub struct Checker<'a> {
    pub agency: Agency,
    pub partnerships: &'a PartnershipRegister,
    pub pseudonymiser: &'a Pseudonymiser,
}

impl Checker<'_> {
    /// Authorise (role first; the partnership when it is a real one, an
    /// unknown code being a validation error) and validate: every field
    /// rule, then the RPC's own. Pure: nothing leaves the process.
    pub fn check<R, F>(
        &self,
        rpc: Rpc,
        caller: &Caller,
        req: &R,
        rules: F,
        now: Timestamp,
    ) -> Result<(Decision, Timestamp), Error>
    where
        R: CommandFields,
        F: FnOnce(&R, &RuleContext<'_>, &mut Violations) -> Option<Decision>,
    {
        let partnership_code = req.partnership_code();
        debug_assert_eq!(
            Agency::of(rpc),
            self.agency,
            "{rpc:?} checked by {:?}",
            self.agency
        );
        let action = Action::Command(rpc);
        if !caller.role.may(action) || self.partnerships.get(partnership_code).is_some() {
            caller.authorise(action, partnership_code)?;
        }
        let mut violations = Violations::new();
        violations.check("request_id", validate::request_id(req.request_id()));
        violations.check(
            "partnership_code",
            validate::partnership(self.partnerships, partnership_code),
        );
        let occurred_at =
            violations.check("occurred_at", validate::occurred_at(req.occurred_at(), now));
        let ctx = RuleContext {
            caller,
            today: london_date(now),
            pseudonymiser: self.pseudonymiser,
            partnerships: self.partnerships,
            partnership_code,
        };
        let decision = rules(req, &ctx, &mut violations);
        violations.finish(|| ())?;
        match (decision, occurred_at) {
            (Some(decision), Some(occurred_at)) => Ok((decision, occurred_at)),
            _ => Err(Error::internal(format!(
                "{}: rules passed but decided nothing",
                rpc.name()
            ))),
        }
    }
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
        let partnerships = register();
        let ctx = RuleContext {
            caller: &caller,
            today: Date::new(2026, 11, 23).expect("a date"),
            pseudonymiser: &pseudonymiser,
            partnerships: &partnerships,
            partnership_code: "bradford",
        };
        let mut v = Violations::new();
        let decision = rule(req, &ctx, &mut v);
        v.finish(|| decision.expect("valid requests decide"))
            .map_err(|e| match e {
                Error::Invalid(list) => list.into_iter().map(|f| f.field).collect(),
                other => vec![format!("not invalid: {other}")],
            })
    }

    /// A register of two partnerships, `bradford` (the one `decide`'s
    /// commands are recorded under) and `leeds`.
    pub fn register() -> PartnershipRegister {
        PartnershipRegister::parse(
            "code\tname\tcriterion_7_2006_07\tcriterion_8_2006_07\tcriterion_9_2006_07\tcriterion_10_2006_07\tharm_reduction_score_2006_07\n\
             bradford\tBradford\t4\t4\t4\t4\t16\n\
             leeds\tLeeds\t3\t3\t3\t3\t12\n",
            "test register",
        )
        .expect("a valid register")
    }

    /// The person keys `decide` computes for a validated ref.
    pub fn person_keys_of(person: &crate::person::Person) -> crate::pseudonym::PersonKeys {
        Pseudonymiser::new(&HubSecret::from_bytes(&[3; 32]).expect("32 bytes")).person_keys(person)
    }

    /// The staff key `decide` computes for `staff_id`.
    pub fn staff_key_of(staff_id: &str) -> String {
        Pseudonymiser::new(&HubSecret::from_bytes(&[3; 32]).expect("32 bytes"))
            .staff_key("LEI", staff_id)
    }
}
