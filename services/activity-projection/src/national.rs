//! The national comparison: every partnership of the register side by
//! side for one financial year, in the headline figures a commissioner
//! compares (needle exchange reach, returns and out-of-hours access,
//! custody advice, referrals reaching treatment, overdose attendances,
//! naloxone, training, continuity of care), with England's totals and the
//! median and quartiles of each figure.
//!
//! Pure: the API gathers this projection's tallies and what the training
//! and pick-up projections answer for the same caller, and [`compare`]
//! puts them together. Analysts see every partnership's row with counts
//! of 1 to 7 people withheld, and, where a column had exactly one such
//! count, its smallest other count too: England's total is shown beside
//! the column, and a single withheld count would be the difference. The
//! training and pick-up projections withhold theirs the same way before
//! their rows arrive here.

use hub_core::stats::{complement_columns, percent, quartiles, withheld};
use hub_proto::projections::{
    Activity, FigureSpread, NationalComparison, NationalContinuity, NationalRow,
    NationalTrainingCounts, TrainingCounts,
};

/// The counts of people in a row that come from this projection.
const PEOPLE: [&str; 4] = [
    "needle_exchange_clients",
    "people_advised_in_custody",
    "people_referred",
    "referred_engaged_within_28_days",
];

/// A row's headline figures by field name, in the order of the message,
/// counts as numbers; a percentage without a denominator is `None`.
pub fn figures(r: &NationalRow) -> [(&'static str, Option<f64>); 20] {
    let n = |v: u32| Some(f64::from(v));
    [
        (
            "needle_exchange_transactions",
            n(r.needle_exchange_transactions),
        ),
        ("needle_exchange_clients", n(r.needle_exchange_clients)),
        (
            "needle_exchange_return_rate_pct",
            r.needle_exchange_return_rate_pct,
        ),
        (
            "needle_exchange_out_of_hours_pct",
            r.needle_exchange_out_of_hours_pct,
        ),
        ("custody_advice_records", n(r.custody_advice_records)),
        ("people_advised_in_custody", n(r.people_advised_in_custody)),
        ("people_referred", n(r.people_referred)),
        (
            "referred_engaged_within_28_days",
            n(r.referred_engaged_within_28_days),
        ),
        ("referred_engaged_pct", r.referred_engaged_pct),
        ("overdose_attendances", n(r.overdose_attendances)),
        ("police_attended_pct", r.police_attended_pct),
        ("naloxone_kits", n(r.naloxone_kits)),
        ("service_users_trained", n(r.service_users_trained)),
        ("carers_trained", n(r.carers_trained)),
        ("prison_leavers_trained", n(r.prison_leavers_trained)),
        (
            "custody_officers_trained_pct",
            r.custody_officers_trained_pct,
        ),
        ("paramedics_trained_pct", r.paramedics_trained_pct),
        ("released", n(r.released)),
        ("engaged_within_21_days", n(r.engaged_within_21_days)),
        ("continuity_pct", r.continuity_pct),
    ]
}

/// The figures of [`figures`] as the reader sees them: withheld ones
/// `None`.
pub fn shown(r: &NationalRow) -> [(&'static str, Option<f64>); 20] {
    figures(r).map(|(name, v)| {
        let hidden = r.suppressed.iter().any(|s| s == name);
        (name, v.filter(|_| !hidden))
    })
}

/// A partnership's (or England's) year of activity as a row.
fn activity_row(code: &str, name: &str, a: &Activity) -> NationalRow {
    let y = a.year.clone().unwrap_or_default();
    let nx = y.needle_exchange.unwrap_or_default();
    let ca = y.custody_advice.unwrap_or_default();
    let oa = y.overdose_attendances.unwrap_or_default();
    let referred: u32 = y.referrals.iter().map(|r| r.referred).sum();
    let engaged: u32 = y.referrals.iter().map(|r| r.engaged_within_28_days).sum();
    NationalRow {
        partnership_code: code.into(),
        partnership_name: name.into(),
        needle_exchange_transactions: nx.transactions,
        needle_exchange_clients: nx.clients,
        needle_exchange_return_rate_pct: nx.return_rate_pct,
        needle_exchange_out_of_hours_pct: nx.out_of_hours_pct,
        custody_advice_records: ca.records,
        people_advised_in_custody: ca.people,
        people_referred: referred,
        referred_engaged_within_28_days: engaged,
        referred_engaged_pct: percent(engaged, referred),
        overdose_attendances: oa.attendances,
        police_attended_pct: oa.police_attended_pct,
        naloxone_kits: y.naloxone_kits.unwrap_or_default().total,
        ..Default::default()
    }
}

/// The training projection's figures of a row, and what it withheld.
fn add_training(row: &mut NationalRow, t: &TrainingCounts) {
    row.service_users_trained = t.service_users_trained;
    row.carers_trained = t.carers_trained;
    row.prison_leavers_trained = t.prison_leavers_trained;
    row.custody_officers_trained_pct = t.custody_officers_trained_pct;
    row.paramedics_trained_pct = t.paramedics_trained_pct;
    let names = [
        "service_users_trained",
        "carers_trained",
        "prison_leavers_trained",
        "custody_officers_trained_pct",
        "paramedics_trained_pct",
    ];
    row.suppressed.extend(
        t.suppressed
            .iter()
            .filter(|s| names.contains(&s.as_str()))
            .cloned(),
    );
}

/// The pick-up projection's continuity of care in a row; `withheld`: the
/// stages it withheld from the reader.
fn add_continuity(row: &mut NationalRow, released: u32, engaged: u32, withheld: [bool; 2]) {
    row.released = released;
    row.engaged_within_21_days = engaged;
    for (name, w) in ["released", "engaged_within_21_days"]
        .into_iter()
        .zip(withheld)
    {
        if w {
            row.suppressed.push(name.into());
        }
    }
    if withheld == [false, false] {
        row.continuity_pct = percent(engaged, released);
    } else if released > 0 || withheld[0] {
        row.suppressed.push("continuity_pct".into());
    }
}

/// A count of people of this projection's in a row, by name.
fn people_mut<'a>(r: &'a mut NationalRow, name: &str) -> Option<&'a mut u32> {
    Some(match name {
        "needle_exchange_clients" => &mut r.needle_exchange_clients,
        "people_advised_in_custody" => &mut r.people_advised_in_custody,
        "people_referred" => &mut r.people_referred,
        "referred_engaged_within_28_days" => &mut r.referred_engaged_within_28_days,
        _ => return None,
    })
}

