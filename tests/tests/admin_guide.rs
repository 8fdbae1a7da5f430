//! ADMIN.md's commands are ones the programs accept: every `outpost` and
//! `outpostd` line in its shell blocks parses with the binaries' own
//! command-line definitions, so a renamed flag or command fails here rather
//! than at a post. (What they do is covered where it can run: the package
//! check installs and starts, and the fleet, backup, rotation and health
//! tests run the rest.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;

/// The command lines in ```sh blocks, with their line numbers.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut in_shell = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_shell = !in_shell && trimmed == "```sh";
            continue;
        }
        if in_shell && !trimmed.is_empty() && !trimmed.starts_with('#') {
            lines.push((n + 1, trimmed.to_string()));
        }
    }
    lines
}

/// The `outpost` and `outpostd` invocations of a line (`a && b` is two).
fn invocations(line: &str) -> Vec<Vec<String>> {
    line.split("&&")
        .map(|part| part.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|words| matches!(words.first().map(String::as_str), Some("outpost" | "outpostd")))
        .collect()
}

#[test]
fn every_outpost_command_in_the_admin_guide_parses() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ADMIN.md")).unwrap();
    let mut checked = 0;
    for (line_number, line) in shell_lines(&guide) {
        for words in invocations(&line) {
            assert!(
                !line.contains(['"', '\'']),
                "ADMIN.md line {line_number}: quoting is not understood here; write the command without quotes"
            );
            let parsed = match words[0].as_str() {
                "outpost" => outpost_cli::args::Cli::try_parse_from(&words).map(|_| ()),
                _ => outpost_daemon::args::Args::try_parse_from(&words).map(|_| ()),
            };
            if let Err(err) = parsed {
                panic!("ADMIN.md line {line_number}: `{line}` does not parse:\n{err}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} commands found: did the guide's code blocks change form?");
}

#[test]
fn a_misspelt_command_is_caught() {
    let guide = "```sh\noutpost backupp /root/x\n```\n";
    let lines = shell_lines(guide);
    let words = &invocations(&lines[0].1)[0];
    assert!(outpost_cli::args::Cli::try_parse_from(words).is_err());
}
