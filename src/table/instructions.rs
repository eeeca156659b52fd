//! The gateway's instructions to a client: what it is, then each visible server's own
//! instructions under its name. Clients such as Claude Code put instructions into the model's
//! context, so a server's guidance must not be lost by going through the gateway; a role sees
//! only the instructions of servers it sees something of.
//!
//! Bounded: a server's text past [`PER_SERVER`] bytes is cut, and servers past [`TOTAL`] bytes
//! in all are named but not included (the model's context is the client's budget, and a
//! server's text is not ours to let grow without end).

use super::Table;

/// The most of one server's instructions relayed, in bytes.
pub const PER_SERVER: usize = 8 * 1024;
/// The most of all instructions together, in bytes.
pub const TOTAL: usize = 32 * 1024;

const HEADER: &str = "mcpgw gateway: the tools, prompts and resources of several MCP servers. \
     Each server's tools and prompts are named <prefix>_<name>; below, each server's own \
     instructions under its name.";

/// The instructions a client of `role` gets from `table`.
pub fn compose(table: &Table, role: Option<&str>) -> String {
    let mut text = String::from(HEADER);
    let mut omitted = Vec::new();
    for (name, backend) in &table.backends {
        let Some(own) = backend.schema().and_then(|s| s.instructions.clone()) else {
            continue;
        };
        let own = own.trim();
        if own.is_empty() || !table.sees_server(role, name) {
            continue;
        }
        let prefix = super::prefix_of(&table.config, backend);
        let naming = if prefix.is_empty() {
            "its tools keep their own names".to_string()
        } else {
            format!("its tools are named {prefix}_<tool>")
        };
        let section = format!(
            "\n\n## Server `{name}` ({naming})\n{}",
            cut(own, PER_SERVER)
        );
        if text.len() + section.len() > TOTAL {
            omitted.push(name.as_str());
            continue;
        }
        text.push_str(&section);
    }
    if !omitted.is_empty() {
        text.push_str(&format!(
            "\n\n(The instructions of {} are left out: all together they exceed {} KiB.)",
            omitted.join(", "),
            TOTAL / 1024
        ));
    }
    text
}

/// `text` cut to at most `max` bytes at a character boundary, saying so.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let kept = crate::config::cut_at(text, max);
    format!("{kept}\n[… cut by mcpgw at {} KiB]", max / 1024).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_at_a_character_boundary() {
        let text = "é".repeat(10);
        let cut = cut(&text, 5);
        assert!(cut.starts_with("éé\n"), "{cut}");
        assert!(cut.ends_with("KiB]"));
        assert_eq!(super::cut("short", 5), "short");
    }
}
