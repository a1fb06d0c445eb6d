//! `Connector.toml` said once: the properties it lists for a connector's config section must be
//! exactly the fields that section's struct accepts (a test fails when they drift apart).

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;

/// The fields a `deny_unknown_fields` struct accepts, as serde names them in its error for an
/// unknown field.
pub fn accepted_fields<T: DeserializeOwned>() -> BTreeSet<String> {
    let err = match serde_json::from_str::<T>(r#"{"?": 0}"#) {
        Ok(_) => panic!("the struct accepted an unknown field: it needs deny_unknown_fields"),
        Err(e) => e.to_string(),
    };
    let list = err
        .split_once("expected ")
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no field list in `{err}`"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The `[custom.properties.NAME]` tables of a `Connector.toml` (`NAME` may be quoted); a table
/// declared twice panics (TOML forbids it: cdk refuses such a file).
pub fn listed_properties(connector_toml: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(connector_toml)
        .unwrap_or_else(|e| panic!("{}: {e}", connector_toml.display()));
    let mut listed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let Some(name) = line
            .trim()
            .strip_prefix("[custom.properties.")
            .and_then(|l| l.strip_suffix(']'))
        else {
            continue;
        };
        let name = name.trim_matches('"').to_string();
        assert!(
            listed.insert(name.clone()),
            "{}:{}: property {name} declared twice",
            connector_toml.display(),
            n + 1
        );
    }
    listed
}

/// Panic, naming the differences, unless `Connector.toml` lists exactly the fields of `T`.
/// Names compare with `.` read as `_`: serde names an alias (`tweet_fields` for
/// `tweet.fields`) as a field of its own.
pub fn assert_lists_every_field<T: DeserializeOwned>(connector_toml: &Path) {
    let same = |names: BTreeSet<String>| -> BTreeSet<String> {
        names.into_iter().map(|n| n.replace('.', "_")).collect()
    };
    let fields = same(accepted_fields::<T>());
    let listed = same(listed_properties(connector_toml));
    let missing: Vec<_> = fields.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&fields).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{}: fields of the config not listed: {missing:?}; listed but not fields: {unknown:?}",
        connector_toml.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Two {
        brokers: String,
        #[serde(default)]
        topic: Option<String>,
    }

    #[test]
    fn fields_and_properties() {
        assert_eq!(
            accepted_fields::<Two>(),
            ["brokers", "topic"].map(String::from).into()
        );
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("Connector.toml");
        std::fs::write(
            &toml,
            "[custom]\nname = \"k\"\n[custom.properties.brokers]\ntype = \"string\"\n",
        )
        .unwrap();
        let r = std::panic::catch_unwind(|| assert_lists_every_field::<Two>(&toml));
        assert!(r.is_err(), "topic is not listed");
        std::fs::write(
            &toml,
            "[custom.properties.brokers]\n[custom.properties.topic]\n",
        )
        .unwrap();
        assert_lists_every_field::<Two>(&toml);
        std::fs::write(
            &toml,
            "[custom.properties.brokers]\n[custom.properties.topic]\n[custom.properties.\"brokers\"]\n",
        )
        .unwrap();
        let r = std::panic::catch_unwind(|| listed_properties(&toml));
        assert!(r.is_err(), "brokers is declared twice");
    }
}
