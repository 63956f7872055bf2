//! The README, ARCHITECTURE.md and the book in `docs/`: every link that stays in the repository
//! leads somewhere (a file, and a heading when it names one), and every TOML example is a valid
//! config, or a fragment whose every key strangler knows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every page: the README, ARCHITECTURE.md and the book's chapters.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    let src = root().join("docs/src");
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&src)
        .expect("docs/src")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    chapters.sort();
    pages.extend(chapters);
    pages
}

/// The page's text outside code blocks, and its code blocks with their language.
fn split(text: &str) -> (String, Vec<(String, String)>) {
    let (mut prose, mut blocks, mut fence) = (String::new(), Vec::new(), None::<(String, String)>);
    for line in text.lines() {
        match (&mut fence, line.strip_prefix("```")) {
            (None, Some(lang)) => fence = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.extend(fence.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    (prose, blocks)
}

/// A heading's anchor, as GitHub and mdBook make it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let (prose, _) = split(&text);
    let mut found: BTreeSet<String> = prose
        .lines()
        .filter_map(|l| l.trim_start_matches('#').strip_prefix(' ').filter(|_| l.starts_with('#')))
        .map(anchor)
        .collect();
    // A chapter that includes another file has its headings.
    for line in text.lines() {
        if let Some(inc) = line.strip_prefix("{{#include ").and_then(|l| l.strip_suffix("}}")) {
            found.extend(anchors(&page.parent().expect("a folder").join(inc)));
        }
    }
    found
}

#[test]
fn every_link_within_the_repository_leads_somewhere() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").expect("a regex");
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a page");
        let (prose, _) = split(&text);
        for cap in link.captures_iter(&prose) {
            let target = &cap[1];
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').map_or((target, None), |(f, a)| (f, Some(a)));
            let dest = if file.is_empty() { page.clone() } else { page.parent().expect("a folder").join(file) };
            let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
            if !dest.exists() {
                broken.push(format!("{name}: {target}: no such file"));
            } else if let Some(a) = fragment {
                if !anchors(&dest).contains(a) {
                    broken.push(format!("{name}: {target}: no heading #{a} there"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// A fragment's tables merged into a config with two upstreams and one route, so that
/// `[routes.rollout]` alone is that route's rollout.
fn completed(fragment: toml::Table) -> String {
    let base: toml::Table = toml::from_str(
        "[upstreams.legacy]\naddresses = [\"127.0.0.1:9\"]\n[upstreams.new]\naddresses = [\"127.0.0.1:10\"]\n\
         [[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n",
    )
    .expect("the base");
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut doc = base.clone();
    for (k, v) in fragment {
        match (k.as_str(), v) {
            // `[routes.X]`: the base route's.
            ("routes", toml::Value::Table(t)) => {
                if let Some(toml::Value::Table(r)) = doc.get_mut("routes").and_then(|r| r.get_mut(0)) {
                    merge(r, t);
                }
            }
            (_, v) => {
                let mut one = toml::Table::new();
                one.insert(k, v);
                merge(&mut doc, one);
            }
        }
    }
    toml::to_string(&doc).expect("a config")
}

#[test]
fn every_config_example_is_valid_and_names_only_known_keys() {
    let mut wrong = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a page");
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        for (i, (_, body)) in split(&text).1.into_iter().filter(|(lang, _)| lang == "toml").enumerate() {
            seen += 1;
            let fragment: toml::Table = match toml::from_str(&body) {
                Ok(t) => t,
                Err(e) => {
                    wrong.push(format!("{name}, TOML example {}: not TOML: {e}", i + 1));
                    continue;
                }
            };
            let whole = fragment.contains_key("upstreams") && fragment.contains_key("routes");
            let text = if whole { body.clone() } else { completed(fragment) };
            if let Err(e) = strangler::config::load_str(&text, Path::new("example.toml")) {
                // A fragment is judged on its keys; a whole config on everything.
                let problems: Vec<String> = e
                    .problems
                    .iter()
                    .filter(|p| whole || p.message.contains("unknown"))
                    .map(|p| format!("{} {}", p.key, p.message))
                    .collect();
                if !problems.is_empty() {
                    wrong.push(format!("{name}, TOML example {}:\n  {}", i + 1, problems.join("\n  ")));
                }
            }
        }
    }
    assert!(seen >= 4, "only {seen} TOML examples found: is the fence detection right?");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_readme_stays_short_and_the_book_lists_every_chapter() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(
        readme.lines().count() <= 300,
        "README.md is {} lines: the reference belongs in docs/",
        readme.lines().count()
    );
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).expect("SUMMARY");
    for page in pages().iter().skip(2) {
        let file = page.file_name().and_then(|n| n.to_str()).expect("a name");
        if file != "SUMMARY.md" {
            assert!(summary.contains(&format!("({file})")), "{file} is not in SUMMARY.md");
        }
    }
}