/// Withholds a count of people of this projection's in a row, and the
/// percentage computed from it.
fn withhold(r: &mut NationalRow, name: &str) {
    let Some(n) = people_mut(r, name) else {
        return;
    };
    *n = 0;
    r.suppressed.push(name.into());
    let referral = name == "people_referred" || name == "referred_engaged_within_28_days";
    if referral && r.referred_engaged_pct.take().is_some() {
        r.suppressed.push("referred_engaged_pct".into());
    }
}

/// What [`compare`] puts together, each as the caller may read it.
pub struct Gathered {
    /// The year compared, as the reply names it (`2026-27`).
    pub financial_year: String,
    /// Every partnership of the register, by code: code, name, and its
    /// year of activity as counted (nothing withheld yet).
    pub activity: Vec<(String, String, Activity)>,
    /// England's year of activity: every partnership's counters tallied
    /// together.
    pub england: Activity,
    pub training: NationalTrainingCounts,
    pub continuity: NationalContinuity,
}

/// The comparison, for a reader who may see small counts or not.
pub fn compare(g: Gathered, see_small_counts: bool) -> NationalComparison {
    let training: std::collections::BTreeMap<&str, &TrainingCounts> = g
        .training
        .partnerships
        .iter()
        .map(|t| (t.partnership_code.as_str(), t))
        .collect();
    let funnels: std::collections::BTreeMap<&str, (u32, u32)> = g
        .continuity
        .partnerships
        .iter()
        .map(|f| {
            let stages = (f.released, f.engaged_within_21_days);
            (f.partnership_code.as_str(), stages)
        })
        .collect();
    let continuity_withheld = |code: &str, stage: &str| {
        let name = format!("{code}.{stage}");
        g.continuity.suppressed.contains(&name)
    };
    let mut rows: Vec<NationalRow> = g
        .activity
        .iter()
        .map(|(code, name, a)| {
            let mut row = activity_row(code, name, a);
            if let Some(t) = training.get(code.as_str()) {
                add_training(&mut row, t);
            }
            let (released, engaged) = funnels.get(code.as_str()).copied().unwrap_or_default();
            let withheld = [
                continuity_withheld(code, "released"),
                continuity_withheld(code, "engaged_within_21_days"),
            ];
            add_continuity(&mut row, released, engaged, withheld);
            row
        })
        .collect();
    if !see_small_counts {
        for row in &mut rows {
            for name in PEOPLE {
                if people_mut(row, name).is_some_and(|n| withheld(*n)) {
                    withhold(row, name);
                }
            }
        }
        complement_columns(
            &mut rows,
            &PEOPLE,
            |r, name| {
                let hidden = r.suppressed.iter().any(|s| s == name);
                people_mut(r, name).filter(|_| !hidden).map(|n| *n)
            },
            withhold,
        );
    }
    let mut england = activity_row("england", "England", &g.england);
    if let Some(t) = &g.training.england {
        add_training(&mut england, t);
    }
    let e = g.continuity.england.unwrap_or_default();
    add_continuity(
        &mut england,
        e.released,
        e.engaged_within_21_days,
        [false; 2],
    );
    NationalComparison {
        financial_year: g.financial_year,
        spread: spread(&rows),
        partnerships: rows,
        england: Some(england),
        applied_sequence: 0,
    }
}

