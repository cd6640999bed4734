//! The dashboard's HTML: rendered on the server, no script and nothing
//! fetched at run time; labelled forms, table headers with scope, a skip
//! link, and colours with strong contrast. Every value is escaped.

use hub_core::{auth::Caller, partnerships::Partnership, time::FinancialYear};
use hub_proto::{
    admin::AuditRecord,
    json::{alert_name, consent_name, status_name},
    projections::{Activity, PickupEntry, PickupSummary, TrainingCounts},
};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.5}\
header,main{padding:1rem 2rem}header{background:#003078;color:#fff}header a{color:#fff}\
a{color:#1d70b8}a:focus,button:focus,input:focus{outline:3px solid #fd0;outline-offset:0}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #505a5f;padding:.3rem .6rem;text-align:right}\
th[scope=row]{text-align:left}caption{text-align:left;font-weight:bold;padding:.3rem 0}\
.withheld{font-style:italic;color:#505a5f}.bar{background:#1d70b8;height:1.1rem;display:inline-block;vertical-align:middle}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fd0;color:#111;padding:.5rem}\
button,input{font-size:1rem;padding:.4rem .8rem}.error{color:#d4351c;font-weight:bold}\
.alert{background:#fff7bf;border-left:4px solid #d4351c;font-weight:bold;color:#111}th.left,td.left{text-align:left}\
.nowrap{white-space:nowrap}.wide{overflow-x:auto;max-width:100%}.wide:focus{outline:3px solid #fd0}";

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

fn layout(title: &str, who: Option<&Who>, body: &str) -> String {
    let user = who
        .map(|w| {
            format!(
                "<p>Signed in as {} ({}, {}).</p><form method=\"post\" action=\"/logout\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
                esc(&w.caller.user_id),
                esc(w.caller.role.as_str()),
                esc(&w.caller.org_code),
                esc(w.csrf)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en-GB\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t} · Harm-reduction hub</title><style>{STYLE}</style></head><body><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><p><a href=\"/\">Harm-reduction hub</a></p>{user}</header><main id=\"main\"><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        None,
        &format!("<p>{}</p><p><a href=\"/\">Back</a></p>", esc(text)),
    )
}

pub fn login(error: Option<&str>, csrf: &str, provider: bool) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    // With an identity provider, that is the way in; the token form stays
    // for development and service accounts.
    let error = if provider {
        format!("{error}<p><a class=\"button\" href=\"/auth/start\">Sign in with your organisation's account</a></p><h2>Or with an access token</h2>")
    } else {
        error
    };
    layout(
        "Sign in",
        None,
        &format!(
            "{error}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><p><label for=\"token\">Your access token</label><br>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required size=\"40\"></p>\
<p><button type=\"submit\">Sign in</button></p></form><p>The token stays on the server; your browser keeps only a session \
that ends when you sign out, after 30 minutes without use, or after 12 hours.</p>",
            csrf = esc(csrf)
        ),
    )
}

pub fn home(who: &Who, partnerships: &[&Partnership]) -> String {
    let items: String = partnerships
        .iter()
        .map(|p| {
            format!(
                "<li><a href=\"/partnerships/{}\">{}</a></li>",
                esc(&p.code),
                esc(&p.name)
            )
        })
        .collect();
    layout("Partnerships", Some(who), &format!("<ul>{items}</ul>"))
}

fn withheld(suppressed: &[String], name: &str) -> bool {
    suppressed.iter().any(|s| s == name)
}

fn cell(value: String, hidden: bool) -> String {
    if hidden {
        "<td class=\"withheld\">withheld</td>".into()
    } else {
        format!("<td>{}</td>", esc(&value))
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("–".into(), |v| format!("{v:.1}%"))
}

/// The cell of a quarter that has not begun.
const NOT_BEGUN_CELL: &str = "<td class=\"withheld\">not yet begun</td>";

fn training_section(c: &TrainingCounts) -> String {
    type Get = fn(&TrainingCounts) -> String;
    type GetQ = fn(&hub_proto::projections::QuarterTrainingCounts) -> String;
    let rows: [(&str, &str, Get, GetQ); 11] = [
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
    let mut body = String::from(
        "<table><caption>Overdose training</caption><thead><tr><th scope=\"col\"></th><th scope=\"col\">Year</th>\
<th scope=\"col\">Q1 Apr–Jun</th><th scope=\"col\">Q2 Jul–Sep</th><th scope=\"col\">Q3 Oct–Dec</th><th scope=\"col\">Q4 Jan–Mar</th></tr></thead><tbody>",
    );
    // A quarter that has not begun has no figures yet: never a 0.
    let fy = FinancialYear::parse(&c.financial_year).ok();
    let today = hub_core::time::london_today();
    let begun = |q: u32| fy.is_none_or(|fy| fy.quarter_first_day(q as u8) <= today);
    for (label, field, year, quarter) in rows {
        body.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(label)));
        body.push_str(&cell(year(c), withheld(&c.suppressed, field)));
        for q in &c.quarters {
            if !begun(q.quarter) {
                body.push_str(NOT_BEGUN_CELL);
                continue;
            }
            body.push_str(&cell(
                quarter(q),
                withheld(&c.suppressed, &format!("q{}.{field}", q.quarter)),
            ));
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    // A chart of people trained per quarter (the table above carries the
    // same figures for screen readers).
    let people = |q: &hub_proto::projections::QuarterTrainingCounts| {
        q.service_users_trained + q.carers_trained + q.prison_leavers_trained
    };
    let most = c.quarters.iter().map(people).max().unwrap_or(0).max(1);
    body.push_str("<figure aria-hidden=\"true\"><figcaption>Service users, carers and prison leavers trained, by quarter</figcaption>");
    for q in &c.quarters {
        let hidden = [
            "service_users_trained",
            "carers_trained",
            "prison_leavers_trained",
        ]
        .iter()
        .any(|f| withheld(&c.suppressed, &format!("q{}.{f}", q.quarter)));
        if !begun(q.quarter) {
            body.push_str(&format!(
                "<div>Q{} <span class=\"withheld\">not yet begun</span></div>",
                q.quarter
            ));
        } else if hidden {
            body.push_str(&format!(
                "<div>Q{} <span class=\"withheld\">withheld</span></div>",
                q.quarter
            ));
        } else {
            let width = people(q) * 300 / most;
            body.push_str(&format!(
                "<div>Q{} <span class=\"bar\" style=\"width:{width}px\"></span> {}</div>",
                q.quarter,
                people(q)
            ));
        }
    }
    body.push_str("</figure>");
    if !c.suppressed.is_empty() {
        body.push_str("<p>Counts of 1 to 7 people are withheld, as NHS statistics do below national level.</p>");
    }
    body
}

fn summary_section(s: &PickupSummary) -> String {
    let mut body = String::from("<table><caption>Continuity of care</caption><tbody>");
    body.push_str(&format!(
        "<tr><th scope=\"row\">Released from prison</th>{}</tr><tr><th scope=\"row\">Engaged with treatment within 21 days</th>{}</tr>\
<tr><th scope=\"row\">Continuity of care</th>{}</tr></tbody></table>",
        cell(s.released.to_string(), withheld(&s.suppressed, "released")),
        cell(s.engaged_within_21_days.to_string(), withheld(&s.suppressed, "engaged_within_21_days")),
        cell(pct(s.continuity_pct), withheld(&s.suppressed, "continuity_pct")),
    ));
    body.push_str(
        "<table><caption>Prison-gate pick-up list now, by status and alert</caption><tbody>",
    );
    for c in &s.by_status {
        let name = status_name(c.status);
        body.push_str(&format!(
            "<tr><th scope=\"row\">{}</th>{}</tr>",
            esc(name),
            cell(
                c.count.to_string(),
                withheld(&s.suppressed, &format!("by_status.{name}"))
            )
        ));
    }
    for c in &s.by_alert {
        let name = alert_name(c.alert);
        body.push_str(&format!(
            "<tr><th scope=\"row\">Alert {}</th>{}</tr>",
            esc(name),
            cell(
                c.count.to_string(),
                withheld(&s.suppressed, &format!("by_alert.{name}"))
            )
        ));
    }
    body.push_str("</tbody></table>");
    body
}

/// The continuity funnel: of the people released in the year, how many
/// got each step, in all and by prison.
fn funnel_section(s: &PickupSummary) -> String {
    let rows = hub_proto::json::funnels(s);
    if rows.is_empty() {
        return String::new();
    }
    let mut body = String::from(
        "<table><caption>From prison to treatment: of the people released this year, how many were</caption>\
<thead><tr><th scope=\"col\" class=\"left\">Prison</th><th scope=\"col\">Released</th><th scope=\"col\">Flagged as imminent</th>\
<th scope=\"col\">Triaged</th><th scope=\"col\">Appointment booked</th><th scope=\"col\">Met at the gate</th>\
<th scope=\"col\">In treatment within 21 days</th></tr></thead><tbody>",
    );
    for (path, label, f) in rows {
        body.push_str(&format!(
            "<tr><th scope=\"row\" class=\"left\">{}</th>",
            esc(&label)
        ));
        for (name, n) in f.stages() {
            let hidden = withheld(&s.suppressed, &format!("{path}.{name}"));
            body.push_str(&cell(n.to_string(), hidden));
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    body
}

/// Harm-reduction activity by year and quarter, as `hubctl activity`
/// prints it: withheld counts say so, quarters not begun say so.
fn activity_section(a: &Activity) -> String {
    use activity_projection::report::{rows, NOT_BEGUN, WITHHELD};
    let mut body = String::from(
        "<table><caption>Harm-reduction activity: needle exchange, custody advice, referrals and treatment, overdose attendances, naloxone</caption>\
<thead><tr><th scope=\"col\" class=\"left\">Figure</th><th scope=\"col\">Year</th><th scope=\"col\">Q1</th><th scope=\"col\">Q2</th>\
<th scope=\"col\">Q3</th><th scope=\"col\">Q4</th></tr></thead><tbody>",
    );
    for r in rows(a, hub_core::time::london_today()) {
        body.push_str(&format!(
            "<tr><th scope=\"row\" class=\"left\">{}</th>",
            esc(&r.label)
        ));
        for v in &r.cells {
            body.push_str(&match v.as_str() {
                WITHHELD => cell(String::new(), true),
                NOT_BEGUN => NOT_BEGUN_CELL.to_string(),
                "" => "<td>–</td>".to_string(),
                v => format!("<td>{}</td>", esc(v)),
            });
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    body
}

fn unavailable(what: &str, status: &tonic::Status) -> String {
    let why = match status.code() {
        tonic::Code::PermissionDenied => "Your role may not see these figures.".to_string(),
        tonic::Code::Unavailable => {
            "The figures cannot be reached just now; try again shortly.".to_string()
        }
        _ => status.message().to_string(),
    };
    format!("<h2>{}</h2><p>{}</p>", esc(what), esc(&why))
}

/// Who broke the glass to look at this partnership's people: who, when,
/// with which role and organisation, and why.
fn break_glass_section(records: &Result<Vec<AuditRecord>, tonic::Status>) -> String {
    let records = match records {
        Ok(r) => r,
        Err(s) => return unavailable("Break-the-glass reads", s),
    };
    if records.is_empty() {
        return "<h2>Break-the-glass reads</h2><p>Nobody outside this partnership has looked up one of its people.</p>".into();
    }
    let rows: String = records
        .iter()
        .rev()
        .map(|r| {
            let at = r
                .at
                .as_ref()
                .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
                .map(|t| {
                    t.to_zoned(hub_core::time::london())
                        .strftime("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            format!(
                "<tr><td class=\"left nowrap\">{}</td><th scope=\"row\" class=\"left\">{}</th><td class=\"left\">{}</td><td class=\"left\">{}</td><td>{}</td><td class=\"left\">{}</td></tr>",
                esc(&at),
                esc(&r.user_id),
                esc(&words(&r.role)),
                esc(&r.org_code),
                r.rows,
                esc(&r.break_glass_reason),
            )
        })
        .collect();
    format!(
        "<table><caption>Break-the-glass reads: people outside this partnership who looked up one of its people (newest first)</caption>\
<thead><tr><th scope=\"col\" class=\"left\">When (London)</th><th scope=\"col\" class=\"left\">Who</th><th scope=\"col\" class=\"left\">Role</th>\
<th scope=\"col\" class=\"left\">Organisation</th><th scope=\"col\">Entries shown</th><th scope=\"col\" class=\"left\">Why</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

pub fn partnership(
    who: &Who,
    p: &Partnership,
    fy: FinancialYear,
    training: &Result<TrainingCounts, tonic::Status>,
    summary: &Result<PickupSummary, tonic::Status>,
    activity: Option<&Result<Activity, tonic::Status>>,
    break_glass: Option<&Result<Vec<AuditRecord>, tonic::Status>>,
) -> String {
    let prev = FinancialYear {
        start_year: fy.start_year - 1,
    };
    let next = FinancialYear {
        start_year: fy.start_year + 1,
    };
    let mut body = format!(
        "<p>Financial year {fy}. <a href=\"?fy={prev}\">Previous year</a> · <a href=\"?fy={next}\">Next year</a></p>"
    );
    if who.caller.role.may(hub_core::auth::Action::ReadPickupList) {
        body.push_str(&format!(
            "<p><a href=\"/partnerships/{}/pickups\">The pick-up list, live</a></p>",
            esc(&p.code)
        ));
    }
    match training {
        Ok(c) => body.push_str(&training_section(c)),
        Err(s) => body.push_str(&unavailable("Overdose training", s)),
    }
    match summary {
        Ok(s) => {
            body.push_str(&summary_section(s));
            body.push_str(&funnel_section(s));
        }
        Err(s) => body.push_str(&unavailable("Prison-gate pick-ups", s)),
    }
    match activity {
        Some(Ok(a)) => body.push_str(&activity_section(a)),
        Some(Err(s)) => body.push_str(&unavailable("Harm-reduction activity", s)),
        None => {}
    }
    if let Some(records) = break_glass {
        body.push_str(&break_glass_section(records));
    }
    let [c7, c8, c9, c10] = p.criteria_2006_07;
    body.push_str(&format!(
        "<table><caption>2006/07 harm-reduction review scores (0–4 each)</caption><tbody>\
<tr><th scope=\"row\">Criterion 7: harm reduction embedded across the treatment system</th><td>{c7}</td></tr><tr><th scope=\"row\">Criterion 8: prompt and flexible access to harm reduction services</th><td>{c8}</td></tr>\
<tr><th scope=\"row\">Criterion 9: action to reduce drug-related deaths</th><td>{c9}</td></tr>\
<tr><th scope=\"row\">Criterion 10: staff competences</th><td>{c10}</td></tr><tr><th scope=\"row\">Harm-reduction score</th><td>{}</td></tr></tbody></table>",
        p.harm_reduction_score_2006_07
    ));
    layout(&p.name, Some(who), &body)
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
fn consents(e: &PickupEntry) -> String {
    let since = |t: &Option<prost_types::Timestamp>| match t {
        Some(t) => format!(
            " <span class=\"nowrap\">since {}</span>",
            esc(&hub_core::time::london_minute(&hub_proto::json::rfc3339(t)))
        ),
        None => String::new(),
    };
    format!(
        "Gate pick-up: {}{}<br>Share with treatment: {}{}",
        words(consent_name(e.consent)),
        since(&e.consent_since),
        words(consent_name(e.share_with_treatment)),
        since(&e.share_with_treatment_since),
    )
}

fn pickup_row(e: &PickupEntry) -> String {
    let name = if e.redacted {
        "<span class=\"withheld\">no consent</span>".to_string()
    } else {
        esc(&e.display_name)
    };
    let alerts: Vec<String> = e.alerts.iter().map(|a| words(alert_name(*a))).collect();
    let yes = |b: bool| if b { "yes" } else { "no" };
    format!(
        "<tr id=\"p-{key}\"{cls}><td class=\"left nowrap\">{date}</td><td>{days}</td><th scope=\"row\" class=\"left\">{name}</th><td class=\"left\">{prison}</td>\
<td class=\"left\">{status}</td><td class=\"left\">{consent}</td><td>{triage}</td><td class=\"left nowrap\">{appt}</td><td class=\"left\">{worker}</td><td>{naloxone}</td><td class=\"left\">{alerts}</td></tr>",
        key = esc(&e.person_key),
        cls = if alerts.is_empty() { "" } else { " class=\"alert\"" },
        date = esc(&e.release_date),
        days = e.days_to_release,
        prison = esc(&e.prison_code),
        status = if e.handed_over_from.is_empty() {
            words(status_name(e.status))
        } else {
            format!(
                "{} (handed over by {})",
                words(status_name(e.status)),
                esc(&e.handed_over_from)
            )
        },
        consent = consents(e),
        triage = yes(e.triage_completed),
        appt = esc(&hub_core::time::london_minute(&e.appointment_at)),
        worker = esc(&e.gate_worker_id),
        naloxone = yes(e.naloxone_issued),
        alerts = esc(&alerts.join("; ")),
    )
}

/// The live pick-up list. A few lines of script (no framework, nothing
/// fetched) reload the list when the server says an entry changed; without
/// script the page is complete as served.
pub fn pickups(who: &Who, p: &Partnership, entries: &[PickupEntry]) -> String {
    let rows: String = entries.iter().map(pickup_row).collect();
    let body = format!(
        "<p>People leaving prison from 21 days ago to 14 days ahead, soonest first. Rows with alerts are highlighted. \
<span id=\"live\" role=\"status\" data-events=\"/api/partnerships/{code}/pickups/events\">Updates appear as they happen.</span></p>\
<div class=\"wide\" role=\"region\" aria-label=\"Pick-up list, scrolls sideways\" tabindex=\"0\">\
<table><caption>Prison-gate pick-up list</caption><thead><tr><th scope=\"col\" class=\"left\">Release</th><th scope=\"col\">Days</th><th scope=\"col\" class=\"left\">Name</th>\
<th scope=\"col\" class=\"left\">Prison</th><th scope=\"col\" class=\"left\">Status</th><th scope=\"col\" class=\"left\">Consent</th><th scope=\"col\">Triage</th><th scope=\"col\" class=\"left\">Appointment</th>\
<th scope=\"col\" class=\"left\">Gate worker</th><th scope=\"col\">Naloxone</th><th scope=\"col\" class=\"left\">Alerts</th></tr></thead><tbody>{rows}</tbody></table></div>\
<p><a href=\"/partnerships/{code}\">Figures for {name}</a></p>\
<script>{LIVE_SCRIPT}</script>",
        code = esc(&p.code),
        name = esc(&p.name),
    );
    layout(&format!("{}: pick-up list", p.name), Some(who), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_not_begun_say_so_never_zero() {
        let year = |start_year: i16| TrainingCounts {
            financial_year: FinancialYear { start_year }.to_string(),
            quarters: (1..=4)
                .map(|q| hub_proto::projections::QuarterTrainingCounts {
                    quarter: q,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let this = FinancialYear::of(hub_core::time::london_today()).start_year;
        let future = training_section(&year(this + 1));
        // Eleven figures and the chart, each for four quarters.
        assert_eq!(future.matches("not yet begun").count(), 12 * 4, "{future}");
        let past = training_section(&year(this - 1));
        assert!(!past.contains("not yet begun"), "{past}");
    }

    #[test]
    fn contract_names_read_as_words() {
        assert_eq!(words("NO_GATE_WORKER"), "No gate worker");
        assert_eq!(words("PICKED_UP"), "Picked up");
        assert_eq!(words(""), "");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
