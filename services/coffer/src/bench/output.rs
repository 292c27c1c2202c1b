//! The results as text (the terminal), JSON, Markdown and an SVG plot per back end.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::measure::Report;
use super::rows::BASELINE;
use super::{Results, Run};

impl Results {
    /// The no-op report of the same run and concurrency.
    fn baseline<'a>(&self, run: &'a Run, concurrency: usize) -> Option<&'a Report> {
        run.reports
            .iter()
            .find(|r| r.group == BASELINE.0 && r.name == BASELINE.1 && r.concurrency == concurrency)
    }

    fn crypto_rate(&self, name: Option<&str>) -> Option<f64> {
        let name = name?;
        self.crypto
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.throughput)
    }

    /// `(vs no-op, vs its cryptography)` of `report`, a row of `run` (`None` for a peer's
    /// row, which has no no-op of its own).
    fn ratios(&self, run: Option<&Run>, report: &Report) -> (Option<f64>, Option<f64>) {
        let noop = run
            .and_then(|run| self.baseline(run, report.concurrency))
            .map(|b| report.throughput / b.throughput);
        let crypto = self
            .crypto_rate(report.crypto.as_deref())
            .map(|rate| report.throughput / rate);
        (noop, crypto)
    }

    /// One line per peer row that Coffer has too: Coffer's throughput over the peer's, at
    /// the same concurrency, per back end.
    fn peer_comparisons(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for run in &self.runs {
            for peer in &self.peers {
                let ours = run.reports.iter().find(|r| {
                    r.group == "key-service"
                        && r.name == peer.name
                        && r.concurrency == peer.concurrency
                });
                if let Some(ours) = ours {
                    lines.push(format!(
                        "Coffer ({}) {} with {}: {:.2}x {}",
                        run.backend,
                        peer.name,
                        callers(peer.concurrency),
                        ours.throughput / peer.throughput,
                        peer.group
                    ));
                }
            }
        }
        lines
    }

    /// The rows shown for `run`: its own, then the peer's (which belong to no run).
    fn entries<'a>(&'a self, run: &'a Run) -> Vec<Entry<'a>> {
        run.reports
            .iter()
            .map(|r| (r, Some(run)))
            .chain(self.peers.iter().map(|r| (r, None)))
            .collect()
    }

    /// The terminal table.
    pub fn render(&self) -> String {
        let mut out = self.header();
        for run in &self.runs {
            let _ = writeln!(out, "\n{} back end", run.backend);
            out.push_str(&table_head());
            for report in &run.reports {
                let (noop, crypto) = self.ratios(Some(run), report);
                out.push_str(&table_row(report, noop, crypto));
            }
            if let Some(memory) = &run.memory {
                let _ = writeln!(out, "{}", memory.describe());
            }
        }
        if !self.peers.is_empty() {
            let _ = writeln!(out, "\npeer: OpenBao transit (same harness, same run)");
            out.push_str(&table_head());
            for report in &self.peers {
                let (noop, crypto) = self.ratios(None, report);
                out.push_str(&table_row(report, noop, crypto));
            }
            for line in self.peer_comparisons() {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = writeln!(out, "\nin-process cryptography (one thread, no RPC)");
        for report in &self.crypto {
            let _ = writeln!(
                out,
                "{:<40} {:>12.0}/s {:>10} p50 {:>10} p99",
                report.name,
                report.throughput,
                micros(report.p50),
                micros(report.p99)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    fn header(&self) -> String {
        format!(
            "coffer bench at {}, {} cores: {:?} per row after a {:?} warm-up, callers {:?}, \
             {} HTTP/2 connection(s) per service, mTLS on 127.0.0.1, load from this process, \
             stack {}\n",
            self.commit,
            self.cores,
            self.options.duration,
            self.options.duration / 10,
            self.options.concurrency,
            self.options.connections,
            if self.options.target.is_some() {
                "started apart"
            } else {
                "in a `coffer up` child process"
            }
        )
    }

    /// Writes `coffer-bench.json`, `coffer-bench.md` and one `coffer-bench-{backend}.svg`
    /// per back end into `dir`; returns their paths.
    ///
    /// # Errors
    /// If a file cannot be written.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files = vec![
            (
                dir.join("coffer-bench.json"),
                serde_json::to_string_pretty(&self.json())? + "\n",
            ),
            (dir.join("coffer-bench.md"), self.markdown()),
        ];
        for run in &self.runs {
            files.push((
                dir.join(format!("coffer-bench-{}.svg", run.backend)),
                self.svg(run),
            ));
        }
        for (path, text) in &files {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files.into_iter().map(|(path, _)| path).collect())
    }

    fn json(&self) -> serde_json::Value {
        let row = |run: Option<&Run>, r: &Report| {
            let (noop, crypto) = self.ratios(run, r);
            serde_json::json!({
                "group": r.group,
                "name": r.name,
                "callers": r.concurrency,
                "calls": r.calls,
                "per_second": r.throughput,
                "p50_us": r.p50.as_secs_f64() * 1e6,
                "p99_us": r.p99.as_secs_f64() * 1e6,
                "p999_us": r.p999.as_secs_f64() * 1e6,
                "vs_noop": noop,
                "crypto": r.crypto,
                "vs_crypto": crypto,
            })
        };
        serde_json::json!({
            "commit": self.commit,
            "cores": self.cores,
            "seconds_per_row": self.options.duration.as_secs_f64(),
            "callers": self.options.concurrency,
            "connections_per_service": self.options.connections,
            "passes": self.options.passes,
            "payload_bytes": [self.options.payloads.small, self.options.payloads.large],
            "runs": self.runs.iter().map(|run| serde_json::json!({
                "backend": run.backend,
                "rows": run.reports.iter().map(|r| row(Some(run), r)).collect::<Vec<_>>(),
                "memory_kib": run.memory.as_ref().map(|m| serde_json::json!({
                    "idle": m.idle_kib, "peak": m.peak_kib, "after": m.after_kib,
                    "after_each_pass": m.after_each_pass_kib,
                    "after_connections_closed": m.closed_kib,
                })),
            })).collect::<Vec<_>>(),
            "peers": self.peers.iter().map(|r| row(None, r)).collect::<Vec<_>>(),
            "crypto_in_process": self.crypto.iter().map(|r| row(None, r)).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }

    fn markdown(&self) -> String {
        let levels = &self.options.concurrency;
        let mut out = self.header();
        for run in &self.runs {
            let _ = write!(
                out,
                "\n### {} back end\n\n| group | operation |",
                run.backend
            );
            for c in levels {
                let _ = write!(out, " calls/s @{c} |");
            }
            let top = levels.iter().max().copied().unwrap_or(1);
            let mid = levels.get(levels.len() / 2).copied().unwrap_or(top);
            let _ = writeln!(out, " p99 @{mid} | vs no-op @{top} | vs crypto @{top} |");
            let _ = writeln!(out, "|---|---|{}---|---|---|", "---|".repeat(levels.len()));
            let entries = self.entries(run);
            for operation in operations(&entries) {
                let at = |c: usize| find(&entries, operation, c);
                let _ = write!(out, "| {} | {} |", operation.0, operation.1);
                for &c in levels {
                    let _ = write!(
                        out,
                        " {} |",
                        at(c).map_or_else(
                            || "-".to_owned(),
                            |(r, _)| format!("{:.0}", r.throughput)
                        )
                    );
                }
                let p99 = at(mid).map_or_else(|| "-".to_owned(), |(r, _)| micros(r.p99));
                let (noop, crypto) = at(top).map_or((None, None), |(r, run)| self.ratios(run, r));
                let _ = writeln!(out, " {p99} | {} | {} |", ratio(noop), ratio(crypto));
            }
            if let Some(memory) = &run.memory {
                let _ = writeln!(out, "\n{}", memory.describe());
            }
        }
        if !self.peers.is_empty() {
            let _ = writeln!(out, "\n### Coffer over OpenBao transit\n");
            for line in self.peer_comparisons() {
                let _ = writeln!(out, "- {line}");
            }
        }
        let _ = writeln!(
            out,
            "\n### In-process cryptography (one thread)\n\n| operation | ops/s | p50 | p99 |\n|---|---|---|---|"
        );
        for r in &self.crypto {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} |",
                r.name,
                r.throughput,
                micros(r.p50),
                micros(r.p99)
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    /// Two panels, throughput and p99 latency, one bar per operation and concurrency, both
    /// on log scales (the rows span four orders of magnitude).
    fn svg(&self, run: &Run) -> String {
        let entries = self.entries(run);
        let operations = operations(&entries);
        let levels = &self.options.concurrency;
        let bar = 9.0;
        let group_height = bar * levels.len() as f64 + 8.0;
        let (label_width, panel, top) = (300.0, 300.0, 50.0);
        let height = top + group_height * operations.len() as f64 + 40.0;
        let width = label_width + 2.0 * panel + 120.0;
        let colors = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756"];
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="13" font-weight="bold">{}</text>
<text x="{:.0}" y="40">calls/s (log scale)</text>
<text x="{:.0}" y="40">p99 latency (log scale)</text>
"##,
            escape(&format!(
                "coffer bench, {} back end, {} cores, commit {}",
                run.backend, self.cores, self.commit
            )),
            label_width,
            label_width + panel + 30.0,
        );
        for (i, c) in levels.iter().enumerate() {
            let x = width - 200.0 + 60.0 * i as f64;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.0}" y="30" width="10" height="10" fill="{}"/><text x="{:.0}" y="39">{}</text>"#,
                colors[i % colors.len()],
                x + 13.0,
                callers(*c)
            );
        }
        let max_rate = entries
            .iter()
            .map(|(r, _)| r.throughput)
            .fold(1.0, f64::max);
        let max_latency = entries
            .iter()
            .map(|(r, _)| r.p99.as_secs_f64() * 1e6)
            .fold(1.0, f64::max);
        // log10 scales from 1 (1 call/s, 1 µs) to the largest value.
        let scale = |value: f64, max: f64| {
            if value <= 1.0 {
                0.0
            } else {
                panel * value.log10() / max.log10().max(1.0)
            }
        };
        for (row, &(group, name)) in operations.iter().enumerate() {
            let y0 = top + group_height * row as f64;
            let _ = writeln!(
                svg,
                r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
                label_width - 6.0,
                y0 + group_height / 2.0,
                escape(&format!("{group}: {name}"))
            );
            for (i, c) in levels.iter().enumerate() {
                let Some((r, _)) = find(&entries, (group, name), *c) else {
                    continue;
                };
                let y = y0 + bar * i as f64;
                let color = colors[i % colors.len()];
                let latency = r.p99.as_secs_f64() * 1e6;
                let rate_width = scale(r.throughput, max_rate);
                let latency_width = scale(latency, max_latency);
                let latency_x = label_width + panel + 30.0;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{label_width:.0}" y="{y:.1}" width="{rate_width:.1}" height="{:.1}" fill="{color}"><title>{:.0} calls/s</title></rect><text x="{:.1}" y="{:.1}" font-size="8">{:.0}</text>"#,
                    bar - 1.0,
                    r.throughput,
                    label_width + rate_width + 2.0,
                    y + bar - 2.0,
                    r.throughput
                );
                let _ = writeln!(
                    svg,
                    r#"<rect x="{latency_x:.0}" y="{y:.1}" width="{latency_width:.1}" height="{:.1}" fill="{color}"><title>p99 {}</title></rect><text x="{:.1}" y="{:.1}" font-size="8">{}</text>"#,
                    bar - 1.0,
                    escape(&micros(r.p99)),
                    latency_x + latency_width + 2.0,
                    y + bar - 2.0,
                    escape(&micros(r.p99))
                );
            }
        }
        for (x, max, unit) in [
            (label_width, max_rate, "/s"),
            (label_width + panel + 30.0, max_latency, " µs"),
        ] {
            let _ = writeln!(
                svg,
                r#"<text x="{x:.0}" y="{:.0}">1{unit}</text><text x="{:.0}" y="{:.0}" text-anchor="end">{max:.0}{unit}</text>"#,
                height - 20.0,
                x + panel,
                height - 20.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

impl super::MemoryReport {
    /// One line: idle, peak, after the load and after its connections closed, and how far
    /// each of the last two is from idle; with several passes, the memory after each and its
    /// change from the second pass to the last (growth per request shows there, what an
    /// allocator or a bounded cache keeps after the first does not).
    pub fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let change = |from: u64, to: u64| (to as f64 / from.max(1) as f64 - 1.0) * 100.0;
        let mut line = format!(
            "coffer up resident memory: idle {:.1} MiB, peak {:.1} MiB, after the load {:.1} MiB \
             ({:+.0}% of idle), after its connections closed {:.1} MiB ({:+.0}%)",
            mib(self.idle_kib),
            mib(self.peak_kib),
            mib(self.after_kib),
            change(self.idle_kib, self.after_kib),
            mib(self.closed_kib),
            change(self.idle_kib, self.closed_kib),
        );
        let passes = &self.after_each_pass_kib;
        if let (Some(&last), true) = (passes.last(), passes.len() > 1) {
            // From the second pass when there are three or more: the first also fills caches
            // and allocator pools once.
            let from = usize::from(passes.len() > 2);
            let each: Vec<String> = passes
                .iter()
                .map(|&kib| format!("{:.1}", mib(kib)))
                .collect();
            line.push_str(&format!(
                "; after each of {} passes {} MiB (pass {} to {}: {:+.1}%)",
                passes.len(),
                each.join(", "),
                from + 1,
                passes.len(),
                change(passes[from], last),
            ));
        }
        line
    }
}

/// A row as shown, with the run it belongs to (`None`: the peer's).
type Entry<'a> = (&'a Report, Option<&'a Run>);

/// The distinct `(group, name)` of `entries`, in order of first appearance.
fn operations<'a>(entries: &[Entry<'a>]) -> Vec<(&'a str, &'a str)> {
    let mut operations = Vec::new();
    for (r, _) in entries {
        let operation = (r.group.as_str(), r.name.as_str());
        if !operations.contains(&operation) {
            operations.push(operation);
        }
    }
    operations
}

/// The entry of `operation` at `concurrency`, if measured.
fn find<'a>(
    entries: &[Entry<'a>],
    operation: (&str, &str),
    concurrency: usize,
) -> Option<Entry<'a>> {
    entries.iter().copied().find(|(r, _)| {
        (r.group.as_str(), r.name.as_str()) == operation && r.concurrency == concurrency
    })
}

fn table_head() -> String {
    format!(
        "{:<20} {:<34} {:>7} {:>9} {:>10} {:>10} {:>10} {:>8} {:>9}\n",
        "group", "operation", "callers", "calls/s", "p50", "p99", "p99.9", "vs no-op", "vs crypto"
    )
}

fn table_row(r: &Report, noop: Option<f64>, crypto: Option<f64>) -> String {
    format!(
        "{:<20} {:<34} {:>7} {:>9.0} {:>10} {:>10} {:>10} {:>8} {:>9}\n",
        r.group,
        r.name,
        r.concurrency,
        r.throughput,
        micros(r.p50),
        micros(r.p99),
        micros(r.p999),
        ratio(noop),
        ratio(crypto)
    )
}

/// `1 caller`, `16 callers`.
fn callers(count: usize) -> String {
    if count == 1 {
        "1 caller".to_owned()
    } else {
        format!("{count} callers")
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}x"))
}

/// A latency in µs or ms.
fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::MemoryReport;

    fn memory(after_each_pass_kib: Vec<u64>) -> MemoryReport {
        MemoryReport {
            idle_kib: 40 * 1024,
            peak_kib: 60 * 1024,
            after_kib: after_each_pass_kib[0],
            after_each_pass_kib,
            closed_kib: 44 * 1024,
        }
    }

    #[test]
    fn memory_is_described_against_idle_and_from_the_second_pass_on() {
        let one = memory(vec![50 * 1024]).describe();
        assert_eq!(
            one,
            "coffer up resident memory: idle 40.0 MiB, peak 60.0 MiB, after the load 50.0 MiB \
             (+25% of idle), after its connections closed 44.0 MiB (+10%)"
        );
        let three = memory(vec![50 * 1024, 52 * 1024, 52 * 1024 + 520]).describe();
        assert!(
            three.ends_with("; after each of 3 passes 50.0, 52.0, 52.5 MiB (pass 2 to 3: +1.0%)"),
            "{three}"
        );
        let two = memory(vec![50 * 1024, 55 * 1024]).describe();
        assert!(two.ends_with("(pass 1 to 2: +10.0%)"), "{two}");
    }
}
