//! The routing document: the part of a config that is the fleet's (`[upstreams.*]` and
//! `[[routes]]`), as TOML text with its comments, and how an instance joins it to the process
//! settings of its own file.

use toml_edit::DocumentMut;

/// The top-level tables that make up the routing document.
pub const ROUTING: [&str; 2] = ["upstreams", "routes"];

fn parse(text: &str, what: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>().map_err(|e| format!("{what} is not valid TOML: {}", e.message().trim()))
}

/// The routing part of a whole config text: its `[upstreams.*]` and `[[routes]]`, comments and
/// formatting kept, everything else left out.
pub fn routing_part(text: &str) -> Result<String, String> {
    let mut doc = parse(text, "the file")?;
    let others: Vec<String> =
        doc.iter().map(|(k, _)| k.to_string()).filter(|k| !ROUTING.contains(&k.as_str())).collect();
    for k in others {
        doc.remove(&k);
    }
    Ok(doc.to_string())
}

/// The process part of a whole config text: everything but the routing tables.
pub fn process_part(text: &str) -> Result<String, String> {
    let mut doc = parse(text, "the file")?;
    for k in ROUTING {
        doc.remove(k);
    }
    Ok(doc.to_string())
}

/// The routing tables a text has, if any (`["routes"]`, ...).
pub fn routing_in(text: &str) -> Vec<&'static str> {
    match text.parse::<DocumentMut>() {
        Ok(doc) => ROUTING.into_iter().filter(|k| doc.contains_key(k)).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a routing document must not hold: process settings, which stay in each instance's own
/// file. Empty when it is only upstreams and routes.
pub fn foreign_keys(doc: &str) -> Result<Vec<String>, String> {
    let doc = parse(doc, "the routing document")?;
    Ok(doc.iter().map(|(k, _)| k.to_string()).filter(|k| !ROUTING.contains(&k.as_str())).collect())
}

/// The config an instance runs: the routing document first (so the line numbers of its
/// problems are the document's own), then the instance's process settings.
pub fn join(routing: &str, process: &str) -> String {
    let mut text = String::with_capacity(routing.len() + process.len() + 1);
    text.push_str(routing);
    if !routing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(process);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &str = r#"# the proxy
[server]
listen = ["127.0.0.1:8080"]

# pools
[upstreams.legacy]
addresses = ["127.0.0.1:3000"]

[cluster]
etcd = ["http://127.0.0.1:2379"]

[[routes]]
name = "orders" # the busy one
legacy = "legacy"
new = "legacy"
weight = 10
"#;

    #[test]
    fn a_file_splits_into_routing_and_process_parts_with_comments_kept() {
        let routing = routing_part(WHOLE).expect("routing");
        assert!(routing.contains("# pools\n[upstreams.legacy]"), "{routing}");
        assert!(routing.contains("name = \"orders\" # the busy one"), "{routing}");
        assert!(!routing.contains("[server]") && !routing.contains("[cluster]"), "{routing}");
        let process = process_part(WHOLE).expect("process");
        assert!(process.contains("[server]") && process.contains("[cluster]"), "{process}");
        assert!(!process.contains("routes") && !process.contains("upstreams"), "{process}");
        assert_eq!(routing_in(&process), Vec::<&str>::new());
        assert_eq!(routing_in(WHOLE), vec!["upstreams", "routes"]);
        assert_eq!(foreign_keys(&routing).expect("parses"), Vec::<String>::new());
        assert_eq!(foreign_keys(WHOLE).expect("parses"), vec!["server".to_string(), "cluster".to_string()]);
    }

    #[test]
    fn joined_parts_parse_as_one_config_with_the_documents_lines_first() {
        let routing = routing_part(WHOLE).expect("routing");
        let joined = join(&routing, &process_part(WHOLE).expect("process"));
        let table: toml::Table = joined.parse().expect("valid TOML");
        assert!(table.contains_key("server") && table.contains_key("routes") && table.contains_key("cluster"));
        assert!(joined.starts_with(&routing));
    }
}
