//! What `import` says: as text, the YAML to add led by `#` comments on what was read, skipped
//! and moved (so that the output can be pasted as it is); as `--json`, one document. Neither
//! ever holds a secret's value: the YAML refers to them as `${VAR}`, and only the variables'
//! names are listed.

use serde::Serialize;

use super::plan::Plan;
use super::write::Written;
use super::{Args, Context, Read};

#[derive(Serialize)]
pub struct Report {
    config: String,
    written: bool,
    created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    read: Vec<ReadFile>,
    added: Vec<AddedServer>,
    skipped: Vec<SkippedServer>,
    notes: Vec<String>,
    env_file: String,
    /// Secrets this import puts in the env file (new variables).
    secrets: usize,
    /// Values moved out of the YAML, to new variables or ones the env file had.
    moved: usize,
    variables: Vec<String>,
    fill: Vec<FillIn>,
    warnings: Vec<String>,
    yaml: String,
    #[serde(skip)]
    command: String,
    #[serde(skip)]
    env_created: bool,
}

#[derive(Serialize)]
struct ReadFile {
    client: &'static str,
    path: String,
    scope: &'static str,
    servers: usize,
}

#[derive(Serialize)]
struct AddedServer {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    renamed_from: Option<String>,
    client: &'static str,
    from: String,
}

#[derive(Serialize)]
struct SkippedServer {
    name: String,
    from: String,
    reason: String,
}

#[derive(Serialize)]
struct FillIn {
    variable: String,
    why: String,
}

impl Report {
    pub fn new(
        cx: &Context,
        args: &Args,
        read: Vec<Read>,
        mut notes: Vec<String>,
        plan: &Plan,
        written: Option<Written>,
    ) -> Report {
        notes.extend(plan.notes.iter().cloned());
        let yaml = match &plan.env_line {
            Some(line) if !plan.entries.is_empty() => format!("{line}servers:\n{}", plan.yaml),
            _ if !plan.entries.is_empty() => format!("servers:\n{}", plan.yaml),
            _ => String::new(),
        };
        let mut command = String::from("mcpgwctl import");
        if let Some(file) = &args.file {
            command.push_str(&format!(" {}", cx.shown(file)));
        }
        if let Some(client) = args.from {
            command.push_str(&format!(" --from {}", client.name()));
        }
        if args.project {
            command.push_str(" --project");
        }
        if let Some(config) = &args.config {
            command.push_str(&format!(" --config {}", config.display()));
        }
        Report {
            config: cx.shown(&plan.existing.path),
            written: written.is_some(),
            created: written.as_ref().is_some_and(|w| w.created),
            backup: written
                .as_ref()
                .and_then(|w| w.backup.as_ref())
                .map(|b| b.display().to_string()),
            read: read
                .iter()
                .map(|r| ReadFile {
                    client: r.location.client.name(),
                    path: cx.shown(&r.location.path),
                    scope: r.location.scope.name(),
                    servers: r.servers,
                })
                .collect(),
            added: plan
                .entries
                .iter()
                .map(|a| AddedServer {
                    name: a.name.clone(),
                    renamed_from: a.renamed_from.clone(),
                    client: a.client.name(),
                    from: a.origin.clone(),
                })
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|s| SkippedServer {
                    name: s.name.clone(),
                    from: s.origin.clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
            notes,
            env_file: cx.shown(&plan.existing.env_file),
            secrets: plan.stash.added.len(),
            moved: plan.moved,
            variables: plan.stash.added.iter().map(|(k, _)| k.clone()).collect(),
            fill: plan
                .fills
                .iter()
                .map(|f| FillIn {
                    variable: f.var.clone(),
                    why: f.why.clone(),
                })
                .collect(),
            warnings: written.map(|w| w.warnings).unwrap_or_default(),
            yaml,
            command,
            env_created: plan.existing.env_text.is_none(),
        }
    }

    pub fn json(&self) -> &Self {
        self
    }

    /// Without `--write`: the YAML, led by comments. With it: what was done.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let mut say = |line: String| {
            if self.written {
                out.push_str(&line);
            } else {
                out.push_str("# ");
                out.push_str(&line.replace('\n', "\n# "));
            }
            out.push('\n');
        };
        for file in &self.read {
            say(format!(
                "read {} ({}, {}): {} server{}",
                file.path,
                file.client,
                file.scope,
                file.servers,
                plural(file.servers)
            ));
        }
        for skipped in &self.skipped {
            say(format!(
                "skipped `{}` from {}: {}",
                skipped.name, skipped.from, skipped.reason
            ));
        }
        for note in &self.notes {
            say(format!("note: {note}"));
        }
        let env = &self.env_file;
        let created = if self.env_created {
            ", created 0600"
        } else {
            ""
        };
        if self.written {
            let names: Vec<&str> = self.added.iter().map(|a| a.name.as_str()).collect();
            say(format!(
                "added {} server{} to {}: {}",
                names.len(),
                plural(names.len()),
                self.config,
                names.join(", ")
            ));
            if let Some(backup) = &self.backup {
                say(format!("the previous config is kept as {backup}"));
            }
            if self.secrets > 0 {
                say(format!(
                    "{} secret{} written to {env}{created}; gateway.yaml refers to them as ${{VAR}}",
                    self.secrets,
                    plural(self.secrets)
                ));
            }
        } else if !self.added.is_empty() && self.secrets > 0 {
            say(format!(
                "{} secret{} would go to {env}{created}; the YAML below refers to them as ${{VAR}}",
                self.secrets,
                plural(self.secrets)
            ));
        }
        for fill in &self.fill {
            say(format!(
                "fill in `{}` in {env} ({}): the servers using it stay disabled until then",
                fill.variable, fill.why
            ));
        }
        for warning in &self.warnings {
            say(format!("warning: {warning}"));
        }
        if self.added.is_empty() {
            say(
                "nothing to import: every server found is in the config already, or was not \
                 importable"
                    .to_owned(),
            );
            return out;
        }
        if self.written {
            say(
                "a running mcpgwd reloads the config by itself; `mcpgwctl connect CLIENT` then \
                 points the client at the gateway"
                    .into(),
            );
            return out;
        }
        say(format!(
            "`{} --write` adds this to {}",
            self.command, self.config
        ));
        out.push_str(&self.yaml);
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
