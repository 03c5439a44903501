//! SVG charts drawn on the server: stacked bars (attempts per minute or
//! hour) and lines (queue-time percentiles). Colours come from CSS classes,
//! so both themes apply; the only text in them is escaped here.

use std::fmt::Write as _;

const W: f64 = 600.0;
const H: f64 = 150.0;
const LEFT: f64 = 46.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

/// One series: a name for the legend, a CSS class, a value per slot.
pub(crate) struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A round upper bound for the axis: 1, 2 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|v| *v >= max).unwrap_or(max)
}

fn open(label: &str, out: &mut String) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{l}"><title>{l}</title>"#,
        l = esc(label)
    );
}

fn axes(out: &mut String, max: f64, fmt: &dyn Fn(f64) -> String, start: &str, end: &str) {
    let plot_h = H - BOTTOM - TOP;
    for i in 0..=2 {
        let v = max * f64::from(i) / 2.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 2.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{x:.1}" y="{ty:.1}" text-anchor="end">{t}</text>"#,
            x = LEFT - 4.0,
            ty = y + 3.5,
            t = esc(&fmt(v))
        );
    }
    let _ = write!(
        out,
        r#"<text class="tick" x="{LEFT}" y="{y}">{s}</text><text class="tick" x="{W}" y="{y}" text-anchor="end">{e}</text>"#,
        y = H - 4.0,
        s = esc(start),
        e = esc(end)
    );
}

/// Stacked bars: one bar per slot, the series on top of each other.
pub(crate) fn bars(label: &str, series: &[Series], start: &str, end: &str) -> String {
    let slots = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let totals: Vec<f64> =
        (0..slots).map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let mut out = String::new();
    open(label, &mut out);
    axes(&mut out, max, &|v| crate::pages::count(v.round() as i64), start, end);
    let plot_h = H - BOTTOM - TOP;
    let step = (W - LEFT) / slots.max(1) as f64;
    let bar_w = (step * 0.8).max(0.5);
    for i in 0..slots {
        let mut y = TOP + plot_h;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = plot_h * v / max;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="{c}" x="{x:.2}" y="{y:.2}" width="{bar_w:.2}" height="{h:.2}"><title>{n}: {v}</title></rect>"#,
                c = s.class,
                x = LEFT + step * i as f64 + (step - bar_w) / 2.0,
                n = esc(s.name),
                v = crate::pages::count(v.round() as i64)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Lines: one point per slot (`NaN`: no value, the line breaks).
pub(crate) fn lines(label: &str, series: &[Series], fmt: &dyn Fn(f64) -> String, start: &str, end: &str) -> String {
    let slots = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max =
        nice_max(series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f64::max));
    let mut out = String::new();
    open(label, &mut out);
    axes(&mut out, max, fmt, start, end);
    let plot_h = H - BOTTOM - TOP;
    let step = (W - LEFT) / slots.max(1) as f64;
    for s in series {
        let mut d = String::new();
        let mut dots = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            if !v.is_finite() {
                pen_down = false;
                continue;
            }
            let x = LEFT + step * (i as f64 + 0.5);
            let y = TOP + plot_h - plot_h * v / max;
            let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
            // A dot too, so that a lone point shows.
            let _ = write!(dots, r#"<circle class="{c}" cx="{x:.1}" cy="{y:.1}" r="2.2"/>"#, c = s.class);
            pen_down = true;
        }
        if !d.is_empty() {
            let _ = write!(out, r#"<path class="{c}" d="{d}"><title>{n}</title></path>"#, c = s.class, n = esc(s.name));
        }
        out.push_str(&dots);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_text_and_scale_to_round_numbers() {
        let s = [Series { name: "a<b", class: "ok", values: vec![1.0, 3.0, 0.0] }];
        let svg = bars("queue <x>", &s, "60 min ago", "now");
        assert!(svg.contains("queue &lt;x&gt;") && !svg.contains("<x>"));
        assert!(svg.contains("a&lt;b"));
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(0.0), 1.0);
        let l = lines(
            "t",
            &[Series { name: "p50", class: "p50", values: vec![f64::NAN, 2.0, 4.0] }],
            &|v| format!("{v}"),
            "",
            "",
        );
        assert!(l.contains("M") && l.contains("L"));
    }
}
