//! What a figure produces (tables, notes, targets, raw data) and how it is printed: markdown for
//! people, one JSON document for scripts.

use serde::Serialize;
use serde_json::Value;

/// One figure of the benchmark.
#[derive(Debug, Serialize)]
pub struct Section {
    /// Short id, as `--only` takes it.
    pub id: &'static str,
    pub title: String,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
    pub targets: Vec<Target>,
    /// The raw numbers, for `--json`.
    pub data: Value,
}

impl Section {
    pub fn new(id: &'static str, title: impl Into<String>) -> Self {
        Self {
            id,
            title: title.into(),
            tables: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
            data: Value::Null,
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    pub fn target(&mut self, target: &str, measured: String, met: Option<bool>) {
        self.targets.push(Target {
            figure: self.id,
            target: target.to_owned(),
            measured,
            met,
        });
    }
}

#[derive(Debug, Serialize)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(&self.headers));
        out.push_str(&line(
            &self
                .headers
                .iter()
                .map(|_| "---".to_owned())
                .collect::<Vec<_>>(),
        ));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A target of the performance issue and how this run did against it.
#[derive(Debug, Serialize)]
pub struct Target {
    pub figure: &'static str,
    pub target: String,
    pub measured: String,
    /// `None` when the figure could not be measured in this run.
    pub met: Option<bool>,
}

impl Target {
    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        }
    }
}

/// Everything one run printed.
#[derive(Debug, Serialize)]
pub struct Report {
    pub smoke: bool,
    pub machine: Value,
    pub sections: Vec<Section>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# mcpgw benchmark\n\n");
        out.push_str(&format!(
            "Machine: {}. Latencies are medians over runs of each run's percentile.\n",
            self.machine["summary"].as_str().unwrap_or("?")
        ));
        if self.smoke {
            out.push_str(
                "\n**Smoke run**: tiny counts and small payloads, debug-speed binaries; the numbers \
                 only show that every figure runs. Targets are judged, but mean nothing here.\n",
            );
        }
        for section in &self.sections {
            out.push_str(&format!("\n## {}\n\n", section.title));
            for table in &section.tables {
                out.push_str(&table.markdown());
                out.push('\n');
            }
            for note in &section.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        let targets: Vec<&Target> = self.sections.iter().flat_map(|s| &s.targets).collect();
        if !targets.is_empty() {
            out.push_str("\n## Targets\n\n");
            let mut table = Table::new(&["figure", "target", "measured", "verdict"]);
            for t in targets {
                table.row(vec![
                    t.figure.to_owned(),
                    t.target.clone(),
                    t.measured.clone(),
                    t.verdict().to_owned(),
                ]);
            }
            out.push_str(&table.markdown());
        }
        out
    }
}

/// A duration in µs, printed in the unit that reads best.
pub fn us(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0} ms", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// A signed difference in µs.
pub fn us_signed(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", us(-v))
    } else {
        format!("+{}", us(v))
    }
}

/// A size in KiB, printed as KiB or MiB.
pub fn kib(v: f64) -> String {
    if v.abs() >= 1024.0 && (v / 1024.0).fract() == 0.0 {
        format!("{:.0} MiB", v / 1024.0)
    } else if v.abs() >= 10_240.0 {
        format!("{:.1} MiB", v / 1024.0)
    } else {
        format!("{v:.0} KiB")
    }
}

pub fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "–".to_owned()
    }
}

pub fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        "–".to_owned()
    }
}
