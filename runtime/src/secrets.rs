//! Secrets: `${{ secrets.NAME }}` template rendering, `{secret: {name: X}}` references, and a
//! string type whose value never reaches logs, errors or `Debug` output.
//!
//! Rules follow upstream Fluvio: only names declared in `meta.secrets` are visible to the
//! template; values come from the `--secrets` file (`KEY=VALUE` lines) when one is given, else
//! from the environment; a declared secret that has no value aborts start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself; only call this where it is sent to the service that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Never echo the value in a type error: accept strings and numbers only.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Str(s)) => Ok(Self(s)),
            Ok(Raw::Int(n)) => Ok(Self(n.to_string())),
            Err(_) => Err(serde::de::Error::custom(
                "expected a string (the secret value itself is not shown)",
            )),
        }
    }
}

/// Errors of secret resolution; they name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{0}` is declared in meta.secrets but has no value (not in the secrets file, nor in the environment)")]
    Missing(String),
    #[error("secret `{0}` is used but not declared in meta.secrets")]
    Undeclared(String),
    #[error("invalid secret name `{0}`: names match [A-Za-z_][A-Za-z0-9_]*")]
    InvalidName(String),
    #[error("secrets file {path}: line {line}: expected KEY=VALUE")]
    BadLine { path: String, line: usize },
    #[error("secrets file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("config template: {0}")]
    Template(String),
}

/// Where secret values come from: a `KEY=VALUE` file, or the process environment.
#[derive(Clone, Default)]
pub struct SecretStore {
    file: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.file.iter().flat_map(|m| m.keys()).collect();
        f.debug_struct("SecretStore")
            .field("file_names", &names)
            .finish()
    }
}

impl SecretStore {
    /// Secrets from the environment only.
    pub fn from_env() -> Self {
        Self { file: None }
    }

    /// Secrets from a file of `KEY=VALUE` lines (blank lines and `#` comments are skipped).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Self, SecretError> {
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or(SecretError::BadLine {
                path: origin.to_string(),
                line: i + 1,
            })?;
            let key = key.trim().trim_start_matches("export ").trim();
            validate_name(key)?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            map.insert(key.to_string(), value.to_string());
        }
        Ok(Self { file: Some(map) })
    }

    /// The value of a secret, from the file when one was given, else from the environment.
    pub fn get(&self, name: &str) -> Option<String> {
        match &self.file {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }

    /// Resolve every declared name, failing on the first missing one.
    pub fn resolve(&self, declared: &[String]) -> Result<ResolvedSecrets, SecretError> {
        let mut values = BTreeMap::new();
        for name in declared {
            validate_name(name)?;
            let value = self
                .get(name)
                .ok_or_else(|| SecretError::Missing(name.clone()))?;
            values.insert(name.clone(), value);
        }
        Ok(ResolvedSecrets { values })
    }
}

/// The values of the declared secrets, used to render the config and to scrub error text.
#[derive(Clone, Default)]
pub struct ResolvedSecrets {
    values: BTreeMap<String, String>,
}

impl fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl ResolvedSecrets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Replace every secret value that occurs in `text` by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first, so a secret containing another is scrubbed whole.
        let mut values: Vec<&String> = self.values.values().filter(|v| v.len() >= 3).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            out = out.replace(value.as_str(), "[redacted]");
        }
        out
    }

    /// Render `${{ secrets.NAME }}` placeholders (minijinja with upstream's custom delimiters;
    /// anything undefined is an error).
    pub fn render(&self, template: &str) -> Result<String, SecretError> {
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .block_delimiters("${%", "%}")
            .variable_delimiters("${{", "}}")
            .comment_delimiters("${#", "#}")
            .build()
            .map_err(|e| SecretError::Template(e.to_string()))?;
        let mut env = minijinja::Environment::new();
        env.set_syntax(syntax);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let secrets: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.render_str(template, minijinja::context! { secrets => secrets })
            .map_err(|e| {
                let mut msg = e.to_string();
                if let Some(name) = undefined_secret_name(template, self) {
                    msg = format!("secret `{name}` is used but not declared in meta.secrets");
                }
                SecretError::Template(self.scrub(&msg))
            })
    }
}

