//! The dashboard's HTML, rendered on the server from maud templates:
//! every text and attribute is escaped by construction, nothing is
//! fetched at run time, and the only script is the live list's few lines.
//! Labelled forms, tables with captions and header cells, a skip link,
//! colours with strong contrast, charts as SVG with a table of their
//! figures beside them ([`crate::chart`]), and print styles that leave
//! out navigation and keep tables and charts whole.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use activity_projection::{national, report};
use hub_core::{
    auth::{Action, Caller},
    partnerships::Partnership,
    time::FinancialYear,
};
use hub_proto::{
    admin::AuditRecord,
    json::{alert_name, consent_name, status_name},
    projections::{
        Activity, NationalComparison, NationalRow, PickupEntry, PickupSummary,
        QuarterTrainingCounts, TrainingCounts,
    },
};

use crate::chart::{self, Chart, Point, Spread, Unit, Value};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#0b0c0c;background:#fff;line-height:1.5}\
header,main{padding:1rem 2rem}header{background:#003078;color:#fff}header a{color:#fff}\
a{color:#1d70b8}a:focus,button:focus,input:focus{outline:3px solid #fd0;outline-offset:0}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #505a5f;padding:.3rem .6rem;text-align:right}\
th[scope=row]{text-align:left}caption{text-align:left;font-weight:bold;padding:.3rem 0}\
.withheld{font-style:italic;color:#505a5f}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fd0;color:#0b0c0c;padding:.5rem}\
button,input{font-size:1rem;padding:.4rem .8rem}.error{color:#d4351c;font-weight:bold}\
.alert{background:#fff7bf;border-left:4px solid #d4351c;font-weight:bold;color:#0b0c0c}th.left,td.left{text-align:left}\
.nowrap{white-space:nowrap}.wide{overflow-x:auto;max-width:100%}.wide:focus{outline:3px solid #fd0}\
.chart{margin:1rem 0 2rem}.chart figcaption{font-weight:bold;font-size:1.1rem;margin-bottom:.3rem}\
.chart-body{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}.chart-body>svg{flex:0 0 auto;max-width:100%;height:auto}.chart-body>table{flex:0 1 24rem;margin-top:0}\
.charts{display:flex;flex-wrap:wrap;gap:0 2.5rem}.downloads{font-size:.95rem}\
@media print{.skip,header form,.downloads,nav,#live{display:none}header{background:none;color:#000;border-bottom:2px solid #000;padding:0 0 .5rem}\
header a,a{color:#000;text-decoration:none}main{padding:0}body{font-size:10.5pt}.wide{overflow:visible}\
figure.chart,tr{break-inside:avoid}h2,caption{break-after:avoid}thead{display:table-header-group}\
.alert{border-left:4px solid #000}}";

/// The signed-in person a page is for, and the CSRF token its forms carry.
pub struct Who<'a> {
    pub caller: &'a Caller,
    pub csrf: &'a str,
}

/// The one script of the dashboard (the live pick-up list): constant, so
/// the Content-Security-Policy allows it by its hash and nothing else.
pub const LIVE_SCRIPT: &str = "(function(){var live=document.getElementById('live');var first=true,t=null;\
var s=new EventSource(live.getAttribute('data-events'));\
s.addEventListener('entry',function(){if(first){return;}clearTimeout(t);t=setTimeout(function(){location.reload();},500);});\
setTimeout(function(){first=false;},2000);s.onerror=function(){live.textContent='Live updates paused; reload the page.';};})();";

fn layout(title: &str, who: Option<&Who>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Harm-reduction hub" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a .skip href="#main" { "Skip to content" }
                header {
                    p { a href="/" { "Harm-reduction hub" } }
                    @if let Some(w) = who {
                        p { "Signed in as " (w.caller.user_id) " (" (w.caller.role.as_str()) ", " (w.caller.org_code) ")." }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(w.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        None,
        html! { p { (text) } p { a href="/" { "Back" } } },
    )
}

pub fn login(error: Option<&str>, csrf: &str, provider: bool) -> String {
    let body = html! {
        @if let Some(e) = error { p .error role="alert" { (e) } }
        // With an identity provider, that is the way in; the token form
        // stays for development and service accounts.
        @if provider {
            p { a .button href="/auth/start" { "Sign in with your organisation's account" } }
            h2 { "Or with an access token" }
        }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label for="token" { "Your access token" } br;
                input #token name="token" type="password" autocomplete="current-password" required size="40";
            }
            p { button type="submit" { "Sign in" } }
        }
        p { "The token stays on the server; your browser keeps only a session that ends when you sign out, \
             after 30 minutes without use, or after 12 hours." }
    };
    layout("Sign in", None, body)
}

/// A partnership named by the register, as a link to its page.
fn partnership_link(code: &str, name: &str, fy: Option<FinancialYear>) -> Markup {
    let href = match fy {
        Some(fy) => format!("/partnerships/{code}?fy={fy}"),
        None => format!("/partnerships/{code}"),
    };
    html! { a href=(href) { (name) } }
}

/// The home page of someone who reads no national figures and may act for
/// every partnership: the register, to choose from.
pub fn home(who: &Who, partnerships: &[&Partnership]) -> String {
    let body = html! {
        ul { @for p in partnerships { li { (partnership_link(&p.code, &p.name, None)) } } }
    };
    layout("Partnerships", Some(who), body)
}

/// One partnership of a worker's home page: what is on its pick-up list
/// now and how the year's releases went, with links to the list and the
/// figures.
pub struct Overview<'a> {
    pub partnership: &'a Partnership,
    pub summary: Result<PickupSummary, tonic::Status>,
}

/// The home page of a worker with several partnerships: each one's
/// pick-up list now, and its year's continuity of care.
pub fn worker_home(who: &Who, overviews: &[Overview]) -> String {
    let may_list = who.caller.role.may(Action::ReadPickupList);
    let body = html! {
        p { "Your partnerships: who is on each pick-up list now, and how this year's releases reached treatment." }
        @for o in overviews {
            @let p = o.partnership;
            section aria-labelledby={ "h-" (p.code) } {
                h2 id={ "h-" (p.code) } { (p.name) }
                ul {
                    @if may_list { li { a href={ "/partnerships/" (p.code) "/pickups" } { "The pick-up list, live" } } }
                    li { a href={ "/partnerships/" (p.code) } { "All figures for " (p.name) } }
                }
                @match &o.summary {
                    Ok(s) => {
                        (summary_section(s))
                        (downloads(&format!("/api/partnerships/{}/pickup-summary?fy={}", p.code, s.financial_year)))
                    }
                    Err(status) => (unavailable("Prison-gate pick-ups", status)),
                }
            }
        }
    };
    layout("Your partnerships", Some(who), body)
}

fn withheld(suppressed: &[String], name: &str) -> bool {
    suppressed.iter().any(|s| s == name)
}

fn cell(value: String, hidden: bool) -> Markup {
    html! {
        @if hidden { td .withheld { "withheld" } } @else { td { (value) } }
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("–".into(), |v| format!("{v:.1}%"))
}

/// The cell of a quarter that has not begun.
fn not_begun_cell() -> Markup {
    html! { td .withheld { (report::NOT_BEGUN) } }
}

/// A cell of a projection's table read back as a chart's value.
pub fn value_of(text: &str) -> Value {
    match text {
        report::WITHHELD => Value::Withheld,
        report::NOT_BEGUN => Value::NotBegun,
        t => t.parse().map_or(Value::Missing, Value::Shown),
    }
}

/// A financial year's quarters as people name them.
const QUARTERS: [&str; 4] = ["Q1 Apr–Jun", "Q2 Jul–Sep", "Q3 Oct–Dec", "Q4 Jan–Mar"];

/// Whether quarter `q` of `financial_year` had begun by today (London).
fn begun(financial_year: &str, q: u32) -> bool {
    let today = hub_core::time::london_today();
    FinancialYear::parse(financial_year)
        .ok()
        .is_none_or(|fy| fy.quarter_first_day(q as u8) <= today)
}

/// Whether `fy` had begun by today (London).
fn year_begun(fy: FinancialYear) -> bool {
    fy.first_day() <= hub_core::time::london_today()
}

type Get = fn(&TrainingCounts) -> String;
type GetQ = fn(&QuarterTrainingCounts) -> String;
const TRAINING_ROWS: [(&str, &str, Get, GetQ); 11] = [
    (
        "Service users trained",
        "service_users_trained",
        |c| c.service_users_trained.to_string(),
        |q| q.service_users_trained.to_string(),
    ),
    (
        "Carers trained",
        "carers_trained",
        |c| c.carers_trained.to_string(),
        |q| q.carers_trained.to_string(),
    ),
    (
        "Prison leavers trained",
        "prison_leavers_trained",
        |c| c.prison_leavers_trained.to_string(),
        |q| q.prison_leavers_trained.to_string(),
    ),
    (
        "Custody officers trained",
        "custody_officers_trained",
        |c| c.custody_officers_trained.to_string(),
        |q| q.custody_officers_trained.to_string(),
    ),
    (
        "Custody officer headcount",
        "custody_officer_headcount",
        |c| c.custody_officer_headcount.to_string(),
        |q| q.custody_officer_headcount.to_string(),
    ),
    (
        "Custody officers trained (% of headcount)",
        "custody_officers_trained_pct",
        |c| pct(c.custody_officers_trained_pct),
        |q| pct(q.custody_officers_trained_pct),
    ),
    (
        "Paramedics trained",
        "paramedics_trained",
        |c| c.paramedics_trained.to_string(),
        |q| q.paramedics_trained.to_string(),
    ),
    (
        "Paramedic headcount",
        "paramedic_headcount",
        |c| c.paramedic_headcount.to_string(),
        |q| q.paramedic_headcount.to_string(),
    ),
    (
        "Paramedics trained (% of headcount)",
        "paramedics_trained_pct",
        |c| pct(c.paramedics_trained_pct),
        |q| pct(q.paramedics_trained_pct),
    ),
    (
        "Pharmacy staff trained",
        "pharmacy_staff_trained",
        |c| c.pharmacy_staff_trained.to_string(),
        |q| q.pharmacy_staff_trained.to_string(),
    ),
    (
        "Naloxone kits supplied",
        "naloxone_kits_supplied",
        |c| c.naloxone_kits_supplied.to_string(),
        |q| q.naloxone_kits_supplied.to_string(),
    ),
];
/// The people the partnership trained (service users, carers, prison
/// leavers): the names their suppression goes by.
const PEOPLE_TRAINED: [&str; 3] = [
    "service_users_trained",
    "carers_trained",
    "prison_leavers_trained",
];

/// People trained in a year (`prefix` empty) or a quarter (`q1.`), or
/// withheld when any part is.
fn people_trained(c: &TrainingCounts, prefix: &str, n: u32) -> Value {
    if PEOPLE_TRAINED
        .iter()
        .any(|f| withheld(&c.suppressed, &format!("{prefix}{f}")))
    {
        Value::Withheld
    } else {
        Value::Shown(f64::from(n))
    }
}

fn year_people_trained(c: &TrainingCounts) -> Value {
    people_trained(
        c,
        "",
        c.service_users_trained + c.carers_trained + c.prison_leavers_trained,
    )
}

fn training_section(c: &TrainingCounts) -> Markup {
    let quarters: Vec<Point> = c
        .quarters
        .iter()
        .map(|q| Point {
            label: format!("Q{}", q.quarter),
            value: if !begun(&c.financial_year, q.quarter) {
                Value::NotBegun
            } else {
                people_trained(
                    c,
                    &format!("q{}.", q.quarter),
                    q.service_users_trained + q.carers_trained + q.prison_leavers_trained,
                )
            },
            link: None,
        })
        .collect();
    html! {
        h2 #training { "Overdose training" }
        table {
            caption { "Overdose training and naloxone, " (c.financial_year) }
            thead { tr {
                th scope="col" .left { "Figure" } th scope="col" { "Year" }
                @for q in QUARTERS { th scope="col" { (q) } }
            } }
            tbody {
                @for (label, field, year, quarter) in TRAINING_ROWS {
                    tr {
                        th scope="row" { (label) }
                        (cell(year(c), withheld(&c.suppressed, field)))
                        // A quarter that has not begun has no figures yet: never a 0.
                        @for q in &c.quarters {
                            @if !begun(&c.financial_year, q.quarter) { (not_begun_cell()) }
                            @else { (cell(quarter(q), withheld(&c.suppressed, &format!("q{}.{field}", q.quarter)))) }
                        }
                    }
                }
            }
        }
        (downloads(&format!("/api/partnerships/{}/training?fy={}", c.partnership_code, c.financial_year)))
        (chart::columns(
            &Chart { id: "chart-trained", title: "Service users, carers and prison leavers trained, by quarter",
                     unit: Unit::Count, value_heading: "People trained", label_heading: "Quarter" },
            "People trained to handle an overdose in each quarter of the financial year.",
            &quarters,
        ))
        @if !c.suppressed.is_empty() {
            p { "Counts of 1 to 7 people are withheld, as NHS statistics do below national level." }
        }
    }
}

/// Links to a table's figures as CSV and JSON.
fn downloads(api: &str) -> Markup {
    let sep = if api.contains('?') { '&' } else { '?' };
    html! {
        p .downloads {
            "Download these figures: "
            a href={ (api) (sep) "format=csv" } download { "CSV" } " · "
            a href=(api) { "JSON" }
        }
    }
}

fn summary_section(s: &PickupSummary) -> Markup {
    html! {
        table {
            caption { "Continuity of care, " (s.financial_year) }
            tbody {
                tr { th scope="row" { "Released from prison" } (cell(s.released.to_string(), withheld(&s.suppressed, "released"))) }
                tr { th scope="row" { "Engaged with treatment within 21 days" } (cell(s.engaged_within_21_days.to_string(), withheld(&s.suppressed, "engaged_within_21_days"))) }
                tr { th scope="row" { "Continuity of care" } (cell(pct(s.continuity_pct), withheld(&s.suppressed, "continuity_pct"))) }
            }
        }
        table {
            caption { "Prison-gate pick-up list now, by status and alert" }
            tbody {
                @for c in &s.by_status {
                    @let name = status_name(c.status);
                    tr { th scope="row" { (words(name)) } (cell(c.count.to_string(), withheld(&s.suppressed, &format!("by_status.{name}")))) }
                }
                @for c in &s.by_alert {
                    @let name = alert_name(c.alert);
                    tr { th scope="row" { "Alert: " (words(name)) } (cell(c.count.to_string(), withheld(&s.suppressed, &format!("by_alert.{name}")))) }
                }
            }
        }
    }
}

/// What each stage of the funnel is called.
fn stage_label(stage: &str) -> &'static str {
    match stage {
        "released" => "Released",
        "flagged" => "Flagged as imminent",
        "triaged" => "Triaged",
        "appointment_booked" => "Appointment booked",
        "met_at_gate" => "Met at the gate",
        "engaged_within_21_days" => "In treatment within 21 days",
        _ => "",
    }
}

/// The continuity funnel: of the people released in the year, how many
/// got each step, in all and by prison; the whole partnership's as a chart.
fn funnel_section(s: &PickupSummary, code: &str) -> Markup {
    let rows = hub_proto::json::funnels(s);
    if rows.is_empty() {
        return html! {};
    }
    let all: Vec<Point> = rows
        .iter()
        .find(|(path, _, _)| path == "funnel")
        .map(|(path, _, f)| {
            f.stages()
                .iter()
                .map(|(name, n)| Point {
                    label: stage_label(name).into(),
                    value: if withheld(&s.suppressed, &format!("{path}.{name}")) {
                        Value::Withheld
                    } else {
                        Value::Shown(f64::from(*n))
                    },
                    link: None,
                })
                .collect()
        })
        .unwrap_or_default();
    html! {
        h2 #continuity { "From prison to treatment" }
        @if !all.is_empty() {
            (chart::bars(
                &Chart { id: "chart-funnel", title: "From prison to treatment: the people released this year, step by step",
                         unit: Unit::Count, value_heading: "People", label_heading: "Step" },
                "Of the people released from prison in the financial year, how many reached each step, from release to treatment within 21 days; where the bars shorten, people were lost.",
                &all,
                &[],
            ))
        }
        table {
            caption { "From prison to treatment, by prison: of the people released this year, how many were" }
            thead { tr {
                th scope="col" .left { "Prison" }
                @for (name, _) in rows[0].2.stages() { th scope="col" { (stage_label(name)) } }
            } }
            tbody {
                @for (path, label, f) in &rows {
                    tr {
                        th scope="row" { (label) }
                        @for (name, n) in f.stages() {
                            (cell(n.to_string(), withheld(&s.suppressed, &format!("{path}.{name}"))))
                        }
                    }
                }
            }
        }
        (downloads(&format!("/api/partnerships/{code}/pickup-summary?fy={}", s.financial_year)))
    }
}

/// The headline activity figures charted by quarter: (path, title, what
/// it shows).
const ACTIVITY_CHARTS: [(&str, &str, &str); 3] = [
    (
        "needle_exchange.transactions",
        "Needle exchange transactions, by quarter",
        "Visits to needle exchanges (packs given or returned) in each quarter.",
    ),
    (
        "overdose_attendances.attendances",
        "Ambulance attendances at overdoses, by quarter",
        "Overdoses an ambulance attended in each quarter.",
    ),
    (
        "naloxone_kits.total",
        "Naloxone kits supplied, by quarter",
        "Naloxone kits supplied by pharmacies, at prison release and with training, in each quarter.",
    ),
];

/// Harm-reduction activity by year and quarter, as `hubctl activity`
/// prints it: withheld counts say so, quarters not begun say so.
fn activity_section(a: &Activity, code: &str) -> Markup {
    let rows = report::rows(a, hub_core::time::london_today());
    let quarters = |path: &str| -> Vec<Point> {
        rows.iter()
            .find(|r| r.path == path)
            .map(|r| {
                (1..5)
                    .map(|q| Point {
                        label: format!("Q{q}"),
                        value: value_of(&r.cells[q]),
                        link: None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    html! {
        h2 #activity { "Harm-reduction activity" }
        div .charts {
            @for (i, (path, title, purpose)) in ACTIVITY_CHARTS.iter().enumerate() {
                (chart::columns(
                    &Chart { id: &format!("chart-activity-{i}"), title, unit: Unit::Count,
                             value_heading: "Count", label_heading: "Quarter" },
                    purpose,
                    &quarters(path),
                ))
            }
        }
        table {
            caption { "Harm-reduction activity, " (a.financial_year) ": needle exchange, custody advice, referrals and treatment, overdose attendances, naloxone" }
            thead { tr {
                th scope="col" .left { "Figure" } th scope="col" { "Year" }
                @for q in QUARTERS { th scope="col" { (q) } }
            } }
            tbody {
                @for r in &rows {
                    tr {
                        th scope="row" { (r.label) }
                        @for v in &r.cells {
                            @match v.as_str() {
                                report::WITHHELD => (cell(String::new(), true)),
                                report::NOT_BEGUN => (not_begun_cell()),
                                "" => td { "–" },
                                v => td { (v) },
                            }
                        }
                    }
                }
            }
        }
        (downloads(&format!("/api/partnerships/{code}/activity?fy={}", a.financial_year)))
    }
}

/// A financial year's figures for the trend across years: whichever the
/// caller may read.
pub struct YearFigures {
    pub fy: FinancialYear,
    pub training: Option<TrainingCounts>,
    pub activity: Option<Activity>,
}

/// Where a figure across years comes from.
#[derive(Clone, Copy)]
enum Source {
    /// People trained (the training projection).
    Trained,
    /// A row of the activity table, by its path.
    Activity(&'static str),
}

/// The headline figures charted across financial years: (title, what it
/// shows, where it comes from).
const YEAR_CHARTS: [(&str, &str, Source); 4] = [
    (
        "People trained to handle an overdose, by year",
        "Service users, carers and prison leavers trained in each financial year.",
        Source::Trained,
    ),
    (
        "Needle exchange transactions, by year",
        "Needle exchange visits in each financial year.",
        Source::Activity("needle_exchange.transactions"),
    ),
    (
        "Ambulance attendances at overdoses, by year",
        "Overdoses an ambulance attended in each financial year.",
        Source::Activity("overdose_attendances.attendances"),
    ),
    (
        "Naloxone kits supplied, by year",
        "Naloxone kits supplied in each financial year.",
        Source::Activity("naloxone_kits.total"),
    ),
];

/// A year's figure from `source`: `None` when the caller could not read it.
fn year_value(y: &YearFigures, source: Source) -> Option<Value> {
    if !year_begun(y.fy) {
        return Some(Value::NotBegun);
    }
    match source {
        Source::Trained => y.training.as_ref().map(year_people_trained),
        Source::Activity(path) => {
            report::rows(y.activity.as_ref()?, hub_core::time::london_today())
                .into_iter()
                .find(|r| r.path == path)
                .map(|r| value_of(&r.cells[0]))
        }
    }
}

/// The headline figures across the last three financial years, one small
/// chart each: those the caller could read for every one of the years.
fn years_section(years: &[YearFigures]) -> Markup {
    let charts: Vec<(usize, &str, &str, Vec<Point>)> = YEAR_CHARTS
        .iter()
        .enumerate()
        .filter_map(|(i, (title, purpose, source))| {
            let points = years
                .iter()
                .map(|y| {
                    Some(Point {
                        label: y.fy.to_string(),
                        value: year_value(y, *source)?,
                        link: None,
                    })
                })
                .collect::<Option<Vec<Point>>>()?;
            Some((i, *title, *purpose, points))
        })
        .collect();
    if years.is_empty() || charts.is_empty() {
        return html! {};
    }
    html! {
        h2 #years { "Across financial years" }
        div .charts {
            @for (i, title, purpose, points) in &charts {
                (chart::columns(
                    &Chart { id: &format!("chart-years-{i}"), title, unit: Unit::Count,
                             value_heading: "Count", label_heading: "Financial year" },
                    purpose,
                    points,
                ))
            }
        }
    }
}

/// The partnership against every partnership's median and quartiles.
fn england_section(c: &NationalComparison, p: &Partnership) -> Markup {
    let Some(row) = c.partnerships.iter().find(|r| r.partnership_code == p.code) else {
        return html! {};
    };
    let rows: Vec<Spread> = national::figures(row)
        .iter()
        .map(|(name, v)| {
            let spread = c.spread.iter().find(|s| s.figure == *name);
            Spread {
                label: national::label(name).to_string(),
                unit: Unit::of(name),
                value: value_of(&national::cell(row, name, *v)),
                lower_quartile: spread.and_then(|s| s.lower_quartile),
                median: spread.and_then(|s| s.median),
                upper_quartile: spread.and_then(|s| s.upper_quartile),
            }
        })
        .collect();
    html! {
        h2 #england { "Against England" }
        p { "Where " (p.name) " stands among England's partnerships in " (c.financial_year)
            ": the grey box holds the middle half of partnerships, the red line is the median. "
            a href={ "/national?fy=" (c.financial_year) } { "Every partnership, ranked" } }
        (chart::spread(
            &Chart { id: "chart-england", title: &format!("{} against every partnership, {}", p.name, c.financial_year),
                     unit: Unit::Count, value_heading: "", label_heading: "" },
            &p.name,
            &rows,
        ))
    }
}

fn unavailable(what: &str, status: &tonic::Status) -> Markup {
    let why = match status.code() {
        tonic::Code::PermissionDenied => "Your role may not see these figures.",
        tonic::Code::Unavailable => "The figures cannot be reached just now; try again shortly.",
        _ => status.message(),
    };
    html! { h2 { (what) } p { (why) } }
}

/// How many break-the-glass reads a partnership's page lists (all of
/// them are in its download).
pub const BREAK_GLASS_SHOWN: usize = 50;

/// Who broke the glass to look at this partnership's people: who, when,
/// with which role and organisation, and why.
fn break_glass_section(code: &str, records: &Result<Vec<AuditRecord>, tonic::Status>) -> Markup {
    let records = match records {
        Ok(r) => r,
        Err(s) => return unavailable("Break-the-glass reads", s),
    };
    let at = |r: &AuditRecord| {
        r.at.as_ref()
            .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
            .map(|t| {
                t.to_zoned(hub_core::time::london())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    html! {
        h2 #break-glass { "Break-the-glass reads" }
        @if records.is_empty() {
            p { "Nobody outside this partnership has looked up one of its people." }
        } @else {
            table {
                caption { "Break-the-glass reads: people outside this partnership who looked up one of its people (the newest " (BREAK_GLASS_SHOWN) ", newest first)" }
                thead { tr {
                    th scope="col" .left { "When (London)" } th scope="col" .left { "Who" } th scope="col" .left { "Role" }
                    th scope="col" .left { "Organisation" } th scope="col" { "Entries shown" } th scope="col" .left { "Why" }
                } }
                tbody {
                    @for r in records.iter().rev() {
                        tr {
                            td .left .nowrap { (at(r)) }
                            th scope="row" { (r.user_id) }
                            td .left { (words(&r.role)) }
                            td .left { (r.org_code) }
                            td { (r.rows) }
                            td .left { (r.break_glass_reason) }
                        }
                    }
                }
            }
            (downloads(&format!("/api/partnerships/{code}/break-glass")))
        }
    }
}

/// Year navigation: the previous and next financial years of a page.
fn years_nav(fy: FinancialYear, extra: &str) -> Markup {
    let prev = FinancialYear {
        start_year: fy.start_year - 1,
    };
    let next = FinancialYear {
        start_year: fy.start_year + 1,
    };
    html! {
        nav aria-label="Financial years" {
            p { "Financial year " (fy) ". "
                a href={ "?fy=" (prev) (extra) } { "Previous year (" (prev) ")" } " · "
                a href={ "?fy=" (next) (extra) } { "Next year (" (next) ")" } }
        }
    }
}

/// Everything a partnership's page shows, as the projections answered
/// the caller: `None` where the caller's role may not ask.
pub struct PartnershipFigures {
    pub fy: FinancialYear,
    pub training: Result<TrainingCounts, tonic::Status>,
    pub summary: Result<PickupSummary, tonic::Status>,
    pub activity: Option<Result<Activity, tonic::Status>>,
    /// The last three financial years, ending with `fy`.
    pub years: Vec<YearFigures>,
    pub national: Option<Result<NationalComparison, tonic::Status>>,
    pub break_glass: Option<Result<Vec<AuditRecord>, tonic::Status>>,
}

pub fn partnership(who: &Who, p: &Partnership, f: &PartnershipFigures) -> String {
    let [c7, c8, c9, c10] = p.criteria_2006_07;
    let body = html! {
        (years_nav(f.fy, ""))
        @if who.caller.role.may(Action::ReadPickupList) {
            p { a href={ "/partnerships/" (p.code) "/pickups" } { "The pick-up list, live" } }
        }
        @match &f.training {
            Ok(c) => (training_section(c)),
            Err(s) => (unavailable("Overdose training", s)),
        }
        @match &f.summary {
            Ok(s) => { h2 #pickups { "Prison-gate pick-ups" } (summary_section(s)) (funnel_section(s, &p.code)) }
            Err(s) => (unavailable("Prison-gate pick-ups", s)),
        }
        @match &f.activity {
            Some(Ok(a)) => (activity_section(a, &p.code)),
            Some(Err(s)) => (unavailable("Harm-reduction activity", s)),
            None => {}
        }
        (years_section(&f.years))
        @match &f.national {
            Some(Ok(c)) => (england_section(c, p)),
            Some(Err(s)) => (unavailable("Against England", s)),
            None => {}
        }
        @if let Some(records) = &f.break_glass { (break_glass_section(&p.code, records)) }
        h2 #review { "The 2006/07 review" }
        table {
            caption { "2006/07 harm-reduction review scores (0–4 each)" }
            tbody {
                tr { th scope="row" { "Criterion 7: harm reduction embedded across the treatment system" } td { (c7) } }
                tr { th scope="row" { "Criterion 8: prompt and flexible access to harm reduction services" } td { (c8) } }
                tr { th scope="row" { "Criterion 9: action to reduce drug-related deaths" } td { (c9) } }
                tr { th scope="row" { "Criterion 10: staff competences" } td { (c10) } }
                tr { th scope="row" { "Harm-reduction score" } td { (p.harm_reduction_score_2006_07) } }
            }
        }
    };
    layout(&p.name, Some(who), body)
}

/// The national page: England's figures and the spread of partnerships
/// on every headline figure, and the partnerships ranked on one of them
/// (`figure`), each linked to its page.
pub fn national_page(who: &Who, c: &NationalComparison, figure: &str) -> String {
    let fy = FinancialYear::parse(&c.financial_year).ok();
    let england = c.england.clone().unwrap_or_default();
    let names = national::figures(&NationalRow::default()).map(|(name, _)| name);
    let withheld_any = c.partnerships.iter().any(|r| !r.suppressed.is_empty());
    let spread = |name: &str| c.spread.iter().find(|s| s.figure == name);
    let number =
        |v: Option<f64>, name: &str| v.map_or("–".to_string(), |v| Unit::of(name).format(v));
    let ranked: Vec<Point> = national::ranking(c, figure)
        .unwrap_or_default()
        .into_iter()
        .map(|(code, name, text)| Point {
            value: value_of(&text),
            link: Some(match fy {
                Some(fy) => format!("/partnerships/{code}?fy={fy}"),
                None => format!("/partnerships/{code}"),
            }),
            label: name,
        })
        .collect();
    let unit = Unit::of(figure);
    let marks: Vec<(&str, f64)> = spread(figure)
        .map(|s| {
            [
                ("Lower quartile", s.lower_quartile),
                ("Median", s.median),
                ("Upper quartile", s.upper_quartile),
            ]
            .into_iter()
            .filter_map(|(n, v)| Some((n, v?)))
            .collect()
        })
        .unwrap_or_default();
    let title = format!(
        "Partnerships ranked on {}, {}",
        national::label(figure).to_lowercase_first(),
        c.financial_year
    );
    let figure_param = format!("&figure={figure}");
    let body = html! {
        @if let Some(fy) = fy { (years_nav(fy, &figure_param)) }
        p { "Every local drug partnership in England side by side. England's figures add up every partnership's; \
             the median and quartiles are of the partnerships with a figure." }
        @if withheld_any {
            p { "Counts of 1 to 7 people are withheld, and where one count alone in a figure was withheld, the next smallest too, \
                 so that England's total does not give it away." }
        }
        (downloads(&format!("/api/national?fy={}", c.financial_year)))
        table {
            caption { "England and the spread of partnerships, " (c.financial_year) }
            thead { tr {
                th scope="col" .left { "Figure (rank partnerships on it)" } th scope="col" { "England" }
                th scope="col" { "Lower quartile" } th scope="col" { "Median" } th scope="col" { "Upper quartile" }
                th scope="col" { "Partnerships with a figure" }
            } }
            tbody {
                @for (name, v) in national::figures(&england) {
                    @let s = spread(name);
                    tr {
                        th scope="row" {
                            @if name == figure { strong { (national::label(name)) } " (ranked below)" }
                            @else { a href={ "?fy=" (c.financial_year) "&figure=" (name) "#ranking" } { (national::label(name)) } }
                        }
                        td { (number(v, name)) }
                        td { (number(s.and_then(|s| s.lower_quartile), name)) }
                        td { (number(s.and_then(|s| s.median), name)) }
                        td { (number(s.and_then(|s| s.upper_quartile), name)) }
                        td { (s.map_or(0, |s| s.partnerships)) }
                    }
                }
            }
        }
        h2 #ranking { (title) }
        (chart::bars(
            &Chart { id: "chart-ranking", title: &title, unit, value_heading: national::label(figure), label_heading: "Partnership" },
            &format!("Every partnership's {}, highest first, against the median and quartiles of all partnerships.", national::label(figure).to_lowercase_first()),
            &ranked,
            &marks,
        ))
        p { "Figures: " @for (i, name) in names.iter().enumerate() { @if i > 0 { " · " } a href={ "?fy=" (c.financial_year) "&figure=" (name) "#ranking" } { (national::label(name)) } } }
    };
    layout("England's partnerships", Some(who), body)
}

/// A label for use inside a sentence: its first letter lower case,
/// unless it starts a name (two capitals).
trait LowerFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowerFirst for str {
    fn to_lowercase_first(&self) -> String {
        let mut chars = self.chars();
        match (chars.next(), chars.next()) {
            (Some(a), Some(b)) if !b.is_uppercase() => a
                .to_lowercase()
                .chain(std::iter::once(b))
                .chain(chars)
                .collect(),
            _ => self.to_string(),
        }
    }
}

/// A contract name as words: `NO_GATE_WORKER` → `No gate worker`.
fn words(name: &str) -> String {
    let lower = name.to_ascii_lowercase().replace('_', " ");
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The consents in force on an entry, and since when (London).
fn consents(e: &PickupEntry) -> Markup {
    let since = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| hub_core::time::london_minute(&hub_proto::json::rfc3339(t)))
    };
    html! {
        "Gate pick-up: " (words(consent_name(e.consent)))
        @if let Some(s) = since(&e.consent_since) { " " span .nowrap { "since " (s) } }
        br;
        "Share with treatment: " (words(consent_name(e.share_with_treatment)))
        @if let Some(s) = since(&e.share_with_treatment_since) { " " span .nowrap { "since " (s) } }
    }
}

fn pickup_row(e: &PickupEntry) -> Markup {
    let alerts: Vec<String> = e.alerts.iter().map(|a| words(alert_name(*a))).collect();
    let yes = |b: bool| if b { "yes" } else { "no" };
    html! {
        tr id={ "p-" (e.person_key) } class=[(!alerts.is_empty()).then_some("alert")] {
            td .left .nowrap { (e.release_date) }
            td { (e.days_to_release) }
            th scope="row" {
                @if e.redacted { span .withheld { "no consent" } } @else { (e.display_name) }
            }
            td .left { (e.prison_code) }
            td .left {
                (words(status_name(e.status)))
                @if !e.handed_over_from.is_empty() { " (handed over by " (e.handed_over_from) ")" }
            }
            td .left { (consents(e)) }
            td { (yes(e.triage_completed)) }
            td .left .nowrap { (hub_core::time::london_minute(&e.appointment_at)) }
            td .left { (e.gate_worker_id) }
            td { (yes(e.naloxone_issued)) }
            td .left { (alerts.join("; ")) }
        }
    }
}

/// The live pick-up list. A few lines of script (no framework, nothing
/// fetched) reload the list when the server says an entry changed; without
/// script the page is complete as served.
pub fn pickups(who: &Who, p: &Partnership, entries: &[PickupEntry]) -> String {
    let body = html! {
        p { "People leaving prison from 21 days ago to 14 days ahead, soonest first. Rows with alerts are highlighted. "
            span #live role="status" data-events={ "/api/partnerships/" (p.code) "/pickups/events" } { "Updates appear as they happen." } }
        div .wide role="region" aria-label="Pick-up list, scrolls sideways" tabindex="0" {
            table {
                caption { "Prison-gate pick-up list" }
                thead { tr {
                    th scope="col" .left { "Release" } th scope="col" { "Days" } th scope="col" .left { "Name" }
                    th scope="col" .left { "Prison" } th scope="col" .left { "Status" } th scope="col" .left { "Consent" }
                    th scope="col" { "Triage" } th scope="col" .left { "Appointment" } th scope="col" .left { "Gate worker" }
                    th scope="col" { "Naloxone" } th scope="col" .left { "Alerts" }
                } }
                tbody { @for e in entries { (pickup_row(e)) } }
            }
        }
        p { a href={ "/partnerships/" (p.code) } { "Figures for " (p.name) } }
        script { (PreEscaped(LIVE_SCRIPT)) }
    };
    layout(&format!("{}: pick-up list", p.name), Some(who), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn year(start_year: i16) -> TrainingCounts {
        TrainingCounts {
            partnership_code: "leeds".into(),
            financial_year: FinancialYear { start_year }.to_string(),
            quarters: (1..=4)
                .map(|q| QuarterTrainingCounts {
                    quarter: q,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn quarters_not_begun_say_so_never_zero() {
        let this = FinancialYear::of(hub_core::time::london_today()).start_year;
        let future = training_section(&year(this + 1)).into_string();
        // Eleven figures in the table and the chart's own table, each for
        // four quarters; the chart draws no bar at all.
        assert_eq!(
            future
                .matches("<td class=\"withheld\">not yet begun</td>")
                .count(),
            12 * 4,
            "{future}"
        );
        assert!(!future.contains("<rect"), "{future}");
        let past = training_section(&year(this - 1)).into_string();
        assert!(!past.contains("not yet begun"), "{past}");
        assert_eq!(
            past.matches("<rect").count(),
            4,
            "a bar for each quarter, 0s included"
        );
    }

    #[test]
    fn withheld_parts_withhold_the_sum() {
        let mut c = year(2020);
        c.carers_trained = 1;
        c.service_users_trained = 20;
        c.suppressed = vec!["carers_trained".into()];
        assert_eq!(year_people_trained(&c), Value::Withheld);
        c.suppressed.clear();
        assert_eq!(year_people_trained(&c), Value::Shown(21.0));
    }

    #[test]
    fn table_cells_read_back_as_values() {
        assert_eq!(value_of("withheld"), Value::Withheld);
        assert_eq!(value_of("not yet begun"), Value::NotBegun);
        assert_eq!(value_of(""), Value::Missing);
        assert_eq!(value_of("53.5"), Value::Shown(53.5));
    }

    #[test]
    fn contract_names_read_as_words() {
        assert_eq!(words("NO_GATE_WORKER"), "No gate worker");
        assert_eq!(words("PICKED_UP"), "Picked up");
        assert_eq!(words(""), "");
        assert_eq!(
            "Needle exchange: clients".to_lowercase_first(),
            "needle exchange: clients"
        );
        assert_eq!("NHS".to_lowercase_first(), "NHS");
    }

    #[test]
    fn text_from_people_is_escaped() {
        let out = message("<b>Title</b>", "x<script>alert(1)</script>&'\"");
        assert!(out.contains("&lt;b&gt;Title&lt;/b&gt;"), "{out}");
        assert!(
            out.contains("x&lt;script&gt;alert(1)&lt;/script&gt;&amp;'&quot;"),
            "{out}"
        );
        assert!(!out.contains("<script>"));
    }
}
