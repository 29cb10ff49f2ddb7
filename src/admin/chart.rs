//! The page's inline SVG: the daily active accounts chart and the sparklines, as `maud`
//! markup (every text escaped).

use maud::{Markup, html};

use crate::usage::ActiveAccounts;

/// The daily active accounts as a bar chart.
pub(super) fn chart(daily: &[ActiveAccounts]) -> Markup {
    const W: f64 = 1000.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 30.0;
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max = nice_max(daily.iter().map(|d| d.accounts).max().unwrap_or(0));
    let (first, last) = match (daily.first(), daily.last()) {
        (Some(f), Some(l)) => (f.start.to_string(), l.start.to_string()),
        _ => (String::new(), String::new()),
    };
    let n = daily.len().max(1) as f64;
    let step = plot_w / n;
    let label_every = (daily.len() / 6).max(1);
    html! {
        svg id="dau-chart" viewBox={ "0 0 " (W) " " (H) } width="100%" role="img"
            aria-labelledby="dau-title" {
            title id="dau-title" { "Daily active accounts, " (first) " to " (last) }
            g class="axis" {
                @for tick in [0, max / 2, max] {
                    @let y = TOP + plot_h - tick as f64 / max as f64 * plot_h;
                    line x1=(LEFT) x2=(W - RIGHT) y1=(f1(y)) y2=(f1(y)) {}
                    text x=(LEFT - 6.0) y=(f1(y + 4.0)) text-anchor="end" { (tick) }
                }
                @for (i, d) in daily.iter().enumerate() {
                    @if i % label_every == 0 || i + 1 == daily.len() {
                        @let (_, m, day) = d.start.ymd();
                        text x=(f1(LEFT + i as f64 * step + step / 2.0)) y=(H - 10.0)
                            text-anchor="middle" { (format!("{m:02}-{day:02}")) }
                    }
                }
            }
            @for (i, d) in daily.iter().enumerate() {
                @let h = d.accounts as f64 / max as f64 * plot_h;
                rect class="bar" x=(f1(LEFT + i as f64 * step + step * 0.15))
                    y=(f1(TOP + plot_h - h)) width=(f1(step * 0.7)) height=(f1(h)) rx="2" {
                    title {
                        (d.start) ": " (d.accounts) " active account"
                        @if d.accounts != 1 { "s" }
                    }
                }
            }
        }
    }
}

/// A number with one decimal, as the charts' coordinates are written.
fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// The smallest of 2, 4, 6, 8 × 10ⁿ at or above `n`: a round top for the chart's axis
/// whose half, the middle grid line, is whole too.
fn nice_max(n: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for m in [2, 4, 6, 8] {
            let candidate = m * scale;
            if candidate >= n.max(2) {
                return candidate;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// A sparkline of `values` (events per day), or a flat line when there are none.
pub(super) fn sparkline(values: Option<&[u64]>, days: u32) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    const PAD: f64 = 3.0;
    let zeros = vec![0; days as usize];
    let values = values.unwrap_or(&zeros);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let total: u64 = values.iter().sum();
    let n = values.len();
    let x = |i: usize| {
        if n <= 1 {
            W / 2.0
        } else {
            PAD + i as f64 * (W - 2.0 * PAD) / (n - 1) as f64
        }
    };
    let y = |v: u64| H - PAD - v as f64 / max * (H - 2.0 * PAD);
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let peak = max as u64 * u64::from(total > 0);
    html! {
        svg class="sparkline" viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) role="img"
            aria-label={ (total) " events in " (days) " days, at most " (peak) " a day" } {
            polyline points=(points.join(" ")) fill="none" stroke="currentColor"
                stroke-width="1.5" stroke-linejoin="round" {}
            @if let Some(v) = values.last() {
                circle cx=(f1(x(n - 1))) cy=(f1(y(*v))) r="2" fill="currentColor" {}
            }
        }
    }
}

/// An account's events per day, one bar a day, against its baseline (a dashed line at
/// `baseline` events per day; without one, the mean of all days but the last week's).
pub(super) fn baseline_chart(values: Option<&[u64]>, days: u32, baseline: Option<f64>) -> Markup {
    const W: f64 = 210.0;
    const H: f64 = 36.0;
    const PAD: f64 = 2.0;
    let zeros = vec![0; days as usize];
    let values = values.unwrap_or(&zeros);
    let n = values.len().max(1);
    let before = &values[..values.len().saturating_sub(7)];
    let baseline =
        baseline.unwrap_or_else(|| before.iter().sum::<u64>() as f64 / before.len().max(1) as f64);
    let max = (values.iter().copied().max().unwrap_or(0) as f64)
        .max(baseline)
        .max(1.0);
    let step = (W - 2.0 * PAD) / n as f64;
    let y = |v: f64| H - PAD - v / max * (H - 2.0 * PAD);
    let total: u64 = values.iter().sum();
    html! {
        svg class="baseline-chart" viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H)
            role="img"
            aria-label={ (total) " events in " (days) " days; baseline " (f1(baseline)) " a day" } {
            @for (i, v) in values.iter().enumerate() {
                @let top = y(*v as f64);
                rect class="day" x=(f1(PAD + i as f64 * step)) y=(f1(top))
                    width=(f1((step * 0.8).max(0.5))) height=(f1((H - PAD - top).max(0.0))) {}
            }
            line class="base" x1=(PAD) x2=(W - PAD) y1=(f1(y(baseline))) y2=(f1(y(baseline))) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_chart_scale_is_round() {
        assert_eq!(nice_max(0), 2);
        assert_eq!(nice_max(3), 4);
        assert_eq!(nice_max(9), 20);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(600), 600);
        assert_eq!(nice_max(801), 2000);
    }
}
