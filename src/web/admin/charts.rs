//! Charts as SVG, drawn by pure functions from numbers: no script, no other host. Every text
//! in them is escaped; each chart has a title for screen readers, and the pages show the same
//! numbers as a table beside it.

use std::fmt::Write;

use crate::html::escape;

/// One named series of values, one per label.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 52.0;

/// A round upper bound for an axis, at least `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A round step for counts, at least 1: 1, 2 or 5 times a power of ten, not below `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 1.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * magnitude >= raw {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

/// An axis for counts up to `max`: its step and how many steps reach the top (about 4).
fn axis(max: f64) -> (f64, f64) {
    let step = nice_step(max / 4.0);
    (step, (max / step).ceil().max(1.0))
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

fn open(out: &mut String, title: &str, id: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"{id}\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <title id=\"{id}\">{}</title>",
        escape(title)
    );
}

/// Horizontal grid lines at every `step` from `bottom` to `top` with the left axis's numbers;
/// on the lines from zero up, the right axis's numbers (its own step) when there is one.
fn grid(
    out: &mut String,
    step: f64,
    top: f64,
    bottom: f64,
    y: &dyn Fn(f64) -> f64,
    right_step: Option<f64>,
) {
    let mut v = bottom;
    while v <= top + step / 2.0 {
        let py = y(v);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#e3e6ea\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5f6368\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            number(v.abs())
        );
        if let Some(rs) = right_step.filter(|_| v >= 0.0) {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{:.1}\" fill=\"#5f6368\">{}</text>",
                WIDTH - RIGHT + 6.0,
                py + 4.0,
                number(v / step * rs)
            );
        }
        v += step;
    }
}

/// A note in the middle of an empty plot.
fn empty(out: &mut String, labels: &[String]) {
    if labels.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5f6368\" font-size=\"14\">No data yet</text>",
            WIDTH / 2.0,
            (HEIGHT - BOTTOM + TOP) / 2.0
        );
    }
}

/// Labels under the plot: at most about 8, evenly spaced.
fn x_labels(out: &mut String, labels: &[String], x: &dyn Fn(usize) -> f64) {
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        let last = i + 1 == labels.len();
        // The last label is always drawn; one just before it would overlap it.
        if last || (i % every == 0 && labels.len() - 1 - i >= every) {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#5f6368\">{}</text>",
                x(i),
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
}

/// The legend along the bottom.
fn legend(out: &mut String, entries: &[(&str, &str, bool)]) {
    let mut at = LEFT;
    for (name, color, is_line) in entries {
        let swatch = if *is_line {
            format!(
                "<line x1=\"{at}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2.5\"/>",
                at + 14.0,
                HEIGHT - 12.0,
                HEIGHT - 12.0,
                escape(color)
            )
        } else {
            format!(
                "<rect x=\"{at}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{}\"/>",
                HEIGHT - 17.0,
                escape(color)
            )
        };
        let _ = write!(
            out,
            "{swatch}<text x=\"{}\" y=\"{}\" fill=\"#3c4043\">{}</text>",
            at + 18.0,
            HEIGHT - 8.0,
            escape(name)
        );
        at += 30.0 + 6.5 * name.chars().count() as f64;
    }
}

/// One bar of stacked series at label `i`, centred on `cx`: upwards from zero (`sign` 1) or
/// downwards (`sign` -1).
fn stack(
    out: &mut String,
    series: &[Series<'_>],
    i: usize,
    cx: f64,
    bar_w: f64,
    y: &dyn Fn(f64) -> f64,
    sign: f64,
) {
    let mut base = 0.0;
    for s in series {
        let v = s.values.get(i).copied().unwrap_or(0.0);
        if v > 0.0 {
            let (a, b) = (y(sign * base), y(sign * (base + v)));
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                cx - bar_w / 2.0,
                a.min(b),
                (a - b).abs(),
                escape(s.color)
            );
            base += v;
        }
    }
}

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str) {
    if points.is_empty() {
        return;
    }
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        out,
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\" points=\"{}\"/>",
        escape(color),
        path.join(" ")
    );
    if points.len() == 1 {
        let (x, y) = points[0];
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{}\"/>",
            escape(color)
        );
    }
}

