//! Charts drawn on the server as SVG inside the page: no script, nothing
//! fetched, printable, and readable without sight.
//!
//! Each chart is a `<figure>`: a visible caption, the SVG (`role="img"`,
//! named by its `<title>` and described by its `<desc>`, which says what
//! the chart shows and its largest and smallest values), and beside it a
//! table of exactly the figures drawn, for screen readers, for copying and
//! for anyone who would rather read. A withheld value or a quarter not yet
//! begun is drawn as words where its bar would be, never as a bar of 0.
//!
//! Pure: figures in, markup out (maud escapes every text and attribute).
//! Why hand-laid SVG rather than a plotting crate:
//! `docs/decisions/0011-dashboard-pages.md`.

use maud::{html, Markup};

/// One value of a chart as the reader may see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Shown(f64),
    /// A count of 1 to 7 people (or one that would give such a count away).
    Withheld,
    /// A period that has not begun: no figure yet, not a 0.
    NotBegun,
    /// No figure: a percentage without a denominator.
    Missing,
}

impl Value {
    fn number(&self) -> Option<f64> {
        match self {
            Value::Shown(v) => Some(*v),
            _ => None,
        }
    }
}

/// Counts are whole numbers; percentages one decimal with a `%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
}

impl Unit {
    pub fn of(figure: &str) -> Unit {
        if figure.ends_with("_pct") {
            Unit::Percent
        } else {
            Unit::Count
        }
    }

    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Count => format!("{v:.0}"),
            Unit::Percent => format!("{v:.1}%"),
        }
    }
}

/// A value as the table beside a chart writes it.
pub fn text(v: &Value, unit: Unit) -> String {
    match v {
        Value::Shown(v) => unit.format(*v),
        Value::Withheld => "withheld".into(),
        Value::NotBegun => "not yet begun".into(),
        Value::Missing => "–".into(),
    }
}

/// A labelled value: a quarter, a year, a stage, a partnership.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub value: Value,
    /// Where the label leads in the table (a partnership's page).
    pub link: Option<String>,
}

/// What every chart has: an id unique in the page (for `aria-labelledby`),
/// a title, and what its values are.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub unit: Unit,
    /// What the column of values is called in the table beside it.
    pub value_heading: &'a str,
    /// What the column of labels is called in the table beside it.
    pub label_heading: &'a str,
}

const INK: &str = "#0b0c0c";
const BAR: &str = "#1d70b8";
const GREY: &str = "#505a5f";
const MEDIAN: &str = "#d4351c";
const BOX: &str = "#b1b4b6";

/// A round upper end for an axis: 1, 2 or 5 times a power of ten, at
/// least `max`; percentages go to 100.
pub fn axis_top(max: f64, unit: Unit) -> f64 {
    if unit == Unit::Percent {
        return 100.0;
    }
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * power)
}

/// What the description says after the chart's purpose: the highest and
/// lowest values shown, and how many are withheld or not yet begun.
pub fn summary(points: &[Point], unit: Unit) -> String {
    let shown: Vec<&Point> = points
        .iter()
        .filter(|p| p.value.number().is_some())
        .collect();
    let mut parts = Vec::new();
    let by = |a: &&Point, b: &&Point| {
        let (a, b) = (a.value.number(), b.value.number());
        a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
    };
    // The first of equals: the earliest quarter, the top of a ranking.
    let highest = shown
        .iter()
        .copied()
        .reduce(|best, p| if by(&p, &best).is_gt() { p } else { best });
    let lowest = shown
        .iter()
        .copied()
        .reduce(|low, p| if by(&p, &low).is_lt() { p } else { low });
    if let (Some(hi), Some(lo)) = (highest, lowest) {
        if shown.len() == 1 {
            parts.push(format!("{}: {}", hi.label, text(&hi.value, unit)));
        } else {
            parts.push(format!("Highest {}: {}", hi.label, text(&hi.value, unit)));
            parts.push(format!("lowest {}: {}", lo.label, text(&lo.value, unit)));
        }
    } else {
        parts.push("No figures to show".into());
    }
    let count = |v: &Value| points.iter().filter(|p| p.value == *v).count();
    for (v, words) in [
        (Value::Withheld, "withheld"),
        (Value::NotBegun, "not yet begun"),
        (Value::Missing, "without a figure"),
    ] {
        if count(&v) > 0 {
            parts.push(format!("{} {words}", count(&v)));
        }
    }
    parts.join("; ") + "."
}

