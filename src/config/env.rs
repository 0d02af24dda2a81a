//! `${VAR}` expansion in every string of the file, tracking the key path of each, so that an
//! unset variable is reported with the key that uses it — all of them in one run.

use super::ConfigError;

/// One line per unset variable, so that one run shows them all.
pub(super) fn unset_message(unset: &[(String, String)]) -> String {
    let lines: Vec<String> = unset
        .iter()
        .map(|(key, var)| {
            format!("config key `{key}` uses environment variable `{var}`, which is not set")
        })
        .collect();
    if let [one] = lines.as_slice() {
        return one.clone();
    }
    format!(
        "{} environment variables are not set:\n  {}",
        lines.len(),
        lines.join("\n  ")
    )
}

/// Replaces `${VAR}` in every string of `value`; `$$` stands for a literal `$`. Every unset
/// variable is collected in `unset` (key, variable), so that one run reports them all.
pub(super) fn expand_env(
    value: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => *s = expand_str(s, key, env, unset)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{key}[{i}]"), env, unset)?;
            }
        }
        toml::Value::Table(table) => {
            for (name, item) in table.iter_mut() {
                let child = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                expand_env(item, &child, env, unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<(String, String)>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| ConfigError::BadPlaceholder {
                key: key.to_owned(),
            })?;
            let var = &tail[..end];
            match env(var) {
                Some(value) => out.push_str(&value),
                None => unset.push((key.to_owned(), var.to_owned())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Environment lookups from a fixed map, for tests and the demo.
#[cfg(any(test, feature = "demo"))]
pub fn env_from(
    vars: std::collections::BTreeMap<String, String>,
) -> impl Fn(&str) -> Option<String> {
    move |name| vars.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn dollar_dollar_is_a_literal_dollar_and_unset_variables_are_collected() {
        let env = env_from(BTreeMap::from([("A".to_owned(), "x".to_owned())]));
        let mut unset = Vec::new();
        assert_eq!(
            expand_str("a$$b$c${A}${B}${C}", "k", &env, &mut unset).unwrap(),
            "a$b$cx"
        );
        assert_eq!(
            unset,
            [
                ("k".to_owned(), "B".to_owned()),
                ("k".to_owned(), "C".to_owned())
            ]
        );
    }
}
