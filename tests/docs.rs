//! The documentation holds together: every relative link of the README, ARCHITECTURE.md, BENCHMARKS.md and `docs/`
//! reaches an existing file (and heading, when it names one), and the README keeps the two quick-start commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"].iter().map(|f| root().join(f)).collect();
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// A line without its inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The anchor GitHub gives a heading: lower case, without punctuation, spaces as hyphens.
fn slug(heading: &str) -> String {
    let lower = heading.trim().to_lowercase();
    let kept = lower.chars().filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '));
    kept.map(|c| if c == ' ' { '-' } else { c }).collect()
}

/// The anchors of a Markdown file's headings (a repeated heading's anchor gets `-1`, `-2`… as on GitHub).
fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for line in prose(text) {
        let Some(heading) = line.trim_start_matches('#').strip_prefix(' ').filter(|_| line.starts_with('#')) else {
            continue;
        };
        let base = slug(heading);
        let anchor = (0..).map(|n| if n == 0 { base.clone() } else { format!("{base}-{n}") });
        let free = anchor.into_iter().find(|anchor| !anchors.contains(anchor)).unwrap();
        anchors.insert(free);
    }
    anchors
}

/// The targets of a text's Markdown links and images: `[text](target)`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        let line = without_code(line);
        for (start, _) in line.match_indices("](") {
            let rest = &line[start + 2..];
            let end = rest.find([')', ' ']).unwrap_or(rest.len());
            targets.push(rest[..end].to_string());
        }
    }
    targets
}

/// What is wrong with a relative link from `document` to `target`, if anything.
fn broken(document: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() { document.to_path_buf() } else { document.parent().unwrap().join(path) };
    if !file.exists() {
        return Some(format!("no file {}", file.display()));
    }
    let markdown = file.extension().is_some_and(|ext| ext == "md");
    let found = anchor.is_empty() || !markdown || anchors(&fs::read_to_string(&file).unwrap()).contains(anchor);
    (!found).then(|| format!("no heading #{anchor} in {}", file.display()))
}

#[test]
fn every_relative_link_reaches_its_file_and_heading() {
    let mut failures = Vec::new();
    for document in documents() {
        let text = fs::read_to_string(&document).unwrap();
        for target in link_targets(&text) {
            if let Some(why) = broken(&document, &target) {
                failures.push(format!("{}: ({target}): {why}", document.display()));
            }
        }
    }
    assert!(failures.is_empty(), "broken links:\n{}", failures.join("\n"));
}

#[test]
fn anchors_follow_githubs_rules() {
    let text = "# LM Studio's native chat: `/api/v1/chat`\n## Errors\n```\n# not a heading\n```\n## Errors\n";
    let expected = ["lm-studios-native-chat-apiv1chat", "errors", "errors-1"];
    assert_eq!(anchors(text), expected.iter().map(ToString::to_string).collect());
}

#[test]
fn the_readme_keeps_the_two_quick_start_commands() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- serve --upstream echo"));
    assert!(readme.contains("\nscripts/test "));
    assert!(root().join("scripts/test").is_file());
}