/// Each figure's median and quartiles across the rows that show it.
fn spread(rows: &[NationalRow]) -> Vec<FigureSpread> {
    let shown: Vec<_> = rows.iter().map(shown).collect();
    figures(&NationalRow::default())
        .iter()
        .enumerate()
        .map(|(i, (figure, _))| {
            let values: Vec<f64> = shown.iter().filter_map(|r| r[i].1).collect();
            let q = quartiles(&values);
            FigureSpread {
                figure: (*figure).into(),
                partnerships: values.len() as u32,
                lower_quartile: q.map(|q| q[0]),
                median: q.map(|q| q[1]),
                upper_quartile: q.map(|q| q[2]),
            }
        })
        .collect()
}

/// What a figure is called in a table.
pub fn label(figure: &str) -> &'static str {
    match figure {
        "needle_exchange_transactions" => "Needle exchange: transactions",
        "needle_exchange_clients" => "Needle exchange: clients",
        "needle_exchange_return_rate_pct" => "Needle exchange: return rate %",
        "needle_exchange_out_of_hours_pct" => "Needle exchange: out of hours %",
        "custody_advice_records" => "Custody advice: records",
        "people_advised_in_custody" => "Custody advice: people",
        "people_referred" => "Referrals: people referred",
        "referred_engaged_within_28_days" => "Referrals: engaged within 28 days",
        "referred_engaged_pct" => "Referrals: engaged %",
        "overdose_attendances" => "Overdose attendances",
        "police_attended_pct" => "Overdose attendances: police attended %",
        "naloxone_kits" => "Naloxone kits",
        "service_users_trained" => "Trained: service users",
        "carers_trained" => "Trained: carers",
        "prison_leavers_trained" => "Trained: prison leavers",
        "custody_officers_trained_pct" => "Custody officers trained %",
        "paramedics_trained_pct" => "Paramedics trained %",
        "released" => "Continuity: released",
        "engaged_within_21_days" => "Continuity: engaged within 21 days",
        "continuity_pct" => "Continuity of care %",
        _ => "",
    }
}

