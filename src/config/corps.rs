//! `[[corp]]` tables and `include`: one file (and a `corps.d/`) serving several corps.
//!
//! Corps are resolved on the TOML tree, before anything is deserialized, so that each corp
//! becomes exactly the file a single-corp config is: the shared top-level tables (`[smtp]`,
//! `[wecom]`, `[server]`, `[store]`, `[directory]`, the `[schedule]`, `[templates]` and
//! `[fallback]` defaults) with the corp's own `[corp.weiban]`, `[[corp.route]]`,
//! `[[corp.report]]` and overrides laid over them. The one validation path then checks every
//! corp alike, and every error it finds is wrapped in [`super::ConfigError::InCorp`] to name
//! the corp and the file it came from.
//!
//! A file without `[[corp]]` (and without `include`) is one corp named `default`, unchanged.

use std::path::{Path, PathBuf};

use toml::value::Table;

use super::ConfigError;
use crate::corp::CorpName;

/// The keys a `[[corp]]` table takes besides `name`: the top-level tables of the same names.
const CORP_KEYS: [&str; 6] = [
    "weiban",
    "route",
    "report",
    "schedule",
    "templates",
    "fallback",
];
/// Top-level tables that are a corp's own, which a file with `[[corp]]` tables must not have.
const CORP_ONLY: [&str; 3] = ["weiban", "route", "report"];
/// Top-level tables a corp's own table of the same name is laid over key by key.
const MERGED: [&str; 2] = ["schedule", "templates"];

/// One corp's part of the file, not yet expanded or validated.
pub(super) struct CorpTree {
    pub name: CorpName,
    /// The single-corp file this corp amounts to.
    pub tree: toml::Value,
    /// The file its `[[corp]]` table is in (the main file or an included one).
    pub origin: PathBuf,
}

/// Splits a parsed config file into its corps. `read` reads an included file (the caller's
/// own parsing, so that its errors look alike).
///
/// `${VAR}` is expanded here, the shared tables once and each corp's own table under its
/// `corp.NAME` key, so that an unset variable is named by the key that uses it.
pub(super) fn split(
    mut tree: toml::Value,
    path: &Path,
    read: &dyn Fn(&Path) -> Result<toml::Value, ConfigError>,
    expand: &mut dyn FnMut(&mut toml::Value, &str) -> Result<(), ConfigError>,
) -> Result<Vec<CorpTree>, ConfigError> {
    let top = tree.as_table_mut().ok_or_else(|| ConfigError::Parse {
        path: path.to_owned(),
        message: "the file is not a TOML table".into(),
    })?;
    let mut tables = Vec::new();
    if let Some(corps) = top.remove("corp") {
        tables.extend(corp_tables(corps, path)?);
    }
    if let Some(include) = top.remove("include") {
        for file in included_files(&include, path)? {
            let mut included = read(&file)?;
            let table = included.as_table_mut().ok_or_else(|| ConfigError::Parse {
                path: file.clone(),
                message: "the file is not a TOML table".into(),
            })?;
            if let Some(key) = table.keys().find(|k| k.as_str() != "corp") {
                return Err(ConfigError::Parse {
                    path: file.clone(),
                    message: format!(
                        "an included file holds only [[corp]] tables, not `{key}`: shared settings stay in {}",
                        path.display()
                    ),
                });
            }
            if let Some(corps) = table.remove("corp") {
                tables.extend(corp_tables(corps, &file)?);
            }
        }
        if tables.is_empty() {
            return Err(ConfigError::invalid(
                "include",
                "the included files hold no [[corp]] table: check the patterns, or remove `include`",
            ));
        }
    }
    expand_table(top, "", expand)?;
    let top = std::mem::take(top);
    if tables.is_empty() {
        let tree = toml::Value::Table(top);
        return Ok(vec![CorpTree {
            name: CorpName::default_corp(),
            tree,
            origin: path.to_owned(),
        }]);
    }
    for key in CORP_ONLY {
        if top.contains_key(key) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "with [[corp]] tables, each corp has its own: move `[{key}]` into the corps (`[corp.{key}]`, `[[corp.{key}]]`)"
                ),
            ));
        }
    }
    let mut corps: Vec<CorpTree> = Vec::with_capacity(tables.len());
    for (mut table, origin) in tables {
        let name = corp_name(&mut table, &origin)?;
        expand_table(&mut table, &format!("corp.{name}"), expand)?;
        if let Some(other) = corps.iter().find(|c| c.name == name) {
            return Err(ConfigError::invalid(
                format!("corp.{name}"),
                format!(
                    "two corps are named `{name}` (in {} and {}): names must be unique",
                    other.origin.display(),
                    origin.display()
                ),
            ));
        }
        let tree = toml::Value::Table(laid_over(&top, table, &name)?);
        corps.push(CorpTree { name, tree, origin });
    }
    Ok(corps)
}