/// The SVG's opening: its accessible name and description.
fn svg(chart: &Chart, description: &str, width: f64, height: f64, body: Markup) -> Markup {
    let title_id = format!("{}-title", chart.id);
    let desc_id = format!("{}-desc", chart.id);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" focusable="false"
            aria-labelledby={ (title_id) " " (desc_id) }
            viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height)
            font-family="system-ui, sans-serif" font-size="12" {
            title id=(title_id) { (chart.title) }
            desc id=(desc_id) { (description) }
            // The drawing repeats the description and the table beside it.
            g aria-hidden="true" { (body) }
        }
    }
}

/// The table of the figures drawn, beside the chart.
fn table(chart: &Chart, points: &[Point]) -> Markup {
    html! {
        table {
            caption { "Figures of the chart: " (chart.title) }
            thead { tr { th scope="col" .left { (chart.label_heading) } th scope="col" { (chart.value_heading) } } }
            tbody {
                @for p in points {
                    tr {
                        th scope="row" .left {
                            @if let Some(href) = &p.link { a href=(href) { (p.label) } } @else { (p.label) }
                        }
                        td class=[p.value.number().is_none().then_some("withheld")] { (text(&p.value, chart.unit)) }
                    }
                }
            }
        }
    }
}

fn figure(chart: &Chart, drawing: Markup, beside: Markup) -> Markup {
    html! {
        figure .chart id=(chart.id) {
            figcaption { (chart.title) }
            div .chart-body { (drawing) (beside) }
        }
    }
}

/// Words drawn where a bar would be.
fn no_bar(v: &Value) -> &'static str {
    match v {
        Value::Withheld => "withheld",
        Value::NotBegun => "not begun",
        _ => "–",
    }
}

/// The largest value shown or marked, 0 when none: where an axis must reach.
fn largest(points: &[Point], marks: &[(&str, f64)]) -> f64 {
    points
        .iter()
        .filter_map(|p| p.value.number())
        .chain(marks.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max)
}

/// Columns side by side: a trend by quarter or by year.
pub fn columns(chart: &Chart, purpose: &str, points: &[Point]) -> Markup {
    let (left, top, plot_h, col_w, gap) = (48.0, 16.0, 140.0, 56.0, 16.0);
    let width = left + points.len() as f64 * (col_w + gap) + gap;
    let height = top + plot_h + 40.0;
    let axis = axis_top(largest(points, &[]), chart.unit);
    let base = top + plot_h;
    let y = |v: f64| base - v / axis * plot_h;
    let description = format!("{purpose} {}", summary(points, chart.unit));
    let drawing = svg(
        chart,
        &description,
        width,
        height,
        html! {
            line x1=(left) y1=(base) x2=(width) y2=(base) stroke=(GREY) {}
            line x1=(left) y1=(top) x2=(width) y2=(top) stroke=(BOX) stroke-dasharray="3 3" {}
            text x=(left - 6.0) y=(base + 4.0) text-anchor="end" fill=(INK) { "0" }
            text x=(left - 6.0) y=(top + 4.0) text-anchor="end" fill=(INK) { (chart.unit.format(axis)) }
            @for (i, p) in points.iter().enumerate() {
                @let x = left + gap + i as f64 * (col_w + gap);
                @let middle = x + col_w / 2.0;
                @match p.value.number() {
                    Some(v) => {
                        rect x=(x) y=(fmt(y(v))) width=(col_w) height=(fmt(base - y(v))) fill=(BAR) {}
                        text x=(middle) y=(fmt(y(v) - 4.0)) text-anchor="middle" fill=(INK) { (chart.unit.format(v)) }
                    }
                    None => {
                        text x=(middle) y=(base - 6.0) text-anchor="middle" fill=(GREY) font-style="italic" { (no_bar(&p.value)) }
                    }
                }
                text x=(middle) y=(base + 16.0) text-anchor="middle" fill=(INK) { (p.label) }
            }
        },
    );
    figure(chart, drawing, table(chart, points))
}