/// A cell as people read it: a withheld value says
/// [`crate::report::WITHHELD`], a percentage without a denominator is
/// empty, counts are whole numbers.
pub fn cell(r: &NationalRow, figure: &str, value: Option<f64>) -> String {
    if r.suppressed.iter().any(|s| s == figure) {
        return crate::report::WITHHELD.to_string();
    }
    match value {
        Some(v) if figure.ends_with("_pct") => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
        None => String::new(),
    }
}

fn row_json(r: &NationalRow) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("partnership_code".into(), r.partnership_code.clone().into());
    m.insert("partnership_name".into(), r.partnership_name.clone().into());
    for (name, v) in figures(r) {
        let value = match v {
            Some(v) if !name.ends_with("_pct") => serde_json::json!(v as u64),
            v => serde_json::json!(v),
        };
        m.insert(name.into(), value);
    }
    m.insert("suppressed".into(), serde_json::json!(r.suppressed));
    serde_json::Value::Object(m)
}

/// The reply as JSON, field for field (the dashboard's `/api/national`
/// and `hubctl national --json`).
pub fn json(c: &NationalComparison) -> serde_json::Value {
    serde_json::json!({
        "financial_year": c.financial_year,
        "partnerships": c.partnerships.iter().map(row_json).collect::<Vec<_>>(),
        "england": c.england.as_ref().map(row_json),
        "spread": c.spread.iter().map(|s| serde_json::json!({
            "figure": s.figure, "partnerships": s.partnerships,
            "lower_quartile": s.lower_quartile, "median": s.median,
            "upper_quartile": s.upper_quartile,
        })).collect::<Vec<_>>(),
        "applied_sequence": c.applied_sequence,
    })
}

