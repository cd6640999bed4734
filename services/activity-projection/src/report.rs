//! An `Activity` reply as people read it: JSON with the reply's own
//! snake_case fields (the dashboard's API and `hubctl --json`), and one
//! table, a row per figure with the year and its quarters, for the
//! terminal and for CSV. One place, so every way out says the same: a
//! withheld count says `withheld` (never the 0 it is sent as), a
//! percentage without a denominator is empty, and a quarter that has not
//! begun says so instead of showing zeros.

use jiff::civil::Date;
use serde_json::{json, Value};

use hub_core::time::FinancialYear;
use hub_proto::projections::{Activity, ActivityFigures};

/// What a cell says in place of a value withheld from the reader.
pub const WITHHELD: &str = "withheld";
/// What a cell of a quarter that has not begun says.
pub const NOT_BEGUN: &str = "not yet begun";

fn figures_json(f: &ActivityFigures) -> Value {
    let nx = f.needle_exchange.unwrap_or_default();
    let ca = f.custody_advice.unwrap_or_default();
    let oa = f.overdose_attendances.unwrap_or_default();
    let kits = f.naloxone_kits.unwrap_or_default();
    json!({
        "quarter": f.quarter,
        "needle_exchange": {
            "transactions": nx.transactions, "clients": nx.clients,
            "packs_given": nx.packs_given, "returns": nx.returns,
            "return_rate_pct": nx.return_rate_pct, "out_of_hours_pct": nx.out_of_hours_pct,
            "pharmacies": nx.pharmacies,
        },
        "custody_advice": {
            "records": ca.records, "people": ca.people,
            "blood_borne_viruses": ca.blood_borne_viruses, "safer_injecting": ca.safer_injecting,
            "overdose_risk": ca.overdose_risk, "naloxone": ca.naloxone,
            "local_services": ca.local_services, "referred_to_treatment": ca.referred_to_treatment,
        },
        "referrals": f.referrals.iter().map(|r| json!({
            "source": r.source, "referred": r.referred,
            "engaged_within_28_days": r.engaged_within_28_days, "engaged_pct": r.engaged_pct,
        })).collect::<Vec<_>>(),
        "overdose_attendances": {
            "attendances": oa.attendances, "naloxone_administered": oa.naloxone_administered,
            "police_attended": oa.police_attended, "police_attended_pct": oa.police_attended_pct,
            "conveyed_to_hospital": oa.conveyed_to_hospital, "people_named": oa.people_named,
            "followed_by_treatment_within_28_days": oa.followed_by_treatment_within_28_days,
            "protocols_in_force": oa.protocols_in_force,
        },
        "naloxone_kits": {
            "pharmacy": kits.pharmacy, "prison_release": kits.prison_release,
            "training": kits.training, "total": kits.total,
        },
    })
}

/// The reply as JSON, field for field.
pub fn json(a: &Activity) -> Value {
    json!({
        "partnership_code": a.partnership_code, "financial_year": a.financial_year,
        "year": a.year.as_ref().map(figures_json),
        "quarters": a.quarters.iter().map(figures_json).collect::<Vec<_>>(),
        "suppressed": a.suppressed, "applied_sequence": a.applied_sequence,
    })
}

/// A figure's value in one period.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Count(u32),
    Percent(Option<f64>),
}

/// A figure of one period: its path (as `suppressed` names it), its
/// label, its value.
type Figure = (String, String, Cell);