/// The first `secrets.NAME` used in the template that is not resolved, for a precise error.
fn undefined_secret_name(template: &str, resolved: &ResolvedSecrets) -> Option<String> {
    let mut rest = template;
    while let Some(pos) = rest.find("secrets.") {
        let tail = &rest[pos + "secrets.".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && resolved.get(&name).is_none() {
            return Some(name);
        }
        rest = tail;
    }
    None
}

pub fn validate_name(name: &str) -> Result<(), SecretError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SecretError::InvalidName(name.to_string()))
    }
}

/// Replace every `{secret: {name: X}}` mapping in a YAML tree by the value of secret X.
pub fn resolve_references(
    value: &mut serde_yaml::Value,
    secrets: &ResolvedSecrets,
) -> Result<(), SecretError> {
    use serde_yaml::Value;
    match value {
        Value::Mapping(map) => {
            if map.len() == 1 {
                if let Some(Value::Mapping(inner)) = map.get("secret") {
                    if let Some(Value::String(name)) = inner.get("name") {
                        let resolved = secrets
                            .get(name)
                            .ok_or_else(|| SecretError::Undeclared(name.clone()))?;
                        *value = Value::String(resolved.to_string());
                        return Ok(());
                    }
                }
            }
            for (_, v) in map.iter_mut() {
                resolve_references(v, secrets)?;
            }
        }
        Value::Sequence(seq) => {
            for v in seq {
                resolve_references(v, secrets)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(text: &str) -> SecretStore {
        SecretStore::parse(text, "test").unwrap()
    }

    #[test]
    fn secret_string_never_prints_its_value() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn renders_declared_secrets_from_file() {
        let resolved = store("TOKEN=abc123\n# comment\nOTHER=\"quoted\"\n")
            .resolve(&["TOKEN".into(), "OTHER".into()])
            .unwrap();
        let out = resolved
            .render("a: \"${{ secrets.TOKEN }}\"\nb: ${{secrets.OTHER}}\n")
            .unwrap();
        assert_eq!(out, "a: \"abc123\"\nb: quoted\n");
    }

    #[test]
    fn renders_from_environment_without_file() {
        std::env::set_var("CONNECTOR_RUNTIME_TEST_SECRET", "from-env");
        let resolved = SecretStore::from_env()
            .resolve(&["CONNECTOR_RUNTIME_TEST_SECRET".into()])
            .unwrap();
        let out = resolved
            .render("x: ${{ secrets.CONNECTOR_RUNTIME_TEST_SECRET }}")
            .unwrap();
        assert_eq!(out, "x: from-env");
    }

    #[test]
    fn missing_declared_secret_is_an_error_naming_it() {
        let err = store("A=1").resolve(&["B".into()]).unwrap_err();
        assert!(err.to_string().contains("secret `B`"), "{err}");
    }

    #[test]
    fn undeclared_secret_in_template_is_an_error_naming_it() {
        let resolved = store("A=1").resolve(&["A".into()]).unwrap();
        let err = resolved.render("x: ${{ secrets.NOPE }}").unwrap_err();
        assert!(err.to_string().contains("`NOPE`"), "{err}");
    }

    #[test]
    fn invalid_names_and_lines_are_rejected() {
        assert!(SecretStore::parse("1A=x", "f").is_err());
        let err = SecretStore::parse("novalue", "f").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(validate_name("_ok_1").is_ok());
        assert!(validate_name("bad-name").is_err());
    }

    #[test]
    fn scrub_hides_values() {
        let resolved = store("A=supersecret").resolve(&["A".into()]).unwrap();
        assert_eq!(
            resolved.scrub("invalid value supersecret here"),
            "invalid value [redacted] here"
        );
    }

    #[test]
    fn secret_references_resolve_in_place() {
        let resolved = store("K=v1").resolve(&["K".into()]).unwrap();
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str("a:\n  b:\n    secret:\n      name: K\n").unwrap();
        resolve_references(&mut doc, &resolved).unwrap();
        assert_eq!(doc["a"]["b"].as_str(), Some("v1"));
        let mut bad: serde_yaml::Value = serde_yaml::from_str("secret: {name: Z}").unwrap();
        assert!(resolve_references(&mut bad, &resolved).is_err());
    }
}