/// `[[corp]]` as an array of tables, with the file each came from.
fn corp_tables(corps: toml::Value, origin: &Path) -> Result<Vec<(Table, PathBuf)>, ConfigError> {
    let toml::Value::Array(items) = corps else {
        return Err(in_file(origin, "`corp` must be tables written `[[corp]]`"));
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::Table(table) => Ok((table, origin.to_owned())),
            _ => Err(in_file(origin, "`corp` must be tables written `[[corp]]`")),
        })
        .collect()
}

fn corp_name(table: &mut Table, origin: &Path) -> Result<CorpName, ConfigError> {
    match table.remove("name") {
        Some(toml::Value::String(name)) => name
            .parse()
            .map_err(|e: crate::corp::CorpError| ConfigError::invalid("corp.name", e.to_string())),
        Some(_) => Err(ConfigError::invalid("corp.name", "must be a string")),
        None => Err(in_file(
            origin,
            "a [[corp]] table has no `name`: every corp needs one (it names its store, logs and metrics)",
        )),
    }
}

/// The top-level tables with the corp's own laid over them.
fn laid_over(top: &Table, corp: Table, name: &CorpName) -> Result<Table, ConfigError> {
    let mut merged = top.clone();
    for (key, value) in corp {
        if !CORP_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::invalid(
                format!("corp.{name}.{key}"),
                format!(
                    "is not a key of [[corp]]; a corp takes `name`, {}; shared settings stay at the top level",
                    CORP_KEYS.map(|k| format!("`{k}`")).join(", ")
                ),
            ));
        }
        match (merged.get_mut(&key), value) {
            (Some(toml::Value::Table(shared)), toml::Value::Table(own))
                if MERGED.contains(&key.as_str()) =>
            {
                shared.extend(own);
            }
            (_, value) => {
                merged.insert(key, value);
            }
        }
    }
    Ok(merged)
}