/// A coordinate with one decimal: short and steady in the markup.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// Horizontal bars, top to bottom: the stages of a funnel, or a ranking.
/// `marks` are reference lines across every bar (England's median and
/// quartiles), named in a key below.
pub fn bars(chart: &Chart, purpose: &str, points: &[Point], marks: &[(&str, f64)]) -> Markup {
    let (label_w, plot_w, row_h, top) = (230.0, 300.0, 20.0, 8.0);
    let value_w = 90.0;
    let width = label_w + plot_w + value_w;
    let key_h = if marks.is_empty() { 0.0 } else { 24.0 };
    let height = top + points.len() as f64 * row_h + 8.0 + key_h;
    let axis = axis_top(largest(points, marks), chart.unit);
    let x = |v: f64| label_w + v / axis * plot_w;
    let bottom = top + points.len() as f64 * row_h;
    let mut description = format!("{purpose} {}", summary(points, chart.unit));
    for (name, v) in marks {
        description.push_str(&format!(" {name}: {}.", chart.unit.format(*v)));
    }
    let drawing = svg(
        chart,
        &description,
        width,
        height,
        html! {
            line x1=(label_w) y1=(top) x2=(label_w) y2=(bottom) stroke=(GREY) {}
            @for (i, p) in points.iter().enumerate() {
                @let y = top + i as f64 * row_h;
                text x=(label_w - 6.0) y=(y + 14.0) text-anchor="end" fill=(INK) { (short(&p.label, 34)) }
                @match p.value.number() {
                    Some(v) => {
                        rect x=(label_w) y=(y + 3.0) width=(fmt(x(v) - label_w)) height=(row_h - 6.0) fill=(BAR) {}
                        text x=(fmt(x(v) + 4.0)) y=(y + 14.0) fill=(INK) { (chart.unit.format(v)) }
                    }
                    None => {
                        text x=(label_w + 4.0) y=(y + 14.0) fill=(GREY) font-style="italic" { (no_bar(&p.value)) }
                    }
                }
            }
            @for (n, (name, v)) in marks.iter().enumerate() {
                @let dash = if n == 1 { "none" } else { "4 3" };
                @let colour = if n == 1 { MEDIAN } else { GREY };
                line x1=(fmt(x(*v))) y1=(top) x2=(fmt(x(*v))) y2=(bottom) stroke=(colour) stroke-width="2" stroke-dasharray=(dash) {}
                @let kx = label_w + n as f64 * 130.0;
                line x1=(kx) y1=(bottom + 16.0) x2=(kx + 18.0) y2=(bottom + 16.0) stroke=(colour) stroke-width="2" stroke-dasharray=(dash) {}
                text x=(kx + 22.0) y=(bottom + 20.0) fill=(INK) { (name) " " (chart.unit.format(*v)) }
            }
        },
    );
    figure(chart, drawing, table(chart, points))
}

