//! Hand-written SVG charts: compare mode's latency distributions (CDF, log-scale latency) and
//! throughput over time, and the shard experiment's throughput bars.

use std::fmt::Write as _;

use crate::report::ServerReport;

const COLORS: [&str; 4] = ["#d9480f", "#1971c2", "#2f9e44", "#7048e8"];
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 360.0;

/// A plot area: pixel box and data ranges (x may be log10).
struct Panel {
    left: f64,
    right: f64,
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        let (x, (lo, hi)) = if self.log_x {
            (x.max(1e-3).log10(), (self.x.0.log10(), self.x.1.log10()))
        } else {
            (x, self.x)
        };
        self.left + (x - lo) / (hi - lo).max(1e-9) * (self.right - self.left)
    }

    fn py(&self, y: f64) -> f64 {
        BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0).max(1e-9) * (BOTTOM - TOP)
    }

    fn frame(&self, out: &mut String, title: &str, x_label: &str, y_label: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{l}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#888"/>
<text x="{cx}" y="{ty}" text-anchor="middle" font-weight="bold">{title}</text>
<text x="{cx}" y="{xy}" text-anchor="middle">{x_label}</text>
<text x="{yx}" y="{cy}" text-anchor="middle" transform="rotate(-90 {yx} {cy})">{y_label}</text>"##,
            l = self.left,
            w = self.right - self.left,
            h = BOTTOM - TOP,
            cx = (self.left + self.right) / 2.0,
            ty = TOP - 12.0,
            xy = BOTTOM + 36.0,
            yx = self.left - 42.0,
            cy = (TOP + BOTTOM) / 2.0,
        );
    }

    fn x_tick(&self, out: &mut String, x: f64, label: &str) {
        let p = self.px(x);
        let _ = writeln!(
            out,
            r##"<line x1="{p:.1}" y1="{TOP}" x2="{p:.1}" y2="{BOTTOM}" stroke="#eee"/><text x="{p:.1}" y="{y}" text-anchor="middle" font-size="11">{label}</text>"##,
            y = BOTTOM + 16.0
        );
    }

    fn y_tick(&self, out: &mut String, y: f64, label: &str) {
        let p = self.py(y);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" y1="{p:.1}" x2="{r}" y2="{p:.1}" stroke="#eee"/><text x="{x}" y="{ty:.1}" text-anchor="end" font-size="11">{label}</text>"##,
            l = self.left,
            r = self.right,
            x = self.left - 6.0,
            ty = p + 4.0
        );
    }

    fn polyline(&self, out: &mut String, points: &[(f64, f64)], color: &str) {
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
    }
}