/// The files `include` names: each pattern relative to the config file's folder, each
/// pattern's matches in name order, a file named twice read once.
fn included_files(include: &toml::Value, path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let not_list = || {
        ConfigError::invalid(
            "include",
            "must be a list of file patterns, e.g. include = [\"corps.d/*.toml\"]",
        )
    };
    let toml::Value::Array(patterns) = include else {
        return Err(not_list());
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let pattern = pattern.as_str().ok_or_else(not_list)?;
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        let matches = glob::glob(&full).map_err(|e| {
            ConfigError::invalid(
                format!("include[{i}]"),
                format!("`{pattern}` is not a file pattern: {e}"),
            )
        })?;
        let mut found: Vec<PathBuf> = matches
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        for file in found {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

/// Expands `${VAR}` in every value of `table`, each named `prefix.key`.
fn expand_table(
    table: &mut Table,
    prefix: &str,
    expand: &mut dyn FnMut(&mut toml::Value, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    for (name, value) in table.iter_mut() {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        expand(value, &key)?;
    }
    Ok(())
}

fn in_file(path: &Path, message: &str) -> ConfigError {
    ConfigError::Parse {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::{env_from, Config, ConfigError};

    const SHARED: &str = r#"
[schedule]
cron = "*/5 * * * *"
quiet_hours = "22:00-08:00"
[store]
path = "/var/lib/churn-alert/store"
"#;

    fn corp(name: &str, extra: &str) -> String {
        format!(
            r#"
[[corp]]
name = "{name}"
[corp.weiban]
corp_id = "${{{upper}_CORP}}"
secret = "s3cret-{name}"
[[corp.route]]
name = "managers"
audience = "managers"
wecom_webhooks = ["http://127.0.0.1:1/cgi-bin/webhook/send?key={name}"]
{extra}
"#,
            upper = name.to_uppercase()
        )
    }

    fn env() -> impl Fn(&str) -> Option<String> {
        env_from(BTreeMap::from([
            ("ACME_CORP".to_owned(), "ww-acme".to_owned()),
            ("GLOBEX_CORP".to_owned(), "ww-globex".to_owned()),
        ]))
    }

    fn load(text: &str) -> Result<Vec<Config>, ConfigError> {
        Config::from_toml_all(text, Path::new("/etc/churn-alert/config.toml"), &env())
    }

    #[test]
    fn each_corp_gets_the_shared_settings_under_its_own() {
        let text = format!(
            "{SHARED}{}{}",
            corp("acme", ""),
            corp("globex", "[corp.schedule]\ncron = \"0 * * * *\"\n")
        );
        let corps = load(&text).unwrap();
        let names: Vec<&str> = corps.iter().map(|c| c.corp.as_str()).collect();
        assert_eq!(names, ["acme", "globex"]);
        assert_eq!(corps[0].weiban.corp_id, "ww-acme");
        assert_eq!(corps[1].weiban.corp_id, "ww-globex");
        assert_eq!(corps[0].schedule.cron, "*/5 * * * *");
        // A corp's own [corp.schedule] is laid over the shared one key by key.
        assert_eq!(corps[1].schedule.cron, "0 * * * *");
        assert!(corps[1].quiet_hours().is_some(), "quiet hours are shared");
        assert_eq!(corps[1].store.path, corps[0].store.path);
        assert_eq!(corps[0].routes[0].name, "managers");
    }

    #[test]
    fn a_file_without_corps_is_the_default_corp() {
        let text = format!(
            "{SHARED}[weiban]\ncorp_id = \"x\"\nsecret = \"y\"\n[[route]]\nname = \"m\"\naudience = \"managers\"\nwecom_webhooks = [\"http://127.0.0.1:1/cgi-bin/webhook/send?key=k\"]\n"
        );
        let corps = load(&text).unwrap();
        assert_eq!(corps.len(), 1);
        assert!(corps[0].corp.is_default());
    }

    #[test]
    fn errors_name_the_corp_and_the_key() {
        let bad = corp("globex", "").replace("audience = \"managers\"", "audience = \"all\"");
        let err = load(&format!("{SHARED}{}{bad}", corp("acme", ""))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("corp `globex` (in /etc/churn-alert/config.toml):"),
            "{text}"
        );
        assert!(text.contains("audience"), "{text}");

        let unset = corp("initech", "");
        let text = load(&format!("{SHARED}{unset}")).unwrap_err().to_string();
        assert!(
            text.contains("corp.initech.weiban.corp_id") && text.contains("INITECH_CORP"),
            "{text}"
        );

        let twice = format!("{SHARED}{}{}", corp("acme", ""), corp("acme", ""));
        let text = load(&twice).unwrap_err().to_string();
        assert!(text.contains("two corps are named `acme`"), "{text}");

        let stray = corp("acme", "[corp.smtp]\nhost = \"x\"\n");
        let text = load(&format!("{SHARED}{stray}")).unwrap_err().to_string();
        assert!(
            text.contains("corp.acme.smtp") && text.contains("top level"),
            "{text}"
        );

        let mixed = format!("{SHARED}[weiban]\ncorp_id = \"x\"\n{}", corp("acme", ""));
        let text = load(&mixed).unwrap_err().to_string();
        assert!(
            text.contains("`weiban`") && text.contains("[corp.weiban]"),
            "{text}"
        );

        let nameless = format!("{SHARED}[[corp]]\n[corp.weiban]\ncorp_id = \"x\"\n");
        let text = load(&nameless).unwrap_err().to_string();
        assert!(text.contains("has no `name`"), "{text}");

        let bad_name = corp("acme", "").replace("name = \"acme\"", "name = \"a/b\"");
        let text = load(&format!("{SHARED}{bad_name}"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("`a/b` is not a corp name"), "{text}");
    }

    #[test]
    fn include_reads_corps_from_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let corps_d = dir.path().join("corps.d");
        std::fs::create_dir_all(&corps_d).unwrap();
        std::fs::write(corps_d.join("b.toml"), corp("globex", "")).unwrap();
        std::fs::write(corps_d.join("a.toml"), corp("acme", "")).unwrap();
        std::fs::write(corps_d.join("notes.txt"), "not toml").unwrap();
        let main = dir.path().join("config.toml");
        let text = format!("include = [\"corps.d/*.toml\"]\n{SHARED}");
        let corps = Config::from_toml_all(&text, &main, &env()).unwrap();
        let names: Vec<&str> = corps.iter().map(|c| c.corp.as_str()).collect();
        assert_eq!(names, ["acme", "globex"]);

        std::fs::write(corps_d.join("c.toml"), "[smtp]\nhost = \"x\"\n").unwrap();
        let err = Config::from_toml_all(&text, &main, &env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml") && err.contains("only [[corp]] tables"),
            "{err}"
        );

        let nothing = format!("include = [\"none.d/*.toml\"]\n{SHARED}");
        let err = Config::from_toml_all(&nothing, &main, &env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("include") && err.contains("no [[corp]]"),
            "{err}"
        );
    }
}