/// Every figure of a period, in the order tables list them.
fn figures(f: &ActivityFigures) -> Vec<Figure> {
    let nx = f.needle_exchange.unwrap_or_default();
    let ca = f.custody_advice.unwrap_or_default();
    let oa = f.overdose_attendances.unwrap_or_default();
    let kits = f.naloxone_kits.unwrap_or_default();
    let mut out: Vec<Figure> = Vec::new();
    let mut row = |path: &str, label: &str, cell: Cell| {
        out.push((path.to_string(), label.to_string(), cell));
    };
    use Cell::{Count, Percent};
    row(
        "needle_exchange.transactions",
        "Needle exchange: transactions",
        Count(nx.transactions),
    );
    row(
        "needle_exchange.clients",
        "Needle exchange: clients",
        Count(nx.clients),
    );
    row(
        "needle_exchange.packs_given",
        "Needle exchange: packs given",
        Count(nx.packs_given),
    );
    row(
        "needle_exchange.returns",
        "Needle exchange: returns",
        Count(nx.returns),
    );
    row(
        "needle_exchange.return_rate_pct",
        "Needle exchange: return rate %",
        Percent(nx.return_rate_pct),
    );
    row(
        "needle_exchange.out_of_hours_pct",
        "Needle exchange: out of hours %",
        Percent(nx.out_of_hours_pct),
    );
    row(
        "needle_exchange.pharmacies",
        "Needle exchange: pharmacies",
        Count(nx.pharmacies),
    );
    row(
        "custody_advice.records",
        "Custody advice: records",
        Count(ca.records),
    );
    row(
        "custody_advice.people",
        "Custody advice: people",
        Count(ca.people),
    );
    row(
        "custody_advice.blood_borne_viruses",
        "Custody advice: blood-borne viruses",
        Count(ca.blood_borne_viruses),
    );
    row(
        "custody_advice.safer_injecting",
        "Custody advice: safer injecting",
        Count(ca.safer_injecting),
    );
    row(
        "custody_advice.overdose_risk",
        "Custody advice: overdose risk",
        Count(ca.overdose_risk),
    );
    row(
        "custody_advice.naloxone",
        "Custody advice: naloxone",
        Count(ca.naloxone),
    );
    row(
        "custody_advice.local_services",
        "Custody advice: local services",
        Count(ca.local_services),
    );
    row(
        "custody_advice.referred_to_treatment",
        "Custody advice: referred to treatment",
        Count(ca.referred_to_treatment),
    );
    for r in &f.referrals {
        let s = &r.source;
        row(
            &format!("referrals.{s}.referred"),
            &format!("Referrals from {s}: people"),
            Count(r.referred),
        );
        row(
            &format!("referrals.{s}.engaged_within_28_days"),
            &format!("Referrals from {s}: engaged within 28 days"),
            Count(r.engaged_within_28_days),
        );
        row(
            &format!("referrals.{s}.engaged_pct"),
            &format!("Referrals from {s}: engaged %"),
            Percent(r.engaged_pct),
        );
    }
    row(
        "overdose_attendances.attendances",
        "Overdose attendances",
        Count(oa.attendances),
    );
    row(
        "overdose_attendances.naloxone_administered",
        "Attendances: naloxone administered",
        Count(oa.naloxone_administered),
    );
    row(
        "overdose_attendances.police_attended",
        "Attendances: police attended",
        Count(oa.police_attended),
    );
    row(
        "overdose_attendances.police_attended_pct",
        "Attendances: police attended %",
        Percent(oa.police_attended_pct),
    );
    row(
        "overdose_attendances.conveyed_to_hospital",
        "Attendances: conveyed to hospital",
        Count(oa.conveyed_to_hospital),
    );
    row(
        "overdose_attendances.people_named",
        "Attendances: people named",
        Count(oa.people_named),
    );
    row(
        "overdose_attendances.followed_by_treatment_within_28_days",
        "Attendances: treatment within 28 days",
        Count(oa.followed_by_treatment_within_28_days),
    );
    row(
        "overdose_attendances.protocols_in_force",
        "Police forces with a protocol in force",
        Count(oa.protocols_in_force),
    );
    row(
        "naloxone_kits.pharmacy",
        "Naloxone kits: pharmacies",
        Count(kits.pharmacy),
    );
    row(
        "naloxone_kits.prison_release",
        "Naloxone kits: prison release",
        Count(kits.prison_release),
    );
    row(
        "naloxone_kits.training",
        "Naloxone kits: with training",
        Count(kits.training),
    );
    row(
        "naloxone_kits.total",
        "Naloxone kits: total",
        Count(kits.total),
    );
    out
}

/// One row of the table: a figure for the year and each quarter, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// As `suppressed` names it: `referrals.custody.engaged_pct`.
    pub path: String,
    pub label: String,
    /// The year, then Q1 to Q4.
    pub cells: [String; 5],
}