/// A line (e.g. the confirmed total, on the right axis) over bars per label: `up` stacked
/// above zero (new confirmations), `down` stacked below it (unsubscribes, bounces,
/// complaints), both on the left axis.
pub fn line_over_bars(
    title: &str,
    id: &str,
    labels: &[String],
    line: &Series<'_>,
    up: &[Series<'_>],
    down: &[Series<'_>],
) -> String {
    let n = labels.len().max(1);
    let sum = |set: &[Series<'_>], i: usize| {
        set.iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    let (step, intervals) = axis((0..n).map(|i| sum(up, i)).fold(0.0, f64::max));
    let top = step * intervals;
    let deepest = (0..n).map(|i| sum(down, i)).fold(0.0, f64::max);
    let bottom = -step * (deepest / step).ceil();
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + (top - v) / (top - bottom) * plot_h;
    let slot = (WIDTH - LEFT - RIGHT) / n as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    // The line's axis has as many steps above zero as the bars' axis.
    let line_step = nice_step(line.values.iter().copied().fold(0.0, f64::max) / intervals);
    let line_top = line_step * intervals;
    let line_y = |v: f64| y(v / line_top * top);
    let mut out = String::with_capacity(8192);
    open(&mut out, title, id);
    grid(&mut out, step, top, bottom, &y, Some(line_step));
    let bar_w = (slot * 0.7).max(1.0);
    for i in 0..labels.len() {
        stack(&mut out, up, i, x(i), bar_w, &y, 1.0);
        stack(&mut out, down, i, x(i), bar_w, &y, -1.0);
    }
    let points: Vec<(f64, f64)> = line
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| (x(i), line_y(*v)))
        .collect();
    polyline(&mut out, &points, line.color);
    x_labels(&mut out, labels, &x);
    empty(&mut out, labels);
    let mut keys: Vec<(&str, &str, bool)> = vec![(line.name, line.color, true)];
    keys.extend(up.iter().chain(down).map(|s| (s.name, s.color, false)));
    legend(&mut out, &keys);
    out.push_str("</svg>");
    out
}

/// Stacked bars per label on the left axis (e.g. sent and failed per run), with lines on a
/// right axis of their own (bounces, complaints, unsubscribes: far fewer than sent).
pub fn bars_with_lines(
    title: &str,
    id: &str,
    labels: &[String],
    bars: &[Series<'_>],
    lines: &[Series<'_>],
) -> String {
    let n = labels.len().max(1);
    let stacked = |i: usize| {
        bars.iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    let (step, intervals) = axis((0..n).map(stacked).fold(0.0, f64::max));
    let top = step * intervals;
    let right_step = nice_step(
        lines
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max)
            / intervals,
    );
    let right = right_step * intervals;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + (1.0 - v / top) * plot_h;
    let ry = |v: f64| TOP + (1.0 - v / right) * plot_h;
    let slot = (WIDTH - LEFT - RIGHT) / n as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let mut out = String::with_capacity(8192);
    open(&mut out, title, id);
    grid(
        &mut out,
        step,
        top,
        0.0,
        &y,
        (!lines.is_empty()).then_some(right_step),
    );
    let bar_w = (slot * 0.7).max(1.0);
    for i in 0..labels.len() {
        stack(&mut out, bars, i, x(i), bar_w, &y, 1.0);
    }
    for s in lines {
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (x(i), ry(*v)))
            .collect();
        polyline(&mut out, &points, s.color);
    }
    x_labels(&mut out, labels, &x);
    empty(&mut out, labels);
    let keys: Vec<(&str, &str, bool)> = bars
        .iter()
        .map(|s| (s.name, s.color, false))
        .chain(lines.iter().map(|s| (s.name, s.color, true)))
        .collect();
    legend(&mut out, &keys);
    out.push_str("</svg>");
    out
}

/// One horizontal bar per row (e.g. readers per feed), longest scale first as given.
pub fn horizontal_bars(title: &str, id: &str, rows: &[(String, f64)], color: &str) -> String {
    let row_h = 22.0;
    let height = TOP + row_h * rows.len().max(1) as f64 + 8.0;
    let label_w = 230.0;
    let max = nice_ceiling(rows.iter().map(|(_, v)| *v).fold(0.0, f64::max));
    let span = WIDTH - label_w - 70.0;
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
         aria-labelledby=\"{id}\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <title id=\"{id}\">{}</title>",
        escape(title)
    );
    if rows.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5f6368\" font-size=\"14\">No data yet</text>",
            WIDTH / 2.0,
            TOP + 12.0
        );
    }
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = TOP + row_h * i as f64;
        let w = (value / max * span).max(0.0);
        let shown: String = label.chars().take(38).collect();
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#3c4043\">{}</text>\
             <rect x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"14\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#3c4043\">{}</text>",
            label_w - 6.0,
            y + 11.0,
            escape(&shown),
            y,
            escape(color),
            label_w + w + 6.0,
            y + 11.0,
            number(*value)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(240.0), 250.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
    }

    #[test]
    fn a_line_over_bars_draws_one_bar_per_nonzero_value_and_the_line_through_every_day() {
        let svg = line_over_bars(
            "Subscribers",
            "c1",
            &labels(3),
            &Series {
                name: "confirmed",
                color: "#1a73e8",
                values: vec![10.0, 12.0, 11.0],
            },
            &[Series {
                name: "new",
                color: "#188038",
                values: vec![0.0, 2.0, 0.0],
            }],
            &[Series {
                name: "left",
                color: "#d93025",
                values: vec![0.0, 0.0, 1.0],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect").count(),
            2 + 2,
            "two bars and two legend swatches"
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        assert_eq!(points.split(' ').count(), 3);
        assert!(svg.contains("<title id=\"c1\">Subscribers</title>"));
    }

    #[test]
    fn bars_with_lines_put_small_counts_on_their_own_axis() {
        let svg = bars_with_lines(
            "Runs",
            "c2",
            &labels(2),
            &[Series {
                name: "sent",
                color: "#1a73e8",
                values: vec![1000.0, 900.0],
            }],
            &[Series {
                name: "bounced",
                color: "#d93025",
                values: vec![3.0, 7.0],
            }],
        );
        // The left axis reaches 1000, the right one 10: the bounces are visible.
        assert!(svg.contains(">1000<") && svg.contains(">10<"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    #[test]
    fn every_text_in_a_chart_is_escaped() {
        let svg = horizontal_bars(
            "<b>feeds</b>",
            "c3",
            &[("<script>x</script>".to_string(), 5.0)],
            "\"red",
        );
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(svg.contains("fill=\"&quot;red\""));
    }

    #[test]
    fn empty_data_still_draws_a_chart() {
        let svg = line_over_bars(
            "Empty",
            "c4",
            &[],
            &Series {
                name: "confirmed",
                color: "#000",
                values: vec![],
            },
            &[],
            &[],
        );
        assert!(svg.ends_with("</svg>") && !svg.contains("NaN") && !svg.contains("inf"));
        let svg = horizontal_bars("Empty", "c5", &[], "#000");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn an_axis_without_values_below_zero_starts_at_zero_and_labels_never_crowd_the_last() {
        let svg = line_over_bars(
            "Up only",
            "c6",
            &labels(30),
            &Series {
                name: "confirmed",
                color: "#000",
                values: vec![1.0; 30],
            },
            &[Series {
                name: "new",
                color: "#0f0",
                values: vec![3.0; 30],
            }],
            &[Series {
                name: "left",
                color: "#f00",
                values: vec![0.0; 30],
            }],
        );
        assert!(!svg.contains(">-") && !svg.contains(".8<"), "{svg}");
        assert!(
            svg.contains(">d30<") && !svg.contains(">d29<"),
            "the last label, alone"
        );
        let svg = bars_with_lines("None", "c7", &[], &[], &[]);
        assert!(svg.contains("No data yet"));
    }
}
