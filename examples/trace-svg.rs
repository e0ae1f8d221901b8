//! Draws a trace of `onggi --trace --trace-format chrome …` as an SVG timeline: one track per
//! process (onggi, the init, an exec'd process), each step a bar placed at its time, numbered,
//! and below the tracks the numbered list of every step with its duration and process. Hover a
//! bar (or the list) for the kernel calls. `make labs-pictures` draws each lab's picture.
//!
//! usage: cargo run --release --example trace-svg -- TRACE.json > trace.svg

use serde_json::Value;
use std::fmt::Write as _;

const LABEL_W: f64 = 150.0;
const PLOT_W: f64 = 830.0;
const TRACK_H: f64 = 30.0;
const TOP: f64 = 40.0;
const ROW_H: f64 = 15.0;

/// One step or moment of the trace.
struct Slice {
    name: String,
    pid: i64,
    ts: f64,
    dur: f64,
    calls: Vec<String>,
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: trace-svg TRACE.json > trace.svg");
        std::process::exit(2)
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("trace-svg: {path}: {e}");
        std::process::exit(1)
    });
    let (tracks, slices) = parse(&text);
    if slices.is_empty() {
        eprintln!(
            "trace-svg: {path}: no trace events (make it with --trace --trace-format chrome)"
        );
        std::process::exit(1);
    }
    print!("{}", svg(&tracks, &slices));
}

/// The tracks (pid, name) in order of appearance, and the slices. Lines that are not events
/// (the `[`, a stray message on the same stderr) are skipped.
fn parse(text: &str) -> (Vec<(i64, String)>, Vec<Slice>) {
    let mut tracks: Vec<(i64, String)> = Vec::new();
    let mut slices = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let pid = v["pid"].as_i64().unwrap_or(0);
        let ph = v["ph"].as_str().unwrap_or("");
        if ph == "M" {
            let name = v["args"]["name"].as_str().unwrap_or("?").to_string();
            tracks.push((pid, name));
            continue;
        }
        if !tracks.iter().any(|(p, _)| *p == pid) {
            tracks.push((pid, format!("pid {pid}")));
        }
        let calls = v["args"]["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        slices.push(Slice {
            name: v["name"].as_str().unwrap_or("?").to_string(),
            pid,
            ts: v["ts"].as_f64().unwrap_or(0.0),
            dur: v["dur"].as_f64().unwrap_or(0.0),
            calls,
        });
    }
    slices.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    (tracks, slices)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg(tracks: &[(i64, String)], slices: &[Slice]) -> String {
    let t0 = slices.iter().map(|s| s.ts).fold(f64::MAX, f64::min);
    let t1 = slices.iter().map(|s| s.ts + s.dur).fold(0.0, f64::max);
    let span = (t1 - t0).max(1.0);
    let x = |t: f64| LABEL_W + (t - t0) / span * PLOT_W;
    let list_top = TOP + tracks.len() as f64 * TRACK_H + 30.0;
    let height = list_top + slices.len() as f64 * ROW_H + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="{height}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="1000" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="13">onggi trace: {} steps in {:.2} ms</text>"#,
        slices.len(),
        span / 1000.0
    );
    for (i, (_, name)) in tracks.iter().enumerate() {
        let y = TOP + i as f64 * TRACK_H;
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}">{}</text><line x1="{LABEL_W}" x2="{}" y1="{}" y2="{}" stroke="lightgray"/>"#,
            y + 18.0,
            escape(name),
            LABEL_W + PLOT_W,
            y + TRACK_H - 2.0,
            y + TRACK_H - 2.0
        );
    }
    let track_of = |pid: i64| tracks.iter().position(|(p, _)| *p == pid).unwrap_or(0);
    for (n, s) in slices.iter().enumerate() {
        let y = TOP + track_of(s.pid) as f64 * TRACK_H + 4.0;
        let w = (s.dur / span * PLOT_W).max(1.5);
        let title = format!(
            "{}. {} ({:.0} us)\n{}",
            n + 1,
            s.name,
            s.dur,
            s.calls.join("\n")
        );
        let fill = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"][n % 4];
        let _ = writeln!(
            out,
            r#"<g><title>{}</title><rect x="{:.1}" y="{y}" width="{w:.1}" height="20" fill="{fill}"/>{}</g>"#,
            escape(&title),
            x(s.ts),
            if w > 14.0 {
                format!(
                    r#"<text x="{:.1}" y="{}" fill="white">{}</text>"#,
                    x(s.ts) + 2.0,
                    y + 14.0,
                    n + 1
                )
            } else {
                String::new()
            }
        );
    }
    for (n, s) in slices.iter().enumerate() {
        let who = tracks.get(track_of(s.pid)).map_or("", |t| t.1.as_str());
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}" xml:space="preserve"><title>{}</title>{:>3}. {:>9.3} ms  {:<22} {:>7} us  {}</text>"#,
            list_top + n as f64 * ROW_H,
            escape(&s.calls.join("\n")),
            n + 1,
            (s.ts - t0) / 1000.0,
            escape(&s.name),
            s.dur as u64,
            escape(who)
        );
    }
    out.push_str("</svg>\n");
    out
}