fn open(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// The nearest 1-2-5 value at or below `x` (`up`: at or above).
fn nice_bound(x: f64, up: bool) -> f64 {
    let mag = 10f64.powf(x.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0];
    if up {
        steps
            .iter()
            .map(|m| m * mag)
            .find(|v| *v >= x)
            .unwrap_or(10.0 * mag)
    } else {
        steps
            .iter()
            .rev()
            .map(|m| m * mag)
            .find(|v| *v <= x)
            .unwrap_or(mag)
    }
}

fn fmt_num(x: f64) -> String {
    if x >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Compare mode's chart: latency CDF of each server (left) and closes per second (right).
pub fn compare_svg(title: &str, servers: &[(&str, &ServerReport)]) -> String {
    let mut out = String::new();
    open(&mut out, title);
    // Latency CDF, log-scale x.
    let all_ms = servers
        .iter()
        .flat_map(|(_, r)| r.latency_distribution_ms.iter().map(|p| p.1))
        .filter(|ms| *ms > 0.0);
    let (lo, hi) = all_ms.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (nice_bound(lo, false), nice_bound(hi, true))
    } else {
        (1.0, 10.0)
    };
    let cdf = Panel {
        left: 70.0,
        right: 450.0,
        x: (lo, hi),
        y: (0.0, 100.0),
        log_x: true,
    };
    cdf.frame(
        &mut out,
        "Latency, start to close (CDF)",
        "milliseconds (log)",
        "percentile",
    );
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.001 {
        for m in [1.0, 2.0, 5.0] {
            let x = decade * m;
            if x >= lo * 0.999 && x <= hi * 1.001 {
                cdf.x_tick(&mut out, x, &fmt_num(x));
            }
        }
        decade *= 10.0;
    }
    for p in [0.0, 25.0, 50.0, 75.0, 90.0, 99.0] {
        cdf.y_tick(&mut out, p, &fmt_num(p));
    }
    for (i, (_, report)) in servers.iter().enumerate() {
        let points: Vec<(f64, f64)> = report
            .latency_distribution_ms
            .iter()
            .map(|&(p, ms)| (ms, p))
            .collect();
        cdf.polyline(&mut out, &points, COLORS[i % COLORS.len()]);
    }
    // Throughput over time.
    let secs = servers
        .iter()
        .map(|(_, r)| r.closes_per_second.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let peak = servers
        .iter()
        .flat_map(|(_, r)| r.closes_per_second.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_step = nice_step(peak, 5.0);
    let tp = Panel {
        left: 540.0,
        right: 930.0,
        x: (0.0, secs),
        y: (0.0, (peak / y_step).ceil() * y_step),
        log_x: false,
    };
    tp.frame(
        &mut out,
        "Throughput over time",
        "seconds since the run began",
        "workflows closed / s",
    );
    let x_step = nice_step(secs, 6.0);
    let mut x = 0.0;
    while x <= secs {
        tp.x_tick(&mut out, x, &fmt_num(x));
        x += x_step;
    }
    let mut y = 0.0;
    while y <= tp.y.1 {
        tp.y_tick(&mut out, y, &fmt_num(y));
        y += y_step;
    }
    for (i, (_, report)) in servers.iter().enumerate() {
        let points: Vec<(f64, f64)> = report
            .closes_per_second
            .iter()
            .enumerate()
            .map(|(s, n)| (s as f64 + 0.5, *n as f64))
            .collect();
        tp.polyline(&mut out, &points, COLORS[i % COLORS.len()]);
    }
    // Legend with the headline figures.
    for (i, (name, r)) in servers.iter().enumerate() {
        let y = BOTTOM + 58.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<rect x="70" y="{ry}" width="14" height="4" fill="{c}"/><text x="92" y="{y}">{name}: {wps:.1} workflows/s, {sps:.0} events/s, latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms, completed {done}/{started}</text>"#,
            ry = y - 6.0,
            c = COLORS[i % COLORS.len()],
            name = escape(name),
            wps = r.workflows_per_second,
            sps = r.state_transitions_per_second,
            p50 = r.latency_ms.p50,
            p99 = r.latency_ms.p99,
            max = r.latency_ms.max,
            done = r.completed,
            started = r.started,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Grouped bars: one group per label, one bar per series (`values[group][series]`).
pub fn bars_svg(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[&str],
    values: &[Vec<f64>],
) -> String {
    let mut out = String::new();
    open(&mut out, title);
    let peak = values
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-9);
    let step = nice_step(peak, 5.0);
    let panel = Panel {
        left: 90.0,
        right: 930.0,
        x: (0.0, groups.len().max(1) as f64),
        y: (0.0, (peak / step).ceil() * step),
        log_x: false,
    };
    panel.frame(&mut out, "", "history shards", y_label);
    let mut y = 0.0;
    while y <= panel.y.1 {
        panel.y_tick(&mut out, y, &fmt_num(y));
        y += step;
    }
    let n = series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        panel.x_tick(&mut out, g as f64 + 0.5, &escape(label));
        for (s, value) in values.get(g).into_iter().flatten().enumerate() {
            let x0 = panel.px(g as f64 + 0.15 + 0.7 * s as f64 / n);
            let x1 = panel.px(g as f64 + 0.15 + 0.7 * (s as f64 + 1.0) / n);
            let top = panel.py(*value);
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"/><text x="{cx:.1}" y="{ty:.1}" text-anchor="middle" font-size="11">{v}</text>"#,
                w = (x1 - x0 - 2.0).max(1.0),
                h = BOTTOM - top,
                c = COLORS[s % COLORS.len()],
                cx = (x0 + x1) / 2.0,
                ty = top - 4.0,
                v = fmt_num(*value),
            );
        }
    }
    for (s, name) in series.iter().enumerate() {
        let y = BOTTOM + 58.0 + s as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<rect x="90" y="{ry}" width="14" height="10" fill="{c}"/><text x="112" y="{y}">{name}</text>"#,
            ry = y - 10.0,
            c = COLORS[s % COLORS.len()],
            name = escape(name),
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed() {
        let r = ServerReport {
            completed: 3,
            latency_distribution_ms: vec![(0.0, 2.0), (50.0, 5.0), (100.0, 40.0)],
            closes_per_second: vec![1, 2],
            ..Default::default()
        };
        let svg = compare_svg("a & b", &[("sundial", &r), ("reference", &r)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &amp; b"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!((nice_bound(3.0, false), nice_bound(3.0, true)), (2.0, 5.0));
        assert_eq!(
            (nice_bound(40.0, false), nice_bound(40.0, true)),
            (20.0, 50.0)
        );
        let bars = bars_svg(
            "t",
            "wf/s",
            &["1".into(), "4".into()],
            &["hot", "spread"],
            &[vec![1.0, 2.0], vec![3.0, 4.0]],
        );
        assert_eq!(bars.matches("<rect").count(), 1 + 1 + 4 + 2);
    }
}
