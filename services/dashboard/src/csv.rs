//! The JSON API's replies as CSV (`&format=csv`), for the spreadsheets
//! commissioning meetings run on. The CSV is made from the very JSON the
//! API returns, so the two never disagree; a value withheld from the
//! reader (named in the reply's `suppressed`) says `withheld`, never the 0
//! it is sent as, a percentage without a denominator is empty, and a
//! quarter that has not begun says `not yet begun`.

use jiff::civil::Date;
use serde_json::Value;

use activity_projection::report::{csv_field, NOT_BEGUN, WITHHELD};
use hub_core::time::FinancialYear;
use hub_proto::admin::AuditRecord;

/// Every scalar under `v`, by dotted path (`by_status.RELEASED`), in the
/// reply's order; arrays are left to the caller.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(_) => {}
        scalar => out.push((prefix.to_string(), scalar.clone())),
    }
}

/// Fields that say what the reply is, not figures.
const ABOUT: [&str; 4] = [
    "partnership_code",
    "financial_year",
    "applied_sequence",
    "quarter",
];

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn suppressed(reply: &Value) -> Vec<String> {
    reply["suppressed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push_str("\r\n");
    l
}

/// A reply with the year's figures at the top and the same figures for
/// each of `quarters` (training counts): one line per figure, with the
/// year and Q1–Q4, as it stood on `today`.
pub fn year_table(reply: &Value, partnership: &str, today: Date) -> String {
    let withheld = suppressed(reply);
    let fy_text = text(&reply["financial_year"]);
    let fy = FinancialYear::parse(&fy_text).ok();
    let mut year = Vec::new();
    flatten("", reply, &mut year);
    let quarters: Vec<Vec<(String, Value)>> = reply["quarters"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .map(|q| {
                    let mut f = Vec::new();
                    flatten("", q, &mut f);
                    f
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = line(
        &[
            "partnership_code",
            "financial_year",
            "figure",
            "year",
            "q1",
            "q2",
            "q3",
            "q4",
        ]
        .map(String::from),
    );
    for (path, value) in year.iter().filter(|(p, _)| !ABOUT.contains(&p.as_str())) {
        let cell = |prefix: &str, v: Option<&Value>| {
            if withheld.iter().any(|s| *s == format!("{prefix}{path}")) {
                WITHHELD.to_string()
            } else {
                v.map(text).unwrap_or_default()
            }
        };
        let mut fields = vec![
            partnership.to_string(),
            fy_text.clone(),
            path.clone(),
            cell("", Some(value)),
        ];
        for q in 1..=4u8 {
            let begun = fy.is_none_or(|fy| fy.quarter_first_day(q) <= today);
            let v = quarters
                .get(usize::from(q) - 1)
                .and_then(|f| f.iter().find(|(p, _)| p == path).map(|(_, v)| v));
            fields.push(if !begun {
                NOT_BEGUN.to_string()
            } else {
                cell(&format!("q{q}."), v)
            });
        }
        out.push_str(&line(&fields));
    }
    out
}

/// A reply without quarters (a pick-up summary): one line per figure.
pub fn figures(reply: &Value, partnership: &str) -> String {
    let withheld = suppressed(reply);
    let fy = text(&reply["financial_year"]);
    let mut all = Vec::new();
    flatten("", reply, &mut all);
    let mut out =
        line(&["partnership_code", "financial_year", "figure", "value"].map(String::from));
    for (path, value) in all.iter().filter(|(p, _)| !ABOUT.contains(&p.as_str())) {
        let v = if withheld.contains(path) {
            WITHHELD.to_string()
        } else {
            text(value)
        };
        out.push_str(&line(&[
            partnership.to_string(),
            fy.clone(),
            path.clone(),
            v,
        ]));
    }
    out
}

/// The columns of a break-the-glass read, as JSON names them.
const BREAK_GLASS: [&str; 6] = [
    "at",
    "user_id",
    "role",
    "org_code",
    "rows",
    "break_glass_reason",
];

/// A partnership's break-the-glass reads as JSON: who looked, when
/// (RFC 3339, UTC), with which role and organisation, how many entries
/// they were shown and why. No person's key: the audit trail of one
/// person is `ListPersonAccess`.
pub fn break_glass_json(code: &str, records: &[AuditRecord]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let at =
                r.at.as_ref()
                    .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
                    .map(|t| t.to_string())
                    .unwrap_or_default();
            serde_json::json!({
                "at": at, "user_id": r.user_id, "role": r.role, "org_code": r.org_code,
                "rows": r.rows, "break_glass_reason": r.break_glass_reason,
            })
        })
        .collect();
    serde_json::json!({ "partnership_code": code, "records": records })
}

/// [`break_glass_json`] as CSV: a line per read, oldest first.
pub fn break_glass(reply: &Value) -> String {
    let code = text(&reply["partnership_code"]);
    let header: Vec<String> = std::iter::once("partnership_code")
        .chain(BREAK_GLASS)
        .map(String::from)
        .collect();
    let mut out = line(&header);
    for r in reply["records"].as_array().into_iter().flatten() {
        let fields: Vec<String> = std::iter::once(code.clone())
            .chain(BREAK_GLASS.iter().map(|c| text(&r[*c])))
            .collect();
        out.push_str(&line(&fields));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_year_table_marks_withheld_cells_and_quarters_not_begun() {
        let reply = json!({
            "partnership_code": "bradford", "financial_year": "2026-27",
            "carers_trained": 0, "service_users_trained": 12,
            "custody_officers_trained_pct": null,
            "quarters": [
                {"quarter": 1, "carers_trained": 0, "service_users_trained": 12, "custody_officers_trained_pct": null},
                {"quarter": 2, "carers_trained": 0, "service_users_trained": 0, "custody_officers_trained_pct": null},
                {"quarter": 3, "carers_trained": 0, "service_users_trained": 0, "custody_officers_trained_pct": null},
                {"quarter": 4, "carers_trained": 0, "service_users_trained": 0, "custody_officers_trained_pct": null},
            ],
            "suppressed": ["carers_trained", "q1.carers_trained"], "applied_sequence": 9,
        });
        let csv = year_table(&reply, "bradford", "2026-08-01".parse().unwrap());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "partnership_code,financial_year,figure,year,q1,q2,q3,q4"
        );
        assert!(
            lines.contains(
                &"bradford,2026-27,carers_trained,withheld,withheld,0,not yet begun,not yet begun"
            ),
            "{csv}"
        );
        assert!(
            lines.contains(
                &"bradford,2026-27,service_users_trained,12,12,0,not yet begun,not yet begun"
            ),
            "{csv}"
        );
        assert!(
            lines.contains(
                &"bradford,2026-27,custody_officers_trained_pct,,,,not yet begun,not yet begun"
            ),
            "{csv}"
        );
        assert!(!csv.contains("applied_sequence"), "not a figure");
        assert!(!csv.contains(",quarter,"), "not a figure");
    }

    #[test]
    fn figures_flatten_nested_counts_by_path() {
        let reply = json!({
            "financial_year": "2026-27",
            "by_status": {"SCHEDULED": 9, "RELEASED": 0},
            "released": 0, "continuity_pct": null,
            "suppressed": ["by_status.RELEASED", "released"],
        });
        let csv = figures(&reply, "leeds");
        assert!(
            csv.contains("leeds,2026-27,by_status.SCHEDULED,9\r\n"),
            "{csv}"
        );
        assert!(
            csv.contains("leeds,2026-27,by_status.RELEASED,withheld\r\n"),
            "{csv}"
        );
        assert!(csv.contains("leeds,2026-27,released,withheld\r\n"), "{csv}");
        assert!(csv.contains("leeds,2026-27,continuity_pct,\r\n"), "{csv}");
    }
}