/// The reply as CSV: a line per partnership, then England's, then the
/// lower quartile, median and upper quartile of each figure; the first
/// column says which.
pub fn csv(c: &NationalComparison) -> String {
    use crate::report::csv_field;
    let names = figures(&NationalRow::default()).map(|(name, _)| name);
    let mut out = ["row", "partnership_code", "partnership_name"]
        .into_iter()
        .chain(names)
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    let mut line = |fields: Vec<String>| {
        let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    let england = c.england.clone().unwrap_or_default();
    let rows = c
        .partnerships
        .iter()
        .map(|r| ("partnership", r))
        .chain(std::iter::once(("england", &england)));
    for (kind, r) in rows {
        let mut fields = vec![
            kind.to_string(),
            r.partnership_code.clone(),
            r.partnership_name.clone(),
        ];
        fields.extend(figures(r).iter().map(|(name, v)| cell(r, name, *v)));
        line(fields);
    }
    type Statistic = fn(&FigureSpread) -> Option<f64>;
    let stats: [(&str, Statistic); 3] = [
        ("lower_quartile", |s| s.lower_quartile),
        ("median", |s| s.median),
        ("upper_quartile", |s| s.upper_quartile),
    ];
    for (kind, value) in stats {
        let mut fields = vec![kind.to_string(), String::new(), String::new()];
        fields.extend(names.iter().map(|name| {
            c.spread
                .iter()
                .find(|s| s.figure == *name)
                .and_then(value)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default()
        }));
        line(fields);
    }
    out
}

/// The partnerships ranked on `figure`, highest first: (code, name, the
/// cell as read). Withheld values and percentages without a denominator
/// come last, by code. `None` for a figure the comparison does not have.
pub fn ranking(c: &NationalComparison, figure: &str) -> Option<Vec<(String, String, String)>> {
    let at = figures(&NationalRow::default())
        .iter()
        .position(|(name, _)| *name == figure)?;
    let mut ranked: Vec<(Option<f64>, &NationalRow)> =
        c.partnerships.iter().map(|r| (shown(r)[at].1, r)).collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        b.partial_cmp(a)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| ra.partnership_code.cmp(&rb.partnership_code))
    });
    Some(
        ranked
            .into_iter()
            .map(|(_, r)| {
                let value = figures(r)[at].1;
                (
                    r.partnership_code.clone(),
                    r.partnership_name.clone(),
                    cell(r, figure, value),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::projections::{
        ActivityFigures, ContinuityFunnel, CustodyAdvice, NeedleExchange, Referrals,
    };

    fn activity(
        transactions: u32,
        clients: u32,
        advised: u32,
        referred: [(u32, u32); 2],
    ) -> Activity {
        Activity {
            year: Some(ActivityFigures {
                needle_exchange: Some(NeedleExchange {
                    transactions,
                    clients,
                    packs_given: 10,
                    returns: 5,
                    return_rate_pct: Some(50.0),
                    ..Default::default()
                }),
                custody_advice: Some(CustodyAdvice {
                    records: advised + 1,
                    people: advised,
                    ..Default::default()
                }),
                referrals: referred
                    .iter()
                    .zip(["custody", "pharmacy"])
                    .map(|((r, e), source)| Referrals {
                        source: source.into(),
                        referred: *r,
                        engaged_within_28_days: *e,
                        engaged_pct: percent(*e, *r),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn gathered() -> Gathered {
        let rows = [
            ("a", activity(100, 30, 3, [(10, 5), (10, 5)])),
            ("b", activity(200, 50, 20, [(2, 1), (2, 1)])),
            ("c", activity(300, 9, 40, [(30, 10), (0, 0)])),
            ("d", activity(0, 0, 0, [(0, 0), (0, 0)])),
        ];
        let england = activity(600, 89, 63, [(42, 16), (12, 6)]);
        let funnel = |code: &str, released, engaged| ContinuityFunnel {
            partnership_code: code.into(),
            released,
            engaged_within_21_days: engaged,
            ..Default::default()
        };
        Gathered {
            financial_year: "2026-27".into(),
            activity: rows
                .into_iter()
                .map(|(c, a)| (c.to_string(), c.to_uppercase(), a))
                .collect(),
            england,
            training: NationalTrainingCounts {
                financial_year: "2026-27".into(),
                partnerships: vec![TrainingCounts {
                    partnership_code: "a".into(),
                    carers_trained: 0,
                    service_users_trained: 12,
                    suppressed: vec!["carers_trained".into(), "pharmacy_staff_trained".into()],
                    ..Default::default()
                }],
                england: Some(TrainingCounts {
                    service_users_trained: 15,
                    carers_trained: 3,
                    ..Default::default()
                }),
                applied_sequence: 0,
            },
            continuity: NationalContinuity {
                partnerships: vec![funnel("a", 20, 0), funnel("b", 10, 5), funnel("c", 0, 0)],
                england: Some(funnel("england", 33, 8)),
                suppressed: vec!["a.engaged_within_21_days".into(), "c.released".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn admins_see_every_count_and_englands_totals() {
        let c = compare(gathered(), true);
        let codes: Vec<_> = c
            .partnerships
            .iter()
            .map(|r| r.partnership_code.as_str())
            .collect();
        assert_eq!(codes, ["a", "b", "c", "d"]);
        let b = &c.partnerships[1];
        assert_eq!(
            (b.people_referred, b.referred_engaged_within_28_days),
            (4, 2)
        );
        assert_eq!(b.referred_engaged_pct, Some(50.0));
        assert_eq!(
            (b.released, b.engaged_within_21_days, b.continuity_pct),
            (10, 5, Some(50.0))
        );
        assert!(b.suppressed.is_empty());
        let e = c.england.unwrap();
        assert_eq!(
            (e.needle_exchange_transactions, e.people_referred),
            (600, 54)
        );
        assert_eq!(
            (e.released, e.engaged_within_21_days, e.continuity_pct),
            (33, 8, Some(24.2))
        );
        assert_eq!((e.service_users_trained, e.carers_trained), (15, 3));
        assert!(e.suppressed.is_empty(), "England is never withheld");
        let tx = &c.spread[0];
        assert_eq!(tx.figure, "needle_exchange_transactions");
        assert_eq!(tx.partnerships, 4);
        assert_eq!(
            (tx.lower_quartile, tx.median, tx.upper_quartile),
            (Some(75.0), Some(150.0), Some(225.0))
        );
        let rate = c
            .spread
            .iter()
            .find(|s| s.figure == "referred_engaged_pct")
            .unwrap();
        assert_eq!(rate.partnerships, 3, "d referred nobody: no rate");
    }

    #[test]
    fn analysts_see_small_counts_withheld_in_every_row_and_a_lone_one_covered() {
        let c = compare(gathered(), false);
        let s = |i: usize| c.partnerships[i].suppressed.clone();
        // a: training's and continuity's withholdings carried; 3 people
        // advised; and, covering b's lone small referral counts, its own
        // (the smallest others: 20 referred, 10 engaged, before c's 10).
        assert_eq!(
            s(0),
            [
                "carers_trained",
                "engaged_within_21_days",
                "continuity_pct",
                "people_advised_in_custody",
                "people_referred",
                "referred_engaged_pct",
                "referred_engaged_within_28_days",
            ]
        );
        // b: 4 referred, 2 engaged and the rate; and 20 advised, the
        // smallest beside a's lone 3.
        assert_eq!(
            s(1),
            [
                "people_referred",
                "referred_engaged_pct",
                "referred_engaged_within_28_days",
                "people_advised_in_custody",
            ]
        );
        assert_eq!(s(2), ["released", "continuity_pct"]);
        assert!(s(3).is_empty(), "zeros disclose nobody");
        let b = &c.partnerships[1];
        assert_eq!(
            (
                b.people_advised_in_custody,
                b.people_referred,
                b.referred_engaged_pct
            ),
            (0, 0, None)
        );
        // The spread leaves withheld values out.
        let advised = c
            .spread
            .iter()
            .find(|s| s.figure == "people_advised_in_custody")
            .unwrap();
        assert_eq!(
            (advised.partnerships, advised.median),
            (2, Some(20.0)),
            "c's 40 and d's 0"
        );
        assert_eq!(c.england.unwrap().people_advised_in_custody, 63);
    }

    #[test]
    fn rankings_put_the_highest_first_and_what_is_withheld_last() {
        let c = compare(gathered(), false);
        let text = |r: Vec<(String, String, String)>| {
            r.into_iter()
                .map(|(code, _, v)| format!("{code}:{v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            text(ranking(&c, "people_advised_in_custody").unwrap()),
            ["c:40", "d:0", "a:withheld", "b:withheld"]
        );
        assert_eq!(
            text(ranking(&c, "referred_engaged_pct").unwrap()),
            ["c:33.3", "a:withheld", "b:withheld", "d:"]
        );
        assert_eq!(ranking(&c, "no_such_figure"), None);
    }

    #[test]
    fn the_csv_has_a_line_per_partnership_then_england_then_the_spread() {
        let c = compare(gathered(), false);
        let text = csv(&c);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1 + 4 + 1 + 3);
        assert!(lines[0].starts_with(
            "row,partnership_code,partnership_name,needle_exchange_transactions,needle_exchange_clients,"
        ));
        assert!(
            lines[1].starts_with("partnership,a,A,100,30,50.0,,4,withheld,withheld,withheld,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[5].starts_with("england,england,England,600,89,50.0,,"),
            "{}",
            lines[5]
        );
        assert!(lines[7].starts_with("median,,,150.0,"), "{}", lines[7]);
        let v = json(&c);
        assert_eq!(v["partnerships"][0]["people_advised_in_custody"], 0);
        assert_eq!(
            v["partnerships"][0]["referred_engaged_pct"],
            serde_json::Value::Null
        );
        assert_eq!(v["england"]["people_referred"], 54);
        assert_eq!(v["spread"][0]["median"], 150.0);
    }
}