/// A label cut to `n` characters for the drawing (the table has it whole).
fn short(label: &str, n: usize) -> String {
    if label.chars().count() <= n {
        label.to_string()
    } else {
        label.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// One figure of a partnership set against every partnership's spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub label: String,
    pub unit: Unit,
    pub value: Value,
    pub lower_quartile: Option<f64>,
    pub median: Option<f64>,
    pub upper_quartile: Option<f64>,
}

/// Each figure on its own scale (0 to the larger of the partnership's
/// value and the upper quartile, rounded up): a grey box from the lower to
/// the upper quartile, England's median as a red line, and the
/// partnership as a dark dot.
pub fn spread(chart: &Chart, who: &str, rows: &[Spread]) -> Markup {
    let (label_w, plot_w, row_h, top) = (280.0, 260.0, 24.0, 8.0);
    let value_w = 80.0;
    let width = label_w + plot_w + value_w;
    let key_h = 26.0;
    let height = top + rows.len() as f64 * row_h + key_h;
    let bottom = top + rows.len() as f64 * row_h;
    let above = rows
        .iter()
        .filter(|r| matches!((r.value.number(), r.upper_quartile), (Some(v), Some(u)) if v > u))
        .count();
    let below = rows
        .iter()
        .filter(|r| matches!((r.value.number(), r.lower_quartile), (Some(v), Some(l)) if v < l))
        .count();
    let description = format!(
        "{who} against every partnership's median and quartiles, one figure per row, each on its own scale. \
         Above the upper quartile in {above} of {n} figures, below the lower quartile in {below}.",
        n = rows.len()
    );
    let drawing = svg(
        chart,
        &description,
        width,
        height,
        html! {
            @for (i, r) in rows.iter().enumerate() {
                @let y = top + i as f64 * row_h;
                @let mid = y + row_h / 2.0;
                @let max = [r.value.number(), r.upper_quartile].into_iter().flatten().fold(0.0, f64::max);
                @let axis = axis_top(max, r.unit);
                @let x = |v: f64| label_w + v / axis * plot_w;
                text x=(label_w - 8.0) y=(mid + 4.0) text-anchor="end" fill=(INK) { (short(&r.label, 42)) }
                line x1=(label_w) y1=(mid) x2=(label_w + plot_w) y2=(mid) stroke=(BOX) {}
                @if let (Some(l), Some(u)) = (r.lower_quartile, r.upper_quartile) {
                    rect x=(fmt(x(l))) y=(mid - 6.0) width=(fmt((x(u) - x(l)).max(1.0))) height="12" fill=(BOX) {}
                }
                @if let Some(m) = r.median {
                    line x1=(fmt(x(m))) y1=(mid - 8.0) x2=(fmt(x(m))) y2=(mid + 8.0) stroke=(MEDIAN) stroke-width="2" {}
                }
                @match r.value.number() {
                    Some(v) => {
                        circle cx=(fmt(x(v))) cy=(mid) r="5" fill=(INK) {}
                        text x=(label_w + plot_w + 8.0) y=(mid + 4.0) fill=(INK) { (r.unit.format(v)) }
                    }
                    None => {
                        text x=(label_w + plot_w + 8.0) y=(mid + 4.0) fill=(GREY) font-style="italic" { (no_bar(&r.value)) }
                    }
                }
            }
            circle cx=(label_w + 6.0) cy=(bottom + 14.0) r="5" fill=(INK) {}
            text x=(label_w + 16.0) y=(bottom + 18.0) fill=(INK) { (short(who, 24)) }
            rect x=(label_w + 130.0) y=(bottom + 8.0) width="18" height="12" fill=(BOX) {}
            text x=(label_w + 152.0) y=(bottom + 18.0) fill=(INK) { "quartiles" }
            line x1=(label_w + 224.0) y1=(bottom + 6.0) x2=(label_w + 224.0) y2=(bottom + 22.0) stroke=(MEDIAN) stroke-width="2" {}
            text x=(label_w + 230.0) y=(bottom + 18.0) fill=(INK) { "median" }
        },
    );
    let number = |v: Option<f64>, unit: Unit| v.map_or("–".to_string(), |v| unit.format(v));
    let beside = html! {
        table {
            caption { "Figures of the chart: " (chart.title) }
            thead { tr {
                th scope="col" .left { "Figure" } th scope="col" { (who) }
                th scope="col" { "Lower quartile" } th scope="col" { "Median" } th scope="col" { "Upper quartile" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        th scope="row" .left { (r.label) }
                        td class=[r.value.number().is_none().then_some("withheld")] { (text(&r.value, r.unit)) }
                        td { (number(r.lower_quartile, r.unit)) }
                        td { (number(r.median, r.unit)) }
                        td { (number(r.upper_quartile, r.unit)) }
                    }
                }
            }
        }
    };
    figure(chart, drawing, beside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, value: Value) -> Point {
        Point {
            label: label.into(),
            value,
            link: None,
        }
    }

    fn chart(unit: Unit) -> Chart<'static> {
        Chart {
            id: "c",
            title: "People trained <by quarter>",
            unit,
            value_heading: "People",
            label_heading: "Quarter",
        }
    }

    #[test]
    fn axes_end_at_round_numbers_and_percentages_at_100() {
        assert_eq!(axis_top(0.0, Unit::Count), 1.0);
        assert_eq!(axis_top(1.0, Unit::Count), 1.0);
        assert_eq!(axis_top(7.0, Unit::Count), 10.0);
        assert_eq!(axis_top(12.0, Unit::Count), 20.0);
        assert_eq!(axis_top(450.0, Unit::Count), 500.0);
        assert_eq!(axis_top(5001.0, Unit::Count), 10000.0);
        assert_eq!(axis_top(3.5, Unit::Percent), 100.0);
    }

    #[test]
    fn descriptions_name_the_extremes_and_what_is_not_shown() {
        let points = [
            point("Q1", Value::Shown(12.0)),
            point("Q2", Value::Withheld),
            point("Q3", Value::Shown(40.0)),
            point("Q4", Value::NotBegun),
        ];
        assert_eq!(
            summary(&points, Unit::Count),
            "Highest Q3: 40; lowest Q1: 12; 1 withheld; 1 not yet begun."
        );
        assert_eq!(
            summary(&[point("2026/27", Value::NotBegun)], Unit::Count),
            "No figures to show; 1 not yet begun."
        );
        // Equal values: the first is named.
        assert_eq!(
            summary(
                &[
                    point("Q1", Value::Shown(5.0)),
                    point("Q2", Value::Shown(5.0))
                ],
                Unit::Percent
            ),
            "Highest Q1: 5.0%; lowest Q1: 5.0%."
        );
    }

    #[test]
    fn columns_draw_a_bar_per_value_and_words_for_the_rest() {
        let points = [
            point("Q1", Value::Shown(12.0)),
            point("Q2", Value::Withheld),
            point("Q3", Value::Shown(40.0)),
            point("Q4", Value::NotBegun),
        ];
        let out = columns(&chart(Unit::Count), "People trained.", &points).into_string();
        assert_eq!(out.matches("<rect").count(), 2, "{out}");
        assert!(out.contains("role=\"img\""));
        assert!(out.contains("aria-labelledby=\"c-title c-desc\""));
        // Escaped by construction, in the SVG and the table alike.
        assert!(
            out.contains("People trained &lt;by quarter&gt;</title>"),
            "{out}"
        );
        assert!(!out.contains("<by quarter>"));
        // The table beside it has every value, words included.
        assert!(
            out.contains("<td class=\"withheld\">withheld</td>"),
            "{out}"
        );
        assert!(
            out.contains("<td class=\"withheld\">not yet begun</td>"),
            "{out}"
        );
        assert!(out.contains("<td>40</td>"), "{out}");
        // The 40 reaches the top of an axis to 50.
        assert!(out.contains(">50</text>"), "{out}");
    }

    #[test]
    fn bars_carry_the_reference_lines_in_words() {
        let points = [
            point("Leeds", Value::Shown(53.5)),
            point("Bradford", Value::Missing),
        ];
        let out = bars(
            &chart(Unit::Percent),
            "Return rate.",
            &points,
            &[
                ("Lower quartile", 20.0),
                ("Median", 30.0),
                ("Upper quartile", 45.0),
            ],
        )
        .into_string();
        assert_eq!(out.matches("<rect").count(), 1);
        assert!(out.contains("Median: 30.0%."), "{out}");
        assert!(out.contains(">Median 30.0%</text>"), "{out}");
        assert!(out.contains("<td>53.5%</td>"), "{out}");
    }

    #[test]
    fn spread_counts_figures_outside_the_quartiles() {
        let row = |label: &str, value, l, m, u| Spread {
            label: label.into(),
            unit: Unit::Count,
            value,
            lower_quartile: Some(l),
            median: Some(m),
            upper_quartile: Some(u),
        };
        let rows = [
            row("High", Value::Shown(90.0), 10.0, 20.0, 30.0),
            row("Low", Value::Shown(1.0), 10.0, 20.0, 30.0),
            row("Hidden", Value::Withheld, 10.0, 20.0, 30.0),
        ];
        let out = spread(&chart(Unit::Count), "Leeds", &rows).into_string();
        assert!(
            out.contains(
                "Above the upper quartile in 1 of 3 figures, below the lower quartile in 1."
            ),
            "{out}"
        );
        assert_eq!(
            out.matches("<circle").count(),
            2 + 1,
            "two dots and the key's"
        );
        assert!(out.contains("<td class=\"withheld\">withheld</td>"));
    }

    #[test]
    fn long_labels_are_cut_in_the_drawing_only() {
        assert_eq!(short("Needle exchange", 34), "Needle exchange");
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