/// The reply as a table, as it stood on `today` (London): quarters that
/// had not begun say [`NOT_BEGUN`].
pub fn rows(a: &Activity, today: Date) -> Vec<Row> {
    let fy = FinancialYear::parse(&a.financial_year).ok();
    let begun = |q: u8| fy.is_none_or(|fy| fy.quarter_first_day(q) <= today);
    let year = a.year.clone().unwrap_or_default();
    let periods: Vec<(String, Vec<Figure>)> = std::iter::once((String::new(), figures(&year)))
        .chain(
            a.quarters
                .iter()
                .map(|q| (format!("q{}.", q.quarter), figures(q))),
        )
        .collect();
    let text = |prefix: &str, path: &str, cell: Cell| {
        if a.suppressed.iter().any(|s| *s == format!("{prefix}{path}")) {
            return WITHHELD.to_string();
        }
        match cell {
            Cell::Count(n) => n.to_string(),
            Cell::Percent(p) => p.map(|p| format!("{p:.1}")).unwrap_or_default(),
        }
    };
    periods[0]
        .1
        .iter()
        .enumerate()
        .map(|(i, (path, label, _))| {
            let cells: [String; 5] = std::array::from_fn(|p| match periods.get(p) {
                Some((prefix, f)) if p == 0 || begun(p as u8) => text(prefix, path, f[i].2),
                Some(_) => NOT_BEGUN.to_string(),
                None => String::new(),
            });
            Row {
                path: path.clone(),
                label: label.clone(),
                cells,
            }
        })
        .collect()
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The table as CSV: one line per figure, with the partnership and year
/// on each so files can be concatenated.
pub fn csv(a: &Activity, today: Date) -> String {
    let mut out = String::from("partnership_code,financial_year,figure,label,year,q1,q2,q3,q4\r\n");
    for r in rows(a, today) {
        let fields: Vec<String> = [&a.partnership_code, &a.financial_year, &r.path, &r.label]
            .into_iter()
            .chain(r.cells.iter())
            .map(|s| csv_field(s))
            .collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, YearRows};

    fn sample() -> Activity {
        let fy = FinancialYear::parse("2026-27").unwrap();
        let mut a = model::tally(
            "bradford",
            fy,
            &YearRows {
                counters: Vec::new(),
                protocols: Vec::new(),
            },
        );
        let q1 = a.quarters[0].custody_advice.as_mut().unwrap();
        q1.people = 3;
        q1.records = 12;
        a.year
            .as_mut()
            .unwrap()
            .custody_advice
            .as_mut()
            .unwrap()
            .people = 3;
        a
    }

    #[test]
    fn withheld_counts_say_so_and_future_quarters_say_they_have_not_begun() {
        let mut a = sample();
        model::suppress_small_counts(&mut a);
        let rows = rows(&a, "2026-08-15".parse().unwrap());
        let people = rows
            .iter()
            .find(|r| r.path == "custody_advice.people")
            .unwrap();
        assert_eq!(
            people.cells,
            ["withheld", "withheld", "0", NOT_BEGUN, NOT_BEGUN].map(String::from)
        );
        let records = rows
            .iter()
            .find(|r| r.path == "custody_advice.records")
            .unwrap();
        assert_eq!(records.cells[1], "12");
        let pct = rows
            .iter()
            .find(|r| r.path == "needle_exchange.return_rate_pct")
            .unwrap();
        assert_eq!(pct.cells[0], "", "no packs, no rate: never 0.0%");
    }

    #[test]
    fn csv_has_a_header_a_line_per_figure_and_quotes_what_needs_it() {
        let a = sample();
        let text = csv(&a, "2027-06-01".parse().unwrap());
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines[0],
            "partnership_code,financial_year,figure,label,year,q1,q2,q3,q4"
        );
        assert_eq!(
            lines.len(),
            1 + rows(&a, "2027-06-01".parse().unwrap()).len()
        );
        assert!(lines
            .contains(&"bradford,2026-27,custody_advice.people,Custody advice: people,3,3,0,0,0"));
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn json_keeps_the_reply_fields_and_absent_percentages_are_null() {
        let v = json(&sample());
        assert_eq!(v["year"]["custody_advice"]["people"], 3);
        assert_eq!(v["quarters"][0]["quarter"], 1);
        assert!(v["year"]["needle_exchange"]["return_rate_pct"].is_null());
        assert_eq!(v["year"]["referrals"][0]["source"], "custody");
    }
}
