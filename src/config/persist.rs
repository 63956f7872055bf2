//! Writing runtime changes back to the config file, so they survive a restart. The file is edited
//! with toml_edit (comments, ordering and formatting stay as the operator wrote them; only the
//! changed value differs) and replaced atomically: temp file in the same directory, fsync, rename,
//! fsync of the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Value};

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{file} is not valid TOML ({why}); fix the file first")]
    NotToml { file: String, why: String },
    #[error("{file} has no [[routes]] entry named {route:?}; was it edited since the last reload?")]
    NoRoute { file: String, route: String },
    #[error("{file} is read-only (mode {mode:o}); make it writable so runtime changes can be kept")]
    ReadOnly { file: String, mode: u32 },
    #[error("cannot write {file}: {why}")]
    Write { file: String, why: std::io::Error },
}

/// `text` with the `weight` of the route named `route` set to `percent`. Every other byte is kept:
/// the value's own trailing comment too. An integer stays an integer when the new value is whole.
pub fn set_weight(text: &str, file: &Path, route: &str, percent: f64) -> Result<String, PersistError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| PersistError::NotToml { file: show(file), why: e.message().to_string() })?;
    let no_route = || PersistError::NoRoute { file: show(file), route: route.to_string() };
    let entry = doc
        .get_mut("routes")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|routes| routes.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(route)))
        .ok_or_else(no_route)?;
    let whole = percent.fract() == 0.0;
    match entry.get_mut("weight").and_then(Item::as_value_mut) {
        Some(old) => {
            let mut new = if whole && old.is_integer() { Value::from(percent as i64) } else { Value::from(percent) };
            *new.decor_mut() = old.decor().clone();
            *old = new;
        }
        None => {
            entry.insert("weight", toml_edit::value(percent));
        }
    }
    Ok(doc.to_string())
}

/// The file a write lands in: a symlinked config (a Kubernetes ConfigMap, a deploy directory) is
/// written through the link, which is kept.
fn target(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Replace (or create) the file at `path` with `text`, atomically: a reader sees the old file or the new one,
/// never a mix, and after a crash the file is whole. A read-only file is refused even where the
/// process could write it anyway (root): it is how operators say "do not touch".
///
/// The temp file has an unpredictable name and is created exclusively, never through a link
/// (`O_EXCL | O_NOFOLLOW`): another user of a shared directory cannot plant one to be written
/// through. The new file keeps the old one's owner; when the owner cannot be kept (the file
/// belongs to another user), nothing is written. Its mode: 0600 for a file that holds
/// [`Contents::Secrets`]; otherwise the old file's, or for a new file what the umask allows.
pub fn write_atomic(path: &Path, text: &str, contents: Contents) -> Result<(), PersistError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

    let file = target(path);
    let err = |why| PersistError::Write { file: show(&file), why };
    let (old, owner) = match std::fs::metadata(&file) {
        Ok(m) => (Some(m.permissions()), Some((m.uid(), m.gid()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(err(e)),
    };
    if let Some(perms) = old.as_ref().filter(|p| p.mode() & 0o222 == 0) {
        return Err(PersistError::ReadOnly { file: show(&file), mode: perms.mode() & 0o7777 });
    }
    // `None`: a new file of plain contents, created with what the umask leaves of 0666.
    let perms = match contents {
        Contents::Secrets => Some(std::fs::Permissions::from_mode(0o600)),
        Contents::Plain => old,
    };
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut created = false;
    let mut written = || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(if perms.is_some() { 0o600 } else { 0o666 })
            .open(&tmp)?;
        created = true;
        if let Some((uid, gid)) = owner {
            let m = f.metadata()?;
            if (m.uid(), m.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the file belongs to uid {uid} gid {gid} and rewriting it would change that ({e}); run strangler as its owner or give the file to strangler's user"),
                    )
                })?;
            }
        }
        if let Some(p) = &perms {
            f.set_permissions(p.clone())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    let written = written();
    if written.is_err() && created {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// What a written file holds, for its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// A token or another secret (the routing document with override tokens): 0600.
    Secrets,
    /// Nothing secret: the old file's mode, or the umask's for a new file.
    Plain,
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# the orders migration
[upstreams.a]
addresses = ["127.0.0.1:1"]

[[routes]]
name = "users"   # first
legacy = "a"
new = "a"
weight = 5

[[routes]]
name = "orders"
legacy = "a"
new = "a"
weight = 10.0    # percent on new
sticky = "client_ip"
"#;

    #[test]
    fn only_the_weight_changes() {
        let out = set_weight(FILE, Path::new("f.toml"), "orders", 50.0).unwrap_or_default();
        assert_eq!(out, FILE.replace("weight = 10.0    #", "weight = 50.0    #"));
        let out = set_weight(FILE, Path::new("f.toml"), "users", 12.5).unwrap_or_default();
        assert_eq!(out, FILE.replace("weight = 5\n", "weight = 12.5\n"));
        let out = set_weight(FILE, Path::new("f.toml"), "users", 100.0).unwrap_or_default();
        assert_eq!(out, FILE.replace("weight = 5\n", "weight = 100\n"));
    }

    #[test]
    fn a_missing_weight_is_added_and_an_unknown_route_refused() {
        let text = FILE.replace("weight = 5\n", "");
        let out = set_weight(&text, Path::new("f.toml"), "users", 1.0).unwrap_or_default();
        let parsed: toml::Table = out.parse().unwrap_or_default();
        let routes = parsed.get("routes").and_then(|r| r.as_array()).cloned().unwrap_or_default();
        assert_eq!(routes[0].get("weight").and_then(|w| w.as_float()), Some(1.0));
        let e = set_weight(FILE, Path::new("f.toml"), "payments", 1.0).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("no [[routes]] entry named \"payments\""));
    }

    #[test]
    fn atomic_write_keeps_mode_and_refuses_read_only_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "a = 1\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&path, "a = 2\n", Contents::Plain).expect("atomic write");
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "a = 2\n");
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o640);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        assert!(matches!(write_atomic(&path, "a = 3\n", Contents::Plain), Err(PersistError::ReadOnly { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "a = 2\n");
        let leftovers = std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 1, "no temp file left behind");
    }
}
