//! `commands`: tools that run a program.

use super::{errors, ok};
use crate::config::ParamKind;

#[test]
fn a_command_is_checked_against_its_input_and_the_servers_prefixes() {
    let config = ok(
        "commands:\n  count_lines:\n    run: [wc, -l, \"{file}\"]\n    input: {file: {type: string}}\n",
    );
    let command = &config.commands[0];
    assert_eq!(command.run, ["wc", "-l", "{file}"]);
    assert_eq!(command.input["file"].kind, ParamKind::String);
    assert_eq!(command.timeout, crate::config::DEFAULT_COMMAND_TIMEOUT);

    let text = "servers:\n  git: {command: x}\ncommands:\n  git_log:\n    run: [git, log, \"{n}\"]\n  bad name:\n    run: [\"{x}\"]\n    input: {x: {type: integer, default: \"ten\"}}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:3:1: command `git_log` is named like the tools of `git` (`git_…`); name it otherwise",
            "gateway.yaml:5:21: `run` in command `git_log` uses `{n}`, which `input` does not declare",
            "gateway.yaml:6:3: command name `bad name` must be 1 to 64 letters, digits, `_` or `-` (it is the tool's name)",
            "gateway.yaml:7:11: `run` in command `bad name`: the program must be written, not an argument",
            "gateway.yaml:8:41: `default` of argument `x` in `input` in command `bad name` must be an integer within its bounds, found a string",
        ]
    );
}

#[test]
fn enum_values_must_fit_the_type_and_unused_arguments_are_warned_of() {
    let text = "commands:\n  pick:\n    run: [echo, \"{level}\"]\n    input:\n      level: {type: integer, enum: [1, \"two\", 300], maximum: 200}\n      spare: {type: string}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:5:40: `enum` of argument `level` in `input` in command `pick`: item 2 is not an integer within its bounds",
            "gateway.yaml:5:47: `enum` of argument `level` in `input` in command `pick`: item 3 is not an integer within its bounds",
        ]
    );
    let config = ok(
        "commands:\n  pick:\n    run: [echo, \"{level}\"]\n    input:\n      level: {type: integer, enum: [1, 2]}\n      spare: {type: string}\n",
    );
    assert_eq!(
        config.warnings,
        [
            "gateway.yaml:4:5: argument `spare` in `input` in command `pick` is not used in `run` (write `\"{spare}\"` where it goes)"
        ]
    );
}
